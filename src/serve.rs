//! `oxidex serve`: assembles core and the gateway in one process and runs them until Ctrl-C or
//! SIGTERM, then shuts down gracefully (listeners stop accepting, in-flight requests finish,
//! storage is closed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use oxidex_api::{CoreChannel, GatewaySettings, Metrics};
use oxidex_core::clock::{SharedClock, SystemClock};
use oxidex_core::config::{self, Config, LoadOptions, LogFormat, Overrides, Problem};
use oxidex_core::connector::throttle::{LoginThrottle, ThrottlePolicy};
use oxidex_core::connector::{ConnectorSet, OpenContext};
use oxidex_core::discovery::ProviderMetadata;
use oxidex_core::flow::{Provider, ProviderSettings};
use oxidex_core::grpc::admin::AdminService;
use oxidex_core::grpc::discovery::DiscoveryService;
use oxidex_core::grpc::flow::{FlowService, TokenService};
use oxidex_core::storage::static_overlay::StaticOverlay;
use oxidex_core::storage::{DurableStorage, Storage};
use oxidex_core::token::rotation::{KeyManager, RotationSettings};
use oxidex_proto::api::dex_server::DexServer;
use oxidex_proto::oxidex::v1::discovery_server::DiscoveryServer;
use oxidex_proto::oxidex::v1::flow_server::FlowServer;
use oxidex_proto::oxidex::v1::token_server::TokenServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic_health::server::HealthReporter;

use crate::{ServeArgs, tls};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// How often storage reachability is checked for readiness (Dex: 15 s).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// How often expired flow state is collected (Dex: 5 min).
const GC_INTERVAL: Duration = Duration::from_secs(300);

pub(crate) fn main(args: ServeArgs) -> std::process::ExitCode {
    let loaded = match config::load_file(
        &args.config,
        &LoadOptions {
            strict: args.strict,
            overrides: Overrides {
                web_http: args.web_http_addr.clone(),
                web_https: args.web_https_addr.clone(),
                grpc_addr: args.grpc_addr.clone(),
                telemetry_http: args.telemetry_addr.clone(),
            },
        },
    ) {
        Ok(l) => l,
        Err(errors) => {
            for p in &errors.0 {
                eprintln!("error: {p}");
            }
            eprintln!("{}: {} problem(s); nothing was started", args.config.display(), errors.0.len());
            return std::process::ExitCode::FAILURE;
        }
    };
    init_logging(&loaded.config);
    for w in &loaded.warnings {
        tracing::warn!("config: {w}");
    }
    let problems = check_listeners(&loaded.config);
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        return std::process::ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(loaded.config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OXIDEX_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{},h2=warn,hyper=warn", config.logger.level))
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match config.logger.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Start-up checks of the listeners that the config loader cannot make alone: addresses parse,
/// and the admin API is not exposed beyond loopback without mTLS unless the operator said so.
pub(crate) fn check_listeners(config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut addr = |key: &str, value: &Option<String>| -> Option<SocketAddr> {
        let v = value.as_deref()?;
        match parse_addr(v) {
            Ok(a) => Some(a),
            Err(e) => {
                problems.push(Problem { path: key.into(), message: e });
                None
            }
        }
    };
    addr("web.http", &config.web.http);
    addr("telemetry.http", &config.telemetry.http);
    let grpc = addr("grpc.addr", &config.grpc.addr);
    addr("web.https", &config.web.https);
    if let Some(a) = grpc {
        let mtls = config.grpc.tls_client_ca.is_some();
        if !a.ip().is_loopback() && !mtls && !config.grpc.allow_unauthenticated {
            problems.push(Problem {
                path: "grpc.addr".into(),
                message: format!(
                    "the admin API would listen on {a}, beyond loopback, without client authentication: anyone \
                     who reaches it could create clients and read secrets. Either set grpc.tlsCert, \
                     grpc.tlsKey and grpc.tlsClientCA to require client certificates (mTLS), or set \
                     grpc.allowUnauthenticated: true if a network policy already protects it"
                ),
            });
        }
        if mtls && (config.grpc.tls_cert.is_none() || config.grpc.tls_key.is_none()) {
            problems.push(Problem {
                path: "grpc.tlsClientCA".into(),
                message: "client certificates need TLS: set grpc.tlsCert and grpc.tlsKey too".into(),
            });
        }
    }
    if config.web.http.is_none() && config.web.https.is_none() {
        problems
            .push(Problem { path: "web".into(), message: "set web.http to the address to listen on".into() });
    }
    problems
}

fn parse_addr(v: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs as _;
    // Go accepts ":5556" for all interfaces.
    let v = if v.starts_with(':') { format!("0.0.0.0{v}") } else { v.to_owned() };
    v.to_socket_addrs()
        .map_err(|e| format!("`{v}` is not a listen address ({e}); use host:port, e.g. 127.0.0.1:5556"))?
        .next()
        .ok_or_else(|| format!("`{v}` resolves to no address; use host:port, e.g. 127.0.0.1:5556"))
}

async fn bind(key: &str, addr: &str) -> anyhow::Result<TcpListener> {
    let a = parse_addr(addr).map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(a).await.with_context(|| format!("{key}: cannot listen on {a}"))?;
    tracing::info!("{key}: listening on {}", listener.local_addr()?);
    Ok(listener)
}

/// Opens storage, retrying while the database is not up yet: replicas and databases may start in
/// any order. Gives up only when asked to shut down.
async fn open_storage(config: &Config, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<Storage> {
    let mut delay = Duration::from_millis(250);
    loop {
        match Storage::open(&config.storage).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                tracing::warn!(error = %e, "storage is not reachable yet; retrying in {delay:?}");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => bail!("shut down while waiting for storage"),
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shutdown_tx = Arc::new(shutdown_tx);
    tokio::spawn(wait_for_signal(shutdown_tx.clone()));
    let mut rx = shutdown_rx.clone();

    // Listeners first, so that a taken port fails fast and tests can connect at once.
    let web = match &config.web.http {
        Some(a) => Some(bind("web.http", a).await?),
        None => None,
    };
    let web_tls = match &config.web.https {
        Some(a) => {
            let tls = tls::server_config(&tls::TlsFiles {
                key_prefix: "web",
                cert: config.web.tls_cert.as_deref().context("web.tlsCert is required with web.https")?,
                key: config.web.tls_key.as_deref().context("web.tlsKey is required with web.https")?,
                client_ca: None,
                min_version: config.web.tls_min_version.as_deref(),
                max_version: config.web.tls_max_version.as_deref(),
                alpn: &[b"h2", b"http/1.1"],
            })?;
            Some((bind("web.https", a).await?, tls))
        }
        None => None,
    };
    let grpc = match &config.grpc.addr {
        Some(a) => Some(bind("grpc.addr", a).await?),
        None => None,
    };
    let telemetry = match &config.telemetry.http {
        Some(a) => Some(bind("telemetry.http", a).await?),
        None => None,
    };

    let storage = open_storage(&config, &mut rx).await?;
    let durable: Arc<dyn DurableStorage> = Arc::new(StaticOverlay::new(
        storage.durable.clone(),
        config.static_clients.clone(),
        if config.enable_password_db { config.static_passwords.clone() } else { Vec::new() },
        config.connectors.clone(),
    ));
    let clock: SharedClock = Arc::new(SystemClock);

    let keys = Arc::new(KeyManager::new(
        durable.clone(),
        clock.clone(),
        RotationSettings {
            algorithm: config.signer.algorithm,
            period: config.signer.rotation_period,
            token_lifetime: config.expiry.id_tokens,
        },
    ));
    if let Err(e) = keys.refresh().await {
        // Not fatal: the key manager retries every refresh interval and /keys answers 503 until then.
        tracing::error!(error = %e, "loading signing keys failed; retrying in the background");
    }
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(keys.clone().run(shutdown_rx.clone()));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    tasks.spawn(watch_health(storage.clone(), health_reporter, shutdown_rx.clone()));
    tasks.spawn(collect_garbage(storage.clone(), clock.clone(), shutdown_rx.clone()));

    let metadata = Arc::new(ProviderMetadata::from_config(&config));
    let discovery = DiscoveryServer::new(DiscoveryService::new(metadata.clone(), keys.clone()));
    let connectors = Arc::new(ConnectorSet::new(
        OpenContext::new(durable.clone(), clock.clone()),
        config.enable_password_db,
    ));
    let provider = Arc::new(Provider {
        issuer: config.issuer.clone(),
        durable: durable.clone(),
        flow: storage.flow.clone(),
        keys: keys.clone(),
        connectors,
        throttle: LoginThrottle::new(clock.clone(), ThrottlePolicy::default()),
        clock: clock.clone(),
        settings: ProviderSettings::from_config(&config),
        refreshes: Default::default(),
    });
    let flow = FlowServer::new(FlowService::new(provider.clone()));
    let token = TokenServer::new(TokenService::new(provider));
    let core_routes = tonic::service::Routes::new(discovery.clone())
        .add_service(flow.clone())
        .add_service(token.clone())
        .add_service(health_service.clone())
        .prepare();
    let core = CoreChannel::in_process(core_routes.clone());
    let metrics = Metrics::new(VERSION, &config.issuer_path).context("setting up metrics")?;

    let mut servers = tokio::task::JoinSet::new();
    let settings = GatewaySettings {
        issuer: config.issuer.clone(),
        issuer_path: config.issuer_path.clone(),
        headers: config.web.headers.clone(),
        allowed_origins: config.web.allowed_origins.clone(),
        allowed_headers: config.web.allowed_headers.clone(),
        secure_cookies: config.issuer.starts_with("https://"),
        frontend: frontend_settings(&config.frontend)?,
        remote_ip: remote_ip_policy(&config.web)?,
    };
    // Apps may call the public gRPC services on the web port too (never the admin API), as
    // native gRPC only: the browser's way in is the gateway's gRPC-web endpoint under the
    // issuer path, which binds every call to the browser cookie.
    let public_grpc = axum::Router::new()
        .route_service(&grpc_path(&discovery), discovery.clone())
        .route_service(&grpc_path(&flow), flow.clone())
        .route_service(&grpc_path(&token), token.clone())
        .route_service(&grpc_path(&health_service), health_service.clone())
        .route_layer(axum::middleware::from_fn(native_grpc_only));
    let web_router = oxidex_api::web_router(core.clone(), &settings, metrics.clone()).merge(public_grpc);
    if let Some(listener) = web {
        let router = web_router.clone();
        let mut rx = shutdown_rx.clone();
        servers.spawn(async move {
            // With the peer's address, which the flow routes pass to core (throttling per IP).
            axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
                .context("web listener failed")
        });
    }
    if let Some((listener, tls)) = web_tls {
        let incoming = tls::incoming(listener, tls, shutdown_rx.clone());
        servers.spawn(tls::serve_https(web_router, incoming, shutdown_rx.clone()));
    }
    if let Some(listener) = telemetry {
        let router = oxidex_api::telemetry_router(core.clone(), metrics.clone());
        let mut rx = shutdown_rx.clone();
        servers.spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
                .context("telemetry listener failed")
        });
    }
    if let Some(listener) = grpc {
        let admin = AdminService::new(durable.clone(), metadata.clone(), VERSION);
        let mut router = tonic::transport::Server::builder()
            .add_service(DexServer::new(admin))
            .add_service(health_service.clone());
        if config.grpc.reflection {
            let reflection = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(oxidex_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .context("building gRPC reflection")?;
            router = router.add_service(reflection);
        }
        let mut rx = shutdown_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        match (&config.grpc.tls_cert, &config.grpc.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = tls::server_config(&tls::TlsFiles {
                    key_prefix: "grpc",
                    cert,
                    key,
                    client_ca: config.grpc.tls_client_ca.as_deref(),
                    min_version: config.grpc.tls_min_version.as_deref(),
                    max_version: config.grpc.tls_max_version.as_deref(),
                    alpn: &[b"h2"],
                })?;
                let incoming = tls::incoming(listener, tls, shutdown_rx.clone());
                servers.spawn(async move {
                    router.serve_with_incoming_shutdown(incoming, stop).await.context("gRPC listener failed")
                });
            }
            _ => {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                servers.spawn(async move {
                    router.serve_with_incoming_shutdown(incoming, stop).await.context("gRPC listener failed")
                });
            }
        }
    }

    tracing::info!(issuer = %config.issuer, version = VERSION, "oxidex is serving");
    let mut result = Ok(());
    while let Some(done) = servers.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!("{e:#}");
                result = Err(e);
            }
            Err(e) => result = Err(anyhow::anyhow!("a listener task failed: {e}")),
        }
        // One listener stopping (failure or shutdown) stops them all.
        let _ = shutdown_tx.send(true);
    }
    tasks.shutdown().await;
    storage.durable.close().await;
    tracing::info!("storage closed; bye");
    result
}

async fn wait_for_signal(tx: Arc<watch::Sender<bool>>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                let _ = ctrl_c.await;
                let _ = tx.send(true);
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down: finishing in-flight requests");
    let _ = tx.send(true);
}

/// Reports storage reachability as the gRPC health status that readiness probes read.
async fn watch_health(storage: Storage, reporter: HealthReporter, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(HEALTH_INTERVAL);
    let mut healthy = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut shutdown) => {
                reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
                return;
            }
        }
        let check = async {
            storage.durable.health_check().await?;
            storage.flow.health_check().await
        };
        let ok = match tokio::time::timeout(Duration::from_secs(5), check).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "storage health check failed");
                false
            }
            Err(_) => {
                tracing::warn!("storage health check timed out");
                false
            }
        };
        if ok != healthy {
            healthy = ok;
            let status = if ok {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            reporter.set_service_status("", status).await;
        }
    }
}

/// Removes expired flow state on every replica; concurrent runs are safe (deletes by expiry).
async fn collect_garbage(storage: Storage, clock: SharedClock, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(GC_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut shutdown) => return,
        }
        match storage.flow.garbage_collect(clock.now()).await {
            Ok(r) if r.total() > 0 => tracing::info!(
                auth_requests = r.auth_requests,
                auth_codes = r.auth_codes,
                device_requests = r.device_requests,
                device_tokens = r.device_tokens,
                "garbage collection removed expired objects"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "garbage collection failed; will retry"),
        }
    }
}

/// Resolves once shutdown was requested.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// Lets only native gRPC (`application/grpc`, `application/grpc+proto`...) reach core's public
/// services on the web listener: gRPC-web, forms and anything else get 415 before tonic decodes
/// a byte (tonic itself does not look at the content type).
async fn native_grpc_only(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let grpc = content_type == "application/grpc"
        || content_type.starts_with("application/grpc+")
        || content_type.starts_with("application/grpc;");
    if !grpc {
        return http::StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    next.run(req).await
}

/// The axum route of every method of a gRPC service.
fn grpc_path<S: tonic::server::NamedService>(_: &S) -> String {
    format!("/{}/{{*method}}", S::NAME)
}

/// The gateway's `frontend:` settings, with the custom CSS and favicon files read.
fn frontend_settings(f: &config::FrontendConfig) -> anyhow::Result<oxidex_api::FrontendSettings> {
    let custom_css = match &f.custom_css {
        Some(path) => Some(
            std::fs::read_to_string(path).with_context(|| format!("frontend.customCSS: reading {path}"))?,
        ),
        None => None,
    };
    let favicon = match &f.favicon {
        Some(path) => {
            let content = std::fs::read(path).with_context(|| format!("frontend.favicon: reading {path}"))?;
            Some((content, path.clone()))
        }
        None => None,
    };
    Ok(oxidex_api::FrontendSettings {
        theme: f.theme.clone(),
        issuer: f.issuer.clone(),
        logo_url: f.logo_url.clone(),
        extra: f.extra.clone(),
        default_locale: f.default_locale.clone(),
        colors: f.colors.clone(),
        custom_css,
        favicon,
    })
}

/// `web.clientRemoteIP`, warning when a header is named that no proxy may set.
fn remote_ip_policy(web: &oxidex_core::config::WebConfig) -> anyhow::Result<oxidex_api::RemoteIpPolicy> {
    let policy =
        oxidex_api::RemoteIpPolicy::new(web.client_remote_ip_header.as_deref(), &web.trusted_proxies)
            .map_err(anyhow::Error::msg)?;
    if policy.header_without_proxies() {
        tracing::warn!(
            "web.clientRemoteIP.header is set but web.clientRemoteIP.trustedProxies is empty: the header is \
             ignored (anyone could forge it); list the addresses of your reverse proxies there"
        );
    }
    Ok(policy)
}

#[cfg(test)]
mod frontend_tests {
    /// Core validates the keys and languages the UI crate knows; the two lists must agree.
    #[test]
    fn config_colour_keys_and_locales_match_the_ui() {
        let ui: Vec<&str> = oxidex_frontend::page::COLOR_VARIABLES.iter().map(|(k, _)| *k).collect();
        assert_eq!(oxidex_core::config::FRONTEND_COLOR_KEYS, ui.as_slice());
        let locales: Vec<&str> = oxidex_frontend::messages::Locale::ALL.iter().map(|l| l.tag()).collect();
        assert_eq!(oxidex_core::config::FRONTEND_LOCALES, locales.as_slice());
    }
}
