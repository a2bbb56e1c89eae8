//! A second relying-party library, npm `openid-client` v6, logs in at `oxidex serve` on SQLite
//! and on Postgres: `tests/js/openid-client-rp.mjs` does discovery, authorization code + PKCE +
//! nonce + state with the RFC 9207 `iss` check, ID-token validation (signature, nonce, at_hash),
//! userinfo, a rotating refresh and the rejection of the old refresh token, and exits non-zero
//! on any failure. Its dependencies come from `tests/js/package-lock.json`; `cargo xtask test`
//! installs them (`npm ci`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::Server;
use common::rp::{Backend, CLIENT_ID, CLIENT_SECRET, DEX_SUB, EMAIL, PASSWORD, REDIRECT, with_server};

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js")
}

/// Fails (never skips) when the script's dependencies are not installed.
fn require_node_modules() {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/openid-client/package.json").is_file(),
        "{} is missing: run `cargo xtask test` (it runs `npm ci` there), or `npm ci` in tests/js",
        dir.join("node_modules").display()
    );
}

/// Runs the openid-client script against `server` and asserts that it succeeded.
async fn openid_client_flow(server: Server) {
    let dir = js_dir();
    let mut command = tokio::process::Command::new("node");
    command
        .arg("openid-client-rp.mjs")
        .current_dir(&dir)
        .env("OXIDEX_RP_ISSUER", &server.issuer)
        .env("OXIDEX_RP_CLIENT_ID", CLIENT_ID)
        .env("OXIDEX_RP_CLIENT_SECRET", CLIENT_SECRET)
        .env("OXIDEX_RP_REDIRECT_URI", REDIRECT)
        .env("OXIDEX_RP_USERNAME", EMAIL)
        .env("OXIDEX_RP_PASSWORD", PASSWORD)
        .env("OXIDEX_RP_EXPECTED_SUB", DEX_SUB)
        .env("OXIDEX_RP_EXPECTED_EMAIL", EMAIL)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("node openid-client-rp.mjs did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("could not run `node` (Node.js 20 or later is needed): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openid-client RP failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- oxidex log\n{}",
        output.status,
        server.log_text()
    );
    let summary: serde_json::Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON summary on stdout:\n{stdout}\n{stderr}"));
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["sub"], DEX_SUB, "{summary}");
    assert_eq!(summary["issuer"], server.issuer.as_str(), "{summary}");
    eprintln!("openid-client: {summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_completes_the_code_flow_on_sqlite() {
    require_node_modules();
    with_server(Backend::Sqlite, "the openid-client test on SQLite", openid_client_flow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_completes_the_code_flow_on_postgres() {
    require_node_modules();
    with_server(Backend::Postgres, "the openid-client test on Postgres", openid_client_flow).await;
}
