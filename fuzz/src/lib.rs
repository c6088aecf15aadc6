//! Code shared by the fuzz targets: the fixed inputs and selector tables of `shared` (also
//! included by the seed generator) and the whole-connection harness of `connection`.

mod shared;

pub mod connection;

pub use shared::*;
