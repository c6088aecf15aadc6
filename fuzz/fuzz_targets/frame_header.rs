//! Direct-TCP framing, the SMB2 header, a walk over a compound chain's NextCommand offsets,
//! and the SMB1 negotiate probe: the first things the server reads from a peer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smb3d_protocol::framing::{parse_frame_header, Frame, FRAME_HEADER_BYTES};
use smb3d_protocol::header::{is_smb1_negotiate, smb1_negotiate_dialects, Header, HEADER_BYTES};
use smb3d_protocol::limits::MAX_PDU_BYTES;
use smb3d_protocol::messages::charged_payload_bytes;

fuzz_target!(|data: &[u8]| {
    let pdu = match parse_frame_header(data, MAX_PDU_BYTES) {
        Frame::Pdu { len } => {
            let end = (FRAME_HEADER_BYTES + len).min(data.len());
            &data[FRAME_HEADER_BYTES..end]
        }
        Frame::NeedMore | Frame::Invalid { .. } => data,
    };
    if is_smb1_negotiate(pdu) {
        let _ = smb1_negotiate_dialects(pdu);
    }
    // Follow NextCommand like a compound walker would, bounded by the chain length.
    let mut at = 0usize;
    for _ in 0..64 {
        let Some(msg) = pdu.get(at..) else { break };
        let Ok(header) = Header::decode(msg) else {
            break;
        };
        let _ = (
            header.command(),
            header.is_async(),
            header.channel_sequence(),
        );
        if let Some(cmd) = header.command() {
            let _ = charged_payload_bytes(cmd, msg);
        }
        let next = header.next_command as usize;
        if next < HEADER_BYTES {
            break;
        }
        at += next;
    }
});
