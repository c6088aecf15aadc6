//! File information classes (MS-FSCC 2.4) used with QUERY_INFO and SET_INFO, InfoType FILE.

use super::{put_utf16, Times};
use crate::status::NtStatus;
use crate::wire::{utf16le_to_string, Reader, Result, Writer};

/// FileInformationClass values (MS-FSCC 2.4).
pub mod class {
    pub const BASIC: u8 = 4;
    pub const STANDARD: u8 = 5;
    pub const INTERNAL: u8 = 6;
    pub const EA: u8 = 7;
    pub const ACCESS: u8 = 8;
    pub const NAME: u8 = 9;
    pub const RENAME: u8 = 10;
    pub const LINK: u8 = 11;
    pub const DISPOSITION: u8 = 13;
    pub const POSITION: u8 = 14;
    pub const FULL_EA: u8 = 15;
    pub const MODE: u8 = 16;
    pub const ALIGNMENT: u8 = 17;
    pub const ALL: u8 = 18;
    pub const ALLOCATION: u8 = 19;
    pub const END_OF_FILE: u8 = 20;
    pub const ALTERNATE_NAME: u8 = 21;
    pub const STREAM: u8 = 22;
    pub const PIPE: u8 = 23;
    pub const COMPRESSION: u8 = 28;
    pub const NETWORK_OPEN: u8 = 34;
    pub const ATTRIBUTE_TAG: u8 = 35;
    pub const NORMALIZED_NAME: u8 = 48;
    pub const DISPOSITION_EX: u8 = 64;
    pub const RENAME_EX: u8 = 65;
}

/// Smallest OutputBufferLength a QUERY_INFO of `class` accepts; below it the answer is
/// STATUS_INFO_LENGTH_MISMATCH. These are the C `sizeof` of the MS-FSCC structures (a trailing
/// one-character name array included, rounded to the structure's alignment), which is what
/// Windows checks; smbtorture's smb2.getinfo.qfile_buffercheck expects the same numbers.
pub fn query_min_bytes(class: u8) -> Option<usize> {
    Some(match class {
        class::BASIC => 40,
        class::STANDARD => 24,
        class::INTERNAL => 8,
        class::EA => 4,
        class::ACCESS => 4,
        class::NAME | class::ALTERNATE_NAME | class::NORMALIZED_NAME => 8,
        class::POSITION => 8,
        class::MODE => 4,
        class::ALIGNMENT => 4,
        class::ALL => 104,
        class::STREAM => 32,
        class::COMPRESSION => 16,
        class::NETWORK_OPEN => 56,
        class::ATTRIBUTE_TAG => 8,
        _ => return None,
    })
}

fn fixed<const N: usize>(b: &[u8]) -> Result<Reader<'_>> {
    // MS-FSA 2.1.5.14: a SET_INFO buffer shorter than the structure is INFO_LENGTH_MISMATCH.
    if b.len() < N {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    Ok(Reader::new(b))
}

/// FILE_BASIC_INFORMATION (MS-FSCC 2.4.7). In SET_INFO a time of 0 means "leave unchanged", -1
/// "stop updating it automatically" and -2 "resume"; the times are therefore signed here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BasicInformation {
    pub creation_time: i64,
    pub last_access_time: i64,
    pub last_write_time: i64,
    pub change_time: i64,
    pub file_attributes: u32,
}

impl BasicInformation {
    pub const BYTES: usize = 40;

    pub fn from_times(t: &Times, file_attributes: u32) -> Self {
        BasicInformation {
            creation_time: t.creation as i64,
            last_access_time: t.last_access as i64,
            last_write_time: t.last_write as i64,
            change_time: t.change as i64,
            file_attributes,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.creation_time as u64);
        out.put_u64(self.last_access_time as u64);
        out.put_u64(self.last_write_time as u64);
        out.put_u64(self.change_time as u64);
        out.put_u32(self.file_attributes);
        out.put_u32(0); // Reserved
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = fixed::<{ Self::BYTES }>(b)?;
        Ok(BasicInformation {
            creation_time: r.u64()? as i64,
            last_access_time: r.u64()? as i64,
            last_write_time: r.u64()? as i64,
            change_time: r.u64()? as i64,
            file_attributes: r.u32()?,
        })
    }
}

/// FILE_STANDARD_INFORMATION (MS-FSCC 2.4.47).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StandardInformation {
    pub allocation_size: u64,
    pub end_of_file: u64,
    pub number_of_links: u32,
    pub delete_pending: bool,
    pub directory: bool,
}

impl StandardInformation {
    pub const BYTES: usize = 24;

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.allocation_size);
        out.put_u64(self.end_of_file);
        out.put_u32(self.number_of_links);
        out.put_u8(self.delete_pending as u8);
        out.put_u8(self.directory as u8);
        out.put_u16(0); // Reserved
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = fixed::<22>(b)?;
        Ok(StandardInformation {
            allocation_size: r.u64()?,
            end_of_file: r.u64()?,
            number_of_links: r.u32()?,
            delete_pending: r.u8()? != 0,
            directory: r.u8()? != 0,
        })
    }
}

/// A structure that is one little-endian integer: FILE_INTERNAL_INFORMATION (u64 IndexNumber),
/// FILE_EA_INFORMATION (u32 EaSize), FILE_ACCESS_INFORMATION (u32 AccessFlags),
/// FILE_POSITION_INFORMATION (u64), FILE_MODE_INFORMATION (u32), FILE_ALIGNMENT_INFORMATION
/// (u32), FILE_ALLOCATION_INFORMATION (u64), FILE_END_OF_FILE_INFORMATION (u64).
macro_rules! scalar_info {
    ($(#[$m:meta])* $name:ident, $field:ident: u64) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            pub $field: u64,
        }
        impl $name {
            pub const BYTES: usize = 8;
            pub fn encode(&self, out: &mut Vec<u8>) {
                out.put_u64(self.$field);
            }
            pub fn decode(b: &[u8]) -> Result<Self> {
                let mut r = fixed::<8>(b)?;
                Ok($name { $field: r.u64()? })
            }
        }
    };
    ($(#[$m:meta])* $name:ident, $field:ident: u32) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            pub $field: u32,
        }
        impl $name {
            pub const BYTES: usize = 4;
            pub fn encode(&self, out: &mut Vec<u8>) {
                out.put_u32(self.$field);
            }
            pub fn decode(b: &[u8]) -> Result<Self> {
                let mut r = fixed::<4>(b)?;
                Ok($name { $field: r.u32()? })
            }
        }
    };
}

scalar_info!(
    /// FILE_INTERNAL_INFORMATION (MS-FSCC 2.4.26): the file's 64-bit id.
    InternalInformation, index_number: u64
);
scalar_info!(
    /// FILE_EA_INFORMATION (MS-FSCC 2.4.13).
    EaInformation, ea_size: u32
);
scalar_info!(
    /// FILE_ACCESS_INFORMATION (MS-FSCC 2.4.1): the open's granted access.
    AccessInformation, access_flags: u32
);
scalar_info!(
    /// FILE_POSITION_INFORMATION (MS-FSCC 2.4.40).
    PositionInformation, current_byte_offset: u64
);
scalar_info!(
    /// FILE_MODE_INFORMATION (MS-FSCC 2.4.31).
    ModeInformation, mode: u32
);
scalar_info!(
    /// FILE_ALIGNMENT_INFORMATION (MS-FSCC 2.4.3).
    AlignmentInformation, alignment_requirement: u32
);
scalar_info!(
    /// FILE_ALLOCATION_INFORMATION (MS-FSCC 2.4.4).
    AllocationInformation, allocation_size: u64
);
scalar_info!(
    /// FILE_END_OF_FILE_INFORMATION (MS-FSCC 2.4.14).
    EndOfFileInformation, end_of_file: u64
);

/// FileModeInformation flags (MS-FSCC 2.4.31).
pub mod mode {
    pub const WRITE_THROUGH: u32 = 0x0000_0002;
    pub const SEQUENTIAL_ONLY: u32 = 0x0000_0004;
    pub const NO_INTERMEDIATE_BUFFERING: u32 = 0x0000_0008;
    pub const SYNCHRONOUS_IO_ALERT: u32 = 0x0000_0010;
    pub const SYNCHRONOUS_IO_NONALERT: u32 = 0x0000_0020;
    pub const DELETE_ON_CLOSE: u32 = 0x0000_1000;
}

/// FILE_NAME_INFORMATION (MS-FSCC 2.4.32); also the layout of FileAlternateNameInformation and
/// FileNormalizedNameInformation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameInformation {
    pub name: String,
}

impl NameInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = out.len();
        out.put_u32(0);
        let n = put_utf16(out, &self.name);
        out.set_u32(at, n as u32);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        let len = r.u32()? as usize;
        Ok(NameInformation {
            name: utf16le_to_string(r.bytes(len)?)?,
        })
    }
}

/// FILE_RENAME_INFORMATION_TYPE_2 (MS-FSCC 2.4.42.2), the SMB2 form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RenameInformation {
    pub replace_if_exists: bool,
    /// MS-SMB2 2.2.39: MUST be zero over SMB2.
    pub root_directory: u64,
    /// The raw UTF-16LE target name (a path from the share root, or ":stream").
    pub file_name: Vec<u8>,
}

impl RenameInformation {
    /// Fixed part: ReplaceIfExists(1) Reserved(7) RootDirectory(8) FileNameLength(4).
    pub const FIXED_BYTES: usize = 20;

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.replace_if_exists as u8);
        out.put_zeros(7);
        out.put_u64(self.root_directory);
        out.put_u32(self.file_name.len() as u32);
        out.put_bytes(&self.file_name);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = fixed::<{ Self::FIXED_BYTES }>(b)?;
        let replace_if_exists = r.u8()? != 0;
        r.skip(7)?;
        let root_directory = r.u64()?;
        let len = r.u32()? as usize;
        if len == 0 || !len.is_multiple_of(2) {
            return Err(NtStatus::INVALID_PARAMETER);
        }
        let name = r.bytes(len).map_err(|_| NtStatus::INFO_LENGTH_MISMATCH)?;
        Ok(RenameInformation {
            replace_if_exists,
            root_directory,
            file_name: name.to_vec(),
        })
    }
}

/// FILE_DISPOSITION_INFORMATION (MS-FSCC 2.4.11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DispositionInformation {
    pub delete_pending: bool,
}

impl DispositionInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(self.delete_pending as u8);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = fixed::<1>(b)?;
        Ok(DispositionInformation {
            delete_pending: r.u8()? != 0,
        })
    }
}

/// FILE_DISPOSITION_INFORMATION_EX flags (MS-FSCC 2.4.12).
pub mod disposition_ex {
    pub const DELETE: u32 = 0x0000_0001;
    pub const POSIX_SEMANTICS: u32 = 0x0000_0002;
    pub const FORCE_IMAGE_SECTION_CHECK: u32 = 0x0000_0004;
    pub const ON_CLOSE: u32 = 0x0000_0008;
    pub const IGNORE_READONLY_ATTRIBUTE: u32 = 0x0000_0010;
}

scalar_info!(
    /// FILE_DISPOSITION_INFORMATION_EX (MS-FSCC 2.4.12).
    DispositionInformationEx, flags: u32
);

/// FILE_ALL_INFORMATION (MS-FSCC 2.4.2): the fixed part is 100 bytes, then the name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllInformation {
    pub basic: BasicInformation,
    pub standard: StandardInformation,
    pub index_number: u64,
    pub ea_size: u32,
    pub access_flags: u32,
    pub current_byte_offset: u64,
    pub mode: u32,
    pub alignment_requirement: u32,
    pub name: String,
}

impl AllInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        self.basic.encode(out);
        self.standard.encode(out);
        out.put_u64(self.index_number);
        out.put_u32(self.ea_size);
        out.put_u32(self.access_flags);
        out.put_u64(self.current_byte_offset);
        out.put_u32(self.mode);
        out.put_u32(self.alignment_requirement);
        NameInformation {
            name: self.name.clone(),
        }
        .encode(out);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let basic = BasicInformation::decode(b)?;
        let standard = StandardInformation::decode(b.get(40..).unwrap_or_default())?;
        let mut r = Reader::at(b, 64)?;
        let index_number = r.u64()?;
        let ea_size = r.u32()?;
        let access_flags = r.u32()?;
        let current_byte_offset = r.u64()?;
        let mode = r.u32()?;
        let alignment_requirement = r.u32()?;
        let name = NameInformation::decode(r.rest())?.name;
        Ok(AllInformation {
            basic,
            standard,
            index_number,
            ea_size,
            access_flags,
            current_byte_offset,
            mode,
            alignment_requirement,
            name,
        })
    }
}

/// One FILE_STREAM_INFORMATION entry (MS-FSCC 2.4.49).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamEntry {
    /// E.g. "::$DATA" for the unnamed data stream.
    pub name: String,
    pub size: u64,
    pub allocation_size: u64,
}

/// Encode a FileStreamInformation list: entries 8-byte aligned, chained by NextEntryOffset.
pub fn encode_streams(entries: &[StreamEntry], out: &mut Vec<u8>) {
    let mut prev: Option<usize> = None;
    for e in entries {
        if let Some(p) = prev {
            out.align_to(8);
            let next = out.len() - p;
            out.set_u32(p, next as u32);
        }
        let start = out.len();
        out.put_u32(0);
        out.put_u32(0);
        out.put_u64(e.size);
        out.put_u64(e.allocation_size);
        let n = put_utf16(out, &e.name);
        out.set_u32(start + 4, n as u32);
        prev = Some(start);
    }
}

pub fn decode_streams(b: &[u8]) -> Result<Vec<StreamEntry>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < b.len() {
        let mut r = Reader::at(b, at)?;
        let next = r.u32()? as usize;
        let len = r.u32()? as usize;
        let size = r.u64()?;
        let allocation_size = r.u64()?;
        let name = utf16le_to_string(r.bytes(len)?)?;
        out.push(StreamEntry {
            name,
            size,
            allocation_size,
        });
        if next == 0 {
            break;
        }
        at = at.checked_add(next).ok_or(NtStatus::INVALID_PARAMETER)?;
    }
    Ok(out)
}

/// FILE_COMPRESSION_INFORMATION (MS-FSCC 2.4.9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressionInformation {
    pub compressed_file_size: u64,
    pub compression_format: u16,
    pub compression_unit_shift: u8,
    pub chunk_shift: u8,
    pub cluster_shift: u8,
}

impl CompressionInformation {
    pub const BYTES: usize = 16;

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.compressed_file_size);
        out.put_u16(self.compression_format);
        out.put_u8(self.compression_unit_shift);
        out.put_u8(self.chunk_shift);
        out.put_u8(self.cluster_shift);
        out.put_zeros(3);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = fixed::<{ Self::BYTES }>(b)?;
        Ok(CompressionInformation {
            compressed_file_size: r.u64()?,
            compression_format: r.u16()?,
            compression_unit_shift: r.u8()?,
            chunk_shift: r.u8()?,
            cluster_shift: r.u8()?,
        })
    }
}

/// FILE_NETWORK_OPEN_INFORMATION (MS-FSCC 2.4.34).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkOpenInformation {
    pub times: Times,
    pub allocation_size: u64,
    pub end_of_file: u64,
    pub file_attributes: u32,
}

impl NetworkOpenInformation {
    pub const BYTES: usize = 56;

    pub fn encode(&self, out: &mut Vec<u8>) {
        self.times.encode(out);
        out.put_u64(self.allocation_size);
        out.put_u64(self.end_of_file);
        out.put_u32(self.file_attributes);
        out.put_u32(0); // Reserved
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = fixed::<{ Self::BYTES }>(b)?;
        Ok(NetworkOpenInformation {
            times: Times::decode(&mut r)?,
            allocation_size: r.u64()?,
            end_of_file: r.u64()?,
            file_attributes: r.u32()?,
        })
    }
}

/// FILE_ATTRIBUTE_TAG_INFORMATION (MS-FSCC 2.4.6).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttributeTagInformation {
    pub file_attributes: u32,
    pub reparse_tag: u32,
}

impl AttributeTagInformation {
    pub const BYTES: usize = 8;

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.file_attributes);
        out.put_u32(self.reparse_tag);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = fixed::<{ Self::BYTES }>(b)?;
        Ok(AttributeTagInformation {
            file_attributes: r.u32()?,
            reparse_tag: r.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round<T: PartialEq + std::fmt::Debug>(
        v: T,
        enc: impl Fn(&T, &mut Vec<u8>),
        dec: impl Fn(&[u8]) -> Result<T>,
        len: usize,
    ) {
        let mut b = Vec::new();
        enc(&v, &mut b);
        assert_eq!(b.len(), len);
        assert_eq!(dec(&b).unwrap(), v);
        if len > 0 {
            assert!(dec(&b[..len - 1]).is_err());
        }
    }

    #[test]
    fn fixed_classes_round_trip() {
        let times = Times {
            creation: 1,
            last_access: 2,
            last_write: 3,
            change: 4,
        };
        round(
            BasicInformation::from_times(&times, 0x20),
            BasicInformation::encode,
            BasicInformation::decode,
            40,
        );
        let std = StandardInformation {
            allocation_size: 4096,
            end_of_file: 10,
            number_of_links: 1,
            delete_pending: true,
            directory: false,
        };
        let mut b = Vec::new();
        std.encode(&mut b);
        assert_eq!(b.len(), 24);
        assert_eq!(StandardInformation::decode(&b).unwrap(), std);
        round(
            InternalInformation { index_number: 77 },
            InternalInformation::encode,
            InternalInformation::decode,
            8,
        );
        round(
            ModeInformation { mode: 2 },
            ModeInformation::encode,
            ModeInformation::decode,
            4,
        );
        round(
            NetworkOpenInformation {
                times,
                allocation_size: 8,
                end_of_file: 7,
                file_attributes: 0x80,
            },
            NetworkOpenInformation::encode,
            NetworkOpenInformation::decode,
            56,
        );
        round(
            CompressionInformation {
                compressed_file_size: 5,
                ..Default::default()
            },
            CompressionInformation::encode,
            CompressionInformation::decode,
            16,
        );
        round(
            AttributeTagInformation {
                file_attributes: 0x10,
                reparse_tag: 0,
            },
            AttributeTagInformation::encode,
            AttributeTagInformation::decode,
            8,
        );
        round(
            DispositionInformation {
                delete_pending: true,
            },
            DispositionInformation::encode,
            DispositionInformation::decode,
            1,
        );
    }

    #[test]
    fn all_information_layout() {
        let all = AllInformation {
            basic: BasicInformation {
                creation_time: 11,
                file_attributes: 0x20,
                ..Default::default()
            },
            standard: StandardInformation {
                end_of_file: 3,
                number_of_links: 1,
                ..Default::default()
            },
            index_number: 9,
            ea_size: 0,
            access_flags: 0x1f01ff,
            current_byte_offset: 5,
            mode: 2,
            alignment_requirement: 0,
            name: "\\dir\\a.txt".into(),
        };
        let mut b = Vec::new();
        all.encode(&mut b);
        // MS-FSCC 2.4.2: 100 bytes before the name.
        assert_eq!(b.len(), 100 + 20);
        assert_eq!(&b[96..100], &20u32.to_le_bytes());
        assert_eq!(AllInformation::decode(&b).unwrap(), all);
    }

    #[test]
    fn rename_and_streams() {
        let ren = RenameInformation {
            replace_if_exists: true,
            root_directory: 0,
            file_name: crate::wire::string_to_utf16le("dir\\new.txt"),
        };
        let mut b = Vec::new();
        ren.encode(&mut b);
        assert_eq!(RenameInformation::decode(&b).unwrap(), ren);
        assert_eq!(
            RenameInformation::decode(&b[..b.len() - 2]),
            Err(NtStatus::INFO_LENGTH_MISMATCH)
        );

        let streams = vec![
            StreamEntry {
                name: "::$DATA".into(),
                size: 10,
                allocation_size: 4096,
            },
            StreamEntry {
                name: ":s:$DATA".into(),
                size: 1,
                allocation_size: 8,
            },
        ];
        let mut b = Vec::new();
        encode_streams(&streams, &mut b);
        assert_eq!(u32::from_le_bytes(b[..4].try_into().unwrap()) % 8, 0);
        assert_eq!(decode_streams(&b).unwrap(), streams);
    }
}
