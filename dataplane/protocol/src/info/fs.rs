//! Filesystem information classes (MS-FSCC 2.5), QUERY_INFO InfoType FILESYSTEM.

use super::put_utf16;
use crate::status::NtStatus;
use crate::wire::{utf16le_to_string, Reader, Result, Writer};

/// FsInformationClass values (MS-FSCC 2.5).
pub mod class {
    pub const VOLUME: u8 = 1;
    pub const LABEL: u8 = 2;
    pub const SIZE: u8 = 3;
    pub const DEVICE: u8 = 4;
    pub const ATTRIBUTE: u8 = 5;
    pub const CONTROL: u8 = 6;
    pub const FULL_SIZE: u8 = 7;
    pub const OBJECT_ID: u8 = 8;
    pub const SECTOR_SIZE: u8 = 11;
}

/// Smallest OutputBufferLength per class (C `sizeof`, as Windows checks; see
/// smbtorture smb2.getinfo.qfs_buffercheck). Below it: STATUS_INFO_LENGTH_MISMATCH.
pub fn query_min_bytes(class: u8) -> Option<usize> {
    Some(match class {
        class::VOLUME => 24,
        class::SIZE => 24,
        class::DEVICE => 8,
        class::ATTRIBUTE => 16,
        class::CONTROL => 48,
        class::FULL_SIZE => 32,
        class::OBJECT_ID => 64,
        class::SECTOR_SIZE => 28,
        _ => return None,
    })
}

/// FileSystemAttributes flags (MS-FSCC 2.5.1).
pub mod fs_attributes {
    pub const CASE_SENSITIVE_SEARCH: u32 = 0x0000_0001;
    pub const CASE_PRESERVED_NAMES: u32 = 0x0000_0002;
    pub const UNICODE_ON_DISK: u32 = 0x0000_0004;
    pub const PERSISTENT_ACLS: u32 = 0x0000_0008;
    pub const SUPPORTS_SPARSE_FILES: u32 = 0x0000_0040;
    pub const SUPPORTS_OBJECT_IDS: u32 = 0x0001_0000;
    pub const SUPPORTS_EXTENDED_ATTRIBUTES: u32 = 0x0080_0000;
}

/// FILE_FS_VOLUME_INFORMATION (MS-FSCC 2.5.9).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VolumeInformation {
    pub volume_creation_time: u64,
    pub volume_serial_number: u32,
    pub supports_objects: bool,
    pub volume_label: String,
}

impl VolumeInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.volume_creation_time);
        out.put_u32(self.volume_serial_number);
        let len_at = out.len();
        out.put_u32(0);
        out.put_u8(self.supports_objects as u8);
        out.put_u8(0); // Reserved
        let n = put_utf16(out, &self.volume_label);
        out.set_u32(len_at, n as u32);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        let volume_creation_time = r.u64()?;
        let volume_serial_number = r.u32()?;
        let len = r.u32()? as usize;
        let supports_objects = r.u8()? != 0;
        r.skip(1)?;
        Ok(VolumeInformation {
            volume_creation_time,
            volume_serial_number,
            supports_objects,
            volume_label: utf16le_to_string(r.bytes(len)?)?,
        })
    }
}

/// FILE_FS_SIZE_INFORMATION (MS-FSCC 2.5.8).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeInformation {
    pub total_allocation_units: u64,
    pub available_allocation_units: u64,
    pub sectors_per_allocation_unit: u32,
    pub bytes_per_sector: u32,
}

impl SizeInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.total_allocation_units);
        out.put_u64(self.available_allocation_units);
        out.put_u32(self.sectors_per_allocation_unit);
        out.put_u32(self.bytes_per_sector);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        Ok(SizeInformation {
            total_allocation_units: r.u64()?,
            available_allocation_units: r.u64()?,
            sectors_per_allocation_unit: r.u32()?,
            bytes_per_sector: r.u32()?,
        })
    }
}

/// FILE_FS_FULL_SIZE_INFORMATION (MS-FSCC 2.5.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FullSizeInformation {
    pub total_allocation_units: u64,
    pub caller_available_allocation_units: u64,
    pub actual_available_allocation_units: u64,
    pub sectors_per_allocation_unit: u32,
    pub bytes_per_sector: u32,
}

impl FullSizeInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.total_allocation_units);
        out.put_u64(self.caller_available_allocation_units);
        out.put_u64(self.actual_available_allocation_units);
        out.put_u32(self.sectors_per_allocation_unit);
        out.put_u32(self.bytes_per_sector);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        Ok(FullSizeInformation {
            total_allocation_units: r.u64()?,
            caller_available_allocation_units: r.u64()?,
            actual_available_allocation_units: r.u64()?,
            sectors_per_allocation_unit: r.u32()?,
            bytes_per_sector: r.u32()?,
        })
    }
}

/// FILE_DEVICE_DISK (MS-FSCC 2.5.10).
pub const FILE_DEVICE_DISK: u32 = 0x0000_0007;
/// FILE_DEVICE_IS_MOUNTED characteristic.
pub const FILE_DEVICE_IS_MOUNTED: u32 = 0x0000_0020;

/// FILE_FS_DEVICE_INFORMATION (MS-FSCC 2.5.10).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInformation {
    pub device_type: u32,
    pub characteristics: u32,
}

impl DeviceInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.device_type);
        out.put_u32(self.characteristics);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        Ok(DeviceInformation {
            device_type: r.u32()?,
            characteristics: r.u32()?,
        })
    }
}

/// FILE_FS_ATTRIBUTE_INFORMATION (MS-FSCC 2.5.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AttributeInformation {
    pub file_system_attributes: u32,
    pub maximum_component_name_length: u32,
    pub file_system_name: String,
}

impl AttributeInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.file_system_attributes);
        out.put_u32(self.maximum_component_name_length);
        let at = out.len();
        out.put_u32(0);
        let n = put_utf16(out, &self.file_system_name);
        out.set_u32(at, n as u32);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        let file_system_attributes = r.u32()?;
        let maximum_component_name_length = r.u32()?;
        let len = r.u32()? as usize;
        Ok(AttributeInformation {
            file_system_attributes,
            maximum_component_name_length,
            file_system_name: utf16le_to_string(r.bytes(len)?)?,
        })
    }
}

/// FILE_FS_CONTROL_INFORMATION (MS-FSCC 2.5.2): quota settings. This server has no quotas, so
/// it reports quota tracking off and "no limit" thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlInformation {
    pub free_space_start_filtering: u64,
    pub free_space_threshold: u64,
    pub free_space_stop_filtering: u64,
    pub default_quota_threshold: u64,
    pub default_quota_limit: u64,
    pub file_system_control_flags: u32,
}

impl Default for ControlInformation {
    fn default() -> Self {
        ControlInformation {
            free_space_start_filtering: 0,
            free_space_threshold: 0,
            free_space_stop_filtering: 0,
            default_quota_threshold: u64::MAX,
            default_quota_limit: u64::MAX,
            file_system_control_flags: 0,
        }
    }
}

impl ControlInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.free_space_start_filtering);
        out.put_u64(self.free_space_threshold);
        out.put_u64(self.free_space_stop_filtering);
        out.put_u64(self.default_quota_threshold);
        out.put_u64(self.default_quota_limit);
        out.put_u32(self.file_system_control_flags);
        out.put_u32(0); // Padding
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        Ok(ControlInformation {
            free_space_start_filtering: r.u64()?,
            free_space_threshold: r.u64()?,
            free_space_stop_filtering: r.u64()?,
            default_quota_threshold: r.u64()?,
            default_quota_limit: r.u64()?,
            file_system_control_flags: r.u32()?,
        })
    }
}

/// FILE_FS_OBJECTID_INFORMATION (MS-FSCC 2.5.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectIdInformation {
    pub object_id: [u8; 16],
    pub extended_info: [u8; 48],
}

impl ObjectIdInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_bytes(&self.object_id);
        out.put_bytes(&self.extended_info);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        Ok(ObjectIdInformation {
            object_id: r.array()?,
            extended_info: r.array()?,
        })
    }
}

/// FILE_FS_SECTOR_SIZE_INFORMATION (MS-FSCC 2.5.7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SectorSizeInformation {
    pub logical_bytes_per_sector: u32,
    pub physical_bytes_per_sector_for_atomicity: u32,
    pub physical_bytes_per_sector_for_performance: u32,
    pub effective_physical_bytes_per_sector_for_atomicity: u32,
    pub flags: u32,
    pub byte_offset_for_sector_alignment: u32,
    pub byte_offset_for_partition_alignment: u32,
}

/// SSINFO_FLAGS_ALIGNED_DEVICE | SSINFO_FLAGS_PARTITION_ALIGNED_ON_DEVICE (MS-FSCC 2.5.7).
pub const SSINFO_FLAGS_ALIGNED: u32 = 0x0000_0003;

impl SectorSizeInformation {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.logical_bytes_per_sector);
        out.put_u32(self.physical_bytes_per_sector_for_atomicity);
        out.put_u32(self.physical_bytes_per_sector_for_performance);
        out.put_u32(self.effective_physical_bytes_per_sector_for_atomicity);
        out.put_u32(self.flags);
        out.put_u32(self.byte_offset_for_sector_alignment);
        out.put_u32(self.byte_offset_for_partition_alignment);
    }

    pub fn decode(b: &[u8]) -> Result<Self> {
        let mut r = Reader::new(b);
        Ok(SectorSizeInformation {
            logical_bytes_per_sector: r.u32()?,
            physical_bytes_per_sector_for_atomicity: r.u32()?,
            physical_bytes_per_sector_for_performance: r.u32()?,
            effective_physical_bytes_per_sector_for_atomicity: r.u32()?,
            flags: r.u32()?,
            byte_offset_for_sector_alignment: r.u32()?,
            byte_offset_for_partition_alignment: r.u32()?,
        })
    }
}

/// Reject a class this module does not know.
pub fn check_class(class: u8) -> Result<()> {
    query_min_bytes(class)
        .map(|_| ())
        .ok_or(NtStatus::INVALID_INFO_CLASS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fs_classes_round_trip_with_expected_sizes() {
        let v = VolumeInformation {
            volume_creation_time: 5,
            volume_serial_number: 0xabcd,
            supports_objects: false,
            volume_label: "share".into(),
        };
        let mut b = Vec::new();
        v.encode(&mut b);
        assert_eq!(b.len(), 18 + 10);
        assert_eq!(VolumeInformation::decode(&b).unwrap(), v);

        let s = SizeInformation {
            total_allocation_units: 100,
            available_allocation_units: 50,
            sectors_per_allocation_unit: 8,
            bytes_per_sector: 512,
        };
        let mut b = Vec::new();
        s.encode(&mut b);
        assert_eq!(b.len(), 24);
        assert_eq!(SizeInformation::decode(&b).unwrap(), s);

        let f = FullSizeInformation {
            total_allocation_units: 1,
            caller_available_allocation_units: 2,
            actual_available_allocation_units: 3,
            sectors_per_allocation_unit: 4,
            bytes_per_sector: 5,
        };
        let mut b = Vec::new();
        f.encode(&mut b);
        assert_eq!(b.len(), 32);
        assert_eq!(FullSizeInformation::decode(&b).unwrap(), f);

        let a = AttributeInformation {
            file_system_attributes: 7,
            maximum_component_name_length: 255,
            file_system_name: "NTFS".into(),
        };
        let mut b = Vec::new();
        a.encode(&mut b);
        assert_eq!(b.len(), 20);
        assert_eq!(AttributeInformation::decode(&b).unwrap(), a);

        let mut b = Vec::new();
        ControlInformation::default().encode(&mut b);
        assert_eq!(b.len(), 48);
        assert_eq!(
            ControlInformation::decode(&b).unwrap(),
            ControlInformation::default()
        );

        let o = ObjectIdInformation {
            object_id: [7; 16],
            extended_info: [0; 48],
        };
        let mut b = Vec::new();
        o.encode(&mut b);
        assert_eq!(ObjectIdInformation::decode(&b).unwrap(), o);

        let ss = SectorSizeInformation {
            logical_bytes_per_sector: 512,
            flags: SSINFO_FLAGS_ALIGNED,
            ..Default::default()
        };
        let mut b = Vec::new();
        ss.encode(&mut b);
        assert_eq!(b.len(), 28);
        assert_eq!(SectorSizeInformation::decode(&b).unwrap(), ss);

        let d = DeviceInformation {
            device_type: FILE_DEVICE_DISK,
            characteristics: FILE_DEVICE_IS_MOUNTED,
        };
        let mut b = Vec::new();
        d.encode(&mut b);
        assert_eq!(DeviceInformation::decode(&b).unwrap(), d);
        assert!(check_class(2).is_err());
    }
}
