//! Prometheus metrics of the HTTP surface, in Dex's names: `http_requests_total`,
//! `request_duration_seconds` and `response_size_bytes` labelled by `code`, `method` and
//! `handler` (the route pattern without the issuer prefix), plus `oxidex_build_info` and the
//! process collector (memory, CPU, file descriptors).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The metrics registry shared by the listeners.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    size: HistogramVec,
    issuer_path: String,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// A fresh registry (separate from any global one) for a server of `version`.
    pub fn new(version: &str, issuer_path: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let labels = &["code", "method", "handler"];
        let requests =
            IntCounterVec::new(Opts::new("http_requests_total", "Count of all HTTP requests."), labels)?;
        let duration = HistogramVec::new(
            HistogramOpts::new("request_duration_seconds", "A histogram of latencies for requests.")
                .buckets(vec![0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            labels,
        )?;
        let size = HistogramVec::new(
            HistogramOpts::new("response_size_bytes", "A histogram of response sizes for requests.")
                .buckets(vec![200.0, 500.0, 900.0, 1500.0]),
            labels,
        )?;
        let build = IntGaugeVec::new(
            Opts::new("oxidex_build_info", "A metric with a constant '1' value labeled by version."),
            &["version"],
        )?;
        build.with_label_values(&[version]).set(1);
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(size.clone()))?;
        registry.register(Box::new(build))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        Ok(Self(Arc::new(Inner { registry, requests, duration, size, issuer_path: issuer_path.to_owned() })))
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.0.registry.gather(), &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Wraps `router` so that every request is counted and timed.
    pub(crate) fn apply(&self, router: axum::Router) -> axum::Router {
        router.layer(axum::middleware::from_fn_with_state(self.clone(), observe))
    }
}

async fn observe(
    axum::extract::State(m): axum::extract::State<Metrics>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let handler = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().strip_prefix(m.0.issuer_path.as_str()).unwrap_or(p.as_str()).to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let response = next.run(req).await;
    let code = response.status().as_u16().to_string();
    let labels = [code.as_str(), method.as_str(), handler.as_str()];
    m.0.requests.with_label_values(&labels).inc();
    m.0.duration.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
    if let Some(len) = axum::body::HttpBody::size_hint(response.body()).exact() {
        m.0.size.with_label_values(&labels).observe(len as f64);
    }
    response
}
