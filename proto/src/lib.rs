//! The wire types of Oxidex: Dex's `api.Dex` administration service (wire-compatible with
//! Dex v2) and Oxidex's own public services (`oxidex.v1`). Only this crate knows protobuf
//! code generation; everything else uses the generated types.

#![allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
#![allow(missing_debug_implementations, unreachable_pub)]

/// Dex's administration API, package `api`, service `Dex`.
pub mod api {
    tonic::include_proto!("api");
}

/// Oxidex's own services.
pub mod oxidex {
    /// Version 1 of Oxidex's public services.
    pub mod v1 {
        tonic::include_proto!("oxidex.v1");
    }
}

/// The encoded `FileDescriptorSet` of every .proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
