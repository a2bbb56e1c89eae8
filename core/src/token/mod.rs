//! Signing keys, their rotation, and token signing.

pub mod claims;
pub mod keys;
pub mod pkce;
pub mod refresh;
pub mod rotation;
pub mod scopes;
pub mod subject;
pub mod verify;
