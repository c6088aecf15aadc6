//! QUERY_INFO (MS-SMB2 3.3.5.20): file, filesystem and security information.
//!
//! Buffer rules (MS-SMB2 3.3.5.20.1/.2, MS-FSA 2.1.5.12/13; smbtorture smb2.getinfo.*):
//! an OutputBufferLength below a class's fixed size is STATUS_INFO_LENGTH_MISMATCH; when only
//! the variable part does not fit, the data is truncated and the status is BUFFER_OVERFLOW; a
//! security descriptor that does not fit is BUFFER_TOO_SMALL with the size needed.

use std::os::fd::{AsFd, AsRawFd};

use smb3d_protocol::info::ea::{self as ea_info, FullEa};
use smb3d_protocol::info::file::{self as fi, class};
use smb3d_protocol::info::fs::{self, class as fs_class};
use smb3d_protocol::info::info_type;
use smb3d_protocol::info::security::{secinfo, SecurityDescriptor, Sid};
use smb3d_protocol::messages::error;
use smb3d_protocol::messages::query_info::{
    begin_output_response, finish_output_response, flags, QueryInfoRequest,
};
use smb3d_protocol::wire::Writer;
use smb3d_protocol::NtStatus;

use super::negotiate::max_io_bytes;
use super::query_directory::{short_name, times_of};
use super::{Reply, Request, TreeCtx};
use crate::open::{FileId, Open};
use crate::storage::ea;
use crate::storage::file_table::access;
use crate::storage::metadata::{stat_fd, FileMetadata};

/// STATUS_NO_MORE_EAS (MS-ERREF 2.3.1).
pub const NO_MORE_EAS: NtStatus = NtStatus(0x8000_0012);
/// FILE_DELETE_ON_CLOSE create option (MS-SMB2 2.2.13).
const FILE_DELETE_ON_CLOSE: u32 = 0x0000_1000;
/// File system name reported in FileFsAttributeInformation. Windows clients enable features
/// (large reads, EAs) by this name; Samba reports the same.
const FILE_SYSTEM_NAME: &str = "NTFS";

pub fn handle(req: &Request, ctx: &mut TreeCtx) -> Result<Reply, NtStatus> {
    let q = QueryInfoRequest::decode(req.msg)?;
    let open = ctx.open(FileId::decode(&q.file_id))?;
    // MS-SMB2 3.3.5.20: larger than MaxTransactSize is INVALID_PARAMETER.
    if q.output_buffer_length > max_io_bytes(ctx.dialect) {
        return Err(NtStatus::INVALID_PARAMETER);
    }
    match q.info_type {
        info_type::FILE => file_info(ctx, &open, &q),
        info_type::FILESYSTEM => fs_info(ctx, &open, &q),
        info_type::SECURITY => security_info(&open, &q),
        // Quotas are not implemented.
        info_type::QUOTA => Err(NtStatus::NOT_SUPPORTED),
        _ => Err(NtStatus::INVALID_PARAMETER),
    }
}

/// Wrap `data` in a response, truncated to `max` bytes with BUFFER_OVERFLOW when longer.
fn reply_truncated(mut data: Vec<u8>, max: usize) -> Reply {
    let status = if data.len() > max {
        data.truncate(max);
        NtStatus::BUFFER_OVERFLOW
    } else {
        NtStatus::SUCCESS
    };
    let mut body = Vec::with_capacity(8 + data.len() + 1);
    begin_output_response(&mut body);
    body.put_bytes(&data);
    finish_output_response(&mut body);
    Reply::Body { status, body }
}

fn require(open: &Open, bits: u32) -> Result<(), NtStatus> {
    if open.access_mask & bits == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    Ok(())
}

/// MS-FSA 2.1.5.12: the classes that read attributes need FILE_READ_ATTRIBUTES.
fn check_file_access(open: &Open, c: u8) -> Result<(), NtStatus> {
    match c {
        class::BASIC | class::ALL | class::NETWORK_OPEN | class::ATTRIBUTE_TAG => {
            require(open, access::FILE_READ_ATTRIBUTES)
        }
        class::FULL_EA => require(open, access::FILE_READ_EA),
        _ => Ok(()),
    }
}

fn file_info(ctx: &TreeCtx, open: &Open, q: &QueryInfoRequest) -> Result<Reply, NtStatus> {
    let c = q.file_info_class;
    check_file_access(open, c)?;
    if c == class::FULL_EA {
        return full_ea(open, q);
    }
    // MS-SMB2 3.3.5.20.1: FileNormalizedNameInformation needs SMB 3.1.1.
    if c == class::NORMALIZED_NAME && ctx.dialect < smb3d_protocol::dialect::Dialect::Smb311 {
        return Err(NtStatus::NOT_SUPPORTED);
    }
    let min = fi::query_min_bytes(c).ok_or(NtStatus::INVALID_INFO_CLASS)?;
    let max = q.output_buffer_length as usize;
    if max < min {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    let data = encode_file_class(ctx, open, c)?;
    Ok(reply_truncated(data, max))
}

/// The open's path as a client sees it: backslashes, relative to the share root.
fn smb_path(open: &Open) -> String {
    open.path
        .lock()
        .map(|p| p.replace('/', "\\"))
        .unwrap_or_default()
}

fn standard(ctx: &TreeCtx, open: &Open, m: &FileMetadata) -> fi::StandardInformation {
    let delete_pending = ctx.server.files.is_delete_pending(open);
    fi::StandardInformation {
        allocation_size: m.allocation_size,
        end_of_file: m.end_of_file,
        // Windows reports the link about to go away as already gone.
        number_of_links: m.links.saturating_sub(delete_pending as u32),
        delete_pending,
        directory: m.is_directory,
    }
}

fn mode_of(open: &Open) -> u32 {
    let mode = open.state.lock().map(|s| s.mode).unwrap_or(0);
    if open.create_options & FILE_DELETE_ON_CLOSE != 0 {
        mode | fi::mode::DELETE_ON_CLOSE
    } else {
        mode
    }
}

fn position_of(open: &Open) -> u64 {
    open.position.load(std::sync::atomic::Ordering::Relaxed)
}

fn encode_file_class(ctx: &TreeCtx, open: &Open, c: u8) -> Result<Vec<u8>, NtStatus> {
    let fd = open.fd.as_fd();
    let mut m = stat_fd(fd)?;
    ctx.server.files.apply_change_time(open, &mut m);
    let mut out = Vec::with_capacity(128);
    let basic = fi::BasicInformation::from_times(&times_of(&m), m.attributes);
    match c {
        class::BASIC => basic.encode(&mut out),
        class::STANDARD => standard(ctx, open, &m).encode(&mut out),
        class::INTERNAL => fi::InternalInformation {
            index_number: m.file_index,
        }
        .encode(&mut out),
        class::EA => fi::EaInformation {
            ea_size: ea::size(fd),
        }
        .encode(&mut out),
        class::ACCESS => fi::AccessInformation {
            access_flags: open.access_mask,
        }
        .encode(&mut out),
        class::NAME => fi::NameInformation {
            name: format!("\\{}", smb_path(open)),
        }
        .encode(&mut out),
        class::POSITION => fi::PositionInformation {
            current_byte_offset: position_of(open),
        }
        .encode(&mut out),
        class::MODE => fi::ModeInformation {
            mode: mode_of(open),
        }
        .encode(&mut out),
        class::ALIGNMENT => fi::AlignmentInformation::default().encode(&mut out),
        class::ALL => fi::AllInformation {
            basic,
            standard: standard(ctx, open, &m),
            index_number: m.file_index,
            ea_size: ea::size(fd),
            access_flags: open.access_mask,
            current_byte_offset: position_of(open),
            mode: mode_of(open),
            alignment_requirement: 0,
            name: format!("\\{}", smb_path(open)),
        }
        .encode(&mut out),
        class::ALTERNATE_NAME => {
            let path = smb_path(open);
            let last = path.rsplit('\\').next().unwrap_or_default();
            if last.is_empty() {
                return Err(NtStatus::OBJECT_NAME_NOT_FOUND);
            }
            fi::NameInformation {
                name: short_name(last),
            }
            .encode(&mut out)
        }
        class::STREAM => {
            // Only the unnamed data stream exists; directories have none (MS-FSA 2.1.5.12.25).
            if !m.is_directory {
                fi::encode_streams(
                    &[fi::StreamEntry {
                        name: "::$DATA".into(),
                        size: m.end_of_file,
                        allocation_size: m.allocation_size,
                    }],
                    &mut out,
                );
            }
        }
        class::COMPRESSION => fi::CompressionInformation {
            compressed_file_size: m.end_of_file,
            ..Default::default()
        }
        .encode(&mut out),
        class::NETWORK_OPEN => fi::NetworkOpenInformation {
            times: times_of(&m),
            allocation_size: m.allocation_size,
            end_of_file: m.end_of_file,
            file_attributes: m.attributes,
        }
        .encode(&mut out),
        class::ATTRIBUTE_TAG => fi::AttributeTagInformation {
            file_attributes: m.attributes,
            reparse_tag: 0,
        }
        .encode(&mut out),
        class::NORMALIZED_NAME => fi::NameInformation {
            name: smb_path(open),
        }
        .encode(&mut out),
        _ => return Err(NtStatus::INVALID_INFO_CLASS),
    }
    Ok(out)
}

/// FileFullEaInformation (MS-SMB2 3.3.5.20.1, MS-FSA 2.1.5.12.12): the EAs named in the input
/// buffer, or an enumeration resumed from the open's EA cursor.
fn full_ea(open: &Open, q: &QueryInfoRequest) -> Result<Reply, NtStatus> {
    let fd = open.fd.as_fd();
    let max = q.output_buffer_length as usize;
    if !q.input_buffer.is_empty() {
        let mut eas = Vec::new();
        for name in ea_info::decode_get_list(&q.input_buffer)? {
            let found = ea::get(fd, &name)?;
            eas.push(found.unwrap_or(FullEa {
                flags: 0,
                name,
                value: Vec::new(),
            }));
        }
        return emit_eas(&eas, max, false).map(|(reply, _)| reply);
    }
    let all = ea::list(fd)?;
    if all.is_empty() {
        return Err(NtStatus::NO_EAS_ON_FILE);
    }
    let mut state = open.state.lock().unwrap_or_else(|e| e.into_inner());
    let start = if q.flags & flags::INDEX_SPECIFIED != 0 {
        // The index travels in AdditionalInformation, 1-based (MS-SMB2 2.2.37).
        (q.additional_information as usize).saturating_sub(1)
    } else if q.flags & flags::RESTART_SCAN != 0 {
        0
    } else {
        state.ea_index
    };
    if start >= all.len() {
        return Err(NO_MORE_EAS);
    }
    let single = q.flags & flags::RETURN_SINGLE_ENTRY != 0;
    let (reply, used) = emit_eas(&all[start..], max, single)?;
    state.ea_index = start + used;
    Ok(reply)
}

/// As many EAs as fit (one when `single`); BUFFER_TOO_SMALL when not even the first fits,
/// BUFFER_OVERFLOW when some were left out.
fn emit_eas(eas: &[FullEa], max: usize, single: bool) -> Result<(Reply, usize), NtStatus> {
    let mut data = Vec::new();
    let mut prev: Option<usize> = None;
    let mut used = 0;
    for e in eas {
        let start = if prev.is_some() {
            data.len().next_multiple_of(4)
        } else {
            0
        };
        if start + e.packed_bytes() > max {
            break;
        }
        data.align_to(4);
        let at = ea_info::encode_one(e, &mut data);
        if let Some(p) = prev {
            data.set_u32(p, (at - p) as u32);
        }
        prev = Some(at);
        used += 1;
        if single {
            break;
        }
    }
    if used == 0 {
        return Err(NtStatus::BUFFER_TOO_SMALL);
    }
    let mut reply = reply_truncated(data, max);
    if used < eas.len() && !single {
        if let Reply::Body { status, .. } = &mut reply {
            *status = NtStatus::BUFFER_OVERFLOW;
        }
    }
    Ok((reply, used))
}

fn fs_info(ctx: &TreeCtx, open: &Open, q: &QueryInfoRequest) -> Result<Reply, NtStatus> {
    let c = q.file_info_class;
    // MS-FSA 2.1.5.13: an undefined (or set-only) class is INVALID_PARAMETER.
    let min = fs::query_min_bytes(c).ok_or(NtStatus::INVALID_PARAMETER)?;
    let max = q.output_buffer_length as usize;
    if max < min {
        return Err(NtStatus::INFO_LENGTH_MISMATCH);
    }
    let data = encode_fs_class(ctx, open, c)?;
    Ok(reply_truncated(data, max))
}

/// Sizes from statvfs: allocation unit = fragment size, reported as 512-byte sectors.
struct VolumeSizes {
    total_units: u64,
    caller_free_units: u64,
    free_units: u64,
    sectors_per_unit: u32,
}

fn volume_sizes(open: &Open) -> Result<VolumeSizes, NtStatus> {
    let st =
        nix::sys::statvfs::fstatvfs(open.fd.as_fd()).map_err(|e| NtStatus::from_errno(e as i32))?;
    let unit = (st.fragment_size() as u64).max(512);
    Ok(VolumeSizes {
        total_units: st.blocks() as u64,
        caller_free_units: st.blocks_available() as u64,
        free_units: st.blocks_free() as u64,
        sectors_per_unit: (unit / 512).min(u64::from(u32::MAX)) as u32,
    })
}

fn encode_fs_class(ctx: &TreeCtx, open: &Open, c: u8) -> Result<Vec<u8>, NtStatus> {
    let share = &ctx.tree.share;
    let root_meta = match &share.root {
        Some(r) => stat_fd(r.as_fd())?,
        None => return Err(NtStatus::INVALID_DEVICE_REQUEST),
    };
    let mut out = Vec::with_capacity(64);
    match c {
        fs_class::VOLUME => fs::VolumeInformation {
            volume_creation_time: root_meta.creation_time,
            volume_serial_number: (root_meta.device ^ (root_meta.device >> 32)) as u32
                ^ root_meta.file_index as u32,
            supports_objects: false,
            volume_label: share.name.clone(),
        }
        .encode(&mut out),
        fs_class::SIZE => {
            let v = volume_sizes(open)?;
            fs::SizeInformation {
                total_allocation_units: v.total_units,
                available_allocation_units: v.caller_free_units,
                sectors_per_allocation_unit: v.sectors_per_unit,
                bytes_per_sector: 512,
            }
            .encode(&mut out)
        }
        fs_class::FULL_SIZE => {
            let v = volume_sizes(open)?;
            fs::FullSizeInformation {
                total_allocation_units: v.total_units,
                caller_available_allocation_units: v.caller_free_units,
                actual_available_allocation_units: v.free_units,
                sectors_per_allocation_unit: v.sectors_per_unit,
                bytes_per_sector: 512,
            }
            .encode(&mut out)
        }
        fs_class::DEVICE => fs::DeviceInformation {
            device_type: fs::FILE_DEVICE_DISK,
            characteristics: fs::FILE_DEVICE_IS_MOUNTED,
        }
        .encode(&mut out),
        fs_class::ATTRIBUTE => fs::AttributeInformation {
            file_system_attributes: fs::fs_attributes::CASE_SENSITIVE_SEARCH
                | fs::fs_attributes::CASE_PRESERVED_NAMES
                | fs::fs_attributes::UNICODE_ON_DISK
                | fs::fs_attributes::SUPPORTS_EXTENDED_ATTRIBUTES,
            maximum_component_name_length: 255,
            file_system_name: FILE_SYSTEM_NAME.into(),
        }
        .encode(&mut out),
        fs_class::CONTROL => fs::ControlInformation::default().encode(&mut out),
        fs_class::OBJECT_ID => {
            let mut object_id = [0u8; 16];
            object_id[..8].copy_from_slice(&root_meta.device.to_le_bytes());
            object_id[8..].copy_from_slice(&root_meta.file_index.to_le_bytes());
            fs::ObjectIdInformation {
                object_id,
                extended_info: [0; 48],
            }
            .encode(&mut out)
        }
        fs_class::SECTOR_SIZE => fs::SectorSizeInformation {
            logical_bytes_per_sector: 512,
            physical_bytes_per_sector_for_atomicity: 4096,
            physical_bytes_per_sector_for_performance: 4096,
            effective_physical_bytes_per_sector_for_atomicity: 4096,
            flags: fs::SSINFO_FLAGS_ALIGNED,
            byte_offset_for_sector_alignment: 0,
            byte_offset_for_partition_alignment: 0,
        }
        .encode(&mut out),
        _ => return Err(NtStatus::INVALID_PARAMETER),
    }
    Ok(out)
}

/// The descriptor every file reports: owner and group from the Unix owner (S-1-22-1-uid,
/// S-1-22-2-gid) and a DACL granting Everyone full access. ACLs are not enforced by this
/// server; access is decided by share permissions and the host file system.
pub fn descriptor_of(open: &Open) -> Result<SecurityDescriptor, NtStatus> {
    let st =
        nix::sys::stat::fstat(open.fd.as_raw_fd()).map_err(|e| NtStatus::from_errno(e as i32))?;
    Ok(SecurityDescriptor::simple(
        Sid::unix_user(st.st_uid),
        Sid::unix_group(st.st_gid),
    ))
}

/// Access a security query or set needs for the parts in `secinfo_bits` (MS-SMB2 3.3.5.20.3).
pub fn check_security_access(
    open: &Open,
    secinfo_bits: u32,
    read_bit: u32,
    owner_bit: u32,
) -> Result<(), NtStatus> {
    if secinfo_bits & secinfo::SACL != 0 && open.access_mask & access::ACCESS_SYSTEM_SECURITY == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if secinfo_bits & secinfo::DACL != 0 && open.access_mask & read_bit == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    if secinfo_bits & (secinfo::OWNER | secinfo::GROUP) != 0 && open.access_mask & owner_bit == 0 {
        return Err(NtStatus::ACCESS_DENIED);
    }
    Ok(())
}

fn security_info(open: &Open, q: &QueryInfoRequest) -> Result<Reply, NtStatus> {
    let bits = q.additional_information;
    check_security_access(open, bits, access::READ_CONTROL, access::READ_CONTROL)?;
    let sd = descriptor_of(open)?.select(bits).to_bytes();
    if sd.len() > q.output_buffer_length as usize {
        // MS-SMB2 3.3.5.20.3: BUFFER_TOO_SMALL, ErrorData = the size needed (MS-SMB2 2.2.2).
        let mut body = Vec::new();
        error::encode_with_data(&mut body, &(sd.len() as u32).to_le_bytes());
        return Ok(Reply::Body {
            status: NtStatus::BUFFER_TOO_SMALL,
            body,
        });
    }
    Ok(reply_truncated(sd, usize::MAX))
}
