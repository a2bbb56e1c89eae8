//! The config loader against Dex-style files: what a Dex user's existing config.yaml yields, and
//! what every kind of mistake reports.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use oxidex_core::config::{
    Config, ConfigErrors, LoadOptions, Loaded, LogFormat, Overrides, Problem, load_file, parse_str,
};
use oxidex_core::storage::{SigningAlg, StorageConfig};

const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
const USER_ID: &str = "08a8684b-db88-4b73-90a9-3cd1661f5466";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config_data").join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

/// Parses with the given environment.
fn parse_env(yaml: &str, vars: &[(&str, &str)], opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let env = move |name: &str| map.get(name).cloned();
    parse_str(yaml, &env, opts)
}

fn ok_env(yaml: &str, vars: &[(&str, &str)]) -> Loaded {
    match parse_env(yaml, vars, &LoadOptions::default()) {
        Ok(l) => l,
        Err(e) => panic!("expected a valid config, got:\n{}", show(&e.0)),
    }
}

fn ok(yaml: &str) -> Loaded {
    ok_env(yaml, &[])
}

fn errors(yaml: &str) -> Vec<Problem> {
    errors_env(yaml, &[])
}

fn errors_env(yaml: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
    match parse_env(yaml, vars, &LoadOptions::default()) {
        Ok(l) => panic!("expected errors, got a valid config: {:?}", l.config),
        Err(e) => e.0,
    }
}

fn show(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}\n")).collect()
}

fn paths(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.path.as_str()).collect()
}

/// Asserts that some problem sits at `path` and mentions `needle`.
#[track_caller]
fn has(problems: &[Problem], path: &str, needle: &str) {
    assert!(
        problems.iter().any(|p| p.path == path && p.message.contains(needle)),
        "no problem at {path:?} mentioning {needle:?} in:\n{}",
        show(problems)
    );
}

const MINIMAL: &str =
    "issuer: http://127.0.0.1:5556/dex\nstorage: {type: memory}\nweb: {http: 127.0.0.1:5556}\n";

fn with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

// ---------------------------------------------------------------------------------------------
// Realistic Dex files.

#[test]
fn dex_config_dev_yaml_with_sqlite3() {
    let loaded = load_file(&data("sqlite3.yaml"), &LoadOptions::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    let c = loaded.config;
    assert_eq!(c.issuer, "http://127.0.0.1:5556/dex");
    assert_eq!(c.issuer_path, "/dex");
    assert!(matches!(&c.storage, StorageConfig::Sqlite { file } if file == "examples/dex.db"));
    assert_eq!(c.web.http.as_deref(), Some("0.0.0.0:5556"));
    assert_eq!(c.web.https, None);
    assert_eq!(c.telemetry.http.as_deref(), Some("127.0.0.1:5558"));
    assert_eq!(c.grpc.addr.as_deref(), Some("127.0.0.1:5557"));

    assert_eq!(c.static_clients.len(), 1);
    let client = &c.static_clients[0];
    assert_eq!(client.id, "example-app");
    assert_eq!(client.secret, "ZXhhbXBsZS1hcHAtc2VjcmV0");
    assert_eq!(client.name, "Example App");
    assert_eq!(client.redirect_uris, ["http://127.0.0.1:5555/callback"]);
    assert!(!client.public);

    assert_eq!(c.connectors.len(), 1);
    let conn = &c.connectors[0];
    assert_eq!(
        (conn.r#type.as_str(), conn.id.as_str(), conn.name.as_str()),
        ("mockCallback", "mock", "Example")
    );
    assert_eq!(conn.config, b"{}");

    assert!(c.enable_password_db);
    assert_eq!(c.static_passwords.len(), 1);
    let p = &c.static_passwords[0];
    assert_eq!(p.email, "admin@example.com");
    assert_eq!(p.hash, HASH.as_bytes());
    assert!(bcrypt::verify("password", std::str::from_utf8(&p.hash).unwrap()).unwrap());
    assert_eq!(p.username, "admin");
    assert_eq!(p.user_id, USER_ID);
    assert_eq!(p.email_verified, None);
}

#[test]
fn dist_style_memory_config_with_env_clients_and_passwords() {
    let text = read("memory.yaml");
    let loaded = ok_env(
        &text,
        &[("DEX_CLIENT_ID", "prod-app"), ("DEX_CLIENT_SECRET", "prod-secret"), ("ADMIN_HASH", HASH)],
    );
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    let c = loaded.config;
    assert_eq!(c.issuer, "https://dex.example.com");
    assert_eq!(c.issuer_path, "");
    assert!(matches!(c.storage, StorageConfig::Memory));
    assert_eq!(c.web.allowed_origins, ["*"]);
    assert_eq!(c.frontend.issuer, "Example Corp");
    assert_eq!(c.frontend.theme, "dark");
    assert_eq!(c.frontend.logo_url.as_deref(), Some("theme/logo.png"));
    assert_eq!(c.logger.level, "debug");
    assert_eq!(c.logger.format, LogFormat::Json);
    assert_eq!(c.expiry.id_tokens, Duration::from_secs(3600));
    assert_eq!(c.expiry.device_requests, Duration::from_secs(300));
    assert_eq!(c.expiry.refresh_tokens.reuse_interval, Duration::from_secs(3));
    assert_eq!(c.expiry.refresh_tokens.valid_if_not_used_for, Some(Duration::from_secs(2160 * 3600)));
    assert_eq!(c.expiry.refresh_tokens.absolute_lifetime, Some(Duration::from_secs(3960 * 3600)));
    assert!(!c.expiry.refresh_tokens.disable_rotation);

    assert_eq!(c.oauth2.response_types, ["code", "id_token", "token"]);
    assert!(c.oauth2.skip_approval_screen);
    assert_eq!(c.oauth2.password_connector.as_deref(), Some("local"));
    assert_eq!(
        c.oauth2.grant_types,
        [
            "authorization_code",
            "implicit",
            "password",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ]
    );

    let ids: Vec<_> = c.static_clients.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["example-app", "prod-app", "example-device-client", "kubectl"]);
    assert_eq!(c.static_clients[1].secret, "prod-secret");
    assert!(c.static_clients[2].public);
    assert_eq!(c.static_clients[2].secret, "");
    assert_eq!(c.static_clients[2].redirect_uris, ["/device/callback"]);
    assert_eq!(c.static_clients[3].redirect_uris[0], "urn:ietf:wg:oauth:2.0:oob");
    assert_eq!(c.static_clients[3].trusted_peers, ["example-app"]);

    let p = &c.static_passwords;
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].email, "user@example.com", "emails are lower-cased");
    assert_eq!(p[0].name, "User Full Name");
    assert_eq!(p[0].preferred_username, "user-public");
    assert_eq!(p[0].email_verified, Some(false));
    assert_eq!(p[0].groups, ["team-a", "team-a/admins"]);
    assert_eq!(p[1].hash, HASH.as_bytes(), "the base64 form is decoded");
    assert_eq!(p[2].hash, HASH.as_bytes(), "hashFromEnv reads the variable");
}

#[test]
fn postgres_config_with_env_expansion() {
    let text = read("postgres.yaml");
    let vars = [
        ("DEX_DB_PASSWORD", "s3cret$pw"),
        ("GOOGLE_CLIENT_ID", "gid.apps.googleusercontent.com"),
        ("GOOGLE_CLIENT_SECRET", "gsecret"),
    ];
    let loaded = ok_env(&text, &vars);
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    let c = loaded.config;
    let StorageConfig::Postgres(pg) = &c.storage else { panic!("not postgres: {:?}", c.storage) };
    assert_eq!(pg.host, "db.internal");
    assert_eq!(pg.port, 5432);
    assert_eq!(pg.database, "dex");
    assert_eq!(pg.user, "dex");
    assert_eq!(pg.password, "s3cret$pw", "expanded once, not recursively");
    assert_eq!(pg.connection_timeout_secs, 10);
    assert_eq!(pg.max_open_conns, 20);
    assert_eq!(pg.max_idle_conns, 10);
    assert_eq!(pg.conn_max_lifetime_secs, 1800);
    assert_eq!(pg.ssl_mode, "verify-ca");
    assert_eq!(pg.ssl_ca_file, "/etc/dex/pg-ca.crt");

    assert_eq!(c.web.https.as_deref(), Some("0.0.0.0:5554"));
    assert_eq!(c.web.tls_min_version.as_deref(), Some("1.2"), "an unquoted 1.2 is read as text");
    assert_eq!(c.web.tls_max_version.as_deref(), Some("1.3"));
    assert_eq!(c.web.headers.get("X-Frame-Options").map(String::as_str), Some("DENY"));
    assert_eq!(c.web.client_remote_ip_header.as_deref(), Some("X-Forwarded-For"));
    assert_eq!(c.web.trusted_proxies, ["10.0.0.0/8", "192.168.1.10"]);
    assert_eq!(c.grpc.tls_client_ca.as_deref(), Some("/etc/dex/client-ca.crt"));
    assert!(c.grpc.reflection);
    assert!(!c.grpc.allow_unauthenticated);
    assert_eq!(c.signer.algorithm, SigningAlg::ES256);
    assert_eq!(c.signer.rotation_period, Duration::from_secs(12 * 3600));
    assert!(c.oauth2.pkce_enforce);
    assert_eq!(c.oauth2.code_challenge_methods, ["S256", "plain"]);
    assert_eq!(c.oauth2.grant_types, ["authorization_code", "client_credentials", "refresh_token"]);

    let google: serde_json::Value = serde_json::from_slice(&c.connectors[0].config).unwrap();
    assert_eq!(google["clientID"], "gid.apps.googleusercontent.com");
    assert_eq!(google["clientSecret"], "gsecret");
    assert_eq!(google["scopes"], serde_json::json!(["openid", "email"]));
    assert_eq!(google["insecureSkipEmailVerified"], false);
    assert_eq!(google["claimMapping"]["email"], "mail");
    assert_eq!(c.connectors[0].grant_types, ["authorization_code", "refresh_token"]);
    let ldap: serde_json::Value = serde_json::from_slice(&c.connectors[1].config).unwrap();
    assert_eq!(ldap["userSearch"]["idAttr"], "DN");
    assert_eq!(c.static_clients[0].allowed_connectors, ["google"]);
}

#[test]
fn dex_expand_env_false_disables_expansion() {
    let text = read("postgres.yaml");
    let c = ok_env(&text, &[("DEX_EXPAND_ENV", "false"), ("DEX_DB_PASSWORD", "nope")]).config;
    let StorageConfig::Postgres(pg) = &c.storage else { panic!() };
    assert_eq!(pg.password, "$DEX_DB_PASSWORD");
    let google: serde_json::Value = serde_json::from_slice(&c.connectors[0].config).unwrap();
    assert_eq!(google["clientSecret"], "${GOOGLE_CLIENT_SECRET}");
    // A bad flag value means the default (on), as Dex's feature flags do.
    let c = ok_env(&text, &[("DEX_EXPAND_ENV", "maybe"), ("DEX_DB_PASSWORD", "yes")]).config;
    let StorageConfig::Postgres(pg) = &c.storage else { panic!() };
    assert_eq!(pg.password, "yes");
}

#[test]
fn expansion_is_limited_to_the_three_config_sections() {
    let yaml = "issuer: http://127.0.0.1:5556/$PATHX\nstorage: {type: sqlite3, config: {file: $DIR/dex.db}}\n\
                web: {http: 127.0.0.1:5556}\nsigner: {config: {keysRotationPeriod: $ROT}}\n\
                staticClients: [{id: a, name: A, secret: $SECRET, redirectURIs: ['http://x/cb']}]\n";
    let c = ok_env(yaml, &[("PATHX", "no"), ("DIR", "/var/dex"), ("ROT", "2h"), ("SECRET", "no")]).config;
    assert_eq!(c.issuer, "http://127.0.0.1:5556/$PATHX");
    assert!(matches!(&c.storage, StorageConfig::Sqlite { file } if file == "/var/dex/dex.db"));
    assert_eq!(c.signer.rotation_period, Duration::from_secs(7200));
    assert_eq!(c.static_clients[0].secret, "$SECRET");
    // An unset variable expands to nothing, as Go's os.ExpandEnv does.
    let errs =
        errors("issuer: http://h/\nstorage: {type: sqlite3, config: {file: $UNSET}}\nweb: {http: ':1'}\n");
    has(&errs, "storage.config.file", "required");
}

// ---------------------------------------------------------------------------------------------
// idEnv / secretEnv / hashFromEnv.

#[test]
fn env_backed_fields() {
    let yaml = with(
        "staticClients:\n- idEnv: CID\n  secretEnv: CSECRET\n  name: A\n  redirectURIs: ['https://a/cb']\n\
         enablePasswordDB: true\nstaticPasswords:\n- email: a@b.c\n  hashFromEnv: H\n  userID: u1\n",
    );
    let c = ok_env(&yaml, &[("CID", "the-id"), ("CSECRET", "the-secret"), ("H", HASH)]).config;
    assert_eq!(c.static_clients[0].id, "the-id");
    assert_eq!(c.static_clients[0].secret, "the-secret");
    assert_eq!(c.static_passwords[0].hash, HASH.as_bytes());

    let errs = errors_env(&yaml, &[("CID", "the-id")]);
    has(&errs, "staticClients[0].secretEnv", "CSECRET is not set");
    has(&errs, "staticPasswords[0].hashFromEnv", "H is not set");
    assert_eq!(errs.len(), 2, "{}", show(&errs));

    let both = with("staticClients:\n- id: x\n  idEnv: CID\n  secret: s\n  secretEnv: S\n  name: A\n");
    let errs = errors_env(&both, &[("CID", "y"), ("S", "z")]);
    has(&errs, "staticClients[0].idEnv", "exclude each other");
    has(&errs, "staticClients[0].secretEnv", "exclude each other");
}

// ---------------------------------------------------------------------------------------------
// Durations.

#[test]
fn go_durations() {
    let c = ok(&with(
        "expiry:\n  idTokens: 1h30m\n  authRequests: 90s\n  deviceRequests: 1.5m\n  refreshTokens:\n    \
         reuseInterval: 500ms\n    absoluteLifetime: 0\n    validIfNotUsedFor: 300us\n",
    ))
    .config;
    assert_eq!(c.expiry.id_tokens, Duration::from_secs(5400));
    assert_eq!(c.expiry.auth_requests, Duration::from_secs(90));
    assert_eq!(c.expiry.device_requests, Duration::from_secs(90));
    assert_eq!(c.expiry.refresh_tokens.reuse_interval, Duration::from_millis(500));
    assert_eq!(c.expiry.refresh_tokens.absolute_lifetime, None, "0 means unlimited");
    assert_eq!(c.expiry.refresh_tokens.valid_if_not_used_for, Some(Duration::from_micros(300)));

    let errs = errors(&with(
        "expiry:\n  idTokens: 1d\n  authRequests: 30\n  deviceRequests: [5m]\n  signingKeys: -6h\n  \
         refreshTokens: {reuseInterval: soon}\n",
    ));
    has(&errs, "expiry.idTokens", "unknown unit \"d\"");
    has(&errs, "expiry.authRequests", "missing unit");
    has(&errs, "expiry.deviceRequests", "found a list");
    has(&errs, "expiry.signingKeys", "negative");
    has(&errs, "expiry.refreshTokens.reuseInterval", "invalid duration");
    assert_eq!(errs.len(), 5, "{}", show(&errs));
    has(&errors(&with("expiry: {idTokens: 0s}")), "expiry.idTokens", "longer than zero");
}

#[test]
fn deprecated_signing_keys_sets_rotation_with_a_warning() {
    let loaded = ok(&with("expiry: {signingKeys: 3h}"));
    assert_eq!(loaded.config.signer.rotation_period, Duration::from_secs(3 * 3600));
    has(&loaded.warnings, "expiry.signingKeys", "deprecated");
    let loaded =
        ok(&with("expiry: {signingKeys: 3h}\nsigner: {type: local, config: {keysRotationPeriod: 4h}}"));
    assert_eq!(loaded.config.signer.rotation_period, Duration::from_secs(4 * 3600));
    has(&loaded.warnings, "signer.config.keysRotationPeriod", "wins");
}

// ---------------------------------------------------------------------------------------------
// Collecting every problem.

#[test]
fn five_mistakes_yield_five_problems() {
    let errs = load_file(&data("five_mistakes.yaml"), &LoadOptions::default()).unwrap_err().0;
    assert_eq!(
        paths(&errs),
        [
            "issuer",
            "storage.type",
            "staticClients[1].redirectURIs[0]",
            "staticPasswords[0].hash",
            "expiry.idTokens"
        ],
        "{}",
        show(&errs)
    );
    has(&errs, "issuer", "query");
    has(&errs, "storage.type", "\"mysql\" is not supported yet");
    has(&errs, "expiry.idTokens", "invalid duration");
    has(&errs, "staticClients[1].redirectURIs[0]", "not an absolute URL; use a full URL such as");
    has(&errs, "staticPasswords[0].hash", "cost below 10");
    let text = show(&errs);
    for secret in ["hunter2-db-password", "broken-app-secret-value", "2b2cU8CPhOTaGrs1HRQuAue"] {
        assert!(!text.contains(secret), "a secret leaked into:\n{text}");
    }
    assert_eq!(ConfigErrors(errs).to_string(), "5 problem(s) in the configuration");
}

#[test]
fn secrets_are_never_echoed() {
    let yaml = "issuer: 'https://u:p4ssw0rd@h/'\nstorage: {type: postgres, config: {password: [pw-in-a-list], port: 99999}}\n\
                web: {http: x}\nstaticClients: [{id: a, name: A, secret: [client-secret-x], secretEnv: ENVSECRET}]\n\
                enablePasswordDB: true\nstaticPasswords: [{email: a@b, hash: not-a-hash-pw123, userID: u}]\n";
    let errs = errors_env(yaml, &[("ENVSECRET", "env-secret-value")]);
    let text = show(&errs);
    for secret in ["p4ssw0rd", "pw-in-a-list", "client-secret-x", "env-secret-value", "not-a-hash-pw123"] {
        assert!(!text.contains(secret), "{secret} leaked into:\n{text}");
    }
    has(&errs, "issuer", "credentials");
    has(&errs, "storage.config.password", "expected a string");
    has(&errs, "storage.config.port", "too large");
    has(&errs, "staticPasswords[0].hash", "not a bcrypt hash");
}

#[test]
fn required_keys_and_cross_references() {
    let errs = errors(
        "storage: {}\nweb: {https: 0.0.0.0:5554}\ngrpc: {tlsCert: c.pem, tlsClientCA: ca.pem}\n\
         staticClients: [{redirectURIs: ['https://a/cb']}, {id: a, name: A, secret: s}, {id: a, name: B, public: true}]\n\
         connectors: [{type: oidc, id: local, name: L, config: {issuer: x}}, {id: gh, name: G}, {type: ldap, id: gh, name: G2, config: 3}]\n\
         enablePasswordDB: true\n\
         staticPasswords: [{email: A@x.org, hash: '$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W', userID: u1}, {email: a@X.org, hash: '$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W', userID: u1}]\n\
         oauth2: {passwordConnector: github}\n",
    );
    has(&errs, "issuer", "required");
    has(&errs, "storage.type", "required");
    has(&errs, "web.tlsCert", "required with web.https");
    has(&errs, "web.tlsKey", "required with web.https");
    has(&errs, "grpc.addr", "required");
    has(&errs, "grpc.tlsKey", "both tlsCert and tlsKey");
    has(&errs, "staticClients[0].id", "required");
    has(&errs, "staticClients[0].name", "required");
    has(&errs, "staticClients[0].secret", "required unless the client is public");
    has(&errs, "staticClients[2].id", "duplicate client id \"a\"");
    has(&errs, "connectors[0].id", "`local` is taken");
    has(&errs, "connectors[1].type", "required");
    has(&errs, "connectors[2].id", "duplicate connector id");
    has(&errs, "connectors[2].config", "expected a mapping");
    has(&errs, "staticPasswords[1].email", "duplicate email");
    has(&errs, "staticPasswords[1].userID", "duplicate userID");
    has(&errs, "oauth2.passwordConnector", "no such connector");
}

#[test]
fn static_passwords_need_the_password_db() {
    let errs = errors(&with(&format!("staticPasswords: [{{email: a@b.c, hash: '{HASH}', userID: u}}]\n")));
    has(&errs, "staticPasswords", "enablePasswordDB: true");
    let errs = errors(&with("oauth2: {passwordConnector: local}\n"));
    has(&errs, "oauth2.passwordConnector", "enablePasswordDB");
}

#[test]
fn unsupported_backends_and_signers_are_named() {
    for t in ["mysql", "etcd", "kubernetes"] {
        let errs = errors(&format!("issuer: http://h/\nstorage: {{type: {t}}}\nweb: {{http: ':1'}}\n"));
        has(&errs, "storage.type", "not supported yet");
    }
    has(
        &errors("issuer: http://h/\nstorage: {type: redis}\nweb: {http: ':1'}\n"),
        "storage.type",
        "unknown storage type",
    );
    has(&errors(&with("signer: {type: vault, config: {addr: x}}")), "signer.type", "not supported yet");
    has(&errors(&with("signer: {config: {algorithm: HS256}}")), "signer.config.algorithm", "RS256 or ES256");
}

#[test]
fn frontend_branding_keys() {
    let dir = tempfile::tempdir().unwrap();
    let css = dir.path().join("brand.css");
    let icon = dir.path().join("favicon.svg");
    std::fs::write(&css, "main {}").unwrap();
    std::fs::write(&icon, "<svg/>").unwrap();
    let c = ok(&format!(
        "issuer: http://h/\nstorage: {{type: memory}}\nweb: {{http: 127.0.0.1:5556}}\nfrontend:\n  defaultLocale: de-AT\n  \
         colors: {{primary: '#1d4ed8', primaryText: '#FFF'}}\n  customCSS: {}\n  favicon: {}\n",
        css.display(),
        icon.display()
    ))
    .config;
    assert_eq!(c.frontend.default_locale, "de");
    assert_eq!(c.frontend.colors.get("primary").map(String::as_str), Some("#1d4ed8"));
    assert_eq!(c.frontend.colors.get("primaryText").map(String::as_str), Some("#FFF"));
    assert_eq!(c.frontend.custom_css.as_deref(), css.to_str());
    assert_eq!(c.frontend.favicon.as_deref(), icon.to_str());
    assert_eq!(ok(MINIMAL).config.frontend.default_locale, "en");

    let errs = errors(
        "issuer: http://h/\nstorage: {type: memory}\nfrontend:\n  defaultLocale: fr\n  \
         colors: {primary: 'red; } body { x', shade: '#000'}\n  customCSS: /no/such/brand.css\n  \
         favicon: /etc/passwd\n",
    );
    has(&errs, "frontend.defaultLocale", "en, de");
    has(&errs, "frontend.colors.primary", "hex colour");
    has(&errs, "frontend.colors.shade", "unknown colour");
    has(&errs, "frontend.customCSS", "no such file");
    has(&errs, "frontend.favicon", ".ico or .png or .svg");
}

#[test]
fn value_checks() {
    let errs = errors(
        "issuer: http://h/\nstorage: {type: memory}\n\
         logger: {level: loud, format: xml}\nfrontend: {theme: neon}\n\
         oauth2: {responseTypes: [code, 'token code'], grantTypes: [authorization_code, magic], \
         pkce: {codeChallengeMethodsSupported: [S512]}}\n\
         grpc: {addr: 'localhost', tlsMinVersion: '1.3', tlsMaxVersion: '1.2'}\n\
         telemetry: {http: ':99999'}\n\
         web: {http: 127.0.0.1:5556, clientRemoteIP: {trustedProxies: [10.0.0.0/33]}}\n\
         connectors: [{type: oidc, id: o, name: O, grantTypes: [client_credentials]}]\n",
    );
    has(&errs, "logger.level", "debug, info, warn or error");
    has(&errs, "logger.format", "text or json");
    has(&errs, "frontend.theme", "light, dark or auto");
    has(&errs, "oauth2.responseTypes[1]", "unsupported response type");
    has(&errs, "oauth2.grantTypes[1]", "unknown grant type \"magic\"");
    has(&errs, "oauth2.pkce.codeChallengeMethodsSupported[0]", "S256");
    has(&errs, "grpc.addr", "host:port");
    has(&errs, "grpc.tlsMinVersion", "greater than tlsMaxVersion");
    has(&errs, "telemetry.http", "port");
    has(&errs, "web.clientRemoteIP.trustedProxies[0]", "CIDR");
    has(&errs, "connectors[0].grantTypes[0]", "unknown grant type");
}

// ---------------------------------------------------------------------------------------------
// Unknown keys.

#[test]
fn unknown_keys_warn_with_suggestions() {
    let loaded = load_file(&data("unknown_keys.yaml"), &LoadOptions::default()).unwrap();
    let w = &loaded.warnings;
    has(w, "web.tlsCertt", "unknown key (did you mean tlsCert?)");
    has(w, "templates", "unknown key");
    has(w, "staticClients[0].redirectURI", "unknown key (did you mean redirectURIs?)");
    assert_eq!(w.len(), 3, "connector settings are not checked:\n{}", show(w));
    assert!(loaded.config.static_clients[0].redirect_uris.is_empty());
}

#[test]
fn unknown_keys_are_errors_in_strict_mode() {
    let text = read("unknown_keys.yaml");
    let strict = LoadOptions { strict: true, ..LoadOptions::default() };
    let errs = parse_env(&text, &[], &strict).unwrap_err().0;
    assert_eq!(errs.len(), 3, "{}", show(&errs));
    has(&errs, "staticClients[0].redirectURI", "did you mean redirectURIs?");

    let errs = parse_env(&text, &[("DEX_CONFIG_DISALLOW_UNKNOWN_FIELDS", "true")], &LoadOptions::default())
        .unwrap_err()
        .0;
    assert_eq!(errs.len(), 3, "{}", show(&errs));

    let errs = errors(&format!("strictConfig: true\n{text}"));
    assert_eq!(errs.len(), 3, "{}", show(&errs));
}

#[test]
fn dex_master_keys_are_accepted_but_ignored() {
    let loaded = ok(&with(
        "sessions: {cookieName: x}\nmfa: {authenticators: []}\n\
         staticClients: [{id: a, name: A, secret: s, redirectURIs: ['https://a/cb'], postLogoutRedirectURIs: ['https://a/'], ssoSharedWith: ['*']}]\n",
    ));
    has(&loaded.warnings, "sessions", "not supported by Oxidex yet");
    has(&loaded.warnings, "mfa", "not supported by Oxidex yet");
    has(&loaded.warnings, "staticClients[0].postLogoutRedirectURIs", "ignored");
    has(&loaded.warnings, "staticClients[0].ssoSharedWith", "ignored");
}

// ---------------------------------------------------------------------------------------------
// Go's case-insensitive keys.

#[test]
fn keys_are_case_insensitive_like_go_json() {
    let loaded = load_file(&data("case_insensitive.yaml"), &LoadOptions::default()).unwrap();
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    let c = loaded.config;
    assert_eq!(c.issuer, "http://127.0.0.1:5556/dex");
    assert!(matches!(&c.storage, StorageConfig::Sqlite { file } if file == "/var/dex/dex.db"));
    assert_eq!(c.static_clients[0].redirect_uris, ["http://127.0.0.1:5555/callback"]);
    assert_eq!(c.static_clients[0].trusted_peers, ["other"]);
    assert_eq!(c.static_passwords[0].email, "admin@example.com");
    assert_eq!(c.static_passwords[0].username, "admin");
    assert_eq!(c.static_passwords[0].user_id, USER_ID);
    assert!(c.oauth2.skip_approval_screen);
    assert!(c.oauth2.pkce_enforce);
}

#[test]
fn a_key_written_twice_in_different_cases_last_wins() {
    let loaded = ok(&format!("{MINIMAL}Issuer: http://other:5556/\n"));
    assert_eq!(loaded.config.issuer, "http://other:5556/");
    has(&loaded.warnings, "Issuer", "the last one wins");
}

// ---------------------------------------------------------------------------------------------
// Defaults.

#[test]
fn every_default() {
    let loaded = ok(MINIMAL);
    assert!(loaded.warnings.is_empty(), "{}", show(&loaded.warnings));
    let c: Config = loaded.config;
    assert_eq!(c.issuer_path, "/dex");
    assert!(matches!(c.storage, StorageConfig::Memory));
    // web
    assert_eq!(c.web.https, None);
    assert_eq!(c.web.tls_cert, None);
    assert_eq!(c.web.tls_min_version, None);
    assert!(c.web.headers.is_empty());
    assert!(c.web.allowed_origins.is_empty());
    assert_eq!(c.web.allowed_headers, ["Authorization"]);
    assert!(c.web.trusted_proxies.is_empty());
    assert_eq!(c.web.client_remote_ip_header, None);
    // grpc, telemetry
    assert_eq!(c.grpc.addr, None);
    assert!(!c.grpc.reflection);
    assert!(!c.grpc.allow_unauthenticated);
    assert_eq!(c.telemetry.http, None);
    assert!(!c.telemetry.enable_profiling);
    // expiry
    assert_eq!(c.expiry.id_tokens, Duration::from_secs(24 * 3600));
    assert_eq!(c.expiry.auth_requests, Duration::from_secs(24 * 3600));
    assert_eq!(c.expiry.device_requests, Duration::from_secs(300));
    assert!(!c.expiry.refresh_tokens.disable_rotation);
    assert_eq!(c.expiry.refresh_tokens.reuse_interval, Duration::ZERO);
    assert_eq!(c.expiry.refresh_tokens.absolute_lifetime, None);
    assert_eq!(c.expiry.refresh_tokens.valid_if_not_used_for, None);
    // logger
    assert_eq!(c.logger.level, "info");
    assert_eq!(c.logger.format, LogFormat::Text);
    assert!(c.logger.exclude_fields.is_empty());
    // oauth2
    assert_eq!(
        c.oauth2.grant_types,
        [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ]
    );
    assert_eq!(c.oauth2.response_types, ["code"]);
    assert!(!c.oauth2.skip_approval_screen);
    assert!(!c.oauth2.always_show_login_screen);
    assert_eq!(c.oauth2.password_connector, None);
    assert!(!c.oauth2.pkce_enforce);
    assert_eq!(c.oauth2.code_challenge_methods, ["S256"], "Oxidex: plain only when listed");
    // frontend
    assert_eq!(c.frontend.dir, None);
    assert_eq!(c.frontend.theme, "light");
    assert_eq!(c.frontend.issuer, "dex");
    assert_eq!(c.frontend.logo_url, None);
    assert!(c.frontend.extra.is_empty());
    // identities
    assert!(c.static_clients.is_empty());
    assert!(c.connectors.is_empty());
    assert!(!c.enable_password_db);
    assert!(c.static_passwords.is_empty());
    // signer
    assert_eq!(c.signer.algorithm, SigningAlg::RS256);
    assert_eq!(c.signer.rotation_period, Duration::from_secs(6 * 3600));
}

#[test]
fn postgres_defaults_and_host_port() {
    let c = ok("issuer: http://h/\nstorage: {type: postgres, config: {host: 'db:6432', database: dex}}\nweb: {http: ':5556'}\n")
        .config;
    let StorageConfig::Postgres(pg) = &c.storage else { panic!() };
    assert_eq!((pg.host.as_str(), pg.port), ("db", 6432));
    assert_eq!(pg.ssl_mode, "verify-full");
    assert_eq!((pg.max_open_conns, pg.max_idle_conns, pg.connection_timeout_secs), (0, 0, 0));
    let c = ok("issuer: http://h/\nstorage: {type: postgres, config: {host: /run/postgresql}}\nweb: {http: ':5556'}\n")
        .config;
    let StorageConfig::Postgres(pg) = &c.storage else { panic!() };
    assert_eq!(pg.host, "/run/postgresql");
}

#[test]
fn grant_type_resolution() {
    let grants = |extra: &str| ok(&with(extra)).config.oauth2.grant_types;
    // Only token-bearing response types enable implicit.
    assert!(!grants("oauth2: {responseTypes: [code]}").contains(&"implicit".to_owned()));
    assert!(grants("oauth2: {responseTypes: [code, id_token]}").contains(&"implicit".to_owned()));
    assert!(grants("oauth2: {responseTypes: ['code token']}").contains(&"implicit".to_owned()));
    // client_credentials only when listed (or with Dex's flag).
    assert!(!grants("").contains(&"client_credentials".to_owned()));
    let flagged = ok_env(MINIMAL, &[("DEX_CLIENT_CREDENTIAL_GRANT_ENABLED_BY_DEFAULT", "true")]).config;
    assert!(flagged.oauth2.grant_types.contains(&"client_credentials".to_owned()));
    // A listed grant that cannot work is dropped with a warning.
    let loaded = ok(&with("oauth2: {grantTypes: [password, implicit, refresh_token]}"));
    assert_eq!(loaded.config.oauth2.grant_types, ["refresh_token"]);
    has(&loaded.warnings, "oauth2.grantTypes[0]", "passwordConnector");
    has(&loaded.warnings, "oauth2.grantTypes[1]", "token response type");
}

#[test]
fn cli_overrides_apply_before_validation() {
    let yaml = "issuer: http://h/\nstorage: {type: memory}\n";
    assert!(parse_env(yaml, &[], &LoadOptions::default()).is_err());
    let opts = LoadOptions {
        overrides: Overrides { web_http: Some("127.0.0.1:1".into()), ..Overrides::default() },
        ..LoadOptions::default()
    };
    let c = parse_env(yaml, &[], &opts).unwrap().config;
    assert_eq!(c.web.http.as_deref(), Some("127.0.0.1:1"));
}

#[test]
fn frontend_dir_falls_back_to_env_and_legacy_themes_map_to_light() {
    let c = ok_env(&with("frontend: {theme: coreos}"), &[("DEX_FRONTEND_DIR", "/srv/web")]).config;
    assert_eq!(c.frontend.theme, "light");
    assert_eq!(c.frontend.dir.as_deref(), Some("/srv/web"));
    let c = ok(&with("frontend: {theme: corp, dir: /srv/web, extra: {tagline: hi}}")).config;
    assert_eq!(c.frontend.theme, "corp");
    assert_eq!(c.frontend.extra.get("tagline").map(String::as_str), Some("hi"));
}

// ---------------------------------------------------------------------------------------------
// Hostile input: never a panic, always a problem.

#[test]
fn hostile_inputs_are_problems_not_panics() {
    let long_key = format!("{}: 1\n", "k".repeat(10_000));
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<String> = vec![
        String::new(),
        "   \n# only a comment\n".into(),
        "42".into(),
        "just a string".into(),
        "- a\n- b\n".into(),
        "~".into(),
        "issuer: [1, 2]\nstorage: 3\nweb: x\ngrpc: []\nexpiry: true\nlogger: 1\noauth2: []\nfrontend: 2\n\
         staticClients: {a: b}\nconnectors: 1\nenablePasswordDB: maybe\nstaticPasswords: x\nsigner: []\ntelemetry: 1\n"
            .into(),
        "staticClients: [1, 'x', [], ~]\nconnectors: [1, ~]\nstaticPasswords: [[]]\n".into(),
        "issuer: http://h/\nstorage: {type: postgres, config: {port: 1e400, maxOpenConns: -1, connectionTimeout: 99999999999999999999999}}\n".into(),
        "issuer: 1e400\nweb: {http: 18446744073709551616}\n".into(),
        "{[1,2]: x, {a: b}: y, 1: z, true: w, ~: v}".into(),
        "a: &x [*x]".into(),
        "a: !!binary aGVsbG8=\nissuer: !custom http://h/\n".into(),
        "<<: {issuer: http://h/}\n<<: 3\n".into(),
        "---\na: 1\n---\nb: 2\n".into(),
        "issuer: \"unterminated\n".into(),
        "\t- bad indent".into(),
        "issuer: http://h/\u{0}\n".into(),
        "issuer: 'http://h/é'\nexpiry: {idTokens: 'é1h'}\nstorage: {type: 'ßqlite'}\n".into(),
        long_key,
        deep,
        "connectors: [{type: t, id: i, name: n, config: {a: .nan, b: [.inf], c: !tag {d: 1}}}]\n".into(),
    ];
    for yaml in &cases {
        let res = parse_env(yaml, &[], &LoadOptions::default());
        let errs = res.expect_err(&format!("expected problems for {yaml:?}")).0;
        assert!(!errs.is_empty());
        for p in &errs {
            assert!(!p.message.is_empty(), "empty message for {yaml:?}");
            assert!(p.path.len() < 200, "path too long for {yaml:?}: {}", p.path);
        }
    }
}

#[test]
fn file_errors_are_problems() {
    let missing = load_file(Path::new("/nonexistent/dex/config.yaml"), &LoadOptions::default()).unwrap_err();
    assert!(missing.0[0].message.contains("cannot read the config file"), "{:?}", missing.0);

    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("binary.yaml");
    std::fs::write(&binary, b"issuer: \xff\xfe\n").unwrap();
    let errs = load_file(&binary, &LoadOptions::default()).unwrap_err().0;
    assert!(errs[0].message.contains("not UTF-8"), "{errs:?}");

    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"conf\xff.yaml"));
        let errs = load_file(&odd, &LoadOptions::default()).unwrap_err().0;
        assert!(errs[0].message.contains("cannot read"), "{errs:?}");
        std::fs::write(&odd, MINIMAL).unwrap();
        assert!(load_file(&odd, &LoadOptions::default()).is_ok());
    }
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let yaml = "issuer: http://h/\nstorage: {type: memory}\nweb: {http: ':5556'}\n\
                x-client: &base {name: Base, secret: s, redirectURIs: ['https://a/cb']}\n\
                staticClients:\n- <<: *base\n  id: one\n- <<: *base\n  id: two\n  name: Two\n";
    let loaded = ok(yaml);
    let c = loaded.config;
    assert_eq!(c.static_clients[0].name, "Base");
    assert_eq!(c.static_clients[1].name, "Two");
    assert_eq!(c.static_clients[1].redirect_uris, ["https://a/cb"]);
    has(&loaded.warnings, "x-client", "unknown key");
}

#[test]
fn mutated_files_never_panic() {
    // A tiny deterministic generator (xorshift) keeps the test reproducible without a dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet: Vec<char> = ":-[]{}$ \n\t'\"#0.9aZ!&*|>?,%@`é~\\".chars().collect();
    let env = |name: &str| Some(format!("v-{name}-$X"));
    for file in
        ["sqlite3.yaml", "memory.yaml", "postgres.yaml", "five_mistakes.yaml", "case_insensitive.yaml"]
    {
        let original: Vec<char> = read(file).chars().collect();
        for _ in 0..300 {
            let mut text = original.clone();
            for _ in 0..(next() % 4 + 1) {
                if text.is_empty() {
                    break;
                }
                let at = (next() % text.len() as u64) as usize;
                let len = ((next() % 8) as usize).min(text.len() - at);
                let with: Vec<char> =
                    (0..next() % 4).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect();
                text.splice(at..at + len, with);
            }
            let yaml: String = text.into_iter().collect();
            let strict = LoadOptions { strict: next() % 2 == 0, ..LoadOptions::default() };
            // Either outcome is fine; a panic fails the test.
            if let Err(e) = parse_str(&yaml, &env, &strict) {
                assert!(!e.0.is_empty());
            }
        }
    }
}
