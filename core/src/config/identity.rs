//! `staticClients`, `connectors` and `staticPasswords`: the read-only overlays over storage.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use serde_yaml_ng::Value;

use super::expand::expand_value;
use super::raw::{Ctx, Obj, kind, scalar_text, untag};
use crate::storage::{Client, Connector, Password};

const CLIENT_KEYS: &[&str] = &[
    "id",
    "idEnv",
    "secret",
    "secretEnv",
    "redirectURIs",
    "trustedPeers",
    "public",
    "name",
    "logoURL",
    "allowedConnectors",
    // Dex master keys that Oxidex accepts but does not act on yet.
    "postLogoutRedirectURIs",
    "backchannelLogoutURI",
    "refreshTokenLifetime",
    "mfaChain",
    "ssoSharedWith",
    "clientCredentialsClaims",
];
const CLIENT_IGNORED: &[&str] =
    &["postLogoutRedirectURIs", "backchannelLogoutURI", "refreshTokenLifetime", "mfaChain", "ssoSharedWith"];
const CLIENT_CREDENTIALS_CLAIMS_KEYS: &[&str] = &["groups"];
const CONNECTOR_KEYS: &[&str] = &["type", "id", "name", "config", "grantTypes"];
const PASSWORD_KEYS: &[&str] = &[
    "email",
    "hash",
    "hashFromEnv",
    "username",
    "userID",
    "name",
    "preferredUsername",
    "emailVerified",
    "groups",
];

/// The out-of-band redirect URI of native clients.
pub(crate) const OOB_URI: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Grant types a connector may be restricted to (`connectors[].grantTypes`).
pub(crate) const CONNECTOR_GRANTS: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "implicit",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
];

/// Reads `key` (a plain value) or `key_env` (the name of an environment variable holding it).
/// Both at once is an error. `what` names the value in messages; values are never echoed.
fn value_or_env(ctx: &mut Ctx<'_>, o: &Obj<'_>, key: &str, key_env: &str, what: &str) -> Option<String> {
    let direct = o.nonempty(ctx, key);
    let var = o.nonempty(ctx, key_env);
    match (direct, var) {
        (Some(_), Some(_)) => {
            ctx.error(
                &o.key_path(key_env),
                format!("{key} and {key_env} exclude each other; keep only one of them"),
            );
            None
        }
        (Some(v), None) => Some(v),
        (None, Some(name)) => {
            let path = o.key_path(key_env);
            match ctx.var(&name).filter(|v| !v.is_empty()) {
                Some(v) => Some(v),
                None => {
                    let shown: String = name.chars().take(64).collect();
                    ctx.error(
                        &path,
                        format!("environment variable {shown} is not set or empty; set it to the {what}"),
                    );
                    None
                }
            }
        }
        (None, None) => None,
    }
}

/// Whether a redirect URI is acceptable in a static client.
fn redirect_uri_ok(uri: &str) -> bool {
    // `/device/callback` is how Dex's own examples register device-flow clients.
    uri == OOB_URI
        || uri == "/device/callback"
        || url::Url::parse(uri).is_ok_and(|u| !u.cannot_be_a_base() || u.scheme() == "urn")
}

/// Reads `staticClients`.
pub(crate) fn static_clients(ctx: &mut Ctx<'_>, top: &Obj<'_>) -> Vec<Client> {
    let mut out: Vec<Client> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (path, item) in top.list(ctx, "staticClients") {
        let Some(o) = Obj::new(ctx, &path, item, CLIENT_KEYS) else { continue };
        for &key in CLIENT_IGNORED {
            if o.has(key) {
                ctx.warn(&o.key_path(key), "not supported by Oxidex yet; ignored");
            }
        }
        let public = o.flag(ctx, "public");
        let id = value_or_env(ctx, &o, "id", "idEnv", "client id");
        if id.is_none() && !o.has("id") && !o.has("idEnv") {
            ctx.error(&o.key_path("id"), "required; set id (or idEnv, the name of a variable holding it)");
        }
        let secret = value_or_env(ctx, &o, "secret", "secretEnv", "client secret");
        if secret.is_none() && !public && !o.has("secret") && !o.has("secretEnv") {
            ctx.error(
                &o.key_path("secret"),
                "required unless the client is public; set secret (or secretEnv), or `public: true` for \
                 native and browser apps",
            );
        }
        let name = o.required(ctx, "name", "required; the name is shown on the consent screen");
        let redirect_uris = o.strings(ctx, "redirectURIs");
        let uris_path = o.key_path("redirectURIs");
        for (i, uri) in redirect_uris.iter().enumerate() {
            if !redirect_uri_ok(uri) {
                ctx.error(
                    &super::raw::index(&uris_path, i),
                    "not an absolute URL; use a full URL such as https://app.example.com/callback",
                );
            }
        }
        let client = Client {
            id: id.clone().unwrap_or_default(),
            secret: secret.unwrap_or_default(),
            redirect_uris,
            trusted_peers: o.strings(ctx, "trustedPeers"),
            public,
            name: name.unwrap_or_default(),
            logo_url: o.string(ctx, "logoURL").unwrap_or_default(),
            allowed_connectors: o.strings(ctx, "allowedConnectors"),
            client_credentials_groups: o
                .child(ctx, "clientCredentialsClaims", CLIENT_CREDENTIALS_CLAIMS_KEYS)
                .map(|c| c.strings(ctx, "groups"))
                .unwrap_or_default(),
        };
        if let Some(id) = id {
            if let Some(first) = seen.get(&id) {
                let shown: String = id.chars().take(64).collect();
                ctx.error(
                    &o.key_path("id"),
                    format!("duplicate client id {shown:?} (first used at {first}); ids must be unique"),
                );
            } else {
                seen.insert(id, path.clone());
            }
        }
        out.push(client);
    }
    out
}

/// Converts a YAML value to JSON the way Dex's YAML-to-JSON step does (keys become strings).
fn to_json(ctx: &mut Ctx<'_>, path: &str, v: &Value) -> serde_json::Value {
    match untag(v) {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map(serde_json::Value::Number).unwrap_or_else(|| {
                    ctx.error(path, "not a finite number; JSON cannot carry it");
                    serde_json::Value::Null
                })
            }
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Sequence(seq) => serde_json::Value::Array(
            seq.iter().enumerate().map(|(i, item)| to_json(ctx, &super::raw::index(path, i), item)).collect(),
        ),
        Value::Mapping(map) => {
            let mut obj = serde_json::Map::new();
            for (k, item) in map {
                match scalar_text(k) {
                    Some(key) => {
                        let item_path = super::raw::join(path, &key);
                        let value = to_json(ctx, &item_path, item);
                        obj.insert(key, value);
                    }
                    None => ctx.error(path, format!("a key is {}; keys must be plain names", kind(k))),
                }
            }
            serde_json::Value::Object(obj)
        }
        Value::Tagged(_) => serde_json::Value::Null,
    }
}

/// Reads `connectors`.
pub(crate) fn connectors(ctx: &mut Ctx<'_>, top: &Obj<'_>, expand: bool) -> Vec<Connector> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (path, item) in top.list(ctx, "connectors") {
        let Some(o) = Obj::new(ctx, &path, item, CONNECTOR_KEYS) else { continue };
        let r#type = o.required(
            ctx,
            "type",
            "required; the connector type, such as oidc, ldap, github or mockCallback",
        );
        let id = o.required(ctx, "id", "required; a unique id used in callback URLs, such as `github`");
        let name = o.required(ctx, "name", "required; the name shown on the login screen");
        // `config` is owned by the connector: its keys are not checked here. Dex accepts a
        // connector without one (mockCallback needs none).
        let config = match o.get("config") {
            None => serde_json::Value::Object(serde_json::Map::new()),
            Some((cpath, v)) => {
                if let Value::Mapping(_) = v {
                    if expand {
                        let expanded = expand_value(v, ctx.env);
                        to_json(ctx, &cpath, &expanded)
                    } else {
                        to_json(ctx, &cpath, v)
                    }
                } else {
                    ctx.error(&cpath, format!("expected a mapping of connector settings, found {}", kind(v)));
                    serde_json::Value::Null
                }
            }
        };
        let grant_types = o.strings(ctx, "grantTypes");
        let gpath = o.key_path("grantTypes");
        for (i, g) in grant_types.iter().enumerate() {
            if !CONNECTOR_GRANTS.contains(&g.as_str()) {
                let shown: String = g.chars().take(64).collect();
                ctx.error(
                    &super::raw::index(&gpath, i),
                    format!("unknown grant type {shown:?}; use any of {}", CONNECTOR_GRANTS.join(", ")),
                );
            }
        }
        if let Some(id) = &id {
            if let Some(first) = seen.get(id) {
                let shown: String = id.chars().take(64).collect();
                ctx.error(
                    &o.key_path("id"),
                    format!("duplicate connector id {shown:?} (first used at {first}); ids must be unique"),
                );
            } else {
                seen.insert(id.clone(), path.clone());
            }
        }
        out.push(Connector {
            id: id.unwrap_or_default(),
            r#type: r#type.unwrap_or_default(),
            name: name.unwrap_or_default(),
            resource_version: String::new(),
            config: serde_json::to_vec(&config).unwrap_or_default(),
            grant_types,
        });
    }
    out
}

/// The cost of a bcrypt hash (`$2a$10$` + 53 characters), or `None` if it is not one.
pub(crate) fn bcrypt_cost(hash: &[u8]) -> Option<u32> {
    let rest = hash.strip_prefix(b"$2")?;
    let rest = match rest {
        [b'a' | b'b' | b'x' | b'y', b'$', tail @ ..] => tail,
        [b'$', tail @ ..] => tail,
        _ => return None,
    };
    let [c1, c2, b'$', body @ ..] = rest else { return None };
    if !c1.is_ascii_digit() || !c2.is_ascii_digit() || body.len() != 53 {
        return None;
    }
    if !body.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/') {
        return None;
    }
    Some(u32::from(c1 - b'0') * 10 + u32::from(c2 - b'0'))
}

/// Decodes a configured hash: a bcrypt string, or (as Dex accepts) base64 of one.
fn decode_hash(text: &str) -> Result<Vec<u8>, &'static str> {
    let bytes = if bcrypt_cost(text.as_bytes()).is_some() {
        text.as_bytes().to_vec()
    } else {
        match base64::engine::general_purpose::STANDARD.decode(text.trim()) {
            Ok(b) if bcrypt_cost(&b).is_some() => b,
            _ => {
                return Err(
                    "not a bcrypt hash; write it as $2a$10$... (e.g. from `htpasswd -bnBC 10 \"\" PASSWORD | tr -d ':\\n'`), or base64 of one",
                );
            }
        }
    };
    match bcrypt_cost(&bytes) {
        Some(c) if (10..=16).contains(&c) => Ok(bytes),
        Some(c) if c < 10 => {
            Err("bcrypt cost below 10 is too weak; hash the password again with cost 10 to 16")
        }
        _ => Err(
            "bcrypt cost above 16 makes every login very slow; hash the password again with cost 10 to 16",
        ),
    }
}

/// Reads `staticPasswords`.
pub(crate) fn static_passwords(ctx: &mut Ctx<'_>, top: &Obj<'_>, enable_password_db: bool) -> Vec<Password> {
    let mut out = Vec::new();
    let items = top.list(ctx, "staticPasswords");
    if !items.is_empty() && !enable_password_db {
        ctx.error(
            &top.key_path("staticPasswords"),
            "static passwords need the password database; add `enablePasswordDB: true`",
        );
    }
    let mut emails: BTreeMap<String, String> = BTreeMap::new();
    let mut user_ids: BTreeMap<String, String> = BTreeMap::new();
    for (path, item) in items {
        let Some(o) = Obj::new(ctx, &path, item, PASSWORD_KEYS) else { continue };
        let email =
            o.required(ctx, "email", "required; the address the user logs in with").map(|e| e.to_lowercase());
        let hash_text = value_or_env(ctx, &o, "hash", "hashFromEnv", "bcrypt hash");
        let hash = match hash_text {
            Some(text) => {
                let hpath = if o.has("hash") { o.key_path("hash") } else { o.key_path("hashFromEnv") };
                match decode_hash(&text) {
                    Ok(h) => h,
                    Err(msg) => {
                        ctx.error(&hpath, msg);
                        Vec::new()
                    }
                }
            }
            None => {
                if !o.has("hash") && !o.has("hashFromEnv") {
                    ctx.error(
                        &o.key_path("hash"),
                        "required; the bcrypt hash of the password (or hashFromEnv)",
                    );
                }
                Vec::new()
            }
        };
        let user_id = o.required(
            ctx,
            "userID",
            "required; a stable unique id such as a UUID (it becomes the token subject)",
        );
        if let Some(email) = &email {
            if let Some(first) = emails.get(email) {
                ctx.error(
                    &o.key_path("email"),
                    format!(
                        "duplicate email (first used at {first}); emails are compared case-insensitively"
                    ),
                );
            } else {
                emails.insert(email.clone(), path.clone());
            }
        }
        if let Some(uid) = &user_id {
            if let Some(first) = user_ids.get(uid) {
                ctx.error(
                    &o.key_path("userID"),
                    format!("duplicate userID (first used at {first}); two users would share one identity"),
                );
            } else {
                user_ids.insert(uid.clone(), path.clone());
            }
        }
        out.push(Password {
            email: email.unwrap_or_default(),
            hash,
            username: o.string(ctx, "username").unwrap_or_default(),
            name: o.string(ctx, "name").unwrap_or_default(),
            preferred_username: o.string(ctx, "preferredUsername").unwrap_or_default(),
            email_verified: o.boolean(ctx, "emailVerified"),
            user_id: user_id.unwrap_or_default(),
            groups: o.strings(ctx, "groups"),
        });
    }
    out
}

/// Checks references between sections once all are read.
pub(crate) fn cross_check(
    ctx: &mut Ctx<'_>,
    top: &Obj<'_>,
    clients: &[Client],
    connectors: &[Connector],
    enable_password_db: bool,
) {
    let mut ids: BTreeSet<&str> =
        connectors.iter().map(|c| c.id.as_str()).filter(|id| !id.is_empty()).collect();
    if enable_password_db {
        if let Some(i) = connectors.iter().position(|c| c.id == "local") {
            let path = format!("{}[{i}].id", top.key_path("connectors"));
            ctx.error(
                &path,
                "the id `local` is taken by the password database (enablePasswordDB); pick another id",
            );
        }
        ids.insert("local");
    }
    let list_path = top.key_path("staticClients");
    for (ci, client) in clients.iter().enumerate() {
        for (i, conn) in client.allowed_connectors.iter().enumerate() {
            if !ids.contains(conn.as_str()) {
                let shown: String = conn.chars().take(64).collect();
                ctx.warn(
                    &format!("{list_path}[{ci}].allowedConnectors[{i}]"),
                    format!("no connector {shown:?} in this file; it must be created through the API"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";

    #[test]
    fn bcrypt_costs() {
        assert_eq!(bcrypt_cost(HASH.as_bytes()), Some(10));
        assert_eq!(bcrypt_cost(HASH.replace("$10$", "$04$").as_bytes()), Some(4));
        assert_eq!(bcrypt_cost(b"$2$12$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"), Some(12));
        assert_eq!(bcrypt_cost(b"$2a$10$short"), None);
        assert_eq!(bcrypt_cost(b"$3a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W"), None);
        assert_eq!(bcrypt_cost(b"password"), None);
        assert_eq!(bcrypt_cost(b""), None);
    }

    #[test]
    fn hash_forms() {
        assert_eq!(decode_hash(HASH), Ok(HASH.as_bytes().to_vec()));
        let b64 = base64::engine::general_purpose::STANDARD.encode(HASH);
        assert_eq!(decode_hash(&b64), Ok(HASH.as_bytes().to_vec()));
        assert!(decode_hash(&HASH.replace("$10$", "$04$")).is_err());
        assert!(decode_hash(&HASH.replace("$10$", "$17$")).is_err());
        assert!(decode_hash("password").is_err());
        assert!(decode_hash("").is_err());
    }

    #[test]
    fn redirect_uris() {
        assert!(redirect_uri_ok("http://127.0.0.1:5555/callback"));
        assert!(redirect_uri_ok("com.example.app:/oauth2redirect"));
        assert!(redirect_uri_ok(OOB_URI));
        assert!(redirect_uri_ok("/device/callback"));
        assert!(!redirect_uri_ok("/callback"));
        assert!(!redirect_uri_ok("app.example.com/callback"));
        assert!(!redirect_uri_ok(""));
    }
}
