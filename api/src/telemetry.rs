//! The telemetry listener: liveness, readiness (core's gRPC health, which reflects whether
//! storage answers) and Prometheus metrics.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{CoreChannel, Metrics};

#[derive(Clone)]
struct TelemetryState {
    core: CoreChannel,
    metrics: Metrics,
}

pub(crate) fn router(core: CoreChannel, metrics: Metrics) -> axum::Router {
    axum::Router::new()
        .route("/healthz/live", get(|| async { "ok" }))
        .route("/healthz/ready", get(ready))
        .route("/healthz", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(TelemetryState { core, metrics })
}

async fn ready(State(state): State<TelemetryState>) -> Response {
    // The empty service name is the server's overall status, which core sets from its storage
    // health checks.
    let result = HealthClient::new(state.core).check(HealthCheckRequest { service: String::new() }).await;
    match result.map(|r| r.into_inner().status()) {
        Ok(ServingStatus::Serving) => {
            axum::Json(serde_json::json!({ "status": "ok", "storage": "reachable" })).into_response()
        }
        Ok(other) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "storage": other.as_str_name() })),
        )
            .into_response(),
        Err(status) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "error": status.message() })),
        )
            .into_response(),
    }
}

async fn render_metrics(State(state): State<TelemetryState>) -> Response {
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}
