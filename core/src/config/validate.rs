//! Validation: the raw tree in, the typed [`Config`] out, every problem recorded on the way.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_yaml_ng::Value;

use super::identity;
use super::raw::{Ctx, Obj};
use super::storage;
use super::{
    Config, ExpiryConfig, FrontendConfig, GrpcConfig, LogFormat, LoggerConfig, OAuth2Config, Overrides,
    RefreshTokenPolicy, SignerConfig, TelemetryConfig, WebConfig,
};
use crate::storage::SigningAlg;

const TOP_KEYS: &[&str] = &[
    "issuer",
    "storage",
    "web",
    "telemetry",
    "grpc",
    "expiry",
    "logger",
    "oauth2",
    "frontend",
    "staticClients",
    "connectors",
    "enablePasswordDB",
    "staticPasswords",
    "signer",
    // Dex master sections Oxidex does not implement yet.
    "sessions",
    "mfa",
    // Oxidex: unknown keys are errors.
    "strictConfig",
];
const WEB_KEYS: &[&str] = &[
    "http",
    "https",
    "tlsCert",
    "tlsKey",
    "tlsMinVersion",
    "tlsMaxVersion",
    "headers",
    "allowedOrigins",
    "allowedHeaders",
    "clientRemoteIP",
];
const REMOTE_IP_KEYS: &[&str] = &["header", "trustedProxies"];
const GRPC_KEYS: &[&str] = &[
    "addr",
    "tlsCert",
    "tlsKey",
    "tlsClientCA",
    "tlsMinVersion",
    "tlsMaxVersion",
    "reflection",
    "allowUnauthenticated",
];
const TELEMETRY_KEYS: &[&str] = &["http", "enableProfiling"];
const EXPIRY_KEYS: &[&str] = &["idTokens", "authRequests", "deviceRequests", "signingKeys", "refreshTokens"];
const REFRESH_KEYS: &[&str] = &["disableRotation", "reuseInterval", "absoluteLifetime", "validIfNotUsedFor"];
const LOGGER_KEYS: &[&str] = &["level", "format", "excludeFields"];
const OAUTH2_KEYS: &[&str] = &[
    "grantTypes",
    "responseTypes",
    "skipApprovalScreen",
    "alwaysShowLoginScreen",
    "passwordConnector",
    "pkce",
];
const PKCE_KEYS: &[&str] = &["enforce", "codeChallengeMethodsSupported"];
const FRONTEND_KEYS: &[&str] =
    &["dir", "theme", "issuer", "logoURL", "extra", "defaultLocale", "colors", "customCSS", "favicon"];

/// `frontend.colors` keys (the login UI maps each to a CSS variable).
pub const FRONTEND_COLOR_KEYS: &[&str] =
    &["primary", "primaryText", "background", "surface", "text", "mutedText", "link", "error", "focus"];

/// The languages of the login UI's catalogs (`frontend.defaultLocale`).
pub const FRONTEND_LOCALES: &[&str] = &["en", "de"];

/// A CSS hex colour: `#rgb`, `#rgba`, `#rrggbb` or `#rrggbbaa`.
fn is_hex_colour(v: &str) -> bool {
    v.strip_prefix('#')
        .is_some_and(|h| matches!(h.len(), 3 | 4 | 6 | 8) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}
const SIGNER_KEYS: &[&str] = &["type", "config"];
const LOCAL_SIGNER_KEYS: &[&str] = &["keysRotationPeriod", "algorithm"];

/// Headers Dex knows by name under `web.headers`; other names are passed through as written.
const KNOWN_HEADERS: &[&str] = &[
    "Content-Security-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "X-XSS-Protection",
    "Strict-Transport-Security",
];

/// The response types Dex accepts in `oauth2.responseTypes`.
const RESPONSE_TYPES: &[&str] =
    &["code", "token", "id_token", "code token", "code id_token", "id_token token", "code id_token token"];

const GRANT_AUTH_CODE: &str = "authorization_code";
const GRANT_REFRESH: &str = "refresh_token";
const GRANT_IMPLICIT: &str = "implicit";
const GRANT_PASSWORD: &str = "password";
const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const GRANT_DEVICE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ALL_GRANTS: &[&str] = &[
    GRANT_AUTH_CODE,
    GRANT_REFRESH,
    GRANT_IMPLICIT,
    GRANT_PASSWORD,
    GRANT_CLIENT_CREDENTIALS,
    GRANT_DEVICE,
    GRANT_TOKEN_EXCHANGE,
];

/// The result of validation: the config (meaningful only without errors) and whether the file
/// asked for strict checking.
pub(crate) struct Validated {
    pub config: Option<Config>,
    pub strict: bool,
}

/// Validates the whole file.
pub(crate) fn validate(ctx: &mut Ctx<'_>, root: &Value, overrides: &Overrides) -> Validated {
    let Some(top) = Obj::new(ctx, "", root, TOP_KEYS) else {
        return Validated { config: None, strict: false };
    };
    if matches!(root, Value::Null) {
        ctx.error(
            "",
            "the file is empty; start from Dex's config.yaml.dist (issuer, storage and web are required)",
        );
    }
    let strict = top.flag(ctx, "strictConfig");
    let expand = ctx.flag("DEX_EXPAND_ENV", true);

    let (issuer, issuer_path) = issuer(ctx, &top);
    let storage = storage::storage(ctx, &top, expand);
    let web = web(ctx, &top, overrides);
    let grpc = grpc(ctx, &top, overrides);
    let telemetry = telemetry(ctx, &top, overrides);
    let logger = logger(ctx, &top);
    let frontend = frontend(ctx, &top);
    let enable_password_db = top.flag(ctx, "enablePasswordDB");
    let static_clients = identity::static_clients(ctx, &top);
    let connectors = identity::connectors(ctx, &top, expand);
    let static_passwords = identity::static_passwords(ctx, &top, enable_password_db);
    identity::cross_check(ctx, &top, &static_clients, &connectors, enable_password_db);
    let oauth2 = oauth2(ctx, &top, &connectors, enable_password_db);
    let (expiry, signing_keys) = expiry(ctx, &top);
    let signer = signer(ctx, &top, signing_keys, expand);
    for key in ["sessions", "mfa"] {
        if top.has(key) {
            ctx.warn(&top.key_path(key), "not supported by Oxidex yet; the section is ignored");
        }
    }

    let config = Config {
        issuer,
        issuer_path,
        storage,
        web,
        grpc,
        telemetry,
        expiry,
        logger,
        oauth2,
        frontend,
        static_clients,
        connectors,
        enable_password_db,
        static_passwords,
        signer,
    };
    Validated { config: Some(config), strict }
}

/// `issuer`: an absolute http(s) URL without query or fragment. Returns it and its path.
fn issuer(ctx: &mut Ctx<'_>, top: &Obj<'_>) -> (String, String) {
    let path = top.key_path("issuer");
    let required = "required; set the public URL of this server, e.g. `issuer: https://dex.example.com/dex`";
    let Some(issuer) = top.required(ctx, "issuer", required) else {
        return (String::new(), String::new());
    };
    let url = match url::Url::parse(&issuer) {
        Ok(u) => u,
        Err(_) => {
            ctx.error(&path, "not an absolute URL; use a full URL such as https://dex.example.com/dex");
            return (issuer, String::new());
        }
    };
    let mut ok = true;
    if url.scheme() != "https" && url.scheme() != "http" {
        ctx.error(&path, "must use https (or http for local testing), e.g. https://dex.example.com/dex");
        ok = false;
    }
    if url.host_str().is_none_or(str::is_empty) {
        ctx.error(&path, "has no host; use a full URL such as https://dex.example.com/dex");
        ok = false;
    }
    if url.query().is_some() || url.fragment().is_some() {
        ctx.error(&path, "must not have a query (?...) or fragment (#...); remove them");
        ok = false;
    }
    if !url.username().is_empty() || url.password().is_some() {
        ctx.error(&path, "must not contain user credentials; remove the user:password@ part");
        ok = false;
    }
    let issuer_path = if ok { url.path().trim_end_matches('/').to_owned() } else { String::new() };
    (issuer, issuer_path)
}

/// Checks a listen address (`host:port`, `:port`, `[v6]:port`).
fn check_addr(ctx: &mut Ctx<'_>, path: &str, addr: &str) {
    let port = match addr.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') || (host.starts_with('[') && host.ends_with(']')) => port,
        _ => {
            ctx.error(path, "not a listen address; use host:port such as 0.0.0.0:5556 or 127.0.0.1:5556");
            return;
        }
    };
    if port.parse::<u16>().is_err() {
        ctx.error(path, "the port is not a number from 0 to 65535; use host:port such as 0.0.0.0:5556");
    }
}

/// Checks `tlsMinVersion` / `tlsMaxVersion` of a section.
fn tls_versions(ctx: &mut Ctx<'_>, o: &Obj<'_>) -> (Option<String>, Option<String>) {
    let get = |ctx: &mut Ctx<'_>, key: &str| {
        let v = o.nonempty(ctx, key)?;
        if v == "1.2" || v == "1.3" {
            Some(v)
        } else {
            ctx.error(&o.key_path(key), "supported TLS versions are 1.2 and 1.3");
            None
        }
    };
    let min = get(ctx, "tlsMinVersion");
    let max = get(ctx, "tlsMaxVersion");
    if let (Some(min), Some(max)) = (&min, &max)
        && min > max
    {
        ctx.error(
            &o.key_path("tlsMinVersion"),
            "greater than tlsMaxVersion; lower it or raise tlsMaxVersion",
        );
    }
    (min, max)
}

fn web(ctx: &mut Ctx<'_>, top: &Obj<'_>, overrides: &Overrides) -> WebConfig {
    let mut web = WebConfig { allowed_headers: vec!["Authorization".to_owned()], ..WebConfig::default() };
    let obj = top.child(ctx, "web", WEB_KEYS);
    if let Some(o) = &obj {
        web.http = o.nonempty(ctx, "http");
        web.https = o.nonempty(ctx, "https");
        for (key, addr) in [("http", &web.http), ("https", &web.https)] {
            if let Some(addr) = addr {
                check_addr(ctx, &o.key_path(key), addr);
            }
        }
        web.tls_cert = o.nonempty(ctx, "tlsCert");
        web.tls_key = o.nonempty(ctx, "tlsKey");
        (web.tls_min_version, web.tls_max_version) = tls_versions(ctx, o);
        for (name, value) in o.string_map(ctx, "headers") {
            let name = KNOWN_HEADERS
                .iter()
                .find(|h| h.eq_ignore_ascii_case(&name))
                .map_or(name, |h| (*h).to_owned());
            if !value.is_empty() {
                web.headers.insert(name, value);
            }
        }
        web.allowed_origins = o.strings(ctx, "allowedOrigins");
        if o.has("allowedHeaders") {
            web.allowed_headers = o.strings(ctx, "allowedHeaders");
        }
        if let Some(rip) = o.child(ctx, "clientRemoteIP", REMOTE_IP_KEYS) {
            web.client_remote_ip_header = rip.nonempty(ctx, "header");
            web.trusted_proxies = rip.strings(ctx, "trustedProxies");
            let tpath = rip.key_path("trustedProxies");
            for (i, cidr) in web.trusted_proxies.iter().enumerate() {
                if !is_cidr(cidr) {
                    ctx.error(
                        &super::raw::index(&tpath, i),
                        "not an IP network; use CIDR notation such as 10.0.0.0/8 or 192.168.1.10/32",
                    );
                }
            }
        }
    }
    if let Some(a) = &overrides.web_http {
        web.http = Some(a.clone());
    }
    if let Some(a) = &overrides.web_https {
        web.https = Some(a.clone());
    }
    let key = |k: &str| obj.as_ref().map_or_else(|| format!("web.{k}"), |o| o.key_path(k));
    let web_malformed = obj.is_none() && top.has("web");
    if web.http.is_none() && web.https.is_none() && !web_malformed {
        ctx.error(
            &top.key_path("web"),
            "no listener; set web.http (e.g. 0.0.0.0:5556) or web.https with tlsCert and tlsKey",
        );
    }
    if web.https.is_some() {
        if web.tls_cert.is_none() {
            ctx.error(&key("tlsCert"), "required with web.https; set the path of the certificate (PEM)");
        }
        if web.tls_key.is_none() {
            ctx.error(&key("tlsKey"), "required with web.https; set the path of the private key (PEM)");
        }
    }
    web
}

fn is_cidr(s: &str) -> bool {
    let (ip, bits) = match s.split_once('/') {
        Some((ip, bits)) => (ip, Some(bits)),
        None => (s, None),
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else { return false };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.is_none_or(|b| b.parse::<u8>().is_ok_and(|b| b <= max))
}

fn grpc(ctx: &mut Ctx<'_>, top: &Obj<'_>, overrides: &Overrides) -> GrpcConfig {
    let mut g = GrpcConfig::default();
    let obj = top.child(ctx, "grpc", GRPC_KEYS);
    if let Some(o) = &obj {
        g.addr = o.nonempty(ctx, "addr");
        g.tls_cert = o.nonempty(ctx, "tlsCert");
        g.tls_key = o.nonempty(ctx, "tlsKey");
        g.tls_client_ca = o.nonempty(ctx, "tlsClientCA");
        (g.tls_min_version, g.tls_max_version) = tls_versions(ctx, o);
        g.reflection = o.flag(ctx, "reflection");
        g.allow_unauthenticated = o.flag(ctx, "allowUnauthenticated");
    }
    if let Some(a) = &overrides.grpc_addr {
        g.addr = Some(a.clone());
    }
    let key = |k: &str| obj.as_ref().map_or_else(|| format!("grpc.{k}"), |o| o.key_path(k));
    if let Some(addr) = &g.addr {
        check_addr(ctx, &key("addr"), addr);
    } else if g.tls_cert.is_some() || g.tls_key.is_some() || g.tls_client_ca.is_some() {
        ctx.error(&key("addr"), "required when gRPC TLS files are set; set e.g. `addr: 127.0.0.1:5557`");
    }
    if g.tls_cert.is_some() != g.tls_key.is_some() {
        let missing = if g.tls_cert.is_none() { "tlsCert" } else { "tlsKey" };
        ctx.error(&key(missing), "gRPC TLS needs both tlsCert and tlsKey; set the missing one");
    }
    if g.tls_client_ca.is_some() && g.tls_cert.is_none() {
        ctx.error(&key("tlsClientCA"), "client certificates need server TLS; set tlsCert and tlsKey too");
    }
    g
}

fn telemetry(ctx: &mut Ctx<'_>, top: &Obj<'_>, overrides: &Overrides) -> TelemetryConfig {
    let mut t = TelemetryConfig::default();
    let obj = top.child(ctx, "telemetry", TELEMETRY_KEYS);
    if let Some(o) = &obj {
        t.http = o.nonempty(ctx, "http");
        t.enable_profiling = o.flag(ctx, "enableProfiling");
        if t.enable_profiling {
            ctx.warn(&o.key_path("enableProfiling"), "accepted for compatibility; Oxidex serves no profiler");
        }
    }
    if let Some(a) = &overrides.telemetry_http {
        t.http = Some(a.clone());
    }
    if let Some(addr) = &t.http {
        let path = obj.as_ref().map_or_else(|| "telemetry.http".to_owned(), |o| o.key_path("http"));
        check_addr(ctx, &path, addr);
    }
    t
}

/// A duration that must be longer than zero.
fn positive(ctx: &mut Ctx<'_>, o: &Obj<'_>, key: &str) -> Option<Duration> {
    let d = o.duration(ctx, key)?;
    if d.is_zero() {
        ctx.error(&o.key_path(key), "must be longer than zero, e.g. 24h");
        return None;
    }
    Some(d)
}

/// `expiry`; also returns the deprecated `expiry.signingKeys`.
fn expiry(ctx: &mut Ctx<'_>, top: &Obj<'_>) -> (ExpiryConfig, Option<Duration>) {
    let mut e = ExpiryConfig::default();
    let Some(o) = top.child(ctx, "expiry", EXPIRY_KEYS) else { return (e, None) };
    if let Some(d) = positive(ctx, &o, "idTokens") {
        e.id_tokens = d;
    }
    if let Some(d) = positive(ctx, &o, "authRequests") {
        e.auth_requests = d;
    }
    if let Some(d) = positive(ctx, &o, "deviceRequests") {
        e.device_requests = d;
    }
    let signing_keys = positive(ctx, &o, "signingKeys");
    if o.has("signingKeys") {
        ctx.warn(&o.key_path("signingKeys"), "deprecated; use signer.config.keysRotationPeriod instead");
    }
    if let Some(r) = o.child(ctx, "refreshTokens", REFRESH_KEYS) {
        e.refresh_tokens = RefreshTokenPolicy {
            disable_rotation: r.flag(ctx, "disableRotation"),
            reuse_interval: r.duration(ctx, "reuseInterval").unwrap_or(Duration::ZERO),
            // Zero means unlimited, as in Dex.
            absolute_lifetime: r.duration(ctx, "absoluteLifetime").filter(|d| !d.is_zero()),
            valid_if_not_used_for: r.duration(ctx, "validIfNotUsedFor").filter(|d| !d.is_zero()),
        };
    }
    (e, signing_keys)
}

fn logger(ctx: &mut Ctx<'_>, top: &Obj<'_>) -> LoggerConfig {
    let mut l = LoggerConfig::default();
    let Some(o) = top.child(ctx, "logger", LOGGER_KEYS) else { return l };
    if let Some(level) = o.nonempty(ctx, "level") {
        match level.to_ascii_lowercase().as_str() {
            "debug" => l.level = "debug".into(),
            "info" => l.level = "info".into(),
            "warn" | "warning" => l.level = "warn".into(),
            "error" => l.level = "error".into(),
            _ => ctx.error(&o.key_path("level"), "unknown log level; use debug, info, warn or error"),
        }
    }
    if let Some(format) = o.nonempty(ctx, "format") {
        match format.to_ascii_lowercase().as_str() {
            "text" => l.format = LogFormat::Text,
            "json" => l.format = LogFormat::Json,
            _ => ctx.error(&o.key_path("format"), "unknown log format; use text or json"),
        }
    }
    l.exclude_fields = o.strings(ctx, "excludeFields");
    l
}

fn frontend(ctx: &mut Ctx<'_>, top: &Obj<'_>) -> FrontendConfig {
    let mut f = FrontendConfig {
        theme: "light".into(),
        issuer: "dex".into(),
        default_locale: "en".into(),
        ..FrontendConfig::default()
    };
    let obj = top.child(ctx, "frontend", FRONTEND_KEYS);
    if let Some(o) = &obj {
        f.dir = o.nonempty(ctx, "dir");
        if let Some(issuer) = o.nonempty(ctx, "issuer") {
            f.issuer = issuer;
        }
        f.logo_url = o.nonempty(ctx, "logoURL");
        f.extra = o.string_map(ctx, "extra");
        if let Some(locale) = o.nonempty(ctx, "defaultLocale") {
            let primary = locale.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
            if FRONTEND_LOCALES.contains(&primary.as_str()) {
                f.default_locale = primary;
            } else {
                ctx.error(
                    &o.key_path("defaultLocale"),
                    format!("no catalog for this language; use one of {}", FRONTEND_LOCALES.join(", ")),
                );
            }
        }
        let colors = o.string_map(ctx, "colors");
        let colors_path = o.key_path("colors");
        for (key, value) in colors {
            let path = format!("{colors_path}.{key}");
            if !FRONTEND_COLOR_KEYS.contains(&key.as_str()) {
                ctx.error(&path, format!("unknown colour; use {}", FRONTEND_COLOR_KEYS.join(", ")));
            } else if !is_hex_colour(value.trim()) {
                ctx.error(&path, "must be a hex colour like #1d4ed8");
            } else {
                f.colors.insert(key, value.trim().to_owned());
            }
        }
        for (key, exts) in [("customCSS", &["css"][..]), ("favicon", &["ico", "png", "svg"][..])] {
            let Some(file) = o.nonempty(ctx, key) else { continue };
            let ext = file.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
            if !exts.contains(&ext.as_str()) {
                ctx.error(&o.key_path(key), format!("must be a .{} file", exts.join(" or .")));
            } else if !std::path::Path::new(&file).is_file() {
                ctx.error(&o.key_path(key), "no such file");
            } else if key == "customCSS" {
                f.custom_css = Some(file);
            } else {
                f.favicon = Some(file);
            }
        }
    }
    if f.dir.is_none() {
        f.dir = ctx.var("DEX_FRONTEND_DIR").filter(|d| !d.is_empty());
    }
    if let Some(o) = &obj
        && let Some(theme) = o.nonempty(ctx, "theme")
    {
        match theme.as_str() {
            "light" | "dark" | "auto" => f.theme = theme,
            "coreos" | "tectonic" => f.theme = "light".into(),
            // A custom theme lives in `<dir>/themes/<name>`.
            _ if f.dir.is_some() => f.theme = theme,
            _ => ctx.error(
                &o.key_path("theme"),
                "unknown theme; use light, dark or auto (custom themes need frontend.dir)",
            ),
        }
    }
    f
}

fn oauth2(
    ctx: &mut Ctx<'_>,
    top: &Obj<'_>,
    connectors: &[crate::storage::Connector],
    enable_password_db: bool,
) -> OAuth2Config {
    let mut c = OAuth2Config { code_challenge_methods: vec!["S256".into()], ..OAuth2Config::default() };
    let obj = top.child(ctx, "oauth2", OAUTH2_KEYS);
    let mut listed_grants: Vec<(String, String)> = Vec::new();
    let mut response_types: BTreeSet<String> = BTreeSet::new();
    if let Some(o) = &obj {
        let rpath = o.key_path("responseTypes");
        for (i, rt) in o.strings(ctx, "responseTypes").into_iter().enumerate() {
            if RESPONSE_TYPES.contains(&rt.as_str()) {
                response_types.insert(rt);
            } else {
                let shown: String = rt.chars().take(40).collect();
                ctx.error(
                    &super::raw::index(&rpath, i),
                    format!("unsupported response type {shown:?}; use any of: {}", RESPONSE_TYPES.join(", ")),
                );
            }
        }
        let gpath = o.key_path("grantTypes");
        for (i, g) in o.strings(ctx, "grantTypes").into_iter().enumerate() {
            let path = super::raw::index(&gpath, i);
            if ALL_GRANTS.contains(&g.as_str()) {
                listed_grants.push((path, g));
            } else {
                let shown: String = g.chars().take(64).collect();
                ctx.error(
                    &path,
                    format!("unknown grant type {shown:?}; use any of: {}", ALL_GRANTS.join(", ")),
                );
            }
        }
        c.skip_approval_screen = o.flag(ctx, "skipApprovalScreen");
        c.always_show_login_screen = o.flag(ctx, "alwaysShowLoginScreen");
        c.password_connector = o.nonempty(ctx, "passwordConnector");
        if let Some(pc) = &c.password_connector {
            let exists =
                connectors.iter().any(|conn| &conn.id == pc) || (pc == "local" && enable_password_db);
            if !exists {
                let hint = if pc == "local" {
                    "add `enablePasswordDB: true` to use the password database".to_owned()
                } else {
                    "name the id of a connector in `connectors` (or `local` with enablePasswordDB)".to_owned()
                };
                ctx.error(&o.key_path("passwordConnector"), format!("no such connector; {hint}"));
            }
        }
        if let Some(p) = o.child(ctx, "pkce", PKCE_KEYS) {
            c.pkce_enforce = p.flag(ctx, "enforce");
            if p.has("codeChallengeMethodsSupported") {
                let mpath = p.key_path("codeChallengeMethodsSupported");
                let mut methods = Vec::new();
                for (i, m) in p.strings(ctx, "codeChallengeMethodsSupported").into_iter().enumerate() {
                    if m == "S256" || m == "plain" {
                        if !methods.contains(&m) {
                            methods.push(m);
                        }
                    } else {
                        ctx.error(
                            &super::raw::index(&mpath, i),
                            "unsupported method; use S256 (and plain only if needed)",
                        );
                    }
                }
                if methods.is_empty() {
                    ctx.error(&mpath, "empty; list at least S256");
                }
                c.code_challenge_methods = methods;
            }
        }
    }
    if response_types.is_empty() {
        response_types.insert("code".into());
    }
    let implicit_possible = response_types.iter().any(|rt| rt != "code");
    let password_possible = c.password_connector.is_some();

    let mut grants: BTreeSet<String> = BTreeSet::new();
    if listed_grants.is_empty() {
        grants.extend([GRANT_AUTH_CODE, GRANT_REFRESH, GRANT_DEVICE, GRANT_TOKEN_EXCHANGE].map(String::from));
        if implicit_possible {
            grants.insert(GRANT_IMPLICIT.into());
        }
        if password_possible {
            grants.insert(GRANT_PASSWORD.into());
        }
        if ctx.flag("DEX_CLIENT_CREDENTIAL_GRANT_ENABLED_BY_DEFAULT", false) {
            grants.insert(GRANT_CLIENT_CREDENTIALS.into());
        }
    } else {
        for (path, g) in listed_grants {
            if g == GRANT_IMPLICIT && !implicit_possible {
                ctx.warn(&path, "ignored: implicit needs a token response type in oauth2.responseTypes");
            } else if g == GRANT_PASSWORD && !password_possible {
                ctx.warn(&path, "ignored: the password grant needs oauth2.passwordConnector");
            } else {
                grants.insert(g);
            }
        }
    }
    c.grant_types = grants.into_iter().collect();
    c.response_types = response_types.into_iter().collect();
    c
}

fn signer(ctx: &mut Ctx<'_>, top: &Obj<'_>, signing_keys: Option<Duration>, expand: bool) -> SignerConfig {
    let mut s = SignerConfig::default();
    if let Some(d) = signing_keys {
        s.rotation_period = d;
    }
    let Some(o) = top.child(ctx, "signer", SIGNER_KEYS) else { return s };
    let type_path = o.key_path("type");
    match o.nonempty(ctx, "type").as_deref() {
        None | Some("local") => {}
        Some("vault") => {
            ctx.error(&type_path, "the vault signer is not supported yet by Oxidex; use `type: local`");
            return s;
        }
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            ctx.error(&type_path, format!("unknown signer type {shown:?}; use local"));
            return s;
        }
    }
    let Some((cpath, v)) = o.get("config") else { return s };
    let expanded = if expand { super::expand::expand_value(v, ctx.env) } else { v.clone() };
    let Some(c) = Obj::new(ctx, &cpath, &expanded, LOCAL_SIGNER_KEYS) else { return s };
    if let Some(d) = positive(ctx, &c, "keysRotationPeriod") {
        if signing_keys.is_some_and(|old| old != d) {
            ctx.warn(
                &c.key_path("keysRotationPeriod"),
                "differs from the deprecated expiry.signingKeys; keysRotationPeriod wins",
            );
        }
        s.rotation_period = d;
    }
    if let Some(alg) = c.nonempty(ctx, "algorithm") {
        match alg.to_ascii_uppercase().as_str() {
            "RS256" => s.algorithm = SigningAlg::RS256,
            "ES256" => s.algorithm = SigningAlg::ES256,
            _ => ctx.error(&c.key_path("algorithm"), "unsupported algorithm; use RS256 or ES256"),
        }
    }
    s
}
