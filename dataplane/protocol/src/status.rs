//! NTSTATUS values (MS-ERREF 2.3) used on the wire by SMB2.
//!
//! A request that fails carries one of these in the SMB2 header `Status` field; handlers return
//! `Err(NtStatus)` and the connection turns it into an error response (MS-SMB2 2.2.2).

use std::fmt;

/// A 32-bit NTSTATUS code.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NtStatus(pub u32);

macro_rules! statuses {
    ($($name:ident = $value:expr,)*) => {
        impl NtStatus {
            $(pub const $name: NtStatus = NtStatus($value);)*

            /// The symbolic name, for logs.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($value => stringify!($name),)*
                    _ => "UNKNOWN_STATUS",
                }
            }
        }
    };
}

statuses! {
    SUCCESS = 0x0000_0000,
    PENDING = 0x0000_0103,
    NOTIFY_ENUM_DIR = 0x0000_010C,
    BUFFER_OVERFLOW = 0x8000_0005,
    NO_MORE_FILES = 0x8000_0006,
    STOPPED_ON_SYMLINK = 0x8000_002D,
    UNSUCCESSFUL = 0xC000_0001,
    NOT_IMPLEMENTED = 0xC000_0002,
    INVALID_INFO_CLASS = 0xC000_0003,
    INFO_LENGTH_MISMATCH = 0xC000_0004,
    INVALID_HANDLE = 0xC000_0008,
    INVALID_PARAMETER = 0xC000_000D,
    NO_SUCH_DEVICE = 0xC000_000E,
    NO_SUCH_FILE = 0xC000_000F,
    INVALID_DEVICE_REQUEST = 0xC000_0010,
    END_OF_FILE = 0xC000_0011,
    MORE_PROCESSING_REQUIRED = 0xC000_0016,
    NO_MEMORY = 0xC000_0017,
    ACCESS_DENIED = 0xC000_0022,
    BUFFER_TOO_SMALL = 0xC000_0023,
    OBJECT_NAME_INVALID = 0xC000_0033,
    OBJECT_NAME_NOT_FOUND = 0xC000_0034,
    OBJECT_NAME_COLLISION = 0xC000_0035,
    OBJECT_PATH_INVALID = 0xC000_0039,
    OBJECT_PATH_NOT_FOUND = 0xC000_003A,
    OBJECT_PATH_SYNTAX_BAD = 0xC000_003B,
    SHARING_VIOLATION = 0xC000_0043,
    EA_TOO_LARGE = 0xC000_0050,
    NONEXISTENT_EA_ENTRY = 0xC000_0051,
    NO_EAS_ON_FILE = 0xC000_0052,
    EA_CORRUPT_ERROR = 0xC000_0053,
    DELETE_PENDING = 0xC000_0056,
    PRIVILEGE_NOT_HELD = 0xC000_0061,
    LOGON_FAILURE = 0xC000_006D,
    ACCOUNT_RESTRICTION = 0xC000_006E,
    RANGE_NOT_LOCKED = 0xC000_007E,
    DISK_FULL = 0xC000_007F,
    INSUFFICIENT_RESOURCES = 0xC000_009A,
    FILE_IS_A_DIRECTORY = 0xC000_00BA,
    NOT_SUPPORTED = 0xC000_00BB,
    NETWORK_NAME_DELETED = 0xC000_00C9,
    BAD_NETWORK_NAME = 0xC000_00CC,
    REQUEST_NOT_ACCEPTED = 0xC000_00D0,
    REQUEST_OUT_OF_SEQUENCE = 0xC000_042A,
    NOT_SAME_DEVICE = 0xC000_00D4,
    FILE_RENAMED = 0xC000_00D5,
    OPLOCK_NOT_GRANTED = 0xC000_00E2,
    INVALID_OPLOCK_PROTOCOL = 0xC000_00E3,
    INTERNAL_ERROR = 0xC000_00E5,
    DIRECTORY_NOT_EMPTY = 0xC000_0101,
    NOT_A_DIRECTORY = 0xC000_0103,
    CANCELLED = 0xC000_0120,
    CANNOT_DELETE = 0xC000_0121,
    FILE_CLOSED = 0xC000_0128,
    LOCK_NOT_GRANTED = 0xC000_0055,
    FILE_LOCK_CONFLICT = 0xC000_0054,
    NOT_A_REPARSE_POINT = 0xC000_0275,
    INVALID_LOCK_RANGE = 0xC000_01A1,
    USER_SESSION_DELETED = 0xC000_0203,
    NETWORK_SESSION_EXPIRED = 0xC000_035C,
    CONNECTION_DISCONNECTED = 0xC000_020C,
    NOT_FOUND = 0xC000_0225,
    FILE_NOT_AVAILABLE = 0xC000_0467,
    DUPLICATE_OBJECTID = 0xC000_022A,
    INVALID_NETWORK_RESPONSE = 0xC000_00C3,
    BAD_IMPERSONATION_LEVEL = 0xC000_00A5,
    NAME_TOO_LONG = 0xC000_0106,
    IO_TIMEOUT = 0xC000_00B5,
    WRONG_PASSWORD = 0xC000_006A,
    NO_SUCH_USER = 0xC000_0064,
    ACCESS_VIOLATION = 0xC000_0005,
    MEDIA_WRITE_PROTECTED = 0xC000_00A2,
    FS_DRIVER_REQUIRED = 0xC000_019C,
    SMB_NO_PREAUTH_INTEGRITY_HASH_OVERLAP = 0xC000_05A0,
    INVALID_SMB = 0x0001_0002,
    SMB_BAD_TID = 0x0005_0002,
}

impl NtStatus {
    /// Severity "error" (top two bits 11): the response carries an error body.
    pub fn is_error(self) -> bool {
        self.0 >= 0xC000_0000
    }

    /// Map a host `errno` to the NTSTATUS a Windows server would return for the same condition.
    pub fn from_errno(errno: i32) -> NtStatus {
        // Values from Linux asm-generic/errno-base.h / errno.h.
        match errno {
            1 | 13 => NtStatus::ACCESS_DENIED,      // EPERM, EACCES
            2 => NtStatus::OBJECT_NAME_NOT_FOUND,   // ENOENT
            9 => NtStatus::INVALID_HANDLE,          // EBADF
            12 => NtStatus::NO_MEMORY,              // ENOMEM
            16 | 26 => NtStatus::SHARING_VIOLATION, // EBUSY, ETXTBSY
            17 => NtStatus::OBJECT_NAME_COLLISION,  // EEXIST
            18 => NtStatus::NOT_SAME_DEVICE,        // EXDEV
            20 => NtStatus::OBJECT_PATH_NOT_FOUND,  // ENOTDIR
            21 => NtStatus::FILE_IS_A_DIRECTORY,    // EISDIR
            22 => NtStatus::INVALID_PARAMETER,      // EINVAL
            27 | 28 | 122 => NtStatus::DISK_FULL,   // EFBIG, ENOSPC, EDQUOT
            30 => NtStatus::MEDIA_WRITE_PROTECTED,  // EROFS
            36 => NtStatus::NAME_TOO_LONG,          // ENAMETOOLONG
            39 => NtStatus::DIRECTORY_NOT_EMPTY,    // ENOTEMPTY
            40 => NtStatus::STOPPED_ON_SYMLINK,     // ELOOP
            61 | 95 => NtStatus::NOT_SUPPORTED,     // ENODATA, EOPNOTSUPP
            _ => NtStatus::UNSUCCESSFUL,
        }
    }
}

impl fmt::Debug for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(0x{:08x})", self.name(), self.0)
    }
}

impl fmt::Display for NtStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for NtStatus {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_severity() {
        assert_eq!(NtStatus::ACCESS_DENIED.name(), "ACCESS_DENIED");
        assert!(NtStatus::ACCESS_DENIED.is_error());
        assert!(!NtStatus::BUFFER_OVERFLOW.is_error());
        assert_eq!(
            format!("{:?}", NtStatus(0xC000_0022)),
            "ACCESS_DENIED(0xc0000022)"
        );
        assert_eq!(NtStatus::from_errno(2), NtStatus::OBJECT_NAME_NOT_FOUND);
    }
}
