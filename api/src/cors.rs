//! CORS for the public JSON endpoints, as Dex's `web.allowedOrigins`: an allowed origin is echoed
//! exactly (with `Vary: Origin`), `*` allows any origin without credentials, anything else gets
//! no CORS headers at all. Arbitrary origins are never reflected.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

use crate::GatewaySettings;

#[derive(Clone)]
struct Cors {
    any: bool,
    origins: Vec<String>,
    allowed_headers: HeaderValue,
}

/// Wraps `router` so that its routes answer CORS as configured.
pub(crate) fn apply<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
    settings: &GatewaySettings,
) -> axum::Router<S> {
    let headers = if settings.allowed_headers.is_empty() {
        "Authorization".to_owned()
    } else {
        settings.allowed_headers.join(", ")
    };
    let cors = Cors {
        any: settings.allowed_origins.iter().any(|o| o == "*"),
        origins: settings.allowed_origins.clone(),
        allowed_headers: HeaderValue::try_from(headers).unwrap_or(HeaderValue::from_static("Authorization")),
    };
    router.layer(axum::middleware::from_fn_with_state(cors, handle))
}

async fn handle(State(cors): State<Cors>, req: Request, next: Next) -> Response {
    cors.handle(req, next).await
}

impl Cors {
    fn allow(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let o = origin.to_str().ok()?;
        self.origins.iter().any(|a| a == o).then(|| origin.clone())
    }

    async fn handle(self, req: Request, next: Next) -> Response {
        let allowed = req.headers().get(header::ORIGIN).and_then(|o| self.allow(o));
        let preflight = req.method() == Method::OPTIONS
            && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let mut response =
            if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
        let h = response.headers_mut();
        h.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = allowed {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            if preflight {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static("GET, POST, OPTIONS"),
                );
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, self.allowed_headers.clone());
                h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            }
        }
        response
    }
}
