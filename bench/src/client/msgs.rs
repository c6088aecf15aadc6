//! Client side of the SMB2 messages smb3bench uses: request body encoders and response body
//! decoders (MS-SMB2 2.2). The protocol crate holds the server side (request decoders, response
//! encoders); the tests below check each encoder against its server decoder.
//!
//! Encoders append a request BODY to a `Vec<u8>` that already holds the 64-byte header (offsets
//! in SMB2 bodies count from the header start). Decoders take the whole response message.

use smb3d_protocol::dialect::{Cipher, SigningAlgorithm};
use smb3d_protocol::header::HEADER_BYTES;
use smb3d_protocol::messages::lease::{self, LeaseBreakAck, LeaseBreakNotification, LeaseContext};
use smb3d_protocol::messages::negotiate::{context_type, HASH_SHA512};
use smb3d_protocol::messages::oplock_break;
use smb3d_protocol::wire::{slice_at, string_to_utf16le, Reader, Result, Writer};
use smb3d_protocol::NtStatus;

/// What the client offers in NEGOTIATE.
pub struct NegotiateOffer<'a> {
    pub security_mode: u16,
    pub capabilities: u32,
    pub client_guid: [u8; 16],
    pub dialects: &'a [u16],
    pub salt: [u8; 32],
    pub ciphers: &'a [Cipher],
    pub signing_algorithms: &'a [SigningAlgorithm],
}

/// NEGOTIATE request (MS-SMB2 2.2.3) with the 3.1.1 contexts (2.2.3.1): preauth integrity
/// (SHA-512), encryption and signing capabilities.
pub fn encode_negotiate(o: &NegotiateOffer<'_>, out: &mut Vec<u8>) {
    let base = out.len() - HEADER_BYTES;
    out.put_u16(36);
    out.put_u16(o.dialects.len() as u16);
    out.put_u16(o.security_mode);
    out.put_u16(0);
    out.put_u32(o.capabilities);
    out.put_bytes(&o.client_guid);
    let ctx_offset_at = out.len();
    out.put_u32(0);
    out.put_u16(0);
    out.put_u16(0);
    for d in o.dialects {
        out.put_u16(*d);
    }
    if !o.dialects.contains(&0x0311) {
        return;
    }
    let mut contexts: Vec<(u16, Vec<u8>)> = Vec::new();
    let mut preauth = Vec::new();
    preauth.put_u16(1);
    preauth.put_u16(32);
    preauth.put_u16(HASH_SHA512);
    preauth.put_bytes(&o.salt);
    contexts.push((context_type::PREAUTH_INTEGRITY, preauth));
    if !o.ciphers.is_empty() {
        let mut c = Vec::new();
        c.put_u16(o.ciphers.len() as u16);
        o.ciphers.iter().for_each(|x| c.put_u16(*x as u16));
        contexts.push((context_type::ENCRYPTION, c));
    }
    if !o.signing_algorithms.is_empty() {
        let mut c = Vec::new();
        c.put_u16(o.signing_algorithms.len() as u16);
        o.signing_algorithms
            .iter()
            .for_each(|x| c.put_u16(*x as u16));
        contexts.push((context_type::SIGNING, c));
    }
    // MS-SMB2 2.2.3: the first context is 8-byte aligned, each further one too.
    let msg_len = |v: &Vec<u8>| v.len() - base;
    while msg_len(out) % 8 != 0 {
        out.put_u8(0);
    }
    let first = msg_len(out);
    out.set_u32(ctx_offset_at, first as u32);
    out.set_u16(ctx_offset_at + 4, contexts.len() as u16);
    for (i, (ty, data)) in contexts.iter().enumerate() {
        if i > 0 {
            while msg_len(out) % 8 != 0 {
                out.put_u8(0);
            }
        }
        out.put_u16(*ty);
        out.put_u16(data.len() as u16);
        out.put_u32(0);
        out.put_bytes(data);
    }
}

/// The parts of a NEGOTIATE response the client uses (MS-SMB2 2.2.4).
#[derive(Debug, Default)]
pub struct NegotiateReply {
    pub security_mode: u16,
    pub dialect: u16,
    pub capabilities: u32,
    pub max_transact_size: u32,
    pub max_read_size: u32,
    pub max_write_size: u32,
    pub security_buffer: Vec<u8>,
    pub cipher: Option<Cipher>,
    pub signing_algorithm: Option<SigningAlgorithm>,
}

pub fn decode_negotiate(msg: &[u8]) -> Result<NegotiateReply> {
    let mut r = body(msg, 65)?;
    let security_mode = r.u16()?;
    let dialect = r.u16()?;
    let context_count = r.u16()? as usize;
    r.skip(16)?; // ServerGuid
    let capabilities = r.u32()?;
    let max_transact_size = r.u32()?;
    let max_read_size = r.u32()?;
    let max_write_size = r.u32()?;
    r.skip(16)?; // SystemTime, ServerStartTime
    let sb_offset = r.u16()? as usize;
    let sb_len = r.u16()? as usize;
    let ctx_offset = r.u32()? as usize;
    let mut reply = NegotiateReply {
        security_mode,
        dialect,
        capabilities,
        max_transact_size,
        max_read_size,
        max_write_size,
        security_buffer: buffer(msg, sb_offset, sb_len)?.to_vec(),
        ..Default::default()
    };
    if dialect != 0x0311 {
        return Ok(reply);
    }
    let mut pos = ctx_offset;
    for _ in 0..context_count.min(16) {
        pos = pos.div_ceil(8) * 8;
        let mut c = Reader::at(msg, pos)?;
        let ty = c.u16()?;
        let len = c.u16()? as usize;
        c.skip(4)?;
        let mut d = Reader::new(c.bytes(len)?);
        match ty {
            context_type::ENCRYPTION if d.u16()? == 1 => {
                reply.cipher = Cipher::from_u16(d.u16()?);
            }
            context_type::SIGNING if d.u16()? == 1 => {
                reply.signing_algorithm = SigningAlgorithm::from_u16(d.u16()?);
            }
            _ => {}
        }
        pos += 8 + len;
    }
    Ok(reply)
}

/// SESSION_SETUP request (MS-SMB2 2.2.5).
pub fn encode_session_setup(flags: u8, security_mode: u8, token: &[u8], out: &mut Vec<u8>) {
    out.put_u16(25);
    out.put_u8(flags);
    out.put_u8(security_mode);
    out.put_u32(0x0000_0001); // Capabilities: DFS
    out.put_u32(0); // Channel
    out.put_u16((HEADER_BYTES + 24) as u16);
    out.put_u16(token.len() as u16);
    out.put_u64(0); // PreviousSessionId
    out.put_bytes(token);
}

/// SESSION_SETUP response (MS-SMB2 2.2.6): SessionFlags and the security buffer.
pub fn decode_session_setup(msg: &[u8]) -> Result<(u16, Vec<u8>)> {
    let mut r = body(msg, 9)?;
    let flags = r.u16()?;
    let offset = r.u16()? as usize;
    let len = r.u16()? as usize;
    Ok((flags, buffer(msg, offset, len)?.to_vec()))
}

/// TREE_CONNECT request (MS-SMB2 2.2.9) for `\\server\share`.
pub fn encode_tree_connect(path: &str, out: &mut Vec<u8>) {
    let name = string_to_utf16le(path);
    out.put_u16(9);
    out.put_u16(0);
    out.put_u16((HEADER_BYTES + 8) as u16);
    out.put_u16(name.len() as u16);
    out.put_bytes(&name);
}

/// TREE_CONNECT response (MS-SMB2 2.2.10): ShareFlags.
pub fn decode_tree_connect(msg: &[u8]) -> Result<u32> {
    let mut r = body(msg, 16)?;
    r.skip(2)?;
    r.u32()
}

/// SMB2_SHAREFLAG_ENCRYPT_DATA (MS-SMB2 2.2.10).
pub const SHAREFLAG_ENCRYPT_DATA: u32 = 0x0000_8000;

/// What a CREATE asks for.
#[derive(Clone, Debug)]
pub struct CreateArgs {
    pub desired_access: u32,
    pub file_attributes: u32,
    pub share_access: u32,
    pub disposition: u32,
    pub options: u32,
}

/// CREATE request (MS-SMB2 2.2.13), no create contexts, no oplock.
pub fn encode_create(name: &str, a: &CreateArgs, out: &mut Vec<u8>) {
    encode_create_with(name, a, 0, None, out);
}

/// A durable handle create context (MS-SMB2 2.2.13.2.11/12).
#[derive(Clone, Copy, Debug)]
pub enum Durable {
    /// DH2Q: ask for a durable handle kept `timeout_ms` (0: the server's default).
    Request {
        timeout_ms: u32,
        create_guid: [u8; 16],
    },
    /// DH2C: reclaim the durable open `file_id` made by the CREATE `create_guid`.
    Reconnect {
        file_id: [u8; 16],
        create_guid: [u8; 16],
    },
}

/// CREATE request asking for an oplock (`oplock_level`, MS-SMB2 2.2.13 RequestedOplockLevel),
/// no create contexts.
pub fn encode_create_with_oplock(name: &str, a: &CreateArgs, oplock_level: u8, out: &mut Vec<u8>) {
    encode_create_with(name, a, oplock_level, None, out);
}

/// CREATE request asking for `oplock_level`, with at most one durable handle context.
pub fn encode_create_with(
    name: &str,
    a: &CreateArgs,
    oplock_level: u8,
    durable: Option<Durable>,
    out: &mut Vec<u8>,
) {
    encode_create_with_context(name, a, oplock_level, durable.map(durable_context), out);
}

/// CREATE request asking for a lease (RequestedOplockLevel SMB2_OPLOCK_LEVEL_LEASE with an RqLs
/// context, MS-SMB2 2.2.13.2.8 for v1, 2.2.13.2.10 for v2 as `lease.version` says).
pub fn encode_create_with_lease(
    name: &str,
    a: &CreateArgs,
    lease: &LeaseContext,
    out: &mut Vec<u8>,
) {
    let mut data = Vec::with_capacity(lease::LEASE_V2_BYTES);
    lease.encode(&mut data);
    let context = Some((b"RqLs", data));
    encode_create_with_context(name, a, oplock_break::level::LEASE, context, out);
}

/// CREATE request with at most one create context (its 4-byte name and data).
fn encode_create_with_context(
    name: &str,
    a: &CreateArgs,
    oplock_level: u8,
    context: Option<(&[u8; 4], Vec<u8>)>,
    out: &mut Vec<u8>,
) {
    let name = string_to_utf16le(name);
    let start = out.len();
    out.put_u16(57);
    out.put_u8(0); // SecurityFlags
    out.put_u8(oplock_level);
    out.put_u32(2); // ImpersonationLevel: Impersonation
    out.put_u64(0);
    out.put_u64(0);
    out.put_u32(a.desired_access);
    out.put_u32(a.file_attributes);
    out.put_u32(a.share_access);
    out.put_u32(a.disposition);
    out.put_u32(a.options);
    out.put_u16((HEADER_BYTES + 56) as u16);
    out.put_u16(name.len() as u16);
    let contexts_at = out.len();
    out.put_u32(0); // CreateContextsOffset, set below
    out.put_u32(0); // CreateContextsLength, set below
    out.put_bytes(&name);
    if name.is_empty() {
        out.put_u8(0); // the Buffer holds at least one byte
    }
    let Some((tag, data)) = context else {
        return;
    };
    while !(out.len() - start).is_multiple_of(8) {
        out.put_u8(0);
    }
    let context_offset = HEADER_BYTES + out.len() - start;
    // SMB2_CREATE_CONTEXT (MS-SMB2 2.2.13.2): the 4-byte name at 16, the data at 24.
    out.put_u32(0); // Next
    out.put_u16(16); // NameOffset
    out.put_u16(4); // NameLength
    out.put_u16(0);
    out.put_u16(24); // DataOffset
    out.put_u32(data.len() as u32);
    out.put_bytes(tag);
    out.put_u32(0);
    out.put_bytes(&data);
    let length = (data.len() + 24) as u32;
    out[contexts_at..contexts_at + 4].copy_from_slice(&(context_offset as u32).to_le_bytes());
    out[contexts_at + 4..contexts_at + 8].copy_from_slice(&length.to_le_bytes());
}

fn durable_context(d: Durable) -> (&'static [u8; 4], Vec<u8>) {
    let mut data = Vec::with_capacity(36);
    match d {
        Durable::Request {
            timeout_ms,
            create_guid,
        } => {
            data.put_u32(timeout_ms);
            data.put_u32(0); // Flags: not persistent
            data.put_u64(0);
            data.put_bytes(&create_guid);
            (b"DH2Q", data)
        }
        Durable::Reconnect {
            file_id,
            create_guid,
        } => {
            data.put_bytes(&file_id);
            data.put_bytes(&create_guid);
            data.put_u32(0); // Flags
            (b"DH2C", data)
        }
    }
}

/// CREATE response: file id, create action, end of file, the oplock granted, the durable
/// handle timeout (when a DH2Q response came back) and the lease granted (when an RqLs response
/// came back).
pub struct CreateReply {
    pub file_id: [u8; 16],
    pub create_action: u32,
    pub end_of_file: u64,
    pub oplock_level: u8,
    pub durable_timeout_ms: Option<u32>,
    pub lease: Option<LeaseContext>,
}

pub fn decode_create(msg: &[u8]) -> Result<CreateReply> {
    use smb3d_protocol::messages::create;
    let b = msg.get(HEADER_BYTES..).ok_or(NtStatus::INVALID_PARAMETER)?;
    let (c, area) = create::CreateResponse::decode(b)?;
    let contexts = create::parse_contexts(area)?;
    let durable_timeout_ms = create::find_context(&contexts, b"DH2Q")
        .and_then(|c| c.data.get(..4))
        .map(|t| u32::from_le_bytes([t[0], t[1], t[2], t[3]]));
    let lease = create::find_context(&contexts, b"RqLs")
        .map(|c| LeaseContext::decode(c.data, true))
        .transpose()?;
    Ok(CreateReply {
        file_id: c.file_id,
        create_action: c.create_action,
        end_of_file: c.end_of_file,
        oplock_level: c.oplock_level,
        durable_timeout_ms,
        lease,
    })
}

/// An oplock break notification (MS-SMB2 2.2.23.1): the level the client must go down to, and
/// the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OplockBreak {
    pub oplock_level: u8,
    pub file_id: [u8; 16],
}

/// Decodes an oplock break notification, or the server's response to an acknowledgment
/// (MS-SMB2 2.2.25.1): both have the same 24-byte body.
pub fn decode_oplock_break(msg: &[u8]) -> Result<OplockBreak> {
    let mut r = body(msg, 24)?;
    let oplock_level = r.u8()?;
    r.skip(5)?;
    let file_id = r.guid()?;
    Ok(OplockBreak {
        oplock_level,
        file_id,
    })
}

/// Oplock break acknowledgment (MS-SMB2 2.2.24.1): the level the client now holds.
pub fn encode_oplock_break_ack(oplock_level: u8, file_id: &[u8; 16], out: &mut Vec<u8>) {
    smb3d_protocol::messages::oplock_break::encode(oplock_level, file_id, out);
}

/// Decodes a lease break notification (MS-SMB2 2.2.23.2).
pub fn decode_lease_break(msg: &[u8]) -> Result<LeaseBreakNotification> {
    LeaseBreakNotification::decode(msg)
}

/// Lease break acknowledgment (MS-SMB2 2.2.24.2): the lease state the client now holds.
pub fn encode_lease_break_ack(key: &[u8; 16], state: u32, out: &mut Vec<u8>) {
    LeaseBreakAck { key: *key, state }.encode(out);
}

/// Decodes the server's response to a lease break acknowledgment (MS-SMB2 2.2.25.2).
pub fn decode_lease_break_ack(msg: &[u8]) -> Result<LeaseBreakAck> {
    LeaseBreakAck::decode(msg)
}

/// CLOSE request (MS-SMB2 2.2.15).
pub fn encode_close(file_id: &[u8; 16], out: &mut Vec<u8>) {
    out.put_u16(24);
    out.put_u16(0);
    out.put_u32(0);
    out.put_bytes(file_id);
}

/// FLUSH request (MS-SMB2 2.2.17).
pub fn encode_flush(file_id: &[u8; 16], out: &mut Vec<u8>) {
    out.put_u16(24);
    out.put_u16(0); // Reserved1
    out.put_u32(0); // Reserved2
    out.put_bytes(file_id);
}

/// READ request (MS-SMB2 2.2.19).
pub fn encode_read(file_id: &[u8; 16], offset: u64, length: u32, out: &mut Vec<u8>) {
    out.put_u16(49);
    out.put_u8(0x50); // Padding: where the server should put the data
    out.put_u8(0);
    out.put_u32(length);
    out.put_u64(offset);
    out.put_bytes(file_id);
    out.put_u32(0); // MinimumCount
    out.put_u32(0); // Channel: none
    out.put_u32(0); // RemainingBytes
    out.put_u16(0);
    out.put_u16(0);
    out.put_u8(0); // Buffer: one byte
}

/// READ response (MS-SMB2 2.2.20): the data's range inside `msg`.
pub fn decode_read(msg: &[u8]) -> Result<std::ops::Range<usize>> {
    let mut r = body(msg, 17)?;
    let offset = r.u8()? as usize;
    r.skip(1)?;
    let len = r.u32()? as usize;
    buffer(msg, offset, len)?;
    Ok(offset..offset + len)
}

/// Where WRITE data starts, counted from the header: 64 + 48.
pub const WRITE_DATA_OFFSET: usize = HEADER_BYTES + 48;

/// WRITE request (MS-SMB2 2.2.21) head; the caller appends `length` bytes of data.
pub fn encode_write_head(file_id: &[u8; 16], offset: u64, length: u32, out: &mut Vec<u8>) {
    out.put_u16(49);
    out.put_u16(WRITE_DATA_OFFSET as u16);
    out.put_u32(length);
    out.put_u64(offset);
    out.put_bytes(file_id);
    out.put_u32(0); // Channel
    out.put_u32(0); // RemainingBytes
    out.put_u16(0);
    out.put_u16(0);
    out.put_u32(0); // Flags
}

/// WRITE response (MS-SMB2 2.2.22): Count.
pub fn decode_write(msg: &[u8]) -> Result<u32> {
    let mut r = body(msg, 17)?;
    r.skip(2)?;
    r.u32()
}

/// QUERY_DIRECTORY request (MS-SMB2 2.2.33).
pub fn encode_query_directory(
    file_id: &[u8; 16],
    class: u8,
    flags: u8,
    pattern: &str,
    output_len: u32,
    out: &mut Vec<u8>,
) {
    let name = string_to_utf16le(pattern);
    out.put_u16(33);
    out.put_u8(class);
    out.put_u8(flags);
    out.put_u32(0);
    out.put_bytes(file_id);
    out.put_u16((HEADER_BYTES + 32) as u16);
    out.put_u16(name.len() as u16);
    out.put_u32(output_len);
    out.put_bytes(&name);
}

/// QUERY_INFO request (MS-SMB2 2.2.37) without an input buffer.
pub fn encode_query_info(
    file_id: &[u8; 16],
    info_type: u8,
    class: u8,
    output_len: u32,
    out: &mut Vec<u8>,
) {
    out.put_u16(41);
    out.put_u8(info_type);
    out.put_u8(class);
    out.put_u32(output_len);
    out.put_u16(0);
    out.put_u16(0);
    out.put_u32(0);
    out.put_u32(0); // AdditionalInformation
    out.put_u32(0); // Flags
    out.put_bytes(file_id);
}

/// QUERY_DIRECTORY and QUERY_INFO responses (MS-SMB2 2.2.34, 2.2.38): the output buffer.
pub fn decode_output_buffer(msg: &[u8]) -> Result<&[u8]> {
    let mut r = body(msg, 9)?;
    let offset = r.u16()? as usize;
    let len = r.u32()? as usize;
    buffer(msg, offset, len)
}

/// IOCTL request (MS-SMB2 2.2.31) with FSCTL flag and no input.
pub fn encode_ioctl(ctl_code: u32, file_id: &[u8; 16], max_output: u32, out: &mut Vec<u8>) {
    out.put_u16(57);
    out.put_u16(0);
    out.put_u32(ctl_code);
    out.put_bytes(file_id);
    out.put_u32(0); // InputOffset
    out.put_u32(0); // InputCount
    out.put_u32(0); // MaxInputResponse
    out.put_u32(0); // OutputOffset
    out.put_u32(0); // OutputCount
    out.put_u32(max_output);
    out.put_u32(smb3d_protocol::messages::ioctl::FLAG_IS_FSCTL);
    out.put_u32(0);
}

/// IOCTL response (MS-SMB2 2.2.32): the output.
pub fn decode_ioctl(msg: &[u8]) -> Result<&[u8]> {
    let mut r = body(msg, 49)?;
    r.skip(2 + 4 + 16 + 8)?; // Reserved, CtlCode, FileId, InputOffset/Count
    let offset = r.u32()? as usize;
    let len = r.u32()? as usize;
    buffer(msg, offset, len)
}

/// ECHO request (MS-SMB2 2.2.28).
pub fn encode_echo(out: &mut Vec<u8>) {
    out.put_u16(4);
    out.put_u16(0);
}

/// One entry of a FSCTL_QUERY_NETWORK_INTERFACE_INFO output (MS-SMB2 2.2.32.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInterface {
    pub if_index: u32,
    /// RSS_CAPABLE (0x1), RDMA_CAPABLE (0x2).
    pub capability: u32,
    pub link_speed_bps: u64,
    pub addr: std::net::IpAddr,
}

impl NetworkInterface {
    pub fn rss_capable(&self) -> bool {
        self.capability & 1 != 0
    }
}

/// The IPv4/IPv6 interfaces in a FSCTL_QUERY_NETWORK_INTERFACE_INFO output
/// (MS-SMB2 2.2.32.5: NETWORK_INTERFACE_INFO entries chained by Next, SOCKADDR_STORAGE at 24);
/// entries of other address families are skipped.
pub fn decode_interfaces(buf: &[u8]) -> Result<Vec<NetworkInterface>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    for _ in 0..64 {
        let entry = slice_at(buf, pos, 152)?;
        let mut r = Reader::new(entry);
        let next = r.u32()? as usize;
        let if_index = r.u32()?;
        let capability = r.u32()?;
        r.skip(4)?; // Reserved
        let link_speed_bps = r.u64()?;
        let family = r.u16()?;
        r.skip(2)?; // Port
        let addr = match family {
            0x0002 => {
                let a: [u8; 4] = r.array()?;
                Some(std::net::IpAddr::from(a))
            }
            0x0017 => {
                r.skip(4)?; // FlowInfo
                let a: [u8; 16] = r.array()?;
                Some(std::net::IpAddr::from(a))
            }
            _ => None,
        };
        if let Some(addr) = addr {
            out.push(NetworkInterface {
                if_index,
                capability,
                link_speed_bps,
                addr,
            });
        }
        if next == 0 {
            break;
        }
        pos = pos.checked_add(next).ok_or(NtStatus::INVALID_PARAMETER)?;
    }
    Ok(out)
}

/// An error response's status is in the header; this is for the rare body check.
fn body(msg: &[u8], structure_size: u16) -> Result<Reader<'_>> {
    let mut r = Reader::at(msg, HEADER_BYTES)?;
    let size = r.u16()?;
    if size != structure_size {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok(r)
}

fn buffer(msg: &[u8], offset: usize, len: usize) -> Result<&[u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    slice_at(msg, offset, len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smb3d_protocol::messages as m;

    fn msg() -> Vec<u8> {
        let mut v = Vec::new();
        smb3d_protocol::header::Header::default().encode(&mut v);
        v
    }

    #[test]
    fn negotiate_round_trips_through_server_decoder() {
        let mut v = msg();
        let offer = NegotiateOffer {
            security_mode: 1,
            capabilities: 0x4c,
            client_guid: [7; 16],
            dialects: &[0x0202, 0x0300, 0x0311],
            salt: [9; 32],
            ciphers: &[Cipher::Aes256Gcm, Cipher::Aes128Ccm],
            signing_algorithms: &[SigningAlgorithm::AesGmac, SigningAlgorithm::AesCmac],
        };
        encode_negotiate(&offer, &mut v);
        let req = m::negotiate::NegotiateRequest::decode(&v).unwrap();
        assert_eq!(req.dialects, vec![0x0202, 0x0300, 0x0311]);
        assert_eq!(req.client_guid, [7; 16]);
        assert_eq!(req.contexts.hash_algorithms, vec![HASH_SHA512]);
        assert_eq!(req.contexts.salt_len, 32);
        assert_eq!(req.contexts.ciphers, vec![4, 1]);
        assert_eq!(req.contexts.signing_algorithms, vec![2, 1]);

        let resp = m::negotiate::NegotiateResponse {
            security_mode: 3,
            dialect: 0x0311,
            capabilities: 0x4c,
            max_read_size: 8 << 20,
            max_write_size: 4 << 20,
            max_transact_size: 1 << 20,
            security_buffer: vec![1, 2, 3],
            preauth_salt: Some([1; 32]),
            cipher: Some(Cipher::Aes128Gcm),
            signing_algorithm: Some(SigningAlgorithm::AesGmac),
            ..Default::default()
        };
        let mut v = msg();
        resp.encode(&mut v);
        let got = decode_negotiate(&v).unwrap();
        assert_eq!(got.dialect, 0x0311);
        assert_eq!(got.max_read_size, 8 << 20);
        assert_eq!(got.max_write_size, 4 << 20);
        assert_eq!(got.security_buffer, vec![1, 2, 3]);
        assert_eq!(got.cipher, Some(Cipher::Aes128Gcm));
        assert_eq!(got.signing_algorithm, Some(SigningAlgorithm::AesGmac));
        for n in 0..v.len() {
            let _ = decode_negotiate(&v[..n]); // never panics
        }
    }

    #[test]
    fn session_setup_and_tree_connect() {
        let mut v = msg();
        encode_session_setup(1, 1, b"token", &mut v);
        let req = m::session_setup::SessionSetupRequest::decode(&v).unwrap();
        assert_eq!(req.flags, 1);
        assert_eq!(req.security_buffer, b"token");
        let mut v = msg();
        m::session_setup::encode_response(4, b"abc", &mut v);
        assert_eq!(decode_session_setup(&v).unwrap(), (4, b"abc".to_vec()));

        let mut v = msg();
        encode_tree_connect("\\\\127.0.0.1\\share", &mut v);
        let req = m::tree_connect::TreeConnectRequest::decode(&v).unwrap();
        assert_eq!(req.share_name().unwrap(), "share");
        let mut v = msg();
        let resp = m::tree_connect::TreeConnectResponse {
            share_flags: SHAREFLAG_ENCRYPT_DATA,
            ..Default::default()
        };
        resp.encode(&mut v);
        assert_eq!(decode_tree_connect(&v).unwrap(), SHAREFLAG_ENCRYPT_DATA);
    }

    #[test]
    fn create_close_read_write() {
        let mut v = msg();
        let args = CreateArgs {
            desired_access: 0x0012_019f,
            file_attributes: 0x80,
            share_access: 7,
            disposition: 3,
            options: 0x40,
        };
        encode_create("dir\\f.bin", &args, &mut v);
        let req = m::create::CreateRequest::decode(&v).unwrap();
        assert_eq!(req.desired_access, 0x0012_019f);
        assert_eq!(req.create_disposition, 3);
        assert_eq!(req.name, &string_to_utf16le("dir\\f.bin")[..]);

        let mut v = msg();
        encode_close(&[5; 16], &mut v);
        assert_eq!(m::close::CloseRequest::decode(&v).unwrap().file_id, [5; 16]);

        let mut v = msg();
        encode_flush(&[6; 16], &mut v);
        assert_eq!(m::flush::decode_request(&v).unwrap(), [6; 16]);

        let mut v = msg();
        encode_read(&[3; 16], 1 << 40, 1 << 20, &mut v);
        let req = m::read::ReadRequest::decode(&v).unwrap();
        assert_eq!(
            (req.offset, req.length, req.file_id),
            (1 << 40, 1 << 20, [3; 16])
        );

        let mut v = msg();
        encode_write_head(&[4; 16], 4096, 5, &mut v);
        v.extend_from_slice(b"hello");
        let req = m::write::WriteRequest::decode(&v).unwrap();
        assert_eq!((req.offset, req.file_id), (4096, [4; 16]));
        assert_eq!(&v[req.data], b"hello");
        let mut v = msg();
        v.extend_from_slice(&m::write::encode_response(5));
        assert_eq!(decode_write(&v).unwrap(), 5);

        let mut v = msg();
        v.extend_from_slice(&m::read::encode_response_head(3));
        v.extend_from_slice(b"abc");
        let range = decode_read(&v).unwrap();
        assert_eq!(&v[range], b"abc");
    }

    #[test]
    fn create_with_oplock_and_break_ack() {
        use smb3d_protocol::messages::oplock_break::{level, OplockBreakAck};
        let args = CreateArgs {
            desired_access: 0x0012_019f,
            file_attributes: 0x80,
            share_access: 7,
            disposition: 5,
            options: 0x40,
        };
        let mut v = msg();
        encode_create_with_oplock("f.bin", &args, level::BATCH, &mut v);
        let req = m::create::CreateRequest::decode(&v).unwrap();
        assert_eq!(req.requested_oplock_level, level::BATCH);
        assert_eq!(req.name, &string_to_utf16le("f.bin")[..]);

        let mut v = msg();
        encode_oplock_break_ack(level::II, &[9; 16], &mut v);
        assert_eq!(
            OplockBreakAck::decode(&v).unwrap(),
            OplockBreakAck {
                oplock_level: level::II,
                file_id: [9; 16]
            }
        );
        // The server's notification has the same shape.
        let mut v = msg();
        smb3d_protocol::messages::oplock_break::encode(level::NONE, &[8; 16], &mut v);
        assert_eq!(
            decode_oplock_break(&v).unwrap(),
            OplockBreak {
                oplock_level: level::NONE,
                file_id: [8; 16]
            }
        );
        assert!(decode_oplock_break(&v[..v.len() - 1]).is_err());
    }

    #[test]
    fn create_with_lease_and_lease_break_ack() {
        use smb3d_protocol::messages::lease::{state, LeaseBreakAck, LeaseContext};
        use smb3d_protocol::messages::oplock_break::level;
        let lease = LeaseContext {
            key: [5; 16],
            state: state::ALL,
            flags: 0,
            version: 2,
            parent_key: [0; 16],
            epoch: 0,
        };
        let mut v = msg();
        encode_create_with_lease("f.bin", &crate::client::files::file_args(1), &lease, &mut v);
        let req = m::create::CreateRequest::decode(&v).unwrap();
        assert_eq!(req.requested_oplock_level, level::LEASE);
        let contexts = m::create::parse_contexts(req.contexts).unwrap();
        let rqls = m::create::find_context(&contexts, b"RqLs").expect("RqLs context");
        assert_eq!(LeaseContext::decode(rqls.data, true).unwrap(), lease);

        let mut v = msg();
        encode_lease_break_ack(&[5; 16], state::READ | state::HANDLE, &mut v);
        let want = LeaseBreakAck {
            key: [5; 16],
            state: state::READ | state::HANDLE,
        };
        assert_eq!(LeaseBreakAck::decode(&v).unwrap(), want);
        // The server's response has the same shape.
        assert_eq!(decode_lease_break_ack(&v).unwrap(), want);
        assert!(decode_lease_break_ack(&v[..v.len() - 1]).is_err());
    }

    #[test]
    fn query_ioctl_echo() {
        let mut v = msg();
        encode_query_directory(&[1; 16], 37, 1, "*", 65536, &mut v);
        let req = m::query_directory::QueryDirectoryRequest::decode(&v).unwrap();
        assert_eq!((req.file_information_class, req.flags), (37, 1));
        assert_eq!(req.file_name, "*");
        assert_eq!(req.output_buffer_length, 65536);

        let mut v = msg();
        encode_query_info(&[2; 16], 1, 18, 4096, &mut v);
        let req = m::query_info::QueryInfoRequest::decode(&v).unwrap();
        assert_eq!((req.info_type, req.file_info_class), (1, 18));
        assert_eq!(req.file_id, [2; 16]);

        let mut v = msg();
        encode_ioctl(0x0014_01FC, &[0xff; 16], 65536, &mut v);
        let req = m::ioctl::IoctlRequest::decode(&v).unwrap();
        assert_eq!(req.ctl_code, 0x0014_01FC);
        assert_eq!(req.max_output_response, 65536);
        let mut v = msg();
        m::ioctl::encode_response(0x0014_01FC, &[0xff; 16], b"out", &mut v);
        assert_eq!(decode_ioctl(&v).unwrap(), b"out");

        let mut v = msg();
        encode_echo(&mut v);
        m::echo::decode_request(&v).unwrap();
    }

    #[test]
    fn interfaces() {
        let mut b = vec![0u8; 152 * 2];
        b[0..4].copy_from_slice(&152u32.to_le_bytes());
        b[4..8].copy_from_slice(&7u32.to_le_bytes());
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[16..24].copy_from_slice(&10_000_000_000u64.to_le_bytes());
        b[24..26].copy_from_slice(&2u16.to_le_bytes());
        b[28..32].copy_from_slice(&[127, 0, 0, 1]);
        b[152 + 24..152 + 26].copy_from_slice(&0x17u16.to_le_bytes());
        b[152 + 47] = 1;
        let a = decode_interfaces(&b).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].addr.to_string(), "127.0.0.1");
        assert_eq!(a[0].if_index, 7);
        assert!(a[0].rss_capable());
        assert_eq!(a[0].link_speed_bps, 10_000_000_000);
        assert_eq!(a[1].addr.to_string(), "::1");
        assert!(!a[1].rss_capable());
        assert!(decode_interfaces(&b[..100]).is_err());
    }
}
