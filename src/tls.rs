//! TLS for the web (`web.https`) and admin gRPC listeners, with rustls over aws-lc-rs: the
//! configured protocol versions are enforced (1.2 or 1.3 minimum; never 1.0/1.1, the lesson of
//! Dex's CVE-2024-23656), and client certificates are verified against `tlsClientCA` when set.
//! Handshakes run in their own tasks so a slow client never stalls the accept loop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Files and versions of one TLS listener, with the config key prefix for error messages.
#[derive(Debug)]
pub(crate) struct TlsFiles<'a> {
    pub key_prefix: &'a str,
    pub cert: &'a str,
    pub key: &'a str,
    pub client_ca: Option<&'a str>,
    pub min_version: Option<&'a str>,
    pub max_version: Option<&'a str>,
    pub alpn: &'a [&'a [u8]],
}

/// The minor version number of a supported TLS version name.
fn version(prefix: &str, key: &str, v: &str) -> anyhow::Result<u8> {
    match v {
        "1.2" => Ok(2),
        "1.3" => Ok(3),
        other => bail!("{prefix}.{key}: `{other}` is not supported; use 1.2 or 1.3"),
    }
}

/// Builds the rustls server configuration.
pub(crate) fn server_config(f: &TlsFiles<'_>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let p = f.key_prefix;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(f.cert)
        .with_context(|| format!("{p}.tlsCert: cannot read {}", f.cert))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{p}.tlsCert: {} is not a PEM certificate chain", f.cert))?;
    if certs.is_empty() {
        bail!("{p}.tlsCert: {} holds no certificate", f.cert);
    }
    let key = PrivateKeyDer::from_pem_file(f.key)
        .with_context(|| format!("{p}.tlsKey: cannot read a PEM private key from {}", f.key))?;
    let min = version(p, "tlsMinVersion", f.min_version.unwrap_or("1.2"))?;
    let max = version(p, "tlsMaxVersion", f.max_version.unwrap_or("1.3"))?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(minor, _)| (min..=max).contains(minor))
            .map(|(_, v)| v)
            .collect();
    if versions.is_empty() {
        bail!("{p}.tlsMinVersion is above {p}.tlsMaxVersion; no TLS version is left");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .context("TLS protocol versions")?;
    let builder = match f.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("{p}.tlsClientCA: cannot read {ca}"))?
            {
                let cert = cert.with_context(|| format!("{p}.tlsClientCA: {ca} is not a PEM certificate"))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{p}.tlsClientCA: {ca} holds an unusable certificate"))?;
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .with_context(|| format!("{p}.tlsClientCA: {ca} holds no usable CA certificate"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .with_context(|| format!("{p}.tlsKey: the key does not match {p}.tlsCert or is not supported"))?;
    config.alpn_protocols = f.alpn.iter().map(|a| a.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Accepts TCP connections and completes TLS handshakes in the background, yielding finished
/// TLS streams until shutdown.
pub(crate) fn incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = shutdown.wait_for(|s| *s) => return,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Serves an axum router over TLS streams (HTTP/1.1 and HTTP/2), finishing in-flight requests
/// on shutdown (for at most 30 s).
pub(crate) async fn serve_https(
    router: axum::Router,
    mut incoming: tokio_stream::wrappers::ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    loop {
        let next = tokio::select! {
            n = incoming.next() => n,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let Some(Ok(stream)) = next else { break };
        // The peer's address for the routes, as `axum::serve` with connect info gives it on the
        // plain listener (login throttling per IP).
        let peer = stream.get_ref().0.peer_addr().ok();
        let routes = router.clone();
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            routes,
            move |mut req: http::Request<hyper::body::Incoming>| {
                if let Some(addr) = peer {
                    req.extensions_mut().insert(axum::extract::ConnectInfo(addr));
                }
                req
            },
        ));
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned();
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = watched.await {
                tracing::debug!(error = %e, "HTTPS connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("some HTTPS connections were still open 30 s after shutdown began");
    }
    Ok(())
}
