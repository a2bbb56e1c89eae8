//! The one place where gRPC failures from core become HTTP answers.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// An HTTP error answer of the gateway.
#[derive(Debug)]
pub(crate) struct GatewayError(pub(crate) tonic::Status);

impl From<tonic::Status> for GatewayError {
    fn from(s: tonic::Status) -> Self {
        Self(s)
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        use tonic::Code;
        let (status, error) = match self.0.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            Code::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Code::Unauthenticated => (StatusCode::UNAUTHORIZED, "invalid_client"),
            Code::PermissionDenied => (StatusCode::FORBIDDEN, "access_denied"),
            Code::Unavailable | Code::ResourceExhausted | Code::Aborted => {
                (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        };
        if status.is_server_error() {
            tracing::error!(code = ?self.0.code(), message = %self.0.message(), "core call failed");
        }
        let mut response =
            (status, Json(serde_json::json!({ "error": error, "error_description": self.0.message() })))
                .into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("5"));
        }
        response
    }
}
