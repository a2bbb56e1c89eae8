//! The authorization-code flow end to end against `oxidex serve`, driven by a real relying-party
//! library (the `openidconnect` crate): discovery, authorization with PKCE (S256) and nonce,
//! login through the password connector, consent, code exchange, ID-token validation
//! (signature, nonce, at_hash), userinfo and refresh. The browser is a cookie-keeping HTTP
//! client that follows the flow's redirects by hand. The same flow runs on SQLite and on Postgres
//! (when `OXIDEX_TEST_POSTGRES_URL` is set; otherwise the Postgres test says that it skipped).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Server;
use common::browser::{Browser, absolute, form};
use common::rp::{
    Backend, CLIENT_ID, CLIENT_NAME, CLIENT_SECRET, DEX_SUB, EMAIL, PASSWORD, REDIRECT, with_server,
};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, TokenResponse,
};

#[derive(Debug)]
struct HttpError(String);
impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for HttpError {}

/// The RP library's HTTP client: reqwest, no redirects followed.
async fn rp_http(request: openidconnect::HttpRequest) -> Result<openidconnect::HttpResponse, HttpError> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (parts, body) = request.into_parts();
    let mut req = client.request(parts.method, parts.uri.to_string()).body(body);
    for (name, value) in &parts.headers {
        req = req.header(name, value);
    }
    let resp = req.send().await.map_err(|e| HttpError(e.to_string()))?;
    let mut builder = http::Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        builder = builder.header(name, value);
    }
    let bytes = resp.bytes().await.map_err(|e| HttpError(e.to_string()))?;
    builder.body(bytes.to_vec()).map_err(|e| HttpError(e.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_flow_with_pkce_userinfo_and_refresh_on_sqlite() {
    with_server(Backend::Sqlite, "the OIDC flow test on SQLite", flow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_code_flow_with_pkce_userinfo_and_refresh_on_postgres() {
    with_server(Backend::Postgres, "the OIDC flow test on Postgres", flow).await;
}

/// The whole flow against `server`, asserting every step a relying party and a browser see.
async fn flow(server: Server) {
    // Discovery through the library.
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(server.issuer.clone()).unwrap(), &rp_http)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(CLIENT_ID.into()),
        Some(ClientSecret::new(CLIENT_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser: cookies kept, redirects followed by hand.
    let browser = Browser::new(&server.issuer).http;
    let r = browser.get(auth_url.as_str()).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let login_url = absolute(&server.web, r.headers()["location"].to_str().unwrap());
    let page = browser.get(&login_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers().contains_key("x-frame-options"));
    let html = page.text().await.unwrap();
    let (action, mut fields) = form(&html);

    // A wrong password shows the form again with an error.
    let mut wrong = fields.clone();
    wrong.push(("login".into(), EMAIL.into()));
    wrong.push(("password".into(), "wrong".into()));
    let r = browser.post(absolute(&server.web, &action)).form(&wrong).send().await.unwrap();
    assert_ne!(r.status(), 303);
    assert!(r.text().await.unwrap().to_lowercase().contains("invalid"), "wrong password not reported");

    fields.push(("login".into(), EMAIL.into()));
    fields.push(("password".into(), PASSWORD.into()));
    let r = browser.post(absolute(&server.web, &action)).form(&fields).send().await.unwrap();
    assert!(matches!(r.status().as_u16(), 302 | 303), "login answered {}", r.status());
    let approval_url = absolute(&server.web, r.headers()["location"].to_str().unwrap());
    assert!(approval_url.contains("/approval?"), "{approval_url}");

    // Another browser cannot use the approval URL.
    let attacker = Browser::new(&server.issuer).http;
    let stolen = attacker.get(&approval_url).send().await.unwrap();
    assert!(stolen.status().is_client_error(), "approval served to another browser: {}", stolen.status());

    let page = browser.get(&approval_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(CLIENT_NAME), "{html}");
    let (action, mut fields) = form(&html);
    fields.push(("approval".into(), "approve".into()));
    let r = browser.post(absolute(&server.web, &action)).form(&fields).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let callback = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert!(callback.as_str().starts_with(REDIRECT), "{callback}");
    let q: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
    assert_eq!(q["state"], *csrf.secret());
    assert_eq!(q["iss"], server.issuer, "RFC 9207 iss in the authorization response");
    let code = q["code"].clone();

    // Code exchange, ID token validation (signature, nonce, at_hash) by the library.
    let tokens = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&rp_http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token.claims(&id_verifier, &nonce).expect("a valid ID token");
    assert_eq!(claims.subject().as_str(), DEX_SUB, "the same sub as Dex computes");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(EMAIL));
    let expected_hash = claims.access_token_hash().expect("at_hash");
    let actual = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(*expected_hash, actual);

    // Userinfo.
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&rp_http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), DEX_SUB);

    // Refresh, then the rotated token is refused and its replay revokes the chain.
    let refresh = tokens.refresh_token().expect("a refresh token with offline_access").clone();
    let refreshed =
        client.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http).await.expect("refresh");
    let new_refresh = refreshed.refresh_token().expect("a rotated refresh token").clone();
    assert_ne!(new_refresh.secret(), refresh.secret());
    let new_id = refreshed.id_token().unwrap().claims(&id_verifier, |_: Option<&Nonce>| Ok(())).unwrap();
    assert_eq!(new_id.subject().as_str(), DEX_SUB);
    let replay = client.exchange_refresh_token(&refresh).unwrap().request_async(&rp_http).await;
    assert!(replay.is_err(), "a rotated refresh token was accepted");
    let after_replay = client
        .exchange_refresh_token(&RefreshToken::new(new_refresh.secret().clone()))
        .unwrap()
        .request_async(&rp_http)
        .await;
    assert!(after_replay.is_err(), "replaying a rotated token must revoke the whole chain");

    // The code is single use, and its replay revokes what its first redemption issued.
    let again = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(openidconnect::PkceCodeVerifier::new("x".repeat(43)))
        .request_async(&rp_http)
        .await;
    assert!(again.is_err(), "a code was redeemed twice");
    let revoked: Result<CoreUserInfoClaims, _> =
        client.user_info(tokens.access_token().clone(), None).unwrap().request_async(&rp_http).await;
    assert!(revoked.is_err(), "the access token of a replayed code still works at userinfo");
}
