//! The storage layer under the file commands: paths resolved beneath a share root
//! ([`path`]), SMB metadata over `statx` and extended attributes ([`metadata`]), and the
//! server-wide table of open files with share modes, delete-pending state and byte-range
//! locks ([`file_table`]).
//!
//! Everything here is plain system calls; the reactors move READ/WRITE data onto io_uring.

pub mod metadata;
pub mod path;
mod sys;
#[cfg(test)]
pub(crate) mod test_dir;
