//! The login UI's gRPC-web endpoint: `oxidex.v1.Flow` at `{issuer}/grpc-web/oxidex.v1.Flow/<Method>`
//! (under the issuer path, so that it works behind path-routing proxies like every other route).
//!
//! This is not core's `Flow` service exposed to browsers: a browser cannot put the HttpOnly
//! binding cookie into a message, and must never be trusted to name its own binding. So the
//! gateway answers with its own [`BrowserFlow`], a proxy over the [`CoreChannel`] that for every
//! call
//!
//! - refuses a request whose `Origin` is not the issuer's (`PermissionDenied`); no CORS headers
//!   are ever sent here, so another origin cannot even read the refusal;
//! - overwrites `browser_secret` with the value of the `oxidex_browser` cookie, whatever the
//!   message carried, and refuses with `FailedPrecondition` when the cookie is missing (it is
//!   set by every page of the flow; this endpoint never makes one, so a call is never unbound);
//! - fills `client_ip` from the connection, as the form routes do (login and user-code
//!   throttling per IP);
//! - answers a failure of the server's own with a generic message (the details are logged).
//!
//! Only `Flow` is served here: `oxidex.v1.Token` stays HTTP (`/token`), `api.Dex` is never on the
//! web listener. Requests that are not gRPC-web (by `Content-Type`) get 415 before anything is
//! decoded, so a cross-site HTML form cannot reach the service either. Responses carry the same
//! headers as the other flow routes (`no-store`, the strict CSP, `nosniff`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::uri::PathAndQuery;
use http::{HeaderMap, StatusCode, Uri, header};
use oxidex_proto::oxidex::v1 as pb;
use pb::flow_client::FlowClient;
use pb::flow_server::{Flow, FlowServer};
use tonic::{Code, Status};

use crate::cookies::{self, ClientIp};
use crate::{CoreChannel, GatewaySettings, pages};

/// The endpoint's path below the issuer path; the service names follow it.
pub(crate) const PREFIX: &str = "/grpc-web";

/// The message of the `FailedPrecondition` a call without the browser cookie gets.
pub(crate) const NO_COOKIE: &str = "browser binding cookie missing; reload the page";

/// The gRPC-web route, relative to the issuer path: `/grpc-web/{*method}`.
pub(crate) fn router(core: CoreChannel, settings: &GatewaySettings) -> axum::Router {
    let flow = BrowserFlow {
        core,
        origin: oxidex_frontend::page::origin_of(&settings.issuer).map(|o| normalise_origin(&o)),
    };
    let service = tower::ServiceBuilder::new()
        .map_request(strip_prefix)
        .layer(tonic_web::GrpcWebLayer::new())
        .service(FlowServer::new(flow));
    axum::Router::new()
        .route_service(&format!("{PREFIX}/{{*method}}"), service)
        // Route layers: the other routes and the fallback of the router this is merged into
        // stay as they are.
        .route_layer(axum::middleware::from_fn(only_grpc_web))
        .route_layer(axum::middleware::from_fn(|req: Request, next: Next| async move {
            let mut response = next.run(req).await;
            pages::security_headers(response.headers_mut());
            response
        }))
}

/// Refuses anything that is not a gRPC-web request (`application/grpc-web`,
/// `application/grpc-web+proto`, `application/grpc-web-text`...) with 415, CORS preflights
/// included.
async fn only_grpc_web(req: Request, next: Next) -> Response {
    let grpc_web = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/grpc-web"));
    if !grpc_web || req.method() != http::Method::POST {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    next.run(req).await
}

/// `/grpc-web/oxidex.v1.Flow/Login` -> `/oxidex.v1.Flow/Login`, the path tonic routes by.
fn strip_prefix<B>(mut req: http::Request<B>) -> http::Request<B> {
    let Some(rest) = req.uri().path().strip_prefix(PREFIX) else { return req };
    let Ok(path) = PathAndQuery::try_from(rest) else { return req };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(path);
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req
}

/// An origin (`scheme://host[:port]`, lower case) without the scheme's default port, as
/// browsers send it in `Origin`.
fn normalise_origin(origin: &str) -> String {
    let o = origin.to_ascii_lowercase();
    for (scheme, port) in [("https://", ":443"), ("http://", ":80")] {
        if o.starts_with(scheme)
            && let Some(stripped) = o.strip_suffix(port)
        {
            return stripped.to_owned();
        }
    }
    o
}

/// What the gateway, not the browser, says about a call.
struct Binding {
    browser_secret: String,
    client_ip: String,
}

/// `oxidex.v1.Flow` for browsers: every call checked and bound, then forwarded to core.
#[derive(Clone)]
struct BrowserFlow {
    core: CoreChannel,
    /// The issuer's origin, normalised; `None` (an issuer that is no http(s) URL) refuses
    /// every request that names an origin.
    origin: Option<String>,
}

impl BrowserFlow {
    fn client(&self) -> FlowClient<CoreChannel> {
        FlowClient::new(self.core.clone())
    }

    /// The checks every call passes before it reaches core.
    fn bind<T>(&self, req: &tonic::Request<T>) -> Result<Binding, Status> {
        let headers: HeaderMap = req.metadata().clone().into_headers();
        if let Some(origin) = headers.get(header::ORIGIN) {
            let same = origin
                .to_str()
                .ok()
                .zip(self.origin.as_deref())
                .is_some_and(|(o, issuer)| normalise_origin(o) == issuer);
            if !same {
                tracing::info!("gRPC-web call from another origin refused");
                return Err(Status::permission_denied("cross-origin requests are not allowed"));
            }
        }
        let Some(browser_secret) = cookies::read_cookie(&headers) else {
            return Err(Status::failed_precondition(NO_COOKIE));
        };
        let ClientIp(client_ip) = ClientIp::of_request(req.extensions(), &headers);
        Ok(Binding { browser_secret, client_ip })
    }
}

/// Core's answer as this endpoint gives it: the step, or the status with the message a client
/// may see (a failure of the server's own is logged and answered generically).
fn answer(
    result: Result<tonic::Response<pb::FlowStep>, Status>,
) -> Result<tonic::Response<pb::FlowStep>, Status> {
    match result {
        Ok(r) => Ok(tonic::Response::new(r.into_inner())),
        Err(s) => Err(match s.code() {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::NotFound
            | Code::AlreadyExists
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::ResourceExhausted => Status::new(s.code(), s.message()),
            Code::Unavailable | Code::Aborted | Code::DeadlineExceeded => {
                tracing::warn!(code = ?s.code(), message = %s.message(), "core call failed");
                Status::unavailable("The service is temporarily unavailable. Please try again later.")
            }
            _ => {
                tracing::error!(code = ?s.code(), message = %s.message(), "core call failed");
                Status::internal("An internal error occurred.")
            }
        }),
    }
}

type StepResult = Result<tonic::Response<pb::FlowStep>, Status>;

#[tonic::async_trait]
impl Flow for BrowserFlow {
    #[tracing::instrument(skip_all, name = "grpc_web_authorize")]
    async fn authorize(&self, r: tonic::Request<pb::AuthorizeRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::AuthorizeRequest { browser_secret: b.browser_secret, ..r.into_inner() };
        answer(self.client().authorize(req).await)
    }

    #[tracing::instrument(skip_all, name = "grpc_web_select_connector")]
    async fn select_connector(&self, r: tonic::Request<pb::SelectConnectorRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::SelectConnectorRequest { browser_secret: b.browser_secret, ..r.into_inner() };
        answer(self.client().select_connector(req).await)
    }

    #[tracing::instrument(skip_all, name = "grpc_web_password_login")]
    async fn password_login(&self, r: tonic::Request<pb::PasswordLoginRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::PasswordLoginRequest {
            browser_secret: b.browser_secret,
            client_ip: b.client_ip,
            ..r.into_inner()
        };
        answer(self.client().password_login(req).await)
    }

    #[tracing::instrument(skip_all, name = "grpc_web_callback")]
    async fn callback(&self, r: tonic::Request<pb::CallbackRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::CallbackRequest { browser_secret: b.browser_secret, ..r.into_inner() };
        answer(self.client().callback(req).await)
    }

    #[tracing::instrument(skip_all, name = "grpc_web_get_approval")]
    async fn get_approval(&self, r: tonic::Request<pb::ApprovalRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::ApprovalRequest { browser_secret: b.browser_secret, ..r.into_inner() };
        answer(self.client().get_approval(req).await)
    }

    #[tracing::instrument(skip_all, name = "grpc_web_approve")]
    async fn approve(&self, r: tonic::Request<pb::ApproveRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::ApproveRequest { browser_secret: b.browser_secret, ..r.into_inner() };
        answer(self.client().approve(req).await)
    }

    #[tracing::instrument(skip_all, name = "grpc_web_verify_user_code")]
    async fn verify_user_code(&self, r: tonic::Request<pb::VerifyUserCodeRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::VerifyUserCodeRequest {
            browser_secret: b.browser_secret,
            client_ip: b.client_ip,
            ..r.into_inner()
        };
        answer(self.client().verify_user_code(req).await)
    }

    #[tracing::instrument(skip_all, name = "grpc_web_device_callback")]
    async fn device_callback(&self, r: tonic::Request<pb::DeviceCallbackRequest>) -> StepResult {
        let b = self.bind(&r)?;
        let req = pb::DeviceCallbackRequest { browser_secret: b.browser_secret, ..r.into_inner() };
        answer(self.client().device_callback(req).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_as_browsers_send_them() {
        assert_eq!(normalise_origin("https://Login.Example.com:443"), "https://login.example.com");
        assert_eq!(normalise_origin("http://127.0.0.1:80"), "http://127.0.0.1");
        assert_eq!(normalise_origin("http://127.0.0.1:5556"), "http://127.0.0.1:5556");
        assert_eq!(normalise_origin("https://example.com:80"), "https://example.com:80");
        let issuer = oxidex_frontend::page::origin_of("https://login.example.com:443/dex")
            .map(|o| normalise_origin(&o));
        assert_eq!(issuer.as_deref(), Some("https://login.example.com"));
    }

    #[test]
    fn strips_only_the_prefix() {
        let req = http::Request::post("/grpc-web/oxidex.v1.Flow/PasswordLogin").body(()).unwrap();
        assert_eq!(strip_prefix(req).uri().path(), "/oxidex.v1.Flow/PasswordLogin");
        let req = http::Request::post("/other/oxidex.v1.Flow/PasswordLogin").body(()).unwrap();
        assert_eq!(strip_prefix(req).uri().path(), "/other/oxidex.v1.Flow/PasswordLogin");
    }
}
