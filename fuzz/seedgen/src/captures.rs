//! `seedgen captures PCAP PORT`: seeds from a tcpdump recording (Ethernet link type, as
//! `tcpdump -i lo` writes) of real clients talking to smb3d on loopback port PORT;
//! `scripts/fuzz-captures` makes the recording and runs this.
//!
//! Each TCP connection's client bytes become a `connection` seed: the handshake's NEGOTIATE,
//! then what followed the logon, with the session id rewritten to the harness's
//! (`FUZZ_SESSION_ID`), MessageIds shifted to follow the harness's logon, and signatures
//! cleared (the harness's session does not require them). Every client PDU also becomes
//! per-message seeds for the other targets, a few of each shape.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;

use smb3d_protocol::header::{is_smb1_negotiate, Command, Header, HEADER_BYTES};

use crate::shared::*;
use crate::{corpus_dir, framed, selector_of, write_seed};

/// Largest `connection` seed; the rest of a longer connection is left out.
const MAX_STREAM_BYTES: usize = 48 * 1024;
/// Largest message kept as a per-message seed (large WRITEs add bytes, not shapes).
const MAX_MESSAGE_BYTES: usize = 4096;
/// Seeds of one shape (target, command, length) kept.
const PER_SHAPE: usize = 1;
/// Seeds per target at most.
const PER_TARGET: usize = 120;
/// `connection` seeds that keep the client's own logon (the harness does not log on for them).
const RAW_HANDSHAKES: usize = 4;
const SIGNED: u32 = 0x08;
/// SMB2 header: Flags, MessageId, SessionId, Signature offsets (MS-SMB2 2.2.1.2).
const FLAGS_AT: usize = 16;
const MESSAGE_ID_AT: usize = 24;
const SESSION_ID_AT: usize = 40;
const SIGNATURE_AT: usize = 48;

/// Client-to-server and server-to-client bytes of one TCP connection.
#[derive(Default)]
struct Flow {
    /// Sequence number of the first payload byte, per direction (from the SYN).
    start: [Option<u32>; 2],
    segments: [Vec<(u32, Vec<u8>)>; 2],
}

pub fn run(pcap: &Path, port: u16) {
    let bytes = std::fs::read(pcap).expect("read the recording");
    let mut flows: BTreeMap<u16, Flow> = BTreeMap::new();
    for frame in pcap_frames(&bytes) {
        let Some(seg) = tcp_segment(frame) else {
            continue;
        };
        let (client_port, dir) = match (seg.src == port, seg.dst == port) {
            (false, true) => (seg.src, 0),
            (true, false) => (seg.dst, 1),
            _ => continue,
        };
        let flow = flows.entry(client_port).or_default();
        if seg.syn {
            flow.start[dir] = Some(seg.seq.wrapping_add(1));
        }
        if !seg.payload.is_empty() {
            flow.segments[dir].push((seg.seq, seg.payload.to_vec()));
        }
    }
    for dir in std::fs::read_dir(corpus_dir("")).expect("corpus dir") {
        let dir = dir.expect("corpus entry").path();
        for f in std::fs::read_dir(&dir).expect("target dir") {
            let f = f.expect("seed").path();
            if f.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cap-"))
            {
                std::fs::remove_file(f).expect("remove old capture seed");
            }
        }
    }
    let mut seeds = Seeds::default();
    let mut raw = 0;
    for flow in flows.values() {
        let client = reassemble(flow.start[0], &flow.segments[0]);
        let pdus = split_pdus(&client);
        if pdus.is_empty() {
            continue;
        }
        per_pdu_seeds(&pdus, &mut seeds);
        if let Some(stream) = logged_on_stream(&pdus) {
            seeds.add("connection", "stream", &[&[1u8][..], &stream].concat());
        }
        if raw < RAW_HANDSHAKES {
            raw += 1;
            let handshake: Vec<u8> = pdus
                .iter()
                .take_while(|p| is_handshake(p))
                .flat_map(|p| framed(p))
                .collect();
            seeds.add("connection", "raw", &[&[0u8][..], &handshake].concat());
        }
    }
    for (target, (files, bytes)) in &seeds.written {
        println!("{target}: {files} capture seeds, {bytes} bytes");
    }
}

/// Seeds written so far, deduplicated by content and thinned by shape.
#[derive(Default)]
struct Seeds {
    seen: HashSet<u64>,
    shapes: HashMap<String, usize>,
    written: BTreeMap<String, (usize, usize)>,
}

impl Seeds {
    fn add(&mut self, target: &str, shape: &str, bytes: &[u8]) {
        let per_target = self.written.get(target).map_or(0, |w| w.0);
        let shape = format!("{target}/{shape}");
        let same_shape = self.shapes.get(&shape).copied().unwrap_or(0);
        let limit = if target == "connection" {
            usize::MAX
        } else {
            PER_SHAPE
        };
        if per_target >= PER_TARGET || same_shape >= limit {
            return;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (target, bytes).hash(&mut h);
        let hash = h.finish();
        if !self.seen.insert(hash) {
            return;
        }
        *self.shapes.entry(shape).or_default() += 1;
        let w = self.written.entry(target.to_string()).or_default();
        w.0 += 1;
        w.1 += bytes.len();
        write_seed(target, &format!("cap-{hash:016x}"), bytes);
    }
}

fn is_handshake(pdu: &[u8]) -> bool {
    is_smb1_negotiate(pdu)
        || matches!(
            command_of(pdu),
            Some(c) if c == Command::Negotiate as u16 || c == Command::SessionSetup as u16
        )
}

fn command_of(msg: &[u8]) -> Option<u16> {
    Header::decode(msg).ok().map(|h| h.command)
}

/// The client's last SMB2 NEGOTIATE of the handshake (MessageId 0), then everything after the
/// logon rewritten for the harness's session; `None` without a NEGOTIATE or anything after.
fn logged_on_stream(pdus: &[&[u8]]) -> Option<Vec<u8>> {
    let handshake = pdus.iter().take_while(|p| is_handshake(p)).count();
    let negotiate = pdus[..handshake]
        .iter()
        .rev()
        .find(|p| command_of(p) == Some(Command::Negotiate as u16))?;
    let rest = &pdus[handshake..];
    let first = Header::decode(rest.first()?).ok()?;
    let shift = (1 + LOGON_MESSAGES).wrapping_sub(first.message_id);
    let session = rest
        .iter()
        .filter_map(|p| Header::decode(p).ok())
        .map(|h| h.session_id)
        .find(|&id| id != 0 && id != u64::MAX)?;
    let mut negotiate = negotiate.to_vec();
    negotiate[MESSAGE_ID_AT..MESSAGE_ID_AT + 8].copy_from_slice(&0u64.to_le_bytes());
    let mut stream = framed(&negotiate);
    for pdu in rest {
        if stream.len() + pdu.len() > MAX_STREAM_BYTES {
            break;
        }
        let mut pdu = pdu.to_vec();
        for_each_message(&mut pdu, |msg| rewrite(msg, shift, session));
        stream.extend_from_slice(&framed(&pdu));
    }
    Some(stream)
}

/// Shift the MessageId, give `session` the harness's id, drop the signature.
fn rewrite(msg: &mut [u8], shift: u64, session: u64) {
    let at = |i: usize| i..i + 8;
    let id = u64::from_le_bytes(msg[at(MESSAGE_ID_AT)].try_into().expect("8 bytes"));
    msg[at(MESSAGE_ID_AT)].copy_from_slice(&id.wrapping_add(shift).to_le_bytes());
    let sid = u64::from_le_bytes(msg[at(SESSION_ID_AT)].try_into().expect("8 bytes"));
    if sid == session {
        msg[at(SESSION_ID_AT)].copy_from_slice(&FUZZ_SESSION_ID.to_le_bytes());
    }
    let flags = u32::from_le_bytes(msg[FLAGS_AT..FLAGS_AT + 4].try_into().expect("4 bytes"));
    msg[FLAGS_AT..FLAGS_AT + 4].copy_from_slice(&(flags & !SIGNED).to_le_bytes());
    msg[SIGNATURE_AT..SIGNATURE_AT + 16].fill(0);
}

/// Call `f` on each message of a compound chain (only SMB2 messages with a valid header).
fn for_each_message(pdu: &mut [u8], mut f: impl FnMut(&mut [u8])) {
    let mut at = 0;
    while let Ok(h) = Header::decode(&pdu[at..]) {
        let next = h.next_command as usize;
        let end = if next >= HEADER_BYTES && at + next <= pdu.len() {
            at + next
        } else {
            pdu.len()
        };
        f(&mut pdu[at..end]);
        if end == pdu.len() {
            break;
        }
        at = end;
    }
}

fn messages(pdu: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pdu = pdu.to_vec();
    for_each_message(&mut pdu, |m| out.push(m.to_vec()));
    out
}

fn per_pdu_seeds(pdus: &[&[u8]], seeds: &mut Seeds) {
    let mut tokens = Vec::new();
    for pdu in pdus.iter().filter(|p| p.len() <= MAX_MESSAGE_BYTES) {
        let first = command_of(pdu).unwrap_or(0xffff);
        seeds.add(
            "frame_header",
            &format!("{first}-{}", pdu.len()),
            &framed(pdu),
        );
        for msg in messages(pdu) {
            let Some(command) = command_of(&msg) else {
                continue;
            };
            let shape = format!("{command}-{}", msg.len());
            if REQUEST_COMMANDS.contains(&command) {
                let selector = selector_of(command);
                seeds.add("requests", &shape, &[&[selector][..], &msg].concat());
            }
            seeds.add(
                "signing",
                &shape,
                &[&[command as u8 % 3][..], &msg].concat(),
            );
            match command {
                c if c == Command::Negotiate as u16 => seeds.add("negotiate", &shape, &msg),
                c if c == Command::Create as u16 => seeds.add("create", &shape, &msg),
                // MS-SMB2 2.2.5, 2.2.39, 2.2.37: where each body keeps its buffer.
                c if c == Command::SessionSetup as u16 => {
                    tokens.extend(buffer_at(&msg, 12, Length::U16(14)))
                }
                c if c == Command::SetInfo as u16 => info_seed(&msg, false, seeds),
                c if c == Command::QueryInfo as u16 => info_seed(&msg, true, seeds),
                _ => {}
            }
        }
    }
    if let [first, second, ..] = &tokens[..] {
        let shape = format!("{}-{}", first.len(), second.len());
        seeds.add("auth", &shape, &join_tokens(first, second));
    }
}

/// Where a body keeps a buffer's length, and how wide it is.
enum Length {
    U16(usize),
    U32(usize),
}

/// The buffer of a message whose body holds its u16 offset (from the header) at `offset_at`.
fn buffer_at(msg: &[u8], offset_at: usize, len: Length) -> Option<Vec<u8>> {
    let body = msg.get(HEADER_BYTES..)?;
    let offset = u16::from_le_bytes(body.get(offset_at..offset_at + 2)?.try_into().ok()?) as usize;
    let len = match len {
        Length::U16(at) => u16::from_le_bytes(body.get(at..at + 2)?.try_into().ok()?) as usize,
        Length::U32(at) => u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?) as usize,
    };
    msg.get(offset..offset.checked_add(len)?)
        .map(<[u8]>::to_vec)
}

/// SET_INFO buffers and QUERY_INFO input buffers as `info` seeds, by info type and class.
fn info_seed(msg: &[u8], query: bool, seeds: &mut Seeds) {
    let Some(body) = msg.get(HEADER_BYTES..HEADER_BYTES + 4) else {
        return;
    };
    let (info_type, class) = (body[2], body[3]);
    let decoder = match (query, info_type, class) {
        (false, 1, 10) => InfoDecoder::Rename,
        (false, 1, 4) => InfoDecoder::Basic,
        (false, 1, 13) => InfoDecoder::Disposition,
        (false, 1, 64) => InfoDecoder::DispositionEx,
        (false, 1, 20) => InfoDecoder::EndOfFile,
        (false, 1, 19) => InfoDecoder::Allocation,
        (false, 1, 14) => InfoDecoder::Position,
        (false, 1, 16) => InfoDecoder::Mode,
        (false, 1, 15) => InfoDecoder::FullEaList,
        (false, 3, _) => InfoDecoder::SecurityDescriptor,
        (false, 2, 6) => InfoDecoder::FsControl,
        (true, 1, 15) => InfoDecoder::GetEaList,
        _ => return,
    };
    let len = if query {
        Length::U32(12)
    } else {
        Length::U32(4)
    };
    let Some(buffer) = buffer_at(msg, 8, len) else {
        return;
    };
    let selector = INFO_DECODERS
        .iter()
        .position(|&d| d == decoder)
        .expect("decoder in table") as u8;
    let shape = format!("{decoder:?}-{}", buffer.len());
    seeds.add("info", &shape, &[&[selector][..], &buffer].concat());
}

/// The link-layer frames of a pcap file (microsecond or nanosecond, little-endian).
fn pcap_frames(pcap: &[u8]) -> Vec<&[u8]> {
    let magic = pcap
        .get(..4)
        .map(|m| u32::from_le_bytes(m.try_into().expect("4")));
    assert!(
        matches!(magic, Some(0xa1b2_c3d4 | 0xa1b2_3c4d)),
        "not a little-endian pcap file"
    );
    let link_type = u32::from_le_bytes(pcap[20..24].try_into().expect("4"));
    assert_eq!(link_type, 1, "expected Ethernet frames (tcpdump -i lo)");
    let mut frames = Vec::new();
    let mut at = 24;
    while let Some(rec) = pcap.get(at..at + 16) {
        let len = u32::from_le_bytes(rec[8..12].try_into().expect("4")) as usize;
        let Some(frame) = pcap.get(at + 16..at + 16 + len) else {
            break;
        };
        frames.push(frame);
        at += 16 + len;
    }
    frames
}

struct Segment<'a> {
    src: u16,
    dst: u16,
    seq: u32,
    syn: bool,
    payload: &'a [u8],
}

/// The TCP segment of an Ethernet + IPv4 frame.
fn tcp_segment(frame: &[u8]) -> Option<Segment<'_>> {
    let be16 = |b: &[u8], i: usize| Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?));
    if be16(frame, 12)? != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let header_len = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(be16(ip, 2)?);
    if *ip.get(9)? != 6 {
        return None;
    }
    let tcp = ip.get(header_len..total.min(ip.len()))?;
    let data_at = usize::from(tcp.get(12)? >> 4) * 4;
    Some(Segment {
        src: be16(tcp, 0)?,
        dst: be16(tcp, 2)?,
        seq: u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?),
        syn: tcp.get(13)? & 0x02 != 0,
        payload: tcp.get(data_at..)?,
    })
}

/// One direction's bytes in order, retransmissions dropped; stops at a gap. Empty if the
/// connection began before the recording (no SYN seen).
fn reassemble(start: Option<u32>, segments: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let Some(start) = start else {
        return Vec::new();
    };
    let mut sorted: Vec<(u32, &[u8])> = segments
        .iter()
        .map(|(seq, p)| (seq.wrapping_sub(start), &p[..]))
        .collect();
    sorted.sort_by_key(|s| s.0);
    let mut out = Vec::new();
    for (offset, payload) in sorted {
        let offset = offset as usize;
        if offset > out.len() {
            break;
        }
        let already = out.len() - offset;
        if already < payload.len() {
            out.extend_from_slice(&payload[already..]);
        }
    }
    out
}

/// The PDUs of a Direct-TCP stream (transport headers removed); stops at a partial one.
fn split_pdus(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while let Some(h) = rest.get(..4) {
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let Some(pdu) = rest.get(4..4 + len) else {
            break;
        };
        if h[0] == 0 && len > 0 {
            out.push(pdu);
        }
        rest = &rest[4 + len..];
    }
    out
}
