//! The one place where gRPC failures from core become HTTP answers: JSON for the API routes
//! ([`GatewayError`]) and an HTML error page for the browser routes ([`PageError`]).

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::form::Malformed;
use crate::pages;

/// An HTTP error answer of the gateway's JSON routes.
#[derive(Debug)]
pub(crate) struct GatewayError(pub(crate) tonic::Status);

impl From<tonic::Status> for GatewayError {
    fn from(s: tonic::Status) -> Self {
        Self(s)
    }
}

/// An HTTP error answer of the gateway's HTML routes.
#[derive(Debug)]
pub(crate) enum PageError {
    /// The call to core failed.
    Core(tonic::Status),
    /// The request's parameters could not be parsed: 400.
    Malformed(Malformed),
}

impl From<tonic::Status> for PageError {
    fn from(s: tonic::Status) -> Self {
        Self::Core(s)
    }
}

impl From<Malformed> for PageError {
    fn from(m: Malformed) -> Self {
        Self::Malformed(m)
    }
}

/// The HTTP status and OAuth error code of a gRPC failure, logged once when it is the server's
/// fault, plus the description that may reach the wire (never an internal detail).
fn classify(s: &tonic::Status) -> (StatusCode, &'static str, String) {
    use tonic::Code;
    let (status, error) = match s.code() {
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
    let description = if status.is_server_error() {
        tracing::error!(code = ?s.code(), message = %s.message(), "core call failed");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            "The service is temporarily unavailable. Please try again later.".to_owned()
        } else {
            "An internal error occurred.".to_owned()
        }
    } else {
        s.message().to_owned()
    };
    (status, error, description)
}

fn retry_after(response: &mut Response) {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, error, description) = classify(&self.0);
        let body = if description.is_empty() {
            serde_json::json!({ "error": error })
        } else {
            serde_json::json!({ "error": error, "error_description": description })
        };
        let mut response = (status, Json(body)).into_response();
        retry_after(&mut response);
        response
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::Core(status) => status,
            Self::Malformed(Malformed(m)) => return pages::error(StatusCode::BAD_REQUEST, "Bad request", m),
        };
        let (status, _, description) = classify(&status);
        let title = status.canonical_reason().unwrap_or("Error");
        let message =
            if description.is_empty() { "The request could not be completed." } else { &description };
        let mut response = pages::error(status, title, message);
        retry_after(&mut response);
        response
    }
}
