//! Stream operators, one file each. An operator consumes messages and keeps
//! its state in `crate::state`.

pub mod aggregate;
pub mod output_of;
pub mod transform;
