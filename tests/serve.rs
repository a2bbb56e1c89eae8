//! Black-box tests of `oxidex serve` and the small subcommands, against the real binary.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{Ports, Server, config, oxidex_bin, sqlite_storage};

fn get_json(url: &str) -> (reqwest::StatusCode, reqwest::header::HeaderMap, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
    })
}

#[test]
fn discovery_keys_health_and_metrics_on_sqlite() {
    let mut server = Server::start(Ports::new(), |dir, ports| config(ports, &sqlite_storage(dir), ""));
    let issuer = server.issuer.clone();

    let (status, _, d) = get_json(&format!("{issuer}/.well-known/openid-configuration"));
    assert_eq!(status, 200);
    assert_eq!(d["issuer"], issuer);
    assert_eq!(d["jwks_uri"], format!("{issuer}/keys"));
    assert_eq!(d["token_endpoint"], format!("{issuer}/token"));
    assert_eq!(d["authorization_endpoint"], format!("{issuer}/auth"));
    assert_eq!(d["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    assert_eq!(d["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(d["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert!(d["scopes_supported"].as_array().unwrap().contains(&serde_json::json!("openid")));

    let (status, headers, jwks) = get_json(&format!("{issuer}/keys"));
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the signing key and the next key are published: {jwks}");
    for k in keys {
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["kid"].as_str().unwrap().len(), 40);
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(k.get(private).is_none(), "JWKS leaks private member {private}");
        }
    }
    let cache = headers["cache-control"].to_str().unwrap();
    assert!(cache.starts_with("max-age="), "{cache}");

    // Paths outside the issuer path are not served.
    let (status, _, _) = get_json(&format!("{}/keys", server.web));
    assert_eq!(status, 404);

    let (status, _, live) = get_json(&format!("{}/healthz/live", server.telemetry));
    assert_eq!((status.as_u16(), live), (200, serde_json::json!("ok")));
    let (status, _, ready) = get_json(&format!("{}/healthz/ready", server.telemetry));
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["storage"], "reachable");

    let (status, _, metrics) = get_json(&format!("{}/metrics", server.telemetry));
    assert_eq!(status, 200);
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains(r#"http_requests_total{code="200",handler="/keys",method="GET"}"#), "{metrics}");
    assert!(metrics.contains("process_resident_memory_bytes"), "{metrics}");
    assert!(metrics.contains("oxidex_build_info"), "{metrics}");

    // SIGTERM: a clean exit, and the SQLite file is left consistent.
    let status = server.terminate();
    assert!(status.success(), "exit status {status}:\n{}", server.log_text());
    assert!(server.log_text().contains("storage closed"), "{}", server.log_text());
}

#[test]
fn es256_signer_publishes_ec_keys() {
    let server = Server::start(Ports::new(), |_, ports| {
        config(
            ports,
            "  type: memory",
            "signer:\n  type: local\n  config:\n    keysRotationPeriod: 6h\n    algorithm: ES256",
        )
    });
    let (_, _, d) = get_json(&format!("{}/.well-known/openid-configuration", server.issuer));
    assert_eq!(d["id_token_signing_alg_values_supported"], serde_json::json!(["ES256"]));
    let (_, _, jwks) = get_json(&format!("{}/keys", server.issuer));
    for k in jwks["keys"].as_array().unwrap() {
        assert_eq!(
            (k["kty"].as_str(), k["crv"].as_str(), k["alg"].as_str()),
            (Some("EC"), Some("P-256"), Some("ES256"))
        );
        assert!(k.get("d").is_none());
    }
}

fn run(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(oxidex_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_hash_password() {
    let (code, out, _) = run(&["version"], None);
    assert_eq!(code, 0);
    assert!(out.starts_with("oxidex "), "{out}");

    let (code, out, err) = run(&["hash-password", "--cost", "10"], Some("correct horse\n"));
    assert_eq!(code, 0, "{err}");
    let hash = out.trim();
    assert!(hash.starts_with("$2b$10$"), "{hash}");
    assert!(bcrypt::verify("correct horse", hash).unwrap());
    assert!(!bcrypt::verify("correct horse\n", hash).unwrap(), "the trailing newline is not hashed");

    let (code, _, err) = run(&["hash-password"], Some(""));
    assert_ne!(code, 0);
    assert!(err.contains("empty"), "{err}");
}

#[test]
fn check_config_lists_every_mistake_with_its_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
issuer: not-a-url
storage:
  type: sqlite3
  config:
    file: /tmp/x.db
web:
  http: 127.0.0.1:5556
expiry:
  idTokens: 24 hours
staticClients:
- id: app
  name: App
  secret: s3cret
  redirectURIs:
  - /relative/callback
- id: app2
  secret: other
  redirectURIs: ["http://127.0.0.1:5555/callback"]
enablePasswordDB: true
staticPasswords:
- email: admin@example.com
  hash: "$2a$04$abcdefghijklmnopqrstuuJ3P6eQy8FqYvCqJ0wYH1lYl6FQZ4bC6"
  username: admin
  userID: "1"
"#,
    )
    .unwrap();
    let (code, out, err) = run(&["check-config", path.to_str().unwrap()], None);
    assert_ne!(code, 0, "{out}{err}");
    for expected in [
        "issuer:",
        "expiry.idTokens:",
        "staticClients[0].redirectURIs[0]:",
        "staticClients[1].name:",
        "staticPasswords[0].hash:",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(!err.contains("s3cret"), "a secret leaked into the error output:\n{err}");
    assert!(err.contains("5 problem(s)"), "{err}");

    // The same file with the mistakes fixed is valid; unknown keys are warnings, or errors with --strict.
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "issuer: http://127.0.0.1:5556/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:5556\n  htp: typo\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check-config", good.to_str().unwrap()], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("web.htp"), "{err}");
    let (code, _, err) = run(&["check-config", "--strict", good.to_str().unwrap()], None);
    assert_ne!(code, 0);
    assert!(err.contains("web.htp"), "{err}");
}

#[test]
fn no_config_makes_it_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[&str] = &[
        "",
        "42",
        "- a\n- b",
        "issuer: [1, 2]",
        "issuer: http://x\nstorage: 7\nweb: []\n",
        "issuer: http://x\nstorage:\n  type: postgres\n  config:\n    port: 99999999999\n",
        "issuer: http://x\nstaticClients: {a: b}\nconnectors: [1, null, {}]\n",
        "issuer: http://x\nexpiry:\n  idTokens: 99999999999999999999h\n",
        "\u{0}\u{1}\u{2}: [",
        "a: &a [*a, *a]\nb: *a\n",
    ];
    for (i, case) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&path, case).unwrap();
        for cmd in ["check-config", "serve"] {
            let (code, out, err) = run(&[cmd, path.to_str().unwrap()], None);
            assert_eq!(code, 1, "{cmd} on case {i} ({case:?}) exited {code}:\n{out}{err}");
            assert!(!err.contains("panicked"), "{cmd} on case {i} panicked:\n{err}");
            assert!(err.contains("error"), "{cmd} on case {i} printed no error:\n{err}");
        }
    }
    let (code, _, err) = run(&["check-config", "/nonexistent/oxidex.yaml"], None);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/oxidex.yaml"), "{err}");
}

#[test]
fn admin_api_beyond_loopback_needs_mtls_or_an_explicit_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::new();
    let exposed = format!(
        "issuer: http://127.0.0.1:{web}/dex\nstorage:\n  type: memory\nweb:\n  http: 127.0.0.1:{web}\ngrpc:\n  addr: 0.0.0.0:{grpc}\n",
        web = ports.web,
        grpc = ports.grpc
    );
    let path = dir.path().join("exposed.yaml");
    std::fs::write(&path, &exposed).unwrap();
    let (code, _, err) = run(&["serve", path.to_str().unwrap()], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("grpc.addr"), "{err}");
    assert!(
        err.contains("grpc.tlsClientCA") && err.contains("allowUnauthenticated"),
        "both options explained: {err}"
    );
    let (code, _, err) = run(&["check-config", path.to_str().unwrap()], None);
    assert_eq!(code, 1, "check-config reports it too: {err}");

    // With the explicit opt-in it starts.
    let server = Server::start(ports, |_, _| format!("{exposed}  allowUnauthenticated: true\n"));
    let (status, _, _) = get_json(&format!("{}/keys", server.issuer));
    assert_eq!(status, 200);
}

#[test]
fn example_configs_are_valid() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(examples).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = Command::new(oxidex_bin())
                .args(["check-config", "--strict", path.to_str().unwrap()])
                .env("OXIDEX_DB_PASSWORD", "from-the-environment")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && err.is_empty(), "{}: {err}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 2, "examples/*.yaml not found");
}
