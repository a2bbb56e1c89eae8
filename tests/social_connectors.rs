//! The OAuth2-based upstream connectors (`github`, `gitlab`, `microsoft`, `google`, `oauth`),
//! black-box: the real `oxidex` binary logs users in through local fakes of each provider's
//! HTTP API, started in this process on 127.0.0.1 (GitHub Enterprise over TLS with its own test
//! CA, given to Oxidex as `rootCA`).
//!
//! Each fake serves the endpoints and JSON shapes the connector reads, paginated the way the
//! provider paginates (GitHub `Link` headers, Graph `@odata.nextLink`, Google `nextPageToken`),
//! and checks what it is sent: the client's credentials at the token endpoint, the redirect URI
//! with the code, the bearer token on API calls. A login is driven end to end: `/auth` ->
//! the connector's redirect -> the fake's authorize endpoint (which "logs in" the user the test
//! chose) -> `/callback` -> the client's redirect with a code -> `/token`, and the ID token's
//! claims are asserted (`sub` encoded as Dex does, `email`, `groups`, `preferred_username`,
//! `federated_claims`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use common::browser::{Browser, Stop, query_param};
use common::{Ports, Server, config, sqlite_storage};
use serde_json::{Value, json};

const RP: &str = "rp";
const RP_SECRET: &str = "rp-secret";
const RP_CB: &str = "https://rp.test/cb";
const UPSTREAM_CLIENT: &str = "oxidex-at-upstream";
const UPSTREAM_SECRET: &str = "upstream-secret";
const SCOPES: &str = "openid profile email groups offline_access federated:id";

// ---------------------------------------------------------------------------------------------
// The fake upstreams' common part: an OAuth2 authorization server.

/// A user of a fake provider. Which fields matter depends on the provider.
#[derive(Debug, Clone, Default)]
struct User {
    id: Value,
    login: String,
    name: String,
    /// The public email (GitHub), the primary one elsewhere.
    email: String,
    /// GitHub's `/user/emails`: (email, verified, primary).
    emails: Vec<(String, bool, bool)>,
    /// GitHub orgs.
    orgs: Vec<String>,
    /// GitHub teams: (org, name, slug).
    teams: Vec<(String, String, String)>,
    /// GitLab, Microsoft, Google groups.
    groups: Vec<String>,
    /// GitLab: groups the user owns.
    owner_of: Vec<String>,
    /// Google's hosted domain.
    hd: String,
}

/// The state of one fake provider.
#[derive(Debug, Default)]
struct Fake {
    /// Its own base URL (for pagination links).
    base: String,
    users: HashMap<String, User>,
    /// Who logs in at the next visit of the authorize endpoint.
    next_login: String,
    /// Code -> (login, redirect URI, nonce).
    codes: HashMap<String, (String, String, String)>,
    /// The `expires_in` of issued access tokens (3600 when not set).
    expires_in: Option<i64>,
    access: HashMap<String, String>,
    refresh: HashMap<String, String>,
    counter: u64,
    /// Every authorize request's query.
    authorizations: Vec<HashMap<String, String>>,
    /// Every API request: method, path and query.
    hits: Vec<String>,
    /// How clients authenticated at the token endpoint ("basic" or "post").
    token_auth: Vec<String>,
    /// Google: the key that signs ID tokens (none: no ID tokens are issued), and the one
    /// published in the JWKS when it is another.
    id_token_key: Option<RsaKey>,
    published_key: Option<RsaKey>,
    /// Google: the service account's public key, the access tokens issued to it (with the admin
    /// it acts for), and the directory: a user's or group's email -> its groups' emails.
    service_account: Option<RsaKey>,
    directory_tokens: HashMap<String, String>,
    directory: HashMap<String, Vec<String>>,
}

/// An RSA key for RS256: its PKCS#8 PEM, `kid`, and the JWK members `n` and `e`.
#[derive(Debug, Clone)]
struct RsaKey {
    pem: String,
    kid: String,
    n: String,
    e: String,
}

impl RsaKey {
    fn generate(kid: &str) -> Self {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        // The raw public key is PKCS#1 `RSAPublicKey ::= SEQUENCE { n INTEGER, e INTEGER }`.
        let (seq, _) = der(key.public_key_raw(), 0x30);
        let (n, rest) = der(seq, 0x02);
        let (e, _) = der(rest, 0x02);
        let b64 = |i: &[u8]| {
            let i = i.strip_prefix(&[0]).unwrap_or(i);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(i)
        };
        Self { pem: key.serialize_pem(), kid: kid.to_owned(), n: b64(n), e: b64(e) }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.kid, "n": self.n, "e": self.e})
    }

    fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(self.pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

/// One DER element of `tag` at the start of `bytes`: its content and what follows.
fn der(bytes: &[u8], tag: u8) -> (&[u8], &[u8]) {
    assert_eq!(bytes[0], tag, "unexpected DER tag");
    let (len, start) = match bytes[1] {
        l if l < 0x80 => (usize::from(l), 2),
        l => {
            let n = usize::from(l & 0x7f);
            (bytes[2..2 + n].iter().fold(0, |acc, b| acc << 8 | usize::from(*b)), 2 + n)
        }
    };
    (&bytes[start..start + len], &bytes[start + len..])
}

type Shared = Arc<Mutex<Fake>>;

impl Fake {
    fn mint(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    /// The user a bearer token belongs to.
    fn bearer(&self, headers: &HeaderMap) -> Option<User> {
        let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer "))?;
        let login = self.access.get(token)?;
        self.users.get(login).cloned()
    }

    /// Revokes every token of `login` (the user left, or revoked the app).
    fn revoke(&mut self, login: &str) {
        self.access.retain(|_, l| l != login);
        self.refresh.retain(|_, l| l != login);
    }
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "Bad credentials"}))).into_response()
}

/// The authorize endpoint: checks the request and sends the browser back with a code for the
/// user the test chose.
async fn authorize(State(fake): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut f = fake.lock().unwrap();
    f.authorizations.push(q.clone());
    if q.get("client_id").map(String::as_str) != Some(UPSTREAM_CLIENT)
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "bad client_id or response_type").into_response();
    }
    let (Some(redirect), Some(state)) = (q.get("redirect_uri"), q.get("state")) else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri or state").into_response();
    };
    let login = f.next_login.clone();
    let code = f.mint("code");
    let nonce = q.get("nonce").cloned().unwrap_or_default();
    f.codes.insert(code.clone(), (login, redirect.clone(), nonce));
    let mut back = url::Url::parse(redirect).unwrap();
    back.query_pairs_mut().append_pair("code", &code).append_pair("state", state);
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// The token endpoint: client authentication (Basic or form), the code with its redirect URI,
/// or a refresh token.
async fn token(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut f = fake.lock().unwrap();
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let authenticated = match basic {
        Some(pair) => {
            f.token_auth.push("basic".into());
            pair == format!("{UPSTREAM_CLIENT}:{UPSTREAM_SECRET}")
        }
        None => {
            f.token_auth.push("post".into());
            form.get("client_id").map(String::as_str) == Some(UPSTREAM_CLIENT)
                && form.get("client_secret").map(String::as_str) == Some(UPSTREAM_SECRET)
        }
    };
    if !authenticated {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_client"}))).into_response();
    }
    let invalid_grant =
        || (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
    let (login, nonce) = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            match f.codes.remove(&code) {
                Some((login, redirect, nonce)) if form.get("redirect_uri") == Some(&redirect) => {
                    (login, nonce)
                }
                _ => return invalid_grant(),
            }
        }
        Some("refresh_token") => {
            let rt = form.get("refresh_token").cloned().unwrap_or_default();
            f.hits.push("POST token refresh_token".into());
            match f.refresh.remove(&rt) {
                Some(login) => (login, String::new()),
                None => return invalid_grant(),
            }
        }
        _ => {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unsupported_grant_type"})))
                .into_response();
        }
    };
    let access = f.mint("access");
    let refresh = f.mint("refresh");
    f.access.insert(access.clone(), login.clone());
    f.refresh.insert(refresh.clone(), login.clone());
    let mut body = json!({"access_token": access, "token_type": "bearer", "refresh_token": refresh,
        "expires_in": f.expires_in.unwrap_or(3600)});
    if let Some(id_token) = google_id_token(&f, &login, &nonce) {
        body["id_token"] = id_token.into();
    }
    axum::Json(body).into_response()
}

// ---------------------------------------------------------------------------------------------
// Servers.

/// Serves `router` on a fresh loopback port over plain HTTP; returns the base URL.
async fn serve(fake: &Shared, router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    fake.lock().unwrap().base.clone_from(&base);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

/// A TLS listener for `axum::serve` (failed handshakes are skipped).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.tcp.accept().await else { continue };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A test CA and a certificate for 127.0.0.1 signed by it.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    Pki { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

/// Serves `router` over TLS with `pki`'s certificate; returns "127.0.0.1:PORT".
async fn serve_tls(fake: &Shared, router: Router, pki: &Pki) -> String {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<_> =
        CertificateDer::pem_slice_iter(pki.cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(pki.key_pem.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = tcp.local_addr().unwrap().to_string();
    fake.lock().unwrap().base = format!("https://{host}");
    let listener = TlsListener { tcp, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) };
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    host
}

/// Starts `oxidex serve` with the test client, approval skipped, and `connectors` (a JSON list).
async fn start_oxidex(connectors: Value) -> Server {
    let extra = format!(
        "staticClients:\n- id: {RP}\n  name: Relying Party\n  secret: {RP_SECRET}\n  redirectURIs: ['{RP_CB}']\n\
         oauth2:\n  skipApprovalScreen: true\n\
         connectors: {connectors}\n"
    );
    tokio::task::spawn_blocking(move || {
        Server::start(Ports::new(), move |dir, ports| config(ports, &sqlite_storage(dir), &extra))
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

// ---------------------------------------------------------------------------------------------
// Driving a login.

/// How a login through an upstream ended.
#[derive(Debug)]
enum Outcome {
    /// The token response for the client.
    Tokens(Value),
    /// An error page of Oxidex (status, HTML).
    Page(u16, String),
}

impl Outcome {
    fn tokens(self) -> Value {
        match self {
            Outcome::Tokens(t) => t,
            Outcome::Page(status, html) => panic!("the login ended on a {status} page:\n{html}"),
        }
    }
}

/// Logs `login` in at `fake` through the connector `connector`: `/auth` -> the fake's authorize
/// endpoint (fetched with `upstream`, which trusts the fake) -> `/callback` -> the client's
/// code -> `/token`.
async fn login(
    server: &Server,
    fake: &Shared,
    upstream: &reqwest::Client,
    connector: &str,
    login: &str,
) -> Outcome {
    fake.lock().unwrap().next_login = login.to_owned();
    let browser = Browser::new(&server.issuer);
    let mut auth = url::Url::parse(&format!("{}/auth", server.issuer)).unwrap();
    auth.query_pairs_mut()
        .append_pair("client_id", RP)
        .append_pair("redirect_uri", RP_CB)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPES)
        .append_pair("state", "st-1")
        .append_pair("connector_id", connector);
    let to_upstream = browser.open(auth.as_str()).await.left();
    let base = fake.lock().unwrap().base.clone();
    assert!(to_upstream.as_str().starts_with(&base), "not sent to the fake upstream: {to_upstream}");
    let answer = upstream.get(to_upstream.as_str()).send().await.unwrap();
    assert_eq!(answer.status(), 302, "the fake refused the authorization request: {to_upstream}");
    let back = answer.headers()[header::LOCATION].to_str().unwrap().to_owned();
    assert!(back.starts_with(&format!("{}/callback?", server.issuer)), "{back}");
    match browser.open(&back).await {
        Stop::Page(page) => Outcome::Page(page.status.as_u16(), page.html),
        Stop::Left(to_client) => {
            assert!(to_client.as_str().starts_with(RP_CB), "{to_client}");
            assert_eq!(query_param(&to_client, "state").as_deref(), Some("st-1"));
            let code = query_param(&to_client, "code").unwrap();
            let tokens = token_request(
                server,
                &[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", RP_CB)],
            )
            .await;
            assert_eq!(tokens.0, 200, "{}", tokens.1);
            Outcome::Tokens(tokens.1)
        }
    }
}

/// A request to Oxidex's token endpoint as the test client: status and JSON body.
async fn token_request(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/token", server.issuer))
        .basic_auth(RP, Some(RP_SECRET))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON ({status}): {body}")))
}

/// A refresh-token grant: status and JSON body.
async fn refresh(server: &Server, refresh_token: &str) -> (u16, Value) {
    token_request(server, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

/// The claims of the ID token of a token response (the signature is tested elsewhere).
fn id_claims(tokens: &Value) -> Value {
    let jwt = tokens["id_token"].as_str().unwrap_or_else(|| panic!("no id_token: {tokens}"));
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
        .unwrap()
}

/// Dex's `sub`: base64url (unpadded) of protobuf `IDTokenSubject{1: user_id, 2: conn_id}`,
/// encoded here by hand.
fn dex_sub(user_id: &str, conn_id: &str) -> String {
    let mut message = Vec::new();
    for (tag, value) in [(0x0a_u8, user_id), (0x12, conn_id)] {
        message.push(tag);
        let mut len = value.len();
        while len >= 0x80 {
            message.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        message.push(len as u8);
        message.extend_from_slice(value.as_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message)
}

fn groups(claims: &Value) -> Vec<String> {
    claims["groups"]
        .as_array()
        .map(|g| g.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

/// Asserts the identity claims every connector sets.
fn assert_identity(claims: &Value, connector: &str, user_id: &str, email: &str, name: &str) {
    assert_eq!(claims["sub"], dex_sub(user_id, connector), "{claims}");
    assert_eq!(claims["email"], email, "{claims}");
    assert_eq!(claims["name"], name, "{claims}");
    assert_eq!(
        claims["federated_claims"],
        json!({"connector_id": connector, "user_id": user_id}),
        "{claims}"
    );
}

/// Asserts that the server's log (at debug level) shows no upstream secret: not the client
/// secret, nor any code or token the fake issued.
fn assert_no_secrets_logged(server: &Server, fake: &Shared) {
    let log = server.log_text();
    assert!(!log.is_empty());
    assert!(!log.contains(UPSTREAM_SECRET), "the upstream client secret was logged");
    let f = fake.lock().unwrap();
    for n in 1..=f.counter {
        for prefix in ["code", "access", "refresh"] {
            let value = format!("{prefix}-{n}");
            // Whole values only ("access-1" must not match inside "access-10").
            let found = log
                .match_indices(&value)
                .any(|(i, _)| !log[i + value.len()..].starts_with(|c: char| c.is_ascii_digit()));
            assert!(!found, "{value} (issued by the fake) was logged");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub (Enterprise, over TLS).

/// One page of a GitHub listing, with GitHub's `Link` header (absolute URLs, `next` and `last`
/// while there are more pages).
fn github_page(base: &str, path: &str, query: Option<&str>, items: Vec<Value>, per_page: usize) -> Response {
    let page: usize = query
        .and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "page")
                .map(|(_, v)| v.parse().unwrap())
        })
        .unwrap_or(1);
    let last = items.len().div_ceil(per_page).max(1);
    let chunk: Vec<Value> = items.into_iter().skip((page - 1) * per_page).take(per_page).collect();
    let link = |p: usize, rel: &str| format!("<{base}{path}?page={p}>; rel=\"{rel}\"");
    let mut links = Vec::new();
    if page < last {
        links.push(link(page + 1, "next"));
        links.push(link(last, "last"));
    }
    if page > 1 {
        links.push(link(page - 1, "prev"));
        links.push(link(1, "first"));
    }
    let mut response = axum::Json(chunk).into_response();
    if !links.is_empty() {
        response.headers_mut().insert(header::LINK, links.join(", ").parse().unwrap());
    }
    response
}

/// The GitHub API calls need the bearer token and the API version header.
fn github_user(
    f: &mut Fake,
    method: &str,
    headers: &HeaderMap,
    path: &str,
    query: Option<&str>,
) -> Option<User> {
    f.hits.push(format!("{method} {path}{}", query.map(|q| format!("?{q}")).unwrap_or_default()));
    if headers.get("x-github-api-version").and_then(|v| v.to_str().ok()) != Some("2022-11-28") {
        return None;
    }
    f.bearer(headers)
}

fn github_router(fake: &Shared) -> Router {
    const PER_PAGE: usize = 2;
    Router::new()
        .route("/login/oauth/authorize", get(authorize))
        .route("/login/oauth/access_token", post(token))
        .route(
            "/api/v3/user",
            get(|State(fake): State<Shared>, headers: HeaderMap| async move {
                let mut f = fake.lock().unwrap();
                let Some(u) = github_user(&mut f, "GET", &headers, "/api/v3/user", None) else { return unauthorized() };
                let email = if u.email.is_empty() { Value::Null } else { u.email.clone().into() };
                axum::Json(json!({"id": u.id, "login": u.login, "name": u.name, "email": email})).into_response()
            }),
        )
        .route(
            "/api/v3/user/emails",
            get(|State(fake): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery| async move {
                let mut f = fake.lock().unwrap();
                let path = "/api/v3/user/emails";
                let Some(u) = github_user(&mut f, "GET", &headers, path, q.as_deref()) else { return unauthorized() };
                let items = u
                    .emails
                    .iter()
                    .map(|(e, verified, primary)| json!({"email": e, "verified": verified, "primary": primary, "visibility": null}))
                    .collect();
                github_page(&f.base, path, q.as_deref(), items, PER_PAGE)
            }),
        )
        .route(
            "/api/v3/user/orgs",
            get(|State(fake): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery| async move {
                let mut f = fake.lock().unwrap();
                let path = "/api/v3/user/orgs";
                let Some(u) = github_user(&mut f, "GET", &headers, path, q.as_deref()) else { return unauthorized() };
                let items = u.orgs.iter().map(|o| json!({"login": o, "id": 1})).collect();
                github_page(&f.base, path, q.as_deref(), items, PER_PAGE)
            }),
        )
        .route(
            "/api/v3/user/teams",
            get(|State(fake): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery| async move {
                let mut f = fake.lock().unwrap();
                let path = "/api/v3/user/teams";
                let Some(u) = github_user(&mut f, "GET", &headers, path, q.as_deref()) else { return unauthorized() };
                let items = u
                    .teams
                    .iter()
                    .map(|(org, name, slug)| json!({"name": name, "slug": slug, "organization": {"login": org}}))
                    .collect();
                github_page(&f.base, path, q.as_deref(), items, PER_PAGE)
            }),
        )
        .route(
            "/api/v3/orgs/{org}/members/{user}",
            get(|State(fake): State<Shared>, headers: HeaderMap, Path((org, user)): Path<(String, String)>| async move {
                let mut f = fake.lock().unwrap();
                let path = format!("/api/v3/orgs/{org}/members/{user}");
                let Some(u) = github_user(&mut f, "GET", &headers, &path, None) else { return unauthorized() };
                if u.login == user && u.orgs.contains(&org) {
                    StatusCode::NO_CONTENT.into_response()
                } else {
                    (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Not Found"}))).into_response()
                }
            }),
        )
        .with_state(fake.clone())
}

fn team(org: &str, name: &str, slug: &str) -> (String, String, String) {
    (org.to_owned(), name.to_owned(), slug.to_owned())
}

fn github_users() -> HashMap<String, User> {
    let octocat = User {
        id: json!(1234567),
        login: "octocat".into(),
        name: "The Octocat".into(),
        // No public email: the connector must page through /user/emails.
        email: String::new(),
        emails: vec![
            ("octo@gmail.example".into(), true, false),
            ("octo@old.example".into(), false, false),
            ("octo@acme.example".into(), true, true),
            ("octo@eu.corp.example".into(), true, false),
            ("octo@corp.example".into(), true, false),
        ],
        orgs: vec!["acme".into(), "widgets".into(), "hobby".into(), "zeta".into(), "omega".into()],
        teams: vec![
            team("acme", "Platform Team", "platform-team"),
            team("acme", "Ops", "ops"),
            team("hobby", "Chess Club", "chess-club"),
            team("widgets", "Devs", "devs"),
            team("omega", "Omega Team", "omega-team"),
        ],
        ..Default::default()
    };
    let mallory = User {
        id: json!(666),
        login: "mallory".into(),
        name: String::new(),
        email: "mallory@evil.example".into(),
        orgs: vec!["evilcorp".into()],
        teams: vec![team("evilcorp", "Red Team", "red-team")],
        ..Default::default()
    };
    // In acme, but in none of the teams the `gh` connector admits.
    let intern = User {
        id: json!(42),
        login: "intern".into(),
        name: "Ian Tern".into(),
        email: "intern@acme.example".into(),
        orgs: vec!["acme".into()],
        teams: vec![team("acme", "Interns", "interns")],
        ..Default::default()
    };
    [octocat, mallory, intern].into_iter().map(|u| (u.login.clone(), u)).collect()
}

struct GitHub {
    fake: Shared,
    server: Server,
    upstream: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn github() -> GitHub {
    let fake: Shared = Arc::new(Mutex::new(Fake { users: github_users(), ..Default::default() }));
    let pki = pki();
    let host = serve_tls(&fake, github_router(&fake), &pki).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ghe-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let base = json!({"clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET, "hostName": host,
        "rootCA": ca_file});
    let with = |extra: Value| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let connectors = json!([
        {"type": "github", "id": "gh", "name": "GitHub", "config": with(json!({
            "orgs": [{"name": "acme", "teams": ["Platform Team"]}, {"name": "widgets"}, {"name": "zeta"}]}))},
        {"type": "github", "id": "gh-all", "name": "GitHub (all groups)", "config": with(json!({
            "loadAllGroups": true, "teamNameField": "slug", "useLoginAsID": true,
            "preferredEmailDomain": "*.corp.example"}))},
        {"type": "github", "id": "gh-both", "name": "GitHub (both)", "config": with(json!({
            "orgs": [{"name": "acme", "teams": ["platform-team", "Ops"]}], "teamNameField": "both"}))},
        {"type": "github", "id": "gh-untrusted", "name": "GitHub (no CA)", "config": {
            "clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET, "hostName": host}},
    ]);
    let server = start_oxidex(connectors).await;
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let upstream = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tls_certs_merge([ca])
        .build()
        .unwrap();
    GitHub { fake, server, upstream, _dir: dir }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_orgs_and_teams_filter_logins_and_become_groups() {
    let gh = github().await;
    let tokens = login(&gh.server, &gh.fake, &gh.upstream, "gh", "octocat").await.tokens();
    let claims = id_claims(&tokens);
    // Dex: the numeric id as a decimal string; name, login as preferred_username; the primary
    // verified email (no public one; /user/emails read across its pages).
    assert_identity(&claims, "gh", "1234567", "octo@acme.example", "The Octocat");
    assert_eq!(claims["preferred_username"], "octocat");
    assert_eq!(claims["email_verified"], true);
    // acme admits "Platform Team" only; widgets admits every member (all their teams count);
    // zeta admits every member and the user has no team there.
    assert_eq!(groups(&claims), ["acme:Platform Team", "widgets:Devs"], "{claims}");

    {
        let f = gh.fake.lock().unwrap();
        // The scopes Dex asks for when orgs are configured, and the callback as redirect URI.
        let q = f.authorizations.last().unwrap();
        assert_eq!(q["scope"], "user:email read:org");
        assert_eq!(q["redirect_uri"], format!("{}/callback", gh.server.issuer));
        // Pages were followed through the Link headers: 5 teams at 2 a page, 5 emails likewise.
        for hit in [
            "GET /api/v3/user/teams?page=3",
            "GET /api/v3/user/emails?page=3",
            "GET /api/v3/orgs/acme/members/octocat",
        ] {
            assert!(f.hits.iter().any(|h| h == hit), "{hit} not requested: {:?}", f.hits);
        }
    }

    // Not in any allowed org: a clear refusal page, not a server error.
    let Outcome::Page(status, html) = login(&gh.server, &gh.fake, &gh.upstream, "gh", "mallory").await else {
        panic!("mallory was logged in");
    };
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("not a member of any allowed organization or team"), "{html}");
    assert!(html.contains("mallory"), "{html}");
    // In an allowed org but in none of its allowed teams: refused as well.
    let Outcome::Page(status, html) = login(&gh.server, &gh.fake, &gh.upstream, "gh", "intern").await else {
        panic!("intern was logged in");
    };
    assert_eq!(status, 403, "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_load_all_groups_slugs_login_as_id_and_preferred_domain() {
    let gh = github().await;
    let claims = id_claims(&login(&gh.server, &gh.fake, &gh.upstream, "gh-all", "octocat").await.tokens());
    // useLoginAsID: the login is the user id; preferredEmailDomain "*.corp.example" picks the
    // verified eu.corp.example address (corp.example itself has one label less).
    assert_identity(&claims, "gh-all", "octocat", "octo@eu.corp.example", "The Octocat");
    // loadAllGroups: every org (5, over 3 pages) and its teams by slug, in the orgs' order.
    assert_eq!(
        groups(&claims),
        [
            "acme",
            "acme:platform-team",
            "acme:ops",
            "widgets",
            "widgets:devs",
            "hobby",
            "hobby:chess-club",
            "zeta",
            "omega",
            "omega:omega-team"
        ],
        "{claims}"
    );
    {
        let f = gh.fake.lock().unwrap();
        assert!(f.hits.iter().any(|h| h == "GET /api/v3/user/orgs?page=3"), "{:?}", f.hits);
        // Groups were asked for: read:org is requested even without orgs.
        assert_eq!(f.authorizations.last().unwrap()["scope"], "user:email read:org");
    }

    // teamNameField both: name and slug, filtered by the org's teams list (which may use either).
    let claims = id_claims(&login(&gh.server, &gh.fake, &gh.upstream, "gh-both", "octocat").await.tokens());
    assert_eq!(groups(&claims), ["acme:platform-team", "acme:Ops"], "{claims}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_enterprise_needs_its_root_ca() {
    let gh = github().await;
    // Without rootCA the GitHub Enterprise host's certificate is not trusted: the code
    // exchange fails, and the user sees that the provider is unavailable (502), not a 500.
    let Outcome::Page(status, html) =
        login(&gh.server, &gh.fake, &gh.upstream, "gh-untrusted", "octocat").await
    else {
        panic!("logged in although the upstream certificate is not trusted");
    };
    assert_eq!(status, 502, "{html}");
    assert!(gh.fake.lock().unwrap().token_auth.is_empty(), "a token request reached the fake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_refresh_rereads_groups_and_fails_when_the_user_is_gone() {
    let gh = github().await;
    let tokens = login(&gh.server, &gh.fake, &gh.upstream, "gh", "octocat").await.tokens();
    assert_eq!(groups(&id_claims(&tokens)), ["acme:Platform Team", "widgets:Devs"]);
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();

    // Upstream changes: the user leaves Platform Team, changes their name, and joins a team in zeta.
    {
        let mut f = gh.fake.lock().unwrap();
        let u = f.users.get_mut("octocat").unwrap();
        u.teams.retain(|t| t.1 != "Platform Team");
        u.teams.push(team("zeta", "Zeta Ops", "zeta-ops"));
        u.name = "Mona Lisa Octocat".into();
    }
    let (status, body) = refresh(&gh.server, &rt).await;
    assert_eq!(status, 200, "{body}");
    let claims = id_claims(&body);
    assert_identity(&claims, "gh", "1234567", "octo@acme.example", "Mona Lisa Octocat");
    assert_eq!(groups(&claims), ["widgets:Devs", "zeta:Zeta Ops"], "{claims}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    // The user is removed from every allowed org: the refresh is refused.
    {
        let mut f = gh.fake.lock().unwrap();
        let u = f.users.get_mut("octocat").unwrap();
        u.orgs.retain(|o| o == "hobby");
    }
    let (status, body) = refresh(&gh.server, &rt).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // A fresh login, then the user revokes the app: GitHub answers 401 and the refresh is
    // invalid_grant (not a server error).
    gh.fake.lock().unwrap().users.insert("octocat".into(), github_users()["octocat"].clone());
    let tokens = login(&gh.server, &gh.fake, &gh.upstream, "gh", "octocat").await.tokens();
    let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    gh.fake.lock().unwrap().revoke("octocat");
    let (status, body) = refresh(&gh.server, &rt).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    // The refused refresh token is revoked for good.
    let (status, _) = refresh(&gh.server, &rt).await;
    assert_eq!(status, 400);
    assert_no_secrets_logged(&gh.server, &gh.fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_connector_config_is_reported_and_the_others_keep_working() {
    let fake: Shared = Arc::new(Mutex::new(Fake {
        users: [("ada".to_owned(), User { id: json!("ada-1"), ..Default::default() })].into_iter().collect(),
        ..Default::default()
    }));
    let base = serve(&fake, oauth_router(&fake)).await;
    let server = start_oxidex(json!([
        {"type": "github", "id": "gh-broken", "name": "Broken", "config": {"clientID": "x",
            "clientSecret": "not-shown-1", "teamNameField": "id"}},
        {"type": "oauth", "id": "oauth", "name": "Generic", "config": {
            "clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET,
            "authorizationURL": format!("{base}/authorize"), "tokenURL": format!("{base}/token"),
            "userInfoURL": format!("{base}/userinfo"), "userIDKey": "uid"}},
    ]))
    .await;
    let upstream = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let claims = id_claims(&login(&server, &fake, &upstream, "oauth", "ada").await.tokens());
    assert_eq!(claims["sub"], dex_sub("ada-1", "oauth"));
    // The broken one: not a 500 when chosen, and the log names it, the key and the reason.
    let browser = Browser::new(&server.issuer);
    let auth = format!(
        "{}/auth?client_id={RP}&redirect_uri={RP_CB}&response_type=code&scope=openid&state=s&connector_id=gh-broken",
        server.issuer
    );
    let page = browser.open(&auth).await.page();
    assert!(page.status.is_client_error() || page.status == 503, "{} {}", page.status, page.html);
    let log = server.log_text();
    assert!(log.contains("gh-broken") && log.contains("teamNameField"), "{log}");
    assert!(!log.contains("not-shown-1"), "a client secret was logged");
}

// ---------------------------------------------------------------------------------------------
// Generic OAuth2.

fn oauth_router(fake: &Shared) -> Router {
    Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route(
            "/userinfo",
            get(|State(fake): State<Shared>, headers: HeaderMap| async move {
                let mut f = fake.lock().unwrap();
                f.hits.push("GET /userinfo".into());
                let Some(u) = f.bearer(&headers) else { return unauthorized() };
                axum::Json(json!({
                    "uid": u.id,
                    "profile": {"display": u.name},
                    "nick": u.login,
                    "mail": u.email,
                    "mail_ok": true,
                    "roles": u.groups.iter().enumerate().map(|(i, g)| if i % 2 == 0 { json!(g) } else { json!({"name": g}) }).collect::<Vec<_>>(),
                }))
                .into_response()
            }),
        )
        .with_state(fake.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_oauth_maps_userinfo_claims() {
    let ada = User {
        id: json!(4242),
        login: "ada".into(),
        name: "Ada Lovelace".into(),
        email: "ada@example.org".into(),
        groups: vec!["engineers".into(), "admins".into(), "poets".into()],
        ..Default::default()
    };
    let fake: Shared = Arc::new(Mutex::new(Fake {
        users: [("ada".to_owned(), ada)].into_iter().collect(),
        ..Default::default()
    }));
    let base = serve(&fake, oauth_router(&fake)).await;
    let server = start_oxidex(json!([{"type": "oauth", "id": "oauth", "name": "Generic", "config": {
        "clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET,
        "authorizationURL": format!("{base}/authorize"), "tokenURL": format!("{base}/token"),
        "userInfoURL": format!("{base}/userinfo"), "scopes": ["openid", "read:profile"],
        "userIDKey": "uid",
        "claimMapping": {"userNameKey": "profile.display", "preferredUsernameKey": "nick", "emailKey": "mail",
            "emailVerifiedKey": "mail_ok", "groupsKey": "roles"}}}]))
    .await;
    let upstream = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let tokens = login(&server, &fake, &upstream, "oauth", "ada").await.tokens();
    // As in Dex, the generic connector cannot refresh: no refresh token despite offline_access.
    assert!(tokens.get("refresh_token").is_none_or(|t| t == ""), "{tokens}");
    let claims = id_claims(&tokens);
    // A numeric id becomes a string as Dex (Go's %v of a float64) formats it.
    assert_identity(&claims, "oauth", "4242", "ada@example.org", "Ada Lovelace");
    assert_eq!(claims["preferred_username"], "ada");
    assert_eq!(claims["email_verified"], true);
    // Groups as strings and as objects with a name.
    assert_eq!(groups(&claims), ["engineers", "admins", "poets"], "{claims}");
    let f = fake.lock().unwrap();
    let q = f.authorizations.last().unwrap();
    assert_eq!(q["scope"], "openid read:profile");
    assert_eq!(q["redirect_uri"], format!("{}/callback", server.issuer));
    // Go's auto-detected client authentication: Basic first, accepted.
    assert_eq!(f.token_auth, ["basic"]);
    assert_eq!(f.hits, ["GET /userinfo"]);
    drop(f);
    assert_no_secrets_logged(&server, &fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic_oauth_upstream_errors_are_login_errors() {
    let fake: Shared = Arc::new(Mutex::new(Fake::default()));
    let base = serve(&fake, oauth_router(&fake)).await;
    let server = start_oxidex(json!([{"type": "oauth", "id": "oauth", "name": "Generic", "config": {
        "clientID": UPSTREAM_CLIENT, "clientSecret": "wrong-secret",
        "authorizationURL": format!("{base}/authorize"), "tokenURL": format!("{base}/token"),
        "userInfoURL": format!("{base}/userinfo")}}]))
    .await;
    let browser = Browser::new(&server.issuer);
    let auth = format!(
        "{}/auth?client_id={RP}&redirect_uri={RP_CB}&response_type=code&scope=openid&state=s&connector_id=oauth",
        server.issuer
    );
    let to_upstream = browser.open(&auth).await.left();
    let state = query_param(&to_upstream, "state").unwrap();
    // The user denied access upstream: a 400 login error that says so.
    let back = format!(
        "{}/callback?error=access_denied&error_description=User+said+no&state={state}",
        server.issuer
    );
    let page = browser.open(&back).await.page();
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(page.html.contains("access_denied"), "{}", page.html);

    // The token endpoint rejects Oxidex's client credentials (wrong secret, both styles): the
    // code is not accepted, and the browser gets a 400 page, not a 500.
    fake.lock().unwrap().users.insert("u".into(), User { id: json!("u"), ..Default::default() });
    let Outcome::Page(status, html) = login(
        &server,
        &fake,
        &reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        "oauth",
        "u",
    )
    .await
    else {
        panic!("logged in with a wrong client secret");
    };
    assert_eq!(status, 400, "{html}");
    assert_eq!(fake.lock().unwrap().token_auth, ["basic", "post"]);
}

// ---------------------------------------------------------------------------------------------
// Microsoft (Entra ID login endpoints and Microsoft Graph).

const TENANT: &str = "contoso-tenant";
/// Graph's page size of the fake's `getMemberGroups` answers.
const GRAPH_PAGE: usize = 1000;

fn group_id(i: usize) -> String {
    format!("00000000-0000-0000-0000-{i:012}")
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

fn microsoft_router(fake: &Shared) -> Router {
    Router::new()
        .route(&format!("/{TENANT}/oauth2/v2.0/authorize"), get(authorize))
        .route(&format!("/{TENANT}/oauth2/v2.0/token"), post(token))
        .route(
            "/v1.0/me",
            get(|State(fake): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery| async move {
                let mut f = fake.lock().unwrap();
                f.hits.push(format!("GET /v1.0/me?{}", q.unwrap_or_default()));
                let Some(u) = f.bearer(&headers) else {
                    return graph_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "expired");
                };
                axum::Json(json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                    "id": u.id, "displayName": u.name, "userPrincipalName": u.email, "mailNickname": u.login}))
                .into_response()
            }),
        )
        .route(
            "/v1.0/me/getMemberGroups",
            post(|State(fake): State<Shared>, headers: HeaderMap, RawQuery(q): RawQuery, axum::Json(body): axum::Json<Value>| async move {
                let mut f = fake.lock().unwrap();
                f.hits.push(format!("POST /v1.0/me/getMemberGroups?{}", q.clone().unwrap_or_default()));
                let Some(u) = f.bearer(&headers) else {
                    return graph_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "expired");
                };
                let Some(security_only) = body["securityEnabledOnly"].as_bool() else {
                    return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "securityEnabledOnly is required");
                };
                // Group i is a security group when i is even.
                let ids: Vec<String> = (0..u.groups.len())
                    .filter(|i| !security_only || i % 2 == 0)
                    .map(group_id)
                    .collect();
                let skip: usize = q
                    .as_deref()
                    .and_then(|q| q.strip_prefix("$skiptoken="))
                    .map_or(0, |n| n.parse().unwrap());
                let page: Vec<&String> = ids.iter().skip(skip).take(GRAPH_PAGE).collect();
                let mut answer = json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(Edm.String)",
                    "value": page});
                if skip + GRAPH_PAGE < ids.len() {
                    answer["@odata.nextLink"] =
                        format!("{}/v1.0/me/getMemberGroups?$skiptoken={}", f.base, skip + GRAPH_PAGE).into();
                }
                axum::Json(answer).into_response()
            }),
        )
        .route(
            "/v1.0/directoryObjects/getByIds",
            post(|State(fake): State<Shared>, headers: HeaderMap, axum::Json(body): axum::Json<Value>| async move {
                let mut f = fake.lock().unwrap();
                let Some(u) = f.bearer(&headers) else {
                    return graph_error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "expired");
                };
                let ids = body["ids"].as_array().cloned().unwrap_or_default();
                f.hits.push(format!("POST /v1.0/directoryObjects/getByIds ({} ids)", ids.len()));
                // Graph's limit (Dex issue #2442).
                if ids.len() > 1000 {
                    return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "Too many ids; at most 1000");
                }
                if body["types"] != json!(["group"]) {
                    return graph_error(StatusCode::BAD_REQUEST, "Request_BadRequest", "types must be [group]");
                }
                let value: Vec<Value> = ids
                    .iter()
                    .filter_map(|id| {
                        let i: usize = id.as_str()?.rsplit('-').next()?.parse().ok()?;
                        (i < u.groups.len() && id.as_str() == Some(&group_id(i))).then_some(i)
                    })
                    .map(|i| json!({"@odata.type": "#microsoft.graph.group", "id": group_id(i), "displayName": u.groups[i]}))
                    .collect();
                axum::Json(json!({"value": value})).into_response()
            }),
        )
        .with_state(fake.clone())
}

struct Microsoft {
    fake: Shared,
    server: Server,
    upstream: reqwest::Client,
}

async fn microsoft() -> Microsoft {
    let alice = User {
        id: json!("6b1c3d4e-0000-4000-8000-00000000a11c"),
        login: "alice".into(),
        name: "Alice Admin".into(),
        email: "Alice@Contoso.example".into(),
        groups: (0..2500).map(|i| format!("Group {i:04}")).collect(),
        ..Default::default()
    };
    let guest = User {
        id: json!("6b1c3d4e-0000-4000-8000-0000000097e5"),
        login: "guest".into(),
        name: "Guest".into(),
        email: "guest@contoso.example".into(),
        groups: vec!["Group 0000".into(), "Visitors".into()],
        ..Default::default()
    };
    let users = [alice, guest].into_iter().map(|u| (u.login.clone(), u)).collect();
    let fake: Shared = Arc::new(Mutex::new(Fake { users, ..Default::default() }));
    let base = serve(&fake, microsoft_router(&fake)).await;
    let cfg = |extra: Value| {
        let mut c = json!({"clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET, "tenant": TENANT,
            "apiURL": base, "graphURL": base});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let server = start_oxidex(json!([
        {"type": "microsoft", "id": "ms", "name": "Microsoft", "config": cfg(json!({"onlySecurityGroups": true,
            "emailToLowercase": true, "preferredUsernameField": "mailNickname"}))},
        {"type": "microsoft", "id": "ms-all", "name": "Microsoft (all)", "config": cfg(json!({}))},
        {"type": "microsoft", "id": "ms-req", "name": "Microsoft (required)", "config": cfg(json!({
            "groups": ["Group 0003", "Group 2499"], "useGroupsAsWhitelist": true}))},
    ]))
    .await;
    let upstream = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Microsoft { fake, server, upstream }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_groups_page_past_one_page_and_batch_name_lookups() {
    let ms = microsoft().await;
    let tokens = login(&ms.server, &ms.fake, &ms.upstream, "ms", "alice").await.tokens();
    let claims = id_claims(&tokens);
    assert_identity(
        &claims,
        "ms",
        "6b1c3d4e-0000-4000-8000-00000000a11c",
        "alice@contoso.example",
        "Alice Admin",
    );
    assert_eq!(claims["preferred_username"], "alice");
    // onlySecurityGroups: the 1,250 even groups, over two getMemberGroups pages, named through
    // getByIds in batches of at most 1,000 ids.
    let g = groups(&claims);
    assert_eq!(g.len(), 1250, "{:?}", &g[..5]);
    assert_eq!((g[0].as_str(), g[1].as_str(), g[1249].as_str()), ("Group 0000", "Group 0002", "Group 2498"));
    {
        let f = ms.fake.lock().unwrap();
        let q = f.authorizations.last().unwrap();
        assert_eq!(q["scope"], "user.read directory.read.all offline_access");
        let member_pages: Vec<&String> = f.hits.iter().filter(|h| h.contains("getMemberGroups")).collect();
        assert_eq!(
            member_pages,
            ["POST /v1.0/me/getMemberGroups?", "POST /v1.0/me/getMemberGroups?$skiptoken=1000"]
        );
        let lookups: Vec<&String> = f.hits.iter().filter(|h| h.contains("getByIds")).collect();
        assert_eq!(
            lookups,
            [
                "POST /v1.0/directoryObjects/getByIds (1000 ids)",
                "POST /v1.0/directoryObjects/getByIds (250 ids)"
            ]
        );
    }

    // Every group: 2,500 over three pages.
    let claims = id_claims(&login(&ms.server, &ms.fake, &ms.upstream, "ms-all", "alice").await.tokens());
    let g = groups(&claims);
    assert_eq!(g.len(), 2500);
    assert_eq!((g[1].as_str(), g[2499].as_str()), ("Group 0001", "Group 2499"));

    // Required groups as a whitelist: the claim is reduced to them; a user in none is refused.
    let claims = id_claims(&login(&ms.server, &ms.fake, &ms.upstream, "ms-req", "alice").await.tokens());
    assert_eq!(groups(&claims), ["Group 0003", "Group 2499"]);
    let Outcome::Page(status, html) = login(&ms.server, &ms.fake, &ms.upstream, "ms-req", "guest").await
    else {
        panic!("guest was logged in");
    };
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("not in any of the required groups"), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microsoft_refresh_redeems_the_upstream_refresh_token_and_fails_when_revoked() {
    let ms = microsoft().await;
    // Access tokens that are about to expire: every refresh must redeem the upstream refresh
    // token, and the rotated one must be kept for the next refresh.
    ms.fake.lock().unwrap().expires_in = Some(5);
    let tokens = login(&ms.server, &ms.fake, &ms.upstream, "ms-req", "alice").await.tokens();
    let mut rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    for round in 0..2 {
        if round == 1 {
            ms.fake.lock().unwrap().users.get_mut("alice").unwrap().name = "Alice Renamed".into();
        }
        let (status, body) = refresh(&ms.server, &rt).await;
        assert_eq!(status, 200, "round {round}: {body}");
        let claims = id_claims(&body);
        assert_eq!(claims["name"], if round == 0 { "Alice Admin" } else { "Alice Renamed" });
        assert_eq!(groups(&claims), ["Group 0003", "Group 2499"]);
        rt = body["refresh_token"].as_str().unwrap().to_owned();
    }
    let refreshes = ms.fake.lock().unwrap().hits.iter().filter(|h| *h == "POST token refresh_token").count();
    assert_eq!(refreshes, 2);
    // The user revokes the sessions upstream: the refresh token is refused, so is ours.
    ms.fake.lock().unwrap().revoke("alice");
    let (status, body) = refresh(&ms.server, &rt).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}

// ---------------------------------------------------------------------------------------------
// GitLab.

fn gitlab_router(fake: &Shared) -> Router {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/token", post(token))
        .route(
            "/api/v4/user",
            get(|State(fake): State<Shared>, headers: HeaderMap| async move {
                let mut f = fake.lock().unwrap();
                f.hits.push("GET /api/v4/user".into());
                let Some(u) = f.bearer(&headers) else { return unauthorized() };
                axum::Json(json!({"id": u.id, "username": u.login, "name": u.name, "email": u.email,
                    "state": "active"}))
                .into_response()
            }),
        )
        .route(
            "/oauth/userinfo",
            get(|State(fake): State<Shared>, headers: HeaderMap| async move {
                let mut f = fake.lock().unwrap();
                f.hits.push("GET /oauth/userinfo".into());
                let Some(u) = f.bearer(&headers) else { return unauthorized() };
                axum::Json(json!({"sub": u.id.to_string(), "nickname": u.login, "groups": u.groups,
                    "https://gitlab.org/claims/groups/owner": u.owner_of,
                    "https://gitlab.org/claims/groups/maintainer": [],
                    "https://gitlab.org/claims/groups/developer": []}))
                .into_response()
            }),
        )
        .with_state(fake.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_groups_filter_logins_and_refresh_rereads_them() {
    let jane = User {
        id: json!(77),
        login: "jdoe".into(),
        name: "Jane Doe".into(),
        email: "jane@gitlab.example".into(),
        groups: vec!["ops".into(), "ops/infra".into(), "marketing".into()],
        owner_of: vec!["ops".into()],
        ..Default::default()
    };
    let bob = User {
        id: json!(78),
        login: "bob".into(),
        name: String::new(),
        email: "bob@gitlab.example".into(),
        groups: vec!["sales".into()],
        ..Default::default()
    };
    let users = [jane, bob].into_iter().map(|u| (u.login.clone(), u)).collect();
    let fake: Shared = Arc::new(Mutex::new(Fake { users, ..Default::default() }));
    let base = serve(&fake, gitlab_router(&fake)).await;
    let cfg = |extra: Value| {
        let mut c = json!({"clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET, "baseURL": base});
        c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        c
    };
    let server = start_oxidex(json!([
        {"type": "gitlab", "id": "gl", "name": "GitLab", "config": cfg(json!({"groups": ["ops", "dev"]}))},
        {"type": "gitlab", "id": "gl-perm", "name": "GitLab (roles)", "config": cfg(json!({
            "getGroupsPermission": true, "useLoginAsID": true}))},
    ]))
    .await;
    let upstream = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let tokens = login(&server, &fake, &upstream, "gl", "jdoe").await.tokens();
    let claims = id_claims(&tokens);
    assert_identity(&claims, "gl", "77", "jane@gitlab.example", "Jane Doe");
    assert_eq!(claims["preferred_username"], "jdoe");
    // `groups` admits members of one of them and reduces the claim to them.
    assert_eq!(groups(&claims), ["ops"]);
    assert_eq!(fake.lock().unwrap().authorizations.last().unwrap()["scope"], "read_user openid");

    // Not in a required group: refused with a page that says so.
    let Outcome::Page(status, html) = login(&server, &fake, &upstream, "gl", "bob").await else {
        panic!("bob was logged in");
    };
    assert_eq!(status, 403, "{html}");
    assert!(html.contains("not in any of the required groups"), "{html}");

    // getGroupsPermission: roles of owned groups and their subgroups; useLoginAsID.
    let claims = id_claims(&login(&server, &fake, &upstream, "gl-perm", "jdoe").await.tokens());
    assert_identity(&claims, "gl-perm", "jdoe", "jane@gitlab.example", "Jane Doe");
    assert_eq!(groups(&claims), ["ops", "ops/infra", "marketing", "ops:owner", "ops/infra:owner"]);

    // Refresh redeems the GitLab refresh token and reads the groups again.
    fake.lock().unwrap().users.get_mut("jdoe").unwrap().groups = vec!["dev".into(), "ops".into()];
    let (status, body) = refresh(&server, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(groups(&id_claims(&body)), ["dev", "ops"]);
    assert!(fake.lock().unwrap().hits.iter().any(|h| h == "POST token refresh_token"));
    // Revoked upstream: invalid_grant.
    fake.lock().unwrap().revoke("jdoe");
    let (status, body) = refresh(&server, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Google (OpenID endpoints, signed ID tokens, and the Admin SDK Directory API).

/// The ID token Google's token endpoint sends with the tokens, when the fake is Google.
fn google_id_token(f: &Fake, login: &str, nonce: &str) -> Option<String> {
    let key = f.id_token_key.as_ref()?;
    let u = f.users.get(login)?;
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({"iss": f.base, "aud": UPSTREAM_CLIENT, "azp": UPSTREAM_CLIENT, "sub": u.id,
        "email": u.email, "email_verified": true, "name": u.name, "iat": now, "exp": now + 3600});
    if !u.hd.is_empty() {
        claims["hd"] = u.hd.clone().into();
    }
    if !nonce.is_empty() {
        claims["nonce"] = nonce.into();
    }
    Some(key.sign(&claims))
}

const DIRECTORY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";
const ADMIN: &str = "admin@acme.example";
const SA_EMAIL: &str = "oxidex-groups@project.iam.gserviceaccount.com";

fn google_router(fake: &Shared) -> Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(|State(fake): State<Shared>| async move {
                let base = fake.lock().unwrap().base.clone();
                axum::Json(json!({"issuer": base, "authorization_endpoint": format!("{base}/o/oauth2/v2/auth"),
                    "token_endpoint": format!("{base}/token"), "jwks_uri": format!("{base}/oauth2/v3/certs"),
                    "userinfo_endpoint": format!("{base}/v1/userinfo"), "response_types_supported": ["code"],
                    "id_token_signing_alg_values_supported": ["RS256"]}))
            }),
        )
        .route("/o/oauth2/v2/auth", get(authorize))
        .route("/token", post(token))
        .route(
            "/oauth2/v3/certs",
            get(|State(fake): State<Shared>| async move {
                let f = fake.lock().unwrap();
                let key = f.published_key.as_ref().or(f.id_token_key.as_ref()).unwrap();
                axum::Json(json!({"keys": [key.jwk()]}))
            }),
        )
        .route(
            "/sa-token",
            post(|State(fake): State<Shared>, Form(form): Form<HashMap<String, String>>| async move {
                // The JWT-bearer grant (RFC 7523) of a service account acting for an admin.
                let mut f = fake.lock().unwrap();
                if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
                    return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "unsupported_grant_type"}))).into_response();
                }
                let sa = f.service_account.clone().unwrap();
                let key = jsonwebtoken::DecodingKey::from_rsa_components(&sa.n, &sa.e).unwrap();
                let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
                validation.set_audience(&[format!("{}/sa-token", f.base)]);
                validation.set_issuer(&[SA_EMAIL]);
                let assertion = form.get("assertion").cloned().unwrap_or_default();
                let Ok(data) = jsonwebtoken::decode::<Value>(&assertion, &key, &validation) else {
                    return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant"}))).into_response();
                };
                if data.claims["scope"] != DIRECTORY_SCOPE || data.header.kid.as_deref() != Some(sa.kid.as_str()) {
                    return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_scope"}))).into_response();
                }
                let admin = data.claims["sub"].as_str().unwrap_or_default().to_owned();
                f.hits.push(format!("POST /sa-token for {admin}"));
                let token = f.mint("sa");
                f.directory_tokens.insert(token.clone(), admin);
                axum::Json(json!({"access_token": token, "token_type": "Bearer", "expires_in": 3599})).into_response()
            }),
        )
        .route(
            "/admin/directory/v1/groups",
            get(|State(fake): State<Shared>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                let mut f = fake.lock().unwrap();
                let key = q.get("userKey").cloned().unwrap_or_default();
                let page: usize = q.get("pageToken").map_or(0, |t| t.parse().unwrap());
                f.hits.push(format!("GET groups of {key} page {page}"));
                let admin = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .and_then(|t| f.directory_tokens.get(t));
                if admin.map(String::as_str) != Some(ADMIN) {
                    return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": 401}}))).into_response();
                }
                let all = f.directory.get(&key).cloned().unwrap_or_default();
                let groups: Vec<Value> = all
                    .iter()
                    .skip(page * 2)
                    .take(2)
                    .map(|g| json!({"kind": "admin#directory#group", "email": g, "name": g}))
                    .collect();
                let mut answer = json!({"kind": "admin#directory#groups", "groups": groups});
                if (page + 1) * 2 < all.len() {
                    answer["nextPageToken"] = (page + 1).to_string().into();
                }
                axum::Json(answer).into_response()
            }),
        )
        .with_state(fake.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_hosted_domains_and_directory_groups() {
    let grace = User {
        id: json!("110169484474386276334"),
        login: "grace".into(),
        name: "Grace Hopper".into(),
        email: "grace@acme.example".into(),
        hd: "acme.example".into(),
        ..Default::default()
    };
    let eve = User {
        id: json!("110169484474386270000"),
        login: "eve".into(),
        name: "Eve".into(),
        email: "eve@other.example".into(),
        hd: "other.example".into(),
        ..Default::default()
    };
    let consumer = User {
        id: json!("110169484474386279999"),
        login: "consumer".into(),
        name: "Gmail User".into(),
        email: "someone@gmail.example".into(),
        ..Default::default()
    };
    let users = [grace, eve, consumer].into_iter().map(|u| (u.login.clone(), u)).collect();
    let directory = [
        ("grace@acme.example", vec!["eng@acme.example", "all@acme.example", "navy@acme.example"]),
        ("eng@acme.example", vec!["tech@acme.example", "all@acme.example"]),
        ("tech@acme.example", vec!["all@acme.example"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    let sa = RsaKey::generate("sa-key-1");
    let fake: Shared = Arc::new(Mutex::new(Fake {
        users,
        directory,
        id_token_key: Some(RsaKey::generate("google-key-1")),
        service_account: Some(sa.clone()),
        ..Default::default()
    }));
    let base = serve(&fake, google_router(&fake)).await;
    let dir = tempfile::tempdir().unwrap();
    let sa_file = dir.path().join("service-account.json");
    let sa_json = json!({"type": "service_account", "project_id": "project", "private_key_id": sa.kid,
        "private_key": sa.pem, "client_email": SA_EMAIL, "client_id": "1234",
        "token_uri": format!("{base}/sa-token")});
    std::fs::write(&sa_file, sa_json.to_string()).unwrap();
    let server = start_oxidex(json!([
        {"type": "google", "id": "google", "name": "Google", "config": {
            "clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET, "issuer": base, "directoryAPIURL": base,
            "hostedDomains": ["acme.example"], "serviceAccountFilePath": sa_file,
            "domainToAdminEmail": {"acme.example": ADMIN}, "fetchTransitiveGroupMembership": true}},
        {"type": "google", "id": "google-open", "name": "Google (any account)", "config": {
            "clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET, "issuer": base}},
    ]))
    .await;
    let upstream = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let tokens = login(&server, &fake, &upstream, "google", "grace").await.tokens();
    let claims = id_claims(&tokens);
    assert_identity(&claims, "google", "110169484474386276334", "grace@acme.example", "Grace Hopper");
    assert_eq!(claims["email_verified"], true);
    // Transitive membership, each group once, pages followed (3 groups at 2 a page).
    assert_eq!(
        groups(&claims),
        ["eng@acme.example", "tech@acme.example", "all@acme.example", "navy@acme.example"]
    );
    {
        let f = fake.lock().unwrap();
        let q = f.authorizations.last().unwrap();
        assert_eq!(q["scope"], "openid profile email");
        assert_eq!(q["hd"], "acme.example");
        assert_eq!((q["access_type"].as_str(), q["prompt"].as_str()), ("offline", "consent"));
        assert!(q.get("nonce").is_some_and(|n| !n.is_empty()), "{q:?}");
        assert!(f.hits.iter().any(|h| h == "GET groups of grace@acme.example page 1"), "{:?}", f.hits);
        // One service-account token for the domain's admin, cached across the lookups.
        assert_eq!(f.hits.iter().filter(|h| h.starts_with("POST /sa-token")).count(), 1, "{:?}", f.hits);
        assert!(f.hits.contains(&format!("POST /sa-token for {ADMIN}")));
    }

    // Another hosted domain, or none (a consumer account): refused.
    for who in ["eve", "consumer"] {
        let Outcome::Page(status, html) = login(&server, &fake, &upstream, "google", who).await else {
            panic!("{who} was logged in");
        };
        assert_eq!(status, 403, "{html}");
        assert!(html.contains("not allowed here"), "{html}");
    }
    // Without hostedDomains the same account is accepted (and no directory is configured).
    let claims = id_claims(&login(&server, &fake, &upstream, "google-open", "eve").await.tokens());
    assert_identity(&claims, "google-open", "110169484474386270000", "eve@other.example", "Eve");
    assert!(groups(&claims).is_empty());

    // Refresh: the Google refresh token is redeemed, the new ID token verified, groups re-read.
    fake.lock().unwrap().directory.insert("grace@acme.example".into(), vec!["navy@acme.example".into()]);
    let (status, body) = refresh(&server, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(groups(&id_claims(&body)), ["navy@acme.example"]);
    fake.lock().unwrap().revoke("grace");
    let (status, body) = refresh(&server, body["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_no_secrets_logged(&server, &fake);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_id_tokens_must_verify() {
    let grace = User {
        id: json!("1"),
        login: "grace".into(),
        name: "Grace".into(),
        email: "grace@acme.example".into(),
        hd: "acme.example".into(),
        ..Default::default()
    };
    // The fake publishes another key under the kid it signs with.
    let fake: Shared = Arc::new(Mutex::new(Fake {
        users: [("grace".to_owned(), grace)].into_iter().collect(),
        id_token_key: Some(RsaKey::generate("google-key-1")),
        published_key: Some(RsaKey::generate("google-key-1")),
        ..Default::default()
    }));
    let base = serve(&fake, google_router(&fake)).await;
    let server = start_oxidex(json!([{"type": "google", "id": "google", "name": "Google", "config": {
        "clientID": UPSTREAM_CLIENT, "clientSecret": UPSTREAM_SECRET, "issuer": base}}]))
    .await;
    let upstream = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // A token that does not verify is not trusted: the provider's answer is not acceptable (502).
    let Outcome::Page(status, html) = login(&server, &fake, &upstream, "google", "grace").await else {
        panic!("logged in with an ID token whose signature does not verify");
    };
    assert_eq!(status, 502, "{html}");
    // Google rotates its keys: a token signed by a new key (an unknown kid) makes the connector
    // fetch the key set again, at most once every 10 seconds.
    tokio::time::sleep(std::time::Duration::from_millis(10_500)).await;
    {
        let mut f = fake.lock().unwrap();
        let rotated = RsaKey::generate("google-key-2");
        f.id_token_key = Some(rotated.clone());
        f.published_key = Some(rotated);
    }
    let claims = id_claims(&login(&server, &fake, &upstream, "google", "grace").await.tokens());
    assert_identity(&claims, "google", "1", "grace@acme.example", "Grace");
}
