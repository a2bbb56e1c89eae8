//! `ldap`: a password connector that checks the username and password against an LDAP
//! directory (OpenLDAP, Active Directory, ...), as Dex's `ldap` connector does.
//!
//! A login:
//!
//! ```text
//! password empty or blank? ──yes──> refused, no connection at all (an empty password would
//!                                    be an *unauthenticated* bind, which servers accept)
//! connect (LDAPS by default; StartTLS; plain only with insecureNoSSL), timeouts on everything
//! bind as bindDN (or anonymously) ─> search userSearch.baseDN for
//!     (&{filter}(|({username}=<escaped login>)...))   (RFC 4515 escaping: * ( ) \ NUL)
//!     exactly one entry, else refused
//! bind as that entry's DN with the password ─> invalidCredentials/constraintViolation: refused
//! groups (scope `groups`): a new service-bound connection; for every userMatcher, groups
//!     whose {groupAttr} equals the user's {userAttr} (or DN); with recursionGroupAttr, groups
//!     whose {groupAttr} equals a found group's {recursionGroupAttr}, level by level, at most
//!     MAX_GROUP_DEPTH levels, each group DN visited once (cycles end)
//! offline_access: connector data = Dex's refreshData JSON {Username, Entry{DN, Attributes}}
//! ```
//!
//! A refresh searches the user again by the login name, and refuses (the grant answers
//! `invalid_grant`) when the entry is gone, its DN changed or its id changed; otherwise claims
//! and groups are read afresh.
//!
//! What users see: "invalid credentials" for every refusal (unknown user, several entries,
//! wrong password); the reason goes to the server log (never the password). Failures of the
//! directory itself (unreachable, TLS, service bind, timeouts) are errors, shown as "the login
//! provider is unavailable".

mod filter;
mod tls;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, SearchOptions};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::config::ConnectorConfig;
use super::{
    ConnectorError, ConnectorImpl, ConnectorScopes, Identity, OpenContext, PasswordConnector,
    RefreshConnector,
};

/// Time allowed to open a connection (TCP, TLS handshake, StartTLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for one operation (a bind, each reply of a search).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a whole login or refresh, group searches included.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Levels of groups-of-groups followed below the user's direct groups.
pub const MAX_GROUP_DEPTH: usize = 10;
/// Group searches per login, at most (a bound on the work one login can cause).
const MAX_GROUP_SEARCHES: usize = 1000;
/// LDAP result codes (RFC 4511 appendix A).
const RC_SUCCESS: u32 = 0;
const RC_SIZE_LIMIT_EXCEEDED: u32 = 4;
const RC_CONSTRAINT_VIOLATION: u32 = 19;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INVALID_CREDENTIALS: u32 = 49;

// ---------------------------------------------------------------------------------------------
// Configuration.

/// `ldap` settings, Dex's keys. The nested `userSearch` and `groupSearch` objects are read by
/// [`LdapConfig::open`] so that their keys are also matched case-insensitively and a bad one is
/// named with its path (`userSearch.scope`).
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct LdapConfig {
    /// `host` or `host:port` (no scheme). Without a port: 636, or 389 with `insecureNoSSL` or
    /// `startTLS`.
    pub host: String,
    /// Plain LDAP, no TLS at all.
    #[serde(rename = "insecureNoSSL")]
    pub insecure_no_ssl: bool,
    /// Accept any server certificate.
    #[serde(rename = "insecureSkipVerify")]
    pub insecure_skip_verify: bool,
    /// Connect in plain and upgrade with the StartTLS extended operation.
    #[serde(rename = "startTLS")]
    pub start_tls: bool,
    /// A PEM file of CAs to trust instead of the system roots.
    #[serde(rename = "rootCA")]
    pub root_ca: String,
    /// The same, inline: base64 of the PEM (Go's `[]byte` in JSON); plain PEM is accepted too.
    #[serde(rename = "rootCAData")]
    pub root_ca_data: String,
    /// A PEM client certificate file (with `clientKey`).
    #[serde(rename = "clientCert")]
    pub client_cert: String,
    /// The PEM key file of `clientCert`.
    #[serde(rename = "clientKey")]
    pub client_key: String,
    /// The DN to bind as for searches; empty means an anonymous search.
    #[serde(rename = "bindDN")]
    pub bind_dn: String,
    /// The password of `bindDN`.
    #[serde(rename = "bindPW")]
    pub bind_pw: String,
    /// The label of the username field.
    #[serde(rename = "usernamePrompt")]
    pub username_prompt: String,
    /// `userSearch {baseDN, filter, username, scope, idAttr, emailAttr, nameAttr,
    /// preferredUsernameAttr, emailSuffix}`.
    #[serde(rename = "userSearch")]
    pub user_search: serde_json::Value,
    /// `groupSearch {baseDN, filter, scope, userMatchers [{userAttr, groupAttr,
    /// recursionGroupAttr}], nameAttr}` or the legacy `userAttr`/`groupAttr` form.
    #[serde(rename = "groupSearch")]
    pub group_search: serde_json::Value,
    /// Dex master's Kerberos/SPNEGO settings: not supported; refused when enabled.
    pub kerberos: serde_json::Value,
}

impl fmt::Debug for LdapConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapConfig")
            .field("host", &self.host)
            .field("insecure_no_ssl", &self.insecure_no_ssl)
            .field("start_tls", &self.start_tls)
            .field("bind_dn", &self.bind_dn)
            .field("bind_pw", &"<redacted>")
            .field("user_search", &self.user_search)
            .field("group_search", &self.group_search)
            .finish_non_exhaustive()
    }
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct UserSearchRaw {
    #[serde(rename = "baseDN")]
    base_dn: String,
    filter: String,
    username: serde_json::Value,
    scope: String,
    #[serde(rename = "idAttr")]
    id_attr: String,
    #[serde(rename = "emailAttr")]
    email_attr: String,
    #[serde(rename = "nameAttr")]
    name_attr: String,
    #[serde(rename = "preferredUsernameAttr")]
    preferred_username_attr: String,
    #[serde(rename = "emailSuffix")]
    email_suffix: String,
}

const USER_SEARCH_FIELDS: &[&str] = &[
    "baseDN",
    "filter",
    "username",
    "scope",
    "idAttr",
    "emailAttr",
    "nameAttr",
    "preferredUsernameAttr",
    "emailSuffix",
];

#[derive(Default, Deserialize)]
#[serde(default)]
struct GroupSearchRaw {
    #[serde(rename = "baseDN")]
    base_dn: String,
    filter: String,
    scope: String,
    #[serde(rename = "userAttr")]
    user_attr: String,
    #[serde(rename = "groupAttr")]
    group_attr: String,
    #[serde(rename = "recursionGroupAttr")]
    recursion_group_attr: String,
    #[serde(rename = "userMatchers")]
    user_matchers: Vec<serde_json::Value>,
    #[serde(rename = "nameAttr")]
    name_attr: String,
}

const GROUP_SEARCH_FIELDS: &[&str] =
    &["baseDN", "filter", "scope", "userAttr", "groupAttr", "recursionGroupAttr", "userMatchers", "nameAttr"];

#[derive(Default, Deserialize)]
#[serde(default)]
struct UserMatcherRaw {
    #[serde(rename = "userAttr")]
    user_attr: String,
    #[serde(rename = "groupAttr")]
    group_attr: String,
    #[serde(rename = "recursionGroupAttr")]
    recursion_group_attr: String,
}

const USER_MATCHER_FIELDS: &[&str] = &["userAttr", "groupAttr", "recursionGroupAttr"];

/// A configuration problem at `key`.
fn invalid(id: &str, key: impl Into<String>, reason: impl Into<String>) -> ConnectorError {
    ConnectorError::InvalidConfig { id: id.to_owned(), key: Some(key.into()), reason: reason.into() }
}

/// Reads a nested settings object the way the registry reads the top level: keys matched
/// case-insensitively (an exact match wins), unknown keys warned about, a bad value named by
/// its path without repeating it.
fn nested<T: DeserializeOwned + Default>(
    id: &str,
    path: &str,
    value: &serde_json::Value,
    fields: &[&'static str],
) -> Result<T, ConnectorError> {
    let object = match value {
        serde_json::Value::Null => return Ok(T::default()),
        serde_json::Value::Object(o) => o,
        _ => return Err(invalid(id, path, "expected an object of settings")),
    };
    let mut normalized = serde_json::Map::new();
    let mut renamed = Vec::new();
    for (key, value) in object {
        if fields.contains(&key.as_str()) {
            normalized.insert(key.clone(), value.clone());
        } else if let Some(field) = fields.iter().find(|f| f.eq_ignore_ascii_case(key)) {
            renamed.push(((*field).to_owned(), value.clone()));
        } else {
            tracing::warn!(connector_id = %id, key = %format!("{path}.{key}"), "ignoring unknown connector config key");
        }
    }
    for (field, value) in renamed {
        normalized.entry(field).or_insert(value);
    }
    match T::deserialize(serde_json::Value::Object(normalized.clone())) {
        Ok(v) => Ok(v),
        Err(_) => {
            for (key, value) in &normalized {
                let alone: serde_json::Map<_, _> = [(key.clone(), value.clone())].into_iter().collect();
                if let Err(e) = T::deserialize(serde_json::Value::Object(alone)) {
                    let expected = e.to_string().split_once(", expected ").map(|(_, x)| x.to_owned());
                    let reason = match expected {
                        Some(x) => format!("expected {x}"),
                        None => "this value is not acceptable here".to_owned(),
                    };
                    return Err(invalid(id, format!("{path}.{key}"), reason));
                }
            }
            Err(invalid(id, path, "not acceptable"))
        }
    }
}

/// A search scope: Dex accepts `sub` (the default) and `one`.
fn scope(id: &str, key: &str, value: &str) -> Result<Scope, ConnectorError> {
    match value {
        "" | "sub" => Ok(Scope::Subtree),
        "one" => Ok(Scope::OneLevel),
        _ => Err(invalid(id, key, "unknown scope; use \"sub\" or \"one\"")),
    }
}

/// An attribute name given at `key`: `None` when empty.
fn attribute(id: &str, key: &str, value: &str) -> Result<Option<String>, ConnectorError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if !filter::is_attribute_name(value) {
        return Err(invalid(id, key, "not an attribute name"));
    }
    Ok(Some(value.to_owned()))
}

fn required_attribute(id: &str, key: &str, value: &str, what: &str) -> Result<String, ConnectorError> {
    attribute(id, key, value)?.ok_or_else(|| invalid(id, key, format!("required; {what}")))
}

fn configured_filter(id: &str, key: &str, value: &str) -> Result<Option<String>, ConnectorError> {
    filter::configured(value).map_err(|reason| invalid(id, key, reason))
}

/// `host` -> (host, port), with the default port for the transport.
fn host_and_port(id: &str, host: &str, plain_port: bool) -> Result<(String, u16), ConnectorError> {
    let host = host.trim();
    if host.is_empty() {
        return Err(invalid(id, "host", "required; the LDAP server as host or host:port"));
    }
    if host.contains("://") {
        return Err(invalid(
            id,
            "host",
            "give host or host:port without a scheme; TLS is chosen by startTLS/insecureNoSSL",
        ));
    }
    let default_port = if plain_port { 389 } else { 636 };
    let parse_port = |p: &str| p.parse::<u16>().map_err(|_| invalid(id, "host", "the port is not a number"));
    if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        let (addr, after) =
            rest.split_once(']').ok_or_else(|| invalid(id, "host", "unterminated IPv6 address"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => default_port,
            None => return Err(invalid(id, "host", "unexpected text after the IPv6 address")),
        };
        return Ok((format!("[{addr}]"), port));
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((h.to_owned(), parse_port(p)?)),
        Some(_) => Ok((format!("[{host}]"), default_port)),
        None => Ok((host.to_owned(), default_port)),
    }
}

/// Reads a file named by a config key at open time.
fn read_file(id: &str, key: &str, path: &str) -> Result<Vec<u8>, ConnectorError> {
    std::fs::read(path).map_err(|e| invalid(id, key, format!("cannot read the file: {}", e.kind())))
}

impl ConnectorConfig for LdapConfig {
    fn open(self, id: &str, _ctx: &OpenContext) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        if let Some(enabled) = self.kerberos.get("enabled").and_then(serde_json::Value::as_bool)
            && enabled
        {
            return Err(invalid(id, "kerberos", "Kerberos/SPNEGO is not supported by Oxidex"));
        }
        if self.insecure_no_ssl && self.start_tls {
            tracing::warn!(connector_id = %id, "both insecureNoSSL and startTLS are set: insecureNoSSL wins (no TLS), as in Dex");
        }
        let plain_port = self.insecure_no_ssl || self.start_tls;
        let (host, port) = host_and_port(id, &self.host, plain_port)?;
        let scheme = if plain_port { "ldap" } else { "ldaps" };
        let url = url::Url::parse(&format!("{scheme}://{host}:{port}"))
            .map_err(|_| invalid(id, "host", "not a valid host name"))?;

        let tls = if self.insecure_no_ssl {
            tracing::warn!(connector_id = %id, "insecureNoSSL: passwords go to the LDAP server in plain text");
            None
        } else {
            if self.insecure_skip_verify {
                tracing::warn!(connector_id = %id, "insecureSkipVerify: the LDAP server's certificate is not checked");
            }
            let root_ca_pem = if !self.root_ca_data.trim().is_empty() {
                let data = self.root_ca_data.trim();
                if data.starts_with("-----BEGIN") {
                    Some(data.as_bytes().to_vec())
                } else {
                    let compact: String = data.split_whitespace().collect();
                    Some(
                        base64::engine::general_purpose::STANDARD
                            .decode(compact)
                            .map_err(|_| invalid(id, "rootCAData", "not base64 (of a PEM file)"))?,
                    )
                }
            } else if !self.root_ca.is_empty() {
                Some(read_file(id, "rootCA", &self.root_ca)?)
            } else {
                None
            };
            let client_identity = match (self.client_cert.is_empty(), self.client_key.is_empty()) {
                (true, true) => None,
                (false, false) => Some((
                    read_file(id, "clientCert", &self.client_cert)?,
                    read_file(id, "clientKey", &self.client_key)?,
                )),
                (true, false) => return Err(invalid(id, "clientCert", "required with clientKey")),
                (false, true) => return Err(invalid(id, "clientKey", "required with clientCert")),
            };
            let settings =
                tls::TlsSettings { root_ca_pem, client_identity, skip_verify: self.insecure_skip_verify };
            Some(tls::client_config(settings).map_err(|(key, reason)| invalid(id, key, reason))?)
        };

        let bind = match (self.bind_dn.is_empty(), self.bind_pw.is_empty()) {
            (true, true) => None,
            (false, false) => Some(ServiceBind { dn: self.bind_dn, password: self.bind_pw }),
            (false, true) => {
                return Err(invalid(
                    id,
                    "bindPW",
                    "required with bindDN (an empty password is an unauthenticated bind)",
                ));
            }
            (true, false) => return Err(invalid(id, "bindDN", "required with bindPW")),
        };

        let us: UserSearchRaw = nested(id, "userSearch", &self.user_search, USER_SEARCH_FIELDS)?;
        if us.base_dn.trim().is_empty() {
            return Err(invalid(id, "userSearch.baseDN", "required; where to search for users"));
        }
        let username_attrs: Vec<String> = match &us.username {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_owned).ok_or_else(|| {
                        invalid(id, "userSearch.username", "expected an attribute name or a list of them")
                    })
                })
                .collect::<Result<_, _>>()?,
            _ => {
                return Err(invalid(
                    id,
                    "userSearch.username",
                    "expected an attribute name or a list of them",
                ));
            }
        };
        let username_attrs: Vec<String> = username_attrs
            .iter()
            .map(|a| attribute(id, "userSearch.username", a))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
        if username_attrs.is_empty() {
            return Err(invalid(
                id,
                "userSearch.username",
                "required; the attribute(s) the login name is compared with (uid, mail...)",
            ));
        }
        let email_suffix = us.email_suffix.trim().to_owned();
        let name_attr = attribute(id, "userSearch.nameAttr", &us.name_attr)?;
        let email_attr = if email_suffix.is_empty() {
            required_attribute(
                id,
                "userSearch.emailAttr",
                &us.email_attr,
                "the attribute with the email address (or set emailSuffix)",
            )?
        } else {
            if name_attr.is_none() {
                return Err(invalid(
                    id,
                    "userSearch.nameAttr",
                    "required with emailSuffix (email = name@suffix)",
                ));
            }
            attribute(id, "userSearch.emailAttr", &us.email_attr)?.unwrap_or_default()
        };
        let user = UserSearch {
            base_dn: us.base_dn.trim().to_owned(),
            filter: configured_filter(id, "userSearch.filter", &us.filter)?,
            username_attrs,
            scope: scope(id, "userSearch.scope", &us.scope)?,
            id_attr: required_attribute(
                id,
                "userSearch.idAttr",
                &us.id_attr,
                "the attribute with the user's stable id (uid, DN...)",
            )?,
            email_attr,
            name_attr,
            preferred_username_attr: attribute(
                id,
                "userSearch.preferredUsernameAttr",
                &us.preferred_username_attr,
            )?,
            email_suffix: (!email_suffix.is_empty()).then_some(email_suffix),
        };

        let gs: GroupSearchRaw = nested(id, "groupSearch", &self.group_search, GROUP_SEARCH_FIELDS)?;
        let groups = if gs.base_dn.trim().is_empty() {
            None
        } else {
            let mut matchers = Vec::new();
            for (i, m) in gs.user_matchers.iter().enumerate() {
                let path = format!("groupSearch.userMatchers[{i}]");
                let raw: UserMatcherRaw = nested(id, &path, m, USER_MATCHER_FIELDS)?;
                matchers.push(UserMatcher {
                    user_attr: required_attribute(
                        id,
                        &format!("{path}.userAttr"),
                        &raw.user_attr,
                        "the user's attribute (or DN)",
                    )?,
                    group_attr: required_attribute(
                        id,
                        &format!("{path}.groupAttr"),
                        &raw.group_attr,
                        "the group's member attribute",
                    )?,
                    recursion_attr: attribute(
                        id,
                        &format!("{path}.recursionGroupAttr"),
                        &raw.recursion_group_attr,
                    )?,
                });
            }
            if matchers.is_empty() {
                // Dex's deprecated form: one matcher from groupSearch.userAttr/groupAttr.
                matchers.push(UserMatcher {
                    user_attr: required_attribute(
                        id,
                        "groupSearch.userAttr",
                        &gs.user_attr,
                        "or give userMatchers",
                    )?,
                    group_attr: required_attribute(
                        id,
                        "groupSearch.groupAttr",
                        &gs.group_attr,
                        "or give userMatchers",
                    )?,
                    recursion_attr: attribute(
                        id,
                        "groupSearch.recursionGroupAttr",
                        &gs.recursion_group_attr,
                    )?,
                });
            }
            Some(GroupSearch {
                base_dn: gs.base_dn.trim().to_owned(),
                filter: configured_filter(id, "groupSearch.filter", &gs.filter)?,
                scope: scope(id, "groupSearch.scope", &gs.scope)?,
                matchers,
                name_attr: required_attribute(
                    id,
                    "groupSearch.nameAttr",
                    &gs.name_attr,
                    "the attribute with the group's name",
                )?,
            })
        };

        Ok(Arc::new(LdapConnector {
            id: id.to_owned(),
            url,
            start_tls: self.start_tls && !self.insecure_no_ssl,
            tls,
            bind,
            prompt: self.username_prompt,
            user,
            groups,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// The connector.

struct ServiceBind {
    dn: String,
    password: String,
}

#[derive(Debug)]
struct UserSearch {
    base_dn: String,
    filter: Option<String>,
    username_attrs: Vec<String>,
    scope: Scope,
    id_attr: String,
    email_attr: String,
    name_attr: Option<String>,
    preferred_username_attr: Option<String>,
    email_suffix: Option<String>,
}

#[derive(Debug)]
struct GroupSearch {
    base_dn: String,
    filter: Option<String>,
    scope: Scope,
    matchers: Vec<UserMatcher>,
    name_attr: String,
}

#[derive(Debug)]
struct UserMatcher {
    user_attr: String,
    group_attr: String,
    recursion_attr: Option<String>,
}

/// The `ldap` connector.
pub struct LdapConnector {
    id: String,
    url: url::Url,
    start_tls: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    bind: Option<ServiceBind>,
    prompt: String,
    user: UserSearch,
    groups: Option<GroupSearch>,
}

impl fmt::Debug for LdapConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapConnector")
            .field("id", &self.id)
            .field("url", &self.url.as_str())
            .field("start_tls", &self.start_tls)
            .field("tls", &self.tls.is_some())
            .field("bind_dn", &self.bind.as_ref().map(|b| b.dn.as_str()))
            .field("user", &self.user)
            .field("groups", &self.groups)
            .finish()
    }
}

/// An entry as read: its DN and its (text) attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    #[serde(rename = "DN")]
    dn: String,
    #[serde(rename = "Attributes", default, skip_serializing_if = "Vec::is_empty")]
    attributes: Vec<Attribute>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Attribute {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Values", default)]
    values: Vec<String>,
}

impl Entry {
    fn from_search(e: SearchEntry) -> Self {
        let mut attributes: Vec<Attribute> =
            e.attrs.into_iter().map(|(name, values)| Attribute { name, values }).collect();
        attributes.sort_by(|a, b| a.name.cmp(&b.name));
        Self { dn: e.dn, attributes }
    }

    /// The values of `name` (case-insensitive, as LDAP attribute names are); `DN` is the DN.
    fn values(&self, name: &str) -> Vec<String> {
        if name.eq_ignore_ascii_case("dn") {
            return vec![self.dn.clone()];
        }
        self.attributes
            .iter()
            .filter(|a| a.name.eq_ignore_ascii_case(name))
            .flat_map(|a| a.values.iter().cloned())
            .collect()
    }

    /// The first value of `name`, empty when there is none (Dex's `getAttr`).
    fn first(&self, name: &str) -> String {
        self.values(name).into_iter().next().unwrap_or_default()
    }
}

/// What the connector keeps for a refresh: Dex's `refreshData` (so Dex's refresh tokens keep
/// working after a migration).
#[derive(Debug, Serialize, Deserialize)]
struct RefreshData {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Entry")]
    entry: Entry,
}

fn upstream(what: &str, e: impl fmt::Display) -> ConnectorError {
    ConnectorError::Upstream(format!("ldap: {what}: {e}"))
}

/// The outcome of looking the user up.
enum Lookup {
    Found(Entry),
    /// No entry, or more than one: the login is refused; the reason is for the log.
    Refused(String),
}

impl LdapConnector {
    /// Opens a connection (with TLS as configured), under [`CONNECT_TIMEOUT`].
    async fn connect(&self) -> Result<Ldap, ConnectorError> {
        let mut settings =
            LdapConnSettings::new().set_conn_timeout(CONNECT_TIMEOUT).set_starttls(self.start_tls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::from_url_with_settings(settings, &self.url)
            .await
            .map_err(|e| upstream(&format!("cannot connect to {}", self.url), e))?;
        tokio::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!(error = %e, "LDAP connection ended with an error");
            }
        });
        Ok(ldap)
    }

    /// A connection bound as the service account (or anonymous when none is configured).
    async fn service_connection(&self) -> Result<Ldap, ConnectorError> {
        let mut ldap = self.connect().await?;
        if let Some(bind) = &self.bind {
            let result = ldap
                .with_timeout(OPERATION_TIMEOUT)
                .simple_bind(&bind.dn, &bind.password)
                .await
                .map_err(|e| upstream("service bind failed", e))?;
            if result.rc != RC_SUCCESS {
                return Err(ConnectorError::Upstream(format!(
                    "ldap: service bind as {:?} refused: result code {} {}",
                    bind.dn, result.rc, result.text
                )));
            }
        }
        Ok(ldap)
    }

    /// One search, entries only (referrals are not followed). `limit` 0 means no limit.
    async fn search(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<(Vec<Entry>, u32), ConnectorError> {
        let result = ldap
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .with_timeout(OPERATION_TIMEOUT)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| upstream(&format!("search {filter:?} under {base:?} failed"), e))?;
        let rc = result.1.rc;
        if !matches!(rc, RC_SUCCESS | RC_SIZE_LIMIT_EXCEEDED | RC_NO_SUCH_OBJECT) {
            return Err(ConnectorError::Upstream(format!(
                "ldap: search {filter:?} under {base:?} failed: result code {rc} {}",
                result.1.text
            )));
        }
        if rc == RC_NO_SUCH_OBJECT {
            tracing::error!(connector_id = %self.id, base = %base, "LDAP search base does not exist");
        }
        let mut entries = Vec::new();
        for re in result.0 {
            if re.is_ref() {
                continue;
            }
            // `construct` panics on a malformed entry; a broken server must not take the
            // request task down with it.
            let entry = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(re)))
                .map_err(|_| ConnectorError::Upstream("ldap: the server sent a malformed entry".into()))?;
            entries.push(Entry::from_search(entry));
        }
        Ok((entries, rc))
    }

    /// The attributes to read from a user entry.
    fn user_attributes(&self) -> Vec<&str> {
        let mut attrs: Vec<&str> = vec![self.user.id_attr.as_str()];
        if !self.user.email_attr.is_empty() {
            attrs.push(&self.user.email_attr);
        }
        attrs.extend(self.user.name_attr.as_deref());
        attrs.extend(self.user.preferred_username_attr.as_deref());
        if let Some(groups) = &self.groups {
            attrs.extend(groups.matchers.iter().map(|m| m.user_attr.as_str()));
        }
        attrs.retain(|a| !a.eq_ignore_ascii_case("dn"));
        attrs.sort_unstable();
        attrs.dedup();
        attrs
    }

    /// Finds the one entry of `username`.
    async fn find_user(&self, ldap: &mut Ldap, username: &str) -> Result<Lookup, ConnectorError> {
        let by_name =
            filter::or(self.user.username_attrs.iter().map(|a| filter::equality(a, username)).collect());
        let filter = filter::and(self.user.filter.as_deref(), by_name);
        let attrs = self.user_attributes();
        let (entries, rc) =
            self.search(ldap, &self.user.base_dn, self.user.scope, &filter, &attrs, 2).await?;
        Ok(match entries.len() {
            1 if rc != RC_SIZE_LIMIT_EXCEEDED => {
                Lookup::Found(entries.into_iter().next().unwrap_or_default())
            }
            0 => Lookup::Refused(format!("no entry matches {filter:?}")),
            _ => Lookup::Refused(format!("more than one entry matches {filter:?}")),
        })
    }

    /// The identity of a user entry (Dex's `identityFromEntry`); groups are added separately.
    fn identity(&self, user: &Entry) -> Result<Identity, ConnectorError> {
        let mut missing = Vec::new();
        let mut get = |attr: &str| {
            let v = user.first(attr);
            if v.is_empty() {
                missing.push(attr.to_owned());
            }
            v
        };
        let user_id = get(&self.user.id_attr);
        let username = self.user.name_attr.as_deref().map(&mut get).unwrap_or_default();
        let preferred_username =
            self.user.preferred_username_attr.as_deref().map(&mut get).unwrap_or_default();
        let email = match &self.user.email_suffix {
            Some(suffix) => format!("{username}@{suffix}"),
            None => get(&self.user.email_attr),
        };
        if !missing.is_empty() {
            return Err(ConnectorError::Upstream(format!(
                "ldap: entry {:?} lacks required attribute(s) {missing:?}",
                user.dn
            )));
        }
        Ok(Identity {
            user_id,
            username,
            preferred_username,
            email,
            // As in Dex: the directory is trusted for the address.
            email_verified: true,
            groups: Vec::new(),
            connector_data: Vec::new(),
        })
    }

    /// The names of the user's groups, nested ones included where a matcher says how.
    async fn groups(&self, user: &Entry) -> Result<Vec<String>, ConnectorError> {
        let Some(gs) = &self.groups else {
            return Ok(Vec::new());
        };
        let mut ldap = self.service_connection().await?;
        let mut walk =
            GroupWalk { seen: HashSet::new(), names: Vec::new(), name_set: HashSet::new(), searches: 0 };
        for matcher in &gs.matchers {
            let mut level = Vec::new();
            for value in user.values(&matcher.user_attr) {
                level.extend(self.group_level(&mut ldap, gs, matcher, &value, &mut walk).await?);
            }
            let Some(recursion_attr) = &matcher.recursion_attr else { continue };
            let mut depth = 1;
            while !level.is_empty() {
                if depth > MAX_GROUP_DEPTH {
                    tracing::warn!(
                        connector_id = %self.id, user = %user.dn, max_depth = MAX_GROUP_DEPTH,
                        "LDAP groups nest deeper than the limit; deeper groups are ignored"
                    );
                    break;
                }
                let mut next = Vec::new();
                for group in &level {
                    for value in group.values(recursion_attr) {
                        next.extend(self.group_level(&mut ldap, gs, matcher, &value, &mut walk).await?);
                    }
                }
                level = next;
                depth += 1;
            }
        }
        let _ = ldap.unbind().await;
        Ok(walk.names)
    }

    /// The groups whose `groupAttr` is `value` that were not seen before (their names are
    /// recorded in `walk`).
    async fn group_level(
        &self,
        ldap: &mut Ldap,
        gs: &GroupSearch,
        matcher: &UserMatcher,
        value: &str,
        walk: &mut GroupWalk,
    ) -> Result<Vec<Entry>, ConnectorError> {
        walk.searches += 1;
        if walk.searches > MAX_GROUP_SEARCHES {
            return Err(ConnectorError::Upstream(format!(
                "ldap: more than {MAX_GROUP_SEARCHES} group searches for one user"
            )));
        }
        let filter = filter::and(gs.filter.as_deref(), filter::equality(&matcher.group_attr, value));
        let mut attrs = vec![gs.name_attr.as_str()];
        if let Some(r) = &matcher.recursion_attr
            && !r.eq_ignore_ascii_case("dn")
        {
            attrs.push(r);
        }
        let (entries, _) = self.search(ldap, &gs.base_dn, gs.scope, &filter, &attrs, 0).await?;
        if entries.is_empty() {
            tracing::debug!(connector_id = %self.id, filter = %filter, "LDAP group search found no groups");
        }
        let mut new = Vec::new();
        for group in entries {
            if !walk.seen.insert(group.dn.to_lowercase()) {
                continue;
            }
            let name = group.first(&gs.name_attr);
            if name.is_empty() {
                return Err(ConnectorError::Upstream(format!(
                    "ldap: group entry {:?} lacks the name attribute {:?}",
                    group.dn, gs.name_attr
                )));
            }
            if walk.name_set.insert(name.clone()) {
                walk.names.push(name);
            }
            new.push(group);
        }
        Ok(new)
    }

    async fn login_inner(
        &self,
        scopes: &ConnectorScopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        let mut ldap = self.service_connection().await?;
        let user = match self.find_user(&mut ldap, username).await? {
            Lookup::Found(user) => user,
            Lookup::Refused(reason) => {
                let _ = ldap.unbind().await;
                tracing::info!(connector_id = %self.id, %reason, "LDAP login refused: no single user entry");
                return Ok(None);
            }
        };
        let result = ldap
            .with_timeout(OPERATION_TIMEOUT)
            .simple_bind(&user.dn, password)
            .await
            .map_err(|e| upstream(&format!("bind as {:?} failed", user.dn), e))?;
        let _ = ldap.unbind().await;
        match result.rc {
            RC_SUCCESS => {}
            RC_INVALID_CREDENTIALS | RC_CONSTRAINT_VIOLATION => {
                tracing::info!(
                    connector_id = %self.id, user = %user.dn, result_code = result.rc, diagnostic = %result.text,
                    "LDAP login refused: the server rejected the password"
                );
                return Ok(None);
            }
            rc => {
                return Err(ConnectorError::Upstream(format!(
                    "ldap: bind as {:?} failed: result code {rc} {}",
                    user.dn, result.text
                )));
            }
        }
        let mut identity = self.identity(&user)?;
        if scopes.groups {
            identity.groups = self.groups(&user).await?;
        }
        if scopes.offline_access {
            let data = RefreshData { username: username.to_owned(), entry: user };
            identity.connector_data =
                serde_json::to_vec(&data).map_err(|e| ConnectorError::Internal(e.to_string()))?;
        }
        Ok(Some(identity))
    }

    async fn refresh_inner(
        &self,
        scopes: &ConnectorScopes,
        old: Identity,
    ) -> Result<Identity, ConnectorError> {
        let data: RefreshData = serde_json::from_slice(&old.connector_data).map_err(|_| {
            ConnectorError::Refused("no LDAP refresh data; the user must log in again".into())
        })?;
        let mut ldap = self.service_connection().await?;
        let lookup = self.find_user(&mut ldap, &data.username).await?;
        let _ = ldap.unbind().await;
        let user = match lookup {
            Lookup::Found(user) => user,
            Lookup::Refused(reason) => {
                return Err(ConnectorError::Refused(format!("ldap: user {:?}: {reason}", data.username)));
            }
        };
        if user.dn != data.entry.dn {
            return Err(ConnectorError::Refused(format!(
                "ldap: user {:?} is now entry {:?}, was {:?}",
                data.username, user.dn, data.entry.dn
            )));
        }
        let mut fresh = self.identity(&user)?;
        if fresh.user_id != old.user_id {
            return Err(ConnectorError::Refused(format!("ldap: the id of entry {:?} changed", user.dn)));
        }
        if scopes.groups {
            fresh.groups = self.groups(&user).await?;
        }
        fresh.connector_data = old.connector_data;
        Ok(fresh)
    }
}

struct GroupWalk {
    /// Group DNs found so far (lowercased): each group is expanded once, which ends cycles.
    seen: HashSet<String>,
    names: Vec<String>,
    name_set: HashSet<String>,
    searches: usize,
}

#[async_trait]
impl PasswordConnector for LdapConnector {
    fn prompt(&self) -> &str {
        &self.prompt
    }

    async fn login(
        &self,
        scopes: &ConnectorScopes,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, ConnectorError> {
        // Before any connection: a bind with an empty password is an unauthenticated bind
        // (RFC 4513 5.1.2) that many servers answer with success.
        if password.trim().is_empty() {
            tracing::info!(connector_id = %self.id, "LDAP login refused: empty or blank password");
            return Ok(None);
        }
        if username.is_empty() {
            return Ok(None);
        }
        match tokio::time::timeout(TOTAL_TIMEOUT, self.login_inner(scopes, username, password)).await {
            Ok(result) => result,
            Err(_) => Err(ConnectorError::Upstream(format!("ldap: login timed out after {TOTAL_TIMEOUT:?}"))),
        }
    }
}

#[async_trait]
impl RefreshConnector for LdapConnector {
    async fn refresh(
        &self,
        scopes: &ConnectorScopes,
        identity: Identity,
    ) -> Result<Identity, ConnectorError> {
        match tokio::time::timeout(TOTAL_TIMEOUT, self.refresh_inner(scopes, identity)).await {
            Ok(result) => result,
            Err(_) => {
                Err(ConnectorError::Upstream(format!("ldap: refresh timed out after {TOTAL_TIMEOUT:?}")))
            }
        }
    }
}

impl ConnectorImpl for LdapConnector {
    fn as_password(&self) -> Option<&dyn PasswordConnector> {
        Some(self)
    }
    fn as_refresh(&self) -> Option<&dyn RefreshConnector> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::connector::config::parse;
    use crate::storage;
    use crate::storage::memory::MemoryStorage;

    fn open(config: serde_json::Value) -> Result<Arc<dyn ConnectorImpl>, ConnectorError> {
        let connector = storage::Connector {
            id: "ldap".into(),
            r#type: "ldap".into(),
            name: "LDAP".into(),
            config: serde_json::to_vec(&config).unwrap(),
            ..Default::default()
        };
        let ctx = OpenContext::new(Arc::new(MemoryStorage::new()), Arc::new(SystemClock));
        parse::<LdapConfig>(&connector)?.open("ldap", &ctx)
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "host": "ldap.example.com",
            "bindDN": "cn=svc,dc=example,dc=org",
            "bindPW": "s3cret-bind",
            "userSearch": {"baseDN": "ou=people,dc=example,dc=org", "username": "uid", "idAttr": "uid",
                           "emailAttr": "mail", "nameAttr": "cn"},
        })
    }

    fn error(config: serde_json::Value) -> String {
        open(config).unwrap_err().to_string()
    }

    #[test]
    fn opens_with_dex_keys_and_defaults_to_ldaps_636() {
        let c = open(base()).unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("ldaps://ldap.example.com:636"), "{shown}");
        assert!(!shown.contains("s3cret-bind"), "{shown}");
        let mut cfg = base();
        cfg["startTLS"] = true.into();
        assert!(format!("{:?}", open(cfg).unwrap()).contains("ldap://ldap.example.com:389"));
        let mut cfg = base();
        cfg["insecureNoSSL"] = true.into();
        cfg["host"] = "10.0.0.1:10389".into();
        assert!(format!("{:?}", open(cfg).unwrap()).contains("ldap://10.0.0.1:10389"));
        let mut cfg = base();
        cfg["host"] = "[::1]:1636".into();
        assert!(format!("{:?}", open(cfg).unwrap()).contains("ldaps://[::1]:1636"));
    }

    #[test]
    fn nested_keys_are_case_insensitive_and_bad_ones_are_named() {
        let mut cfg = base();
        cfg["usersearch"] = serde_json::json!({"basedn": "dc=x", "USERNAME": ["uid", "mail"], "idattr": "uid",
                                               "emailattr": "mail", "Scope": "one"});
        cfg.as_object_mut().unwrap().remove("userSearch");
        open(cfg).unwrap();
        let mut cfg = base();
        cfg["userSearch"]["scope"] = "base".into();
        assert!(error(cfg).contains("\"userSearch.scope\""));
        let mut cfg = base();
        cfg["userSearch"]["idAttr"] = 7.into();
        assert!(error(cfg).contains("\"userSearch.idAttr\""));
        let mut cfg = base();
        cfg["userSearch"]["filter"] = "(objectClass=person".into();
        assert!(error(cfg).contains("\"userSearch.filter\""));
        let mut cfg = base();
        cfg["userSearch"]["username"] = "uid=*".into();
        assert!(error(cfg).contains("\"userSearch.username\""));
    }

    #[test]
    fn required_keys() {
        let mut cfg = base();
        cfg["host"] = "".into();
        assert!(error(cfg).contains("\"host\""));
        let mut cfg = base();
        cfg["host"] = "ldaps://x".into();
        assert!(error(cfg).contains("\"host\""));
        let mut cfg = base();
        cfg["bindPW"] = "".into();
        let e = error(cfg);
        assert!(e.contains("\"bindPW\"") && !e.contains("s3cret"), "{e}");
        let mut cfg = base();
        cfg["userSearch"]["baseDN"] = "".into();
        assert!(error(cfg).contains("\"userSearch.baseDN\""));
        let mut cfg = base();
        cfg["userSearch"].as_object_mut().unwrap().remove("username");
        assert!(error(cfg).contains("\"userSearch.username\""));
        let mut cfg = base();
        cfg["userSearch"].as_object_mut().unwrap().remove("emailAttr");
        assert!(error(cfg.clone()).contains("\"userSearch.emailAttr\""));
        cfg["userSearch"]["emailSuffix"] = "example.org".into();
        open(cfg).unwrap();
        let mut cfg = base();
        cfg["groupSearch"] = serde_json::json!({"baseDN": "ou=groups,dc=x", "nameAttr": "cn"});
        assert!(error(cfg).contains("\"groupSearch.userAttr\""));
        let mut cfg = base();
        cfg["groupSearch"] = serde_json::json!({"baseDN": "ou=groups,dc=x", "nameAttr": "cn",
            "userMatchers": [{"userAttr": "DN", "groupAttr": "member", "recursionGroupAttr": "DN"}, {"userAttr": "uid"}]});
        assert!(error(cfg).contains("\"groupSearch.userMatchers[1].groupAttr\""));
        let mut cfg = base();
        cfg["rootCAData"] = "!!!".into();
        assert!(error(cfg).contains("\"rootCAData\""));
        let mut cfg = base();
        cfg["rootCA"] = "/nonexistent/ca.pem".into();
        assert!(error(cfg).contains("\"rootCA\""));
        let mut cfg = base();
        cfg["clientCert"] = "/x.pem".into();
        assert!(error(cfg).contains("\"clientKey\""));
        let mut cfg = base();
        cfg["kerberos"] = serde_json::json!({"enabled": true});
        assert!(error(cfg).contains("\"kerberos\""));
    }

    #[tokio::test]
    async fn empty_and_blank_passwords_are_refused_without_connecting() {
        // Port 9 (discard) on a TEST-NET address: any connection attempt would fail or hang,
        // so an `Ok(None)` proves no connection was made.
        let mut cfg = base();
        cfg["host"] = "192.0.2.1:9".into();
        let c = open(cfg).unwrap();
        let p = c.as_password().unwrap();
        let s = ConnectorScopes::default();
        for pw in ["", " ", "\t\n ", "\u{3000}"] {
            let started = std::time::Instant::now();
            assert_eq!(p.login(&s, "jane", pw).await.unwrap(), None, "{pw:?}");
            assert!(started.elapsed() < Duration::from_millis(500));
        }
    }

    #[test]
    fn refresh_data_is_dex_shaped() {
        let data = RefreshData {
            username: "jane".into(),
            entry: Entry {
                dn: "uid=jane,ou=people,dc=x".into(),
                attributes: vec![Attribute { name: "mail".into(), values: vec!["j@x".into()] }],
            },
        };
        let json = serde_json::to_value(&data).unwrap();
        assert_eq!(json["Username"], "jane");
        assert_eq!(json["Entry"]["DN"], "uid=jane,ou=people,dc=x");
        assert_eq!(json["Entry"]["Attributes"][0]["Name"], "mail");
        // Dex's own JSON (with ByteValues) reads back.
        let dex = r#"{"Username":"jane","Entry":{"DN":"uid=jane,dc=x","Attributes":[{"Name":"uid","Values":["jane"],"ByteValues":["amFuZQ=="]}]}}"#;
        let back: RefreshData = serde_json::from_str(dex).unwrap();
        assert_eq!(back.entry.first("UID"), "jane");
        assert_eq!(back.entry.first("dn"), "uid=jane,dc=x");
    }
}
