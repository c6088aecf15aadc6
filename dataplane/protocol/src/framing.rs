//! Direct TCP transport framing (MS-SMB2 2.1): every SMB2 message (or compound chain, or
//! TRANSFORM-wrapped message) is preceded by a 4-byte header: a zero byte and a 24-bit
//! big-endian length.

use crate::limits::MAX_PDU_BYTES;

/// Size of the transport header.
pub const FRAME_HEADER_BYTES: usize = 4;

/// What the first bytes of a stream say about the next PDU.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet to know the length.
    NeedMore,
    /// A PDU of this many bytes follows the 4-byte header.
    Pdu { len: usize },
    /// The header is invalid (non-zero first byte) or the length exceeds the limit: the peer
    /// is broken or hostile; drop the connection.
    Invalid { len: usize },
}

/// Decode the transport header at the start of `buf`.
pub fn parse_frame_header(buf: &[u8], max_pdu_bytes: usize) -> Frame {
    if buf.len() < FRAME_HEADER_BYTES {
        return Frame::NeedMore;
    }
    let len = u32::from_be_bytes([0, buf[1], buf[2], buf[3]]) as usize;
    if buf[0] != 0 || len > max_pdu_bytes.min(MAX_PDU_BYTES) || len == 0 {
        return Frame::Invalid { len };
    }
    Frame::Pdu { len }
}

/// Write the transport header for a PDU of `len` bytes into `out[0..4]`.
pub fn write_frame_header(out: &mut [u8], len: usize) {
    debug_assert!(len < (1 << 24));
    let b = (len as u32).to_be_bytes();
    out[0] = 0;
    out[1..4].copy_from_slice(&b[1..4]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        assert_eq!(parse_frame_header(&[0, 0], 1 << 20), Frame::NeedMore);
        assert_eq!(
            parse_frame_header(&[0, 0, 1, 0], 1 << 20),
            Frame::Pdu { len: 256 }
        );
        assert!(matches!(
            parse_frame_header(&[1, 0, 1, 0], 1 << 20),
            Frame::Invalid { .. }
        ));
        assert!(matches!(
            parse_frame_header(&[0, 0xff, 0xff, 0xff], 1 << 20),
            Frame::Invalid { .. }
        ));
        let mut h = [0u8; 4];
        write_frame_header(&mut h, 0x012345);
        assert_eq!(h, [0, 1, 0x23, 0x45]);
    }
}
