//! CREATE request and response (MS-SMB2 2.2.13, 2.2.14) and create contexts (2.2.13.2,
//! 2.2.14.2).

use super::{body_reader, buffer_at};
use crate::header::HEADER_BYTES;
use crate::limits::{MAX_CREATE_CONTEXTS, MAX_PATH_UNITS};
use crate::status::NtStatus;
use crate::wire::{slice_at, Reader, Result, Writer};

/// CreateDisposition (MS-SMB2 2.2.13).
pub mod disposition {
    pub const SUPERSEDE: u32 = 0;
    pub const OPEN: u32 = 1;
    pub const CREATE: u32 = 2;
    pub const OPEN_IF: u32 = 3;
    pub const OVERWRITE: u32 = 4;
    pub const OVERWRITE_IF: u32 = 5;
}

/// CreateAction in the response (MS-SMB2 2.2.14).
pub mod action {
    pub const SUPERSEDED: u32 = 0;
    pub const OPENED: u32 = 1;
    pub const CREATED: u32 = 2;
    pub const OVERWRITTEN: u32 = 3;
}

/// CreateOptions (MS-SMB2 2.2.13).
pub mod options {
    pub const DIRECTORY_FILE: u32 = 0x0000_0001;
    pub const WRITE_THROUGH: u32 = 0x0000_0002;
    pub const SEQUENTIAL_ONLY: u32 = 0x0000_0004;
    pub const NO_INTERMEDIATE_BUFFERING: u32 = 0x0000_0008;
    pub const SYNCHRONOUS_IO_ALERT: u32 = 0x0000_0010;
    pub const SYNCHRONOUS_IO_NONALERT: u32 = 0x0000_0020;
    pub const NON_DIRECTORY_FILE: u32 = 0x0000_0040;
    pub const COMPLETE_IF_OPLOCKED: u32 = 0x0000_0100;
    pub const NO_EA_KNOWLEDGE: u32 = 0x0000_0200;
    pub const RANDOM_ACCESS: u32 = 0x0000_0800;
    pub const DELETE_ON_CLOSE: u32 = 0x0000_1000;
    pub const OPEN_BY_FILE_ID: u32 = 0x0000_2000;
    pub const OPEN_FOR_BACKUP_INTENT: u32 = 0x0000_4000;
    pub const NO_COMPRESSION: u32 = 0x0000_8000;
    pub const OPEN_REMOTE_INSTANCE: u32 = 0x0000_0400;
    pub const OPEN_REQUIRING_OPLOCK: u32 = 0x0001_0000;
    pub const DISALLOW_EXCLUSIVE: u32 = 0x0002_0000;
    pub const RESERVE_OPFILTER: u32 = 0x0010_0000;
    pub const OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    pub const OPEN_NO_RECALL: u32 = 0x0040_0000;
    pub const OPEN_FOR_FREE_SPACE_QUERY: u32 = 0x0080_0000;
    /// Every option MS-SMB2 2.2.13 defines (bits above are invalid).
    pub const VALID: u32 = 0x00FF_FFFF;
}

/// ImpersonationLevel (MS-SMB2 2.2.13): Anonymous 0 … Delegate 3.
pub const MAX_IMPERSONATION_LEVEL: u32 = 3;

/// Create context names (MS-SMB2 2.2.13.2).
pub mod context_name {
    pub const MXAC: &[u8] = b"MxAc";
    pub const QFID: &[u8] = b"QFid";
    pub const ALSI: &[u8] = b"AlSi";
    pub const DHNQ: &[u8] = b"DHnQ";
    pub const DHNC: &[u8] = b"DHnC";
    pub const DH2Q: &[u8] = b"DH2Q";
    pub const DH2C: &[u8] = b"DH2C";
    pub const RQLS: &[u8] = b"RqLs";
    pub const TWRP: &[u8] = b"TWrp";
    pub const SECD: &[u8] = b"SecD";
    pub const EXTA: &[u8] = b"ExtA";
}

/// Fixed part of the request body (StructureSize 57 counts one buffer byte).
const REQUEST_FIXED_BYTES: usize = 56;
/// Header of one create context, before its name.
const CONTEXT_HEADER_BYTES: usize = 16;

#[derive(Debug, PartialEq, Eq)]
pub struct CreateRequest<'a> {
    pub security_flags: u8,
    pub requested_oplock_level: u8,
    pub impersonation_level: u32,
    pub smb_create_flags: u64,
    pub desired_access: u32,
    pub file_attributes: u32,
    pub share_access: u32,
    pub create_disposition: u32,
    pub create_options: u32,
    /// UTF-16LE, as sent.
    pub name: &'a [u8],
    /// The raw create-context chain; parse with [`parse_contexts`].
    pub contexts: &'a [u8],
}

impl<'a> CreateRequest<'a> {
    pub fn decode(msg: &'a [u8]) -> Result<CreateRequest<'a>> {
        let mut r = body_reader(msg, 57)?;
        let security_flags = r.u8()?;
        let requested_oplock_level = r.u8()?;
        let impersonation_level = r.u32()?;
        let smb_create_flags = r.u64()?;
        r.skip(8)?; // Reserved
        let desired_access = r.u32()?;
        let file_attributes = r.u32()?;
        let share_access = r.u32()?;
        let create_disposition = r.u32()?;
        let create_options = r.u32()?;
        let name_offset = r.u16()? as usize;
        let name_len = r.u16()? as usize;
        let contexts_offset = r.u32()? as usize;
        let contexts_len = r.u32()? as usize;
        if name_len / 2 > MAX_PATH_UNITS {
            return Err(NtStatus::OBJECT_NAME_INVALID);
        }
        let name = buffer_at(msg, name_offset, name_len)?;
        if contexts_len != 0 && contexts_offset < HEADER_BYTES + REQUEST_FIXED_BYTES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let contexts = buffer_at(msg, contexts_offset, contexts_len)?;
        Ok(CreateRequest {
            security_flags,
            requested_oplock_level,
            impersonation_level,
            smb_create_flags,
            desired_access,
            file_attributes,
            share_access,
            create_disposition,
            create_options,
            name,
            contexts,
        })
    }
}

/// One create context: its name (usually 4 ASCII bytes) and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreateContext<'a> {
    pub name: &'a [u8],
    pub data: &'a [u8],
}

/// Parse a create-context chain (MS-SMB2 2.2.13.2). Every context starts 8-byte aligned from
/// the previous one (`Next`), its name and data lie inside it, and at most
/// [`MAX_CREATE_CONTEXTS`] are accepted; anything else is INVALID_PARAMETER.
pub fn parse_contexts(area: &[u8]) -> Result<Vec<CreateContext<'_>>> {
    let mut out = Vec::new();
    let mut start = 0usize;
    while start < area.len() {
        if out.len() == MAX_CREATE_CONTEXTS {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let mut r = Reader::at(area, start)?;
        let next = r.u32()? as usize;
        let name_offset = r.u16()? as usize;
        let name_len = r.u16()? as usize;
        r.skip(2)?; // Reserved
        let data_offset = r.u16()? as usize;
        let data_len = r.u32()? as usize;
        let end = if next == 0 {
            area.len()
        } else {
            if !next.is_multiple_of(8) || next < CONTEXT_HEADER_BYTES {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            start.checked_add(next).ok_or(NtStatus::INVALID_PARAMETER)?
        };
        let this = area.get(start..end).ok_or(NtStatus::INVALID_PARAMETER)?;
        // Names shorter than 4 bytes are INVALID_PARAMETER (Windows; smbtorture smb2.create.blob).
        if name_len < 4 || name_offset < CONTEXT_HEADER_BYTES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let name = slice_at(this, name_offset, name_len)?;
        let data = if data_len == 0 {
            &[][..]
        } else {
            if data_offset < name_offset + name_len {
                return Err(NtStatus::INVALID_PARAMETER);
            }
            slice_at(this, data_offset, data_len)?
        };
        out.push(CreateContext { name, data });
        if next == 0 {
            break;
        }
        start = end;
    }
    Ok(out)
}

/// The first context called `name`.
pub fn find_context<'a>(contexts: &[CreateContext<'a>], name: &[u8]) -> Option<CreateContext<'a>> {
    contexts.iter().find(|c| c.name == name).copied()
}

/// Encode response contexts: each 8-byte aligned, name at 16, data 8-byte aligned after it.
pub fn encode_contexts(contexts: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
    let base = out.len();
    for (i, (name, data)) in contexts.iter().enumerate() {
        let start = out.len();
        out.put_u32(0); // Next, patched below
        out.put_u16(CONTEXT_HEADER_BYTES as u16);
        out.put_u16(name.len() as u16);
        out.put_u16(0);
        let data_offset_at = out.len();
        out.put_u16(0);
        out.put_u32(data.len() as u32);
        out.put_bytes(name);
        if !data.is_empty() {
            pad8_from(out, base);
            let data_offset = out.len() - start;
            out.set_u16(data_offset_at, data_offset as u16);
            out.put_bytes(data);
        }
        if i + 1 < contexts.len() {
            pad8_from(out, base);
            let next = out.len() - start;
            out.set_u32(start, next as u32);
        }
    }
}

fn pad8_from(out: &mut Vec<u8>, base: usize) {
    let pad = (8 - (out.len() - base) % 8) % 8;
    out.put_zeros(pad);
}

/// MxAc response data (MS-SMB2 2.2.14.2.5).
pub fn mxac_response(query_status: NtStatus, maximal_access: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    out[..4].copy_from_slice(&query_status.0.to_le_bytes());
    out[4..].copy_from_slice(&maximal_access.to_le_bytes());
    out
}

/// QFid response data (MS-SMB2 2.2.14.2.9): a 32-byte opaque on-disk id. This server puts the
/// file index (inode) and the volume id (device) in the first 16 bytes.
pub fn qfid_response(file_index: u64, volume_id: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&file_index.to_le_bytes());
    out[8..16].copy_from_slice(&volume_id.to_le_bytes());
    out
}

/// What the CREATE response reports about the opened file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateResponse {
    pub oplock_level: u8,
    pub flags: u8,
    pub create_action: u32,
    pub creation_time: u64,
    pub last_access_time: u64,
    pub last_write_time: u64,
    pub change_time: u64,
    pub allocation_size: u64,
    pub end_of_file: u64,
    pub file_attributes: u32,
    pub file_id: [u8; 16],
}

impl CreateResponse {
    /// Append the response body, with `contexts` (name, data) after the fixed part.
    pub fn encode(&self, contexts: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
        let base = out.len();
        out.put_u16(89);
        out.put_u8(self.oplock_level);
        out.put_u8(self.flags);
        out.put_u32(self.create_action);
        out.put_u64(self.creation_time);
        out.put_u64(self.last_access_time);
        out.put_u64(self.last_write_time);
        out.put_u64(self.change_time);
        out.put_u64(self.allocation_size);
        out.put_u64(self.end_of_file);
        out.put_u32(self.file_attributes);
        out.put_u32(0); // Reserved2
        out.put_bytes(&self.file_id);
        let offsets_at = out.len();
        out.put_u32(0);
        out.put_u32(0);
        if contexts.is_empty() {
            // StructureSize 89 counts one buffer byte.
            out.put_u8(0);
            return;
        }
        let contexts_start = out.len();
        encode_contexts(contexts, out);
        let offset = HEADER_BYTES + (contexts_start - base);
        out.set_u32(offsets_at, offset as u32);
        out.set_u32(offsets_at + 4, (out.len() - contexts_start) as u32);
    }

    /// Decode a response body (for tests and clients).
    pub fn decode(body: &[u8]) -> Result<(CreateResponse, &[u8])> {
        let mut r = Reader::new(body);
        if r.u16()? != 89 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let resp = CreateResponse {
            oplock_level: r.u8()?,
            flags: r.u8()?,
            create_action: r.u32()?,
            creation_time: r.u64()?,
            last_access_time: r.u64()?,
            last_write_time: r.u64()?,
            change_time: r.u64()?,
            allocation_size: r.u64()?,
            end_of_file: r.u64()?,
            file_attributes: {
                let a = r.u32()?;
                r.skip(4)?;
                a
            },
            file_id: r.guid()?,
        };
        let offset = r.u32()? as usize;
        let len = r.u32()? as usize;
        let contexts = if len == 0 {
            &[][..]
        } else {
            slice_at(
                body,
                offset
                    .checked_sub(HEADER_BYTES)
                    .ok_or(NtStatus::INVALID_PARAMETER)?,
                len,
            )?
        };
        Ok((resp, contexts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::test_message;
    use crate::wire::string_to_utf16le;

    /// A CREATE request body with `name` and a raw `contexts` area.
    pub(crate) fn request_body(name: &str, contexts: &[u8]) -> Vec<u8> {
        let name = string_to_utf16le(name);
        let mut b = Vec::new();
        b.put_u16(57);
        b.put_u8(0);
        b.put_u8(0);
        b.put_u32(2); // Impersonation
        b.put_u64(0);
        b.put_u64(0);
        b.put_u32(0x0012_0089); // desired access
        b.put_u32(0x80);
        b.put_u32(7);
        b.put_u32(disposition::OPEN_IF);
        b.put_u32(options::NON_DIRECTORY_FILE);
        b.put_u16(120);
        b.put_u16(name.len() as u16);
        let ctx_at = b.len();
        b.put_u32(0);
        b.put_u32(contexts.len() as u32);
        b.put_bytes(&name);
        if name.is_empty() {
            b.put_u8(0);
        }
        if !contexts.is_empty() {
            b.align_to(8);
            let off = 64 + b.len();
            b.set_u32(ctx_at, off as u32);
            b.put_bytes(contexts);
        }
        b
    }

    fn contexts_area(list: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_contexts(list, &mut v);
        v
    }

    #[test]
    fn decodes_request_with_contexts() {
        let area = contexts_area(&[
            (b"MxAc", b""),
            (b"QFid", b""),
            (b"AlSi", &[0, 16, 0, 0, 0, 0, 0, 0]),
        ]);
        let msg = test_message(&request_body("dir\\a.txt", &area));
        let req = CreateRequest::decode(&msg).unwrap();
        assert_eq!(req.name, &string_to_utf16le("dir\\a.txt")[..]);
        assert_eq!(req.create_disposition, disposition::OPEN_IF);
        assert_eq!(req.share_access, 7);
        let ctx = parse_contexts(req.contexts).unwrap();
        assert_eq!(ctx.len(), 3);
        assert_eq!(find_context(&ctx, b"MxAc").unwrap().data, b"");
        assert_eq!(
            find_context(&ctx, b"AlSi").unwrap().data,
            &[0, 16, 0, 0, 0, 0, 0, 0]
        );
        assert!(find_context(&ctx, b"DHnQ").is_none());
    }

    #[test]
    fn empty_name_and_no_contexts() {
        let msg = test_message(&request_body("", &[]));
        let req = CreateRequest::decode(&msg).unwrap();
        assert!(req.name.is_empty());
        assert!(parse_contexts(req.contexts).unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_requests() {
        let good = request_body("a", &[]);
        let mut bad = good.clone();
        bad[0] = 56;
        assert_eq!(
            CreateRequest::decode(&test_message(&bad)),
            Err(NtStatus::INVALID_PARAMETER)
        );
        // Name past the end of the message.
        let mut bad = good.clone();
        bad[46] = 0xFF;
        assert!(CreateRequest::decode(&test_message(&bad)).is_err());
        // Name offset inside the header.
        let mut bad = good.clone();
        bad[44] = 10;
        assert!(CreateRequest::decode(&test_message(&bad)).is_err());
        // Truncated body.
        assert!(CreateRequest::decode(&test_message(&good[..30])).is_err());
    }

    #[test]
    fn rejects_malformed_contexts() {
        let good = contexts_area(&[(b"MxAc", b""), (b"QFid", b"")]);
        assert_eq!(parse_contexts(&good).unwrap().len(), 2);
        // Misaligned Next.
        let mut bad = good.clone();
        bad[0] = 17;
        assert!(parse_contexts(&bad).is_err());
        // Next past the end.
        let mut bad = good.clone();
        bad[0] = 0xF8;
        assert!(parse_contexts(&bad).is_err());
        // Name outside its context.
        let mut bad = good.clone();
        bad[6] = 40;
        assert!(parse_contexts(&bad).is_err());
        // Data length past the end.
        let mut bad = contexts_area(&[(b"AlSi", &[0; 8])]);
        bad[12] = 200;
        assert!(parse_contexts(&bad).is_err());
        // Truncated header.
        assert!(parse_contexts(&good[..10]).is_err());
        // Too many contexts.
        let many: Vec<(&[u8], &[u8])> = (0..=MAX_CREATE_CONTEXTS)
            .map(|_| (&b"ExtA"[..], &b""[..]))
            .collect();
        assert!(parse_contexts(&contexts_area(&many)).is_err());
    }

    #[test]
    fn response_round_trip() {
        let resp = CreateResponse {
            create_action: action::CREATED,
            creation_time: 1,
            last_access_time: 2,
            last_write_time: 3,
            change_time: 4,
            allocation_size: 4096,
            end_of_file: 5,
            file_attributes: 0x20,
            file_id: [9; 16],
            ..Default::default()
        };
        let mx = mxac_response(NtStatus::SUCCESS, 0x001F_01FF);
        let qf = qfid_response(77, 3);
        let mut out = Vec::new();
        resp.encode(&[(b"MxAc", &mx), (b"QFid", &qf)], &mut out);
        assert_eq!(&out[..2], &[89, 0]);
        assert_eq!(u32::from_le_bytes(out[80..84].try_into().unwrap()), 152);
        let (back, ctx) = CreateResponse::decode(&out).unwrap();
        assert_eq!(back, resp);
        let ctx = parse_contexts(ctx).unwrap();
        assert_eq!(find_context(&ctx, b"MxAc").unwrap().data, &mx);
        assert_eq!(find_context(&ctx, b"QFid").unwrap().data, &qf);
        let mut plain = Vec::new();
        resp.encode(&[], &mut plain);
        assert_eq!(plain.len(), 89);
    }
}
