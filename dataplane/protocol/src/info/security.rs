//! Self-relative security descriptors (MS-DTYP 2.4.6), SIDs (2.4.2) and ACLs (2.4.5), enough to
//! answer QUERY_INFO InfoType SECURITY with a simple descriptor and to read one a client sends.

use crate::status::NtStatus;
use crate::wire::{slice_at, Reader, Result, Writer};

/// AdditionalInformation bits selecting descriptor parts (MS-SMB2 2.2.37).
pub mod secinfo {
    pub const OWNER: u32 = 0x0000_0001;
    pub const GROUP: u32 = 0x0000_0002;
    pub const DACL: u32 = 0x0000_0004;
    pub const SACL: u32 = 0x0000_0008;
}

/// SECURITY_DESCRIPTOR Control bits (MS-DTYP 2.4.6).
pub mod control {
    pub const DACL_PRESENT: u16 = 0x0004;
    pub const SACL_PRESENT: u16 = 0x0010;
    pub const SELF_RELATIVE: u16 = 0x8000;
}

/// A SID (MS-DTYP 2.4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sid {
    pub identifier_authority: [u8; 6],
    pub sub_authorities: Vec<u32>,
}

/// Most sub-authorities a SID may have (MS-DTYP 2.4.2).
pub const MAX_SUB_AUTHORITIES: usize = 15;

impl Sid {
    /// S-1-`authority`-`subs...`.
    pub fn new(authority: u64, subs: &[u32]) -> Sid {
        let a = authority.to_be_bytes();
        let mut identifier_authority = [0u8; 6];
        identifier_authority.copy_from_slice(&a[2..]);
        Sid {
            identifier_authority,
            sub_authorities: subs.to_vec(),
        }
    }

    /// Everyone, S-1-1-0.
    pub fn everyone() -> Sid {
        Sid::new(1, &[0])
    }

    /// Unix user `uid` as S-1-22-1-uid (the convention Samba also uses for unmapped users).
    pub fn unix_user(uid: u32) -> Sid {
        Sid::new(22, &[1, uid])
    }

    /// Unix group `gid` as S-1-22-2-gid.
    pub fn unix_group(gid: u32) -> Sid {
        Sid::new(22, &[2, gid])
    }

    pub fn bytes(&self) -> usize {
        8 + 4 * self.sub_authorities.len()
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(1); // Revision
        out.put_u8(self.sub_authorities.len() as u8);
        out.put_bytes(&self.identifier_authority);
        for s in &self.sub_authorities {
            out.put_u32(*s);
        }
    }

    pub fn decode(r: &mut Reader) -> Result<Sid> {
        if r.u8()? != 1 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let n = r.u8()? as usize;
        if n > MAX_SUB_AUTHORITIES {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let identifier_authority = r.array()?;
        let mut sub_authorities = Vec::with_capacity(n);
        for _ in 0..n {
            sub_authorities.push(r.u32()?);
        }
        Ok(Sid {
            identifier_authority,
            sub_authorities,
        })
    }
}

/// ACCESS_ALLOWED_ACE_TYPE (MS-DTYP 2.4.4.1).
pub const ACCESS_ALLOWED_ACE_TYPE: u8 = 0x00;
/// OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE.
pub const INHERIT_TO_CHILDREN: u8 = 0x03;
/// FILE_ALL_ACCESS (MS-SMB2 2.2.13.1.1 bits: standard rights plus all specific file rights).
pub const FILE_ALL_ACCESS: u32 = 0x001F_01FF;

/// An ACCESS_ALLOWED/DENIED ACE with a SID (MS-DTYP 2.4.4.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ace {
    pub ace_type: u8,
    pub flags: u8,
    pub mask: u32,
    pub sid: Sid,
}

impl Ace {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.ace_type);
        out.put_u8(self.flags);
        out.put_u16((8 + self.sid.bytes()) as u16);
        out.put_u32(self.mask);
        self.sid.encode(out);
    }
}

/// Encode an ACL (MS-DTYP 2.4.5), revision 2.
pub fn encode_acl(aces: &[Ace], out: &mut Vec<u8>) {
    let start = out.len();
    out.put_u8(2); // AclRevision
    out.put_u8(0);
    out.put_u16(0); // AclSize, patched below
    out.put_u16(aces.len() as u16);
    out.put_u16(0);
    for a in aces {
        a.encode(out);
    }
    out.set_u16(start + 2, (out.len() - start) as u16);
}

/// A descriptor to encode: each part present only if `Some`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityDescriptor {
    pub owner: Option<Sid>,
    pub group: Option<Sid>,
    pub dacl: Option<Vec<Ace>>,
}

impl SecurityDescriptor {
    /// The descriptor this server reports for every file: `owner`/`group` as given and a DACL
    /// granting Everyone full access, inherited by children.
    pub fn simple(owner: Sid, group: Sid) -> SecurityDescriptor {
        SecurityDescriptor {
            owner: Some(owner),
            group: Some(group),
            dacl: Some(vec![Ace {
                ace_type: ACCESS_ALLOWED_ACE_TYPE,
                flags: 0,
                mask: FILE_ALL_ACCESS,
                sid: Sid::everyone(),
            }]),
        }
    }

    /// Keep only the parts `secinfo` asks for.
    pub fn select(&self, secinfo_bits: u32) -> SecurityDescriptor {
        SecurityDescriptor {
            owner: self
                .owner
                .clone()
                .filter(|_| secinfo_bits & secinfo::OWNER != 0),
            group: self
                .group
                .clone()
                .filter(|_| secinfo_bits & secinfo::GROUP != 0),
            dacl: self
                .dacl
                .clone()
                .filter(|_| secinfo_bits & secinfo::DACL != 0),
        }
    }

    /// Self-relative encoding: header, then owner, group, DACL.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        let mut ctl = control::SELF_RELATIVE;
        if self.dacl.is_some() {
            ctl |= control::DACL_PRESENT;
        }
        out.put_u8(1); // Revision
        out.put_u8(0); // Sbz1
        out.put_u16(ctl);
        out.put_zeros(16); // OffsetOwner, OffsetGroup, OffsetSacl, OffsetDacl
        if let Some(o) = &self.owner {
            let off = (out.len() - start) as u32;
            out.set_u32(start + 4, off);
            o.encode(out);
        }
        if let Some(g) = &self.group {
            let off = (out.len() - start) as u32;
            out.set_u32(start + 8, off);
            g.encode(out);
        }
        if let Some(d) = &self.dacl {
            let off = (out.len() - start) as u32;
            out.set_u32(start + 16, off);
            encode_acl(d, out);
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

/// The parts of a peer-supplied self-relative descriptor, as raw bytes for comparison.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawDescriptor {
    pub control: u16,
    pub owner: Option<Sid>,
    pub group: Option<Sid>,
    /// The DACL bytes (AclSize long), when SE_DACL_PRESENT and the offset is non-zero.
    pub dacl: Option<Vec<u8>>,
    pub sacl: Option<Vec<u8>>,
}

fn acl_at(b: &[u8], off: usize) -> Result<Vec<u8>> {
    let mut r = Reader::at(b, off)?;
    r.skip(2)?;
    let size = r.u16()? as usize;
    if size < 8 {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    Ok(slice_at(b, off, size)?.to_vec())
}

impl RawDescriptor {
    pub fn decode(b: &[u8]) -> Result<RawDescriptor> {
        let mut r = Reader::new(b);
        if r.u8()? != 1 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        r.skip(1)?;
        let ctl = r.u16()?;
        if ctl & control::SELF_RELATIVE == 0 {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let owner_off = r.u32()? as usize;
        let group_off = r.u32()? as usize;
        let sacl_off = r.u32()? as usize;
        let dacl_off = r.u32()? as usize;
        let sid_at = |off: usize| -> Result<Option<Sid>> {
            if off == 0 {
                return Ok(None);
            }
            Ok(Some(Sid::decode(&mut Reader::at(b, off)?)?))
        };
        let present = |bit: u16, off: usize| ctl & bit != 0 && off != 0;
        Ok(RawDescriptor {
            control: ctl,
            owner: sid_at(owner_off)?,
            group: sid_at(group_off)?,
            dacl: if present(control::DACL_PRESENT, dacl_off) {
                Some(acl_at(b, dacl_off)?)
            } else {
                None
            },
            sacl: if present(control::SACL_PRESENT, sacl_off) {
                Some(acl_at(b, sacl_off)?)
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_descriptor_encodes_and_parses_back() {
        let sd = SecurityDescriptor::simple(Sid::unix_user(1000), Sid::unix_group(100));
        let b = sd.to_bytes();
        // Header 20, two SIDs of 16, ACL 8 + ACE (8 + 12).
        assert_eq!(b.len(), 20 + 16 + 16 + 28);
        let raw = RawDescriptor::decode(&b).unwrap();
        assert_eq!(raw.owner, sd.owner);
        assert_eq!(raw.group, sd.group);
        let mut acl = Vec::new();
        encode_acl(sd.dacl.as_ref().unwrap(), &mut acl);
        assert_eq!(raw.dacl, Some(acl));
        assert_eq!(raw.sacl, None);

        let only_owner = sd.select(secinfo::OWNER);
        let raw = RawDescriptor::decode(&only_owner.to_bytes()).unwrap();
        assert!(raw.group.is_none() && raw.dacl.is_none());
        assert_eq!(raw.control & control::DACL_PRESENT, 0);
    }

    #[test]
    fn everyone_sid_bytes() {
        let mut b = Vec::new();
        Sid::everyone().encode(&mut b);
        // MS-DTYP 2.4.2.4 well-known SID S-1-1-0.
        assert_eq!(b, [1, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn malformed_descriptors_are_errors() {
        assert!(RawDescriptor::decode(&[1, 0, 0, 0x80]).is_err());
        let mut b = SecurityDescriptor::simple(Sid::everyone(), Sid::everyone()).to_bytes();
        b[4] = 0xF0; // owner offset past the end
        assert!(RawDescriptor::decode(&b).is_err());
    }
}
