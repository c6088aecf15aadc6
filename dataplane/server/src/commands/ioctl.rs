//! IOCTL (MS-SMB2 3.3.5.15): the FSCTLs answered at connection level.

use smb3d_protocol::messages::ioctl::{ctl_code, encode_response, IoctlRequest, FLAG_IS_FSCTL};
use smb3d_protocol::messages::negotiate::ValidateNegotiateInfo;
use smb3d_protocol::NtStatus;
use tracing::warn;

use super::negotiate::ConnectionInfo;
use crate::netif;

/// What the connection must do with an IOCTL.
pub enum IoctlOutcome {
    Reply(Vec<u8>),
    /// MS-SMB2 3.3.5.15.12: a VALIDATE_NEGOTIATE_INFO that does not match what was negotiated
    /// means someone tampered with the negotiate: drop the connection.
    Disconnect(&'static str),
}

pub fn handle(
    msg: &[u8],
    info: &ConnectionInfo,
    server_guid: &[u8; 16],
    listen: &[std::net::SocketAddr],
) -> Result<IoctlOutcome, NtStatus> {
    let req = IoctlRequest::decode(msg)?;
    if req.flags & FLAG_IS_FSCTL == 0 {
        return Err(NtStatus::NOT_SUPPORTED);
    }
    let output = match req.ctl_code {
        ctl_code::FSCTL_VALIDATE_NEGOTIATE_INFO => {
            let Some(dialect) = info.dialect else {
                return Ok(IoctlOutcome::Disconnect("validate before negotiate"));
            };
            let v = match ValidateNegotiateInfo::decode(req.input) {
                Ok(v) => v,
                Err(_) => {
                    return Ok(IoctlOutcome::Disconnect(
                        "malformed VALIDATE_NEGOTIATE_INFO",
                    ))
                }
            };
            if v.capabilities != info.client_capabilities
                || v.guid != info.client_guid
                || v.security_mode != info.client_security_mode
                || v.dialects != info.client_dialects
            {
                warn!("VALIDATE_NEGOTIATE_INFO does not match the negotiate");
                return Ok(IoctlOutcome::Disconnect("VALIDATE_NEGOTIATE_INFO mismatch"));
            }
            ValidateNegotiateInfo::encode_response(
                info.server_capabilities,
                server_guid,
                info.server_security_mode,
                dialect as u16,
            )
        }
        ctl_code::FSCTL_QUERY_NETWORK_INTERFACE_INFO => netif::encode_interface_info(
            &netif::served_interfaces(netif::host_interfaces(), listen),
        ),
        _ => return Err(NtStatus::INVALID_DEVICE_REQUEST),
    };
    if output.len() > req.max_output_response as usize {
        return Err(NtStatus::BUFFER_TOO_SMALL);
    }
    let mut body = Vec::new();
    encode_response(req.ctl_code, &req.file_id, &output, &mut body);
    Ok(IoctlOutcome::Reply(body))
}

/// FSCTL_CREATE_OR_GET_OBJECT_ID (MS-FSCC 2.3.8).
pub const FSCTL_CREATE_OR_GET_OBJECT_ID: u32 = 0x0009_00C0;

/// IOCTLs on an open file (MS-SMB2 3.3.5.15 with a real FileId).
pub fn handle_file(
    req: &super::Request,
    ctx: &mut super::TreeCtx,
) -> Result<super::Reply, NtStatus> {
    let ioctl = IoctlRequest::decode(req.msg)?;
    if ioctl.flags & FLAG_IS_FSCTL == 0 {
        return Err(NtStatus::NOT_SUPPORTED);
    }
    let file_id = crate::open::FileId::decode(&ioctl.file_id);
    let output = match ioctl.ctl_code {
        FSCTL_CREATE_OR_GET_OBJECT_ID => {
            let open = ctx.open(file_id)?;
            super::check_channel_sequence(req, ctx, &open)?;
            object_id_buffer(open.file.key.device, open.file.key.inode)
        }
        // MS-SMB2 3.3.5.15: FSCTLs the server does not implement.
        _ => return Err(NtStatus::INVALID_DEVICE_REQUEST),
    };
    if output.len() > ioctl.max_output_response as usize {
        return Err(NtStatus::BUFFER_TOO_SMALL);
    }
    let mut body = Vec::new();
    encode_response(ioctl.ctl_code, &ioctl.file_id, &output, &mut body);
    Ok(super::Reply::ok(body))
}

/// FILE_OBJECTID_BUFFER (MS-FSCC 2.1.3): a stable 16-byte id made from the file's device and
/// inode numbers (the host has no object ids of its own), zero birth ids and domain id.
fn object_id_buffer(device: u64, inode: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&inode.to_le_bytes());
    out.extend_from_slice(&device.to_le_bytes());
    out.resize(64, 0);
    out
}
