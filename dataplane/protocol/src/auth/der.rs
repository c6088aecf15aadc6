//! The small subset of ASN.1 DER that SPNEGO needs (ITU-T X.690): definite lengths up to
//! 4 length bytes, single-byte tags. Reading never recurses on its own; callers walk the
//! fixed SPNEGO structure one level at a time, so nesting depth is bounded by the code.

use crate::status::NtStatus;

pub type Result<T> = std::result::Result<T, NtStatus>;

pub const TAG_INTEGER_ENUMERATED: u8 = 0x0a;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_OID: u8 = 0x06;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_GENERAL_STRING: u8 = 0x1b;
/// `[APPLICATION 0]` constructed: the GSS-API InitialContextToken (RFC 2743 3.1).
pub const TAG_APPLICATION_0: u8 = 0x60;

/// Context-specific constructed tag `[n]`.
pub const fn context(n: u8) -> u8 {
    0xa0 | n
}

/// One decoded tag-length-value element.
#[derive(Clone, Copy, Debug)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The contents octets.
    pub value: &'a [u8],
    /// The whole encoding, tag and length included.
    pub encoded: &'a [u8],
}

/// Reads one element from the front of `buf`; returns it and the bytes after it.
pub fn read_tlv(buf: &[u8]) -> Result<(Tlv<'_>, &[u8])> {
    let bad = NtStatus::INVALID_PARAMETER;
    let (&tag, rest) = buf.split_first().ok_or(bad)?;
    // Multi-byte tags (low five bits all set) never occur in SPNEGO.
    if tag & 0x1f == 0x1f {
        return Err(bad);
    }
    let (&first, mut rest) = rest.split_first().ok_or(bad)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        // X.690 8.1.3.5: long form; 0x80 (indefinite) is not DER.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return Err(bad);
        }
        let (len_bytes, after) = rest.split_at_checked(count).ok_or(bad)?;
        rest = after;
        len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let header_len = buf.len() - rest.len();
    let (value, after) = rest.split_at_checked(len).ok_or(bad)?;
    let encoded = &buf[..header_len + len];
    Ok((
        Tlv {
            tag,
            value,
            encoded,
        },
        after,
    ))
}

/// Reads exactly one element of `tag` that fills all of `buf`.
pub fn read_only(buf: &[u8], tag: u8) -> Result<Tlv<'_>> {
    let (tlv, rest) = read_tlv(buf)?;
    if tlv.tag != tag || !rest.is_empty() {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok(tlv)
}

/// Reads one element of `tag` from the front of `buf`.
pub fn read_expect(buf: &[u8], tag: u8) -> Result<(Tlv<'_>, &[u8])> {
    let (tlv, rest) = read_tlv(buf)?;
    if tlv.tag != tag {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok((tlv, rest))
}

/// All elements in `buf`, in order (the members of a SEQUENCE), at most `max` of them.
pub fn read_all(mut buf: &[u8], max: usize) -> Result<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if out.len() == max {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let (tlv, rest) = read_tlv(buf)?;
        out.push(tlv);
        buf = rest;
    }
    Ok(out)
}

/// Encodes one element with a definite, minimal length (X.690 10.1).
pub fn encode(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 6);
    out.push(tag);
    let len = value.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let be = (len as u32).to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (4 - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
    out.extend_from_slice(value);
    out
}

/// Encodes a constructed element from already-encoded members.
pub fn encode_parts(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    encode(tag, &parts.concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_trip() {
        for len in [0usize, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000] {
            let value = vec![0xab; len];
            let enc = encode(TAG_OCTET_STRING, &value);
            let (tlv, rest) = read_tlv(&enc).unwrap();
            assert!(rest.is_empty());
            assert_eq!(tlv.value.len(), len);
            assert_eq!(tlv.encoded, &enc[..]);
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(read_tlv(&[]).is_err());
        assert!(read_tlv(&[0x04]).is_err());
        assert!(read_tlv(&[0x04, 0x80]).is_err()); // indefinite
        assert!(read_tlv(&[0x04, 0x85, 0, 0, 0, 0, 1]).is_err()); // too many length bytes
        assert!(read_tlv(&[0x04, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err()); // past the end
        assert!(read_tlv(&[0x04, 0x02, 0x00]).is_err());
        assert!(read_tlv(&[0x1f, 0x01, 0x00]).is_err()); // multi-byte tag
    }
}
