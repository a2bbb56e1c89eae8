//! Signing keys, their rotation, and token signing.

pub mod keys;
pub mod rotation;
pub mod subject;
