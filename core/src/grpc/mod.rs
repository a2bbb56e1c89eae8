//! gRPC services: thin tonic implementations over the core services.
//!
//! - [`admin`]: Dex's administration API (`api.Dex`), wire-compatible with Dex v2.
//! - [`discovery`]: `oxidex.v1.Discovery`, the provider metadata and the public key set.
//! - [`flow`]: `oxidex.v1.Flow` (the browser flow) and `oxidex.v1.Token` (the token endpoint).
//!
//! Storage errors reach the wire through exactly one mapping, the `From<StorageError>` impl for
//! [`tonic::Status`] below, with real gRPC codes; internal causes go to the log, never to the
//! caller.

pub mod admin;
pub mod discovery;
pub mod flow;

use tonic::Status;

use crate::storage::StorageError;

impl From<StorageError> for Status {
    /// The one mapping of storage errors to gRPC statuses. Backend failures are logged here, at
    /// error level inside the RPC's span, and reach the caller only as a generic `Internal`.
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::NotFound => Status::not_found("not found"),
            StorageError::AlreadyExists => Status::already_exists("already exists"),
            StorageError::Conflict => {
                Status::aborted("the object was changed concurrently too many times; retry the request")
            }
            e @ StorageError::ReadOnly(_) => Status::failed_precondition(e.to_string()),
            StorageError::Rejected(message) => Status::failed_precondition(message),
            e @ StorageError::Backend(_) => {
                tracing::error!(error = %e, "storage backend failed");
                Status::internal("internal storage error")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn storage_errors_map_to_real_codes() {
        let code = |e: StorageError| Status::from(e).code();
        assert_eq!(code(StorageError::NotFound), Code::NotFound);
        assert_eq!(code(StorageError::AlreadyExists), Code::AlreadyExists);
        assert_eq!(code(StorageError::Conflict), Code::Aborted);
        assert_eq!(code(StorageError::Rejected("no".into())), Code::FailedPrecondition);
        let read_only = Status::from(StorageError::ReadOnly("client \"x\"".into()));
        assert_eq!(read_only.code(), Code::FailedPrecondition);
        assert!(read_only.message().contains("client \"x\""), "{}", read_only.message());
        let backend =
            Status::from(StorageError::backend(std::io::Error::other("password=hunter2 at db:5432")));
        assert_eq!(backend.code(), Code::Internal);
        assert!(!backend.message().contains("hunter2"), "{}", backend.message());
    }
}
