//! OAuth scopes as Dex understands them.
//!
//! Dex knows six plain scopes (`openid`, `email`, `profile`, `groups`, `offline_access`,
//! `federated:id`) and one family, `audience:server:client_id:<peer>`, which asks for `<peer>` to
//! be added to the token's audience (cross-client trust). Any other scope is rejected at `/auth`
//! with `invalid_scope`. [`Scopes`] is the parsed, de-duplicated set, in request order; its
//! `Display` gives back the space-separated form.
//!
//! The trust rule for cross-client scopes: client A may ask for peer B when A is B, or when B
//! lists A in its `trustedPeers` ([`Scopes::check_peers`]). On refresh a client may narrow the
//! granted scopes but never widen them ([`narrowed`]).

use std::fmt;

/// `openid`: required for an ID token.
pub const OPENID: &str = "openid";
/// `email`: adds `email` and `email_verified`.
pub const EMAIL: &str = "email";
/// `profile`: adds `name` and `preferred_username`.
pub const PROFILE: &str = "profile";
/// `groups`: adds `groups`.
pub const GROUPS: &str = "groups";
/// `offline_access`: asks for a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";
/// `federated:id`: adds `federated_claims`.
pub const FEDERATED_ID: &str = "federated:id";
/// Prefix of the cross-client audience scopes; the peer client id follows it.
pub const CROSS_CLIENT_PREFIX: &str = "audience:server:client_id:";

/// Scope failures. Each maps to an OAuth error; the `Display` text is Dex's client-safe
/// `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// Scopes Dex does not know (`invalid_scope` at `/auth`).
    #[error("Unrecognized scope(s) {}", go_quoted(.0))]
    Unrecognized(Vec<String>),
    /// `openid` is required but absent (`invalid_scope`).
    #[error("Missing required scope(s) [\"openid\"].")]
    MissingOpenId,
    /// Cross-client scopes naming a peer that does not trust the client, or that does not exist
    /// (`invalid_scope`).
    #[error("Client can't request scope(s) {}", go_quoted(.0))]
    UntrustedPeers(Vec<String>),
    /// A refresh request asked for scopes that were not granted. Dex answers `invalid_request`
    /// (HTTP 400) here, not `invalid_scope`.
    #[error("Requested scopes contain unauthorized scope(s): {}.", go_quoted(.0))]
    Widened(Vec<String>),
}

/// Formats a list as Go's `fmt.Sprintf("%q", []string{...})` does: `["a" "b"]`, so that error
/// descriptions read exactly as Dex's.
fn go_quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(" "))
}

/// A parsed set of scopes, de-duplicated, in the order first requested.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scopes {
    list: Vec<String>,
    openid: bool,
    email: bool,
    profile: bool,
    groups: bool,
    offline_access: bool,
    federated_id: bool,
    cross_client_peers: Vec<String>,
}

impl Scopes {
    /// Parses a space-separated `scope` parameter (any run of whitespace separates, as Go's
    /// `strings.Fields`). Unknown scopes are an error listing all of them.
    pub fn parse(scope: &str) -> Result<Self, ScopeError> {
        Self::from_list(scope.split_whitespace())
    }

    /// Parses a list of scopes, such as the one stored on an auth code or refresh token.
    pub fn from_list<I, S>(scopes: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Self::default();
        let mut unknown: Vec<String> = Vec::new();
        for scope in scopes {
            let scope = scope.as_ref();
            if !out.insert(scope) && !unknown.iter().any(|u| u == scope) {
                unknown.push(scope.to_owned());
            }
        }
        if unknown.is_empty() { Ok(out) } else { Err(ScopeError::Unrecognized(unknown)) }
    }

    /// Like [`Scopes::from_list`] but drops unknown scopes instead of failing, as Dex does when it
    /// mints tokens from already-validated stored scopes.
    pub fn from_list_lenient<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Self::default();
        for scope in scopes {
            out.insert(scope.as_ref());
        }
        out
    }

    /// Adds one scope; returns false (and adds nothing) when it is unknown. Duplicates are
    /// accepted and ignored.
    fn insert(&mut self, scope: &str) -> bool {
        let flag = match scope {
            OPENID => &mut self.openid,
            EMAIL => &mut self.email,
            PROFILE => &mut self.profile,
            GROUPS => &mut self.groups,
            OFFLINE_ACCESS => &mut self.offline_access,
            FEDERATED_ID => &mut self.federated_id,
            _ => match scope.strip_prefix(CROSS_CLIENT_PREFIX) {
                Some(peer) => {
                    if !self.cross_client_peers.iter().any(|p| p == peer) {
                        self.cross_client_peers.push(peer.to_owned());
                        self.list.push(scope.to_owned());
                    }
                    return true;
                }
                None => return false,
            },
        };
        if !*flag {
            *flag = true;
            self.list.push(scope.to_owned());
        }
        true
    }

    /// Fails with [`ScopeError::MissingOpenId`] unless `openid` is present (required at `/auth`
    /// and by the password grant).
    pub fn require_openid(&self) -> Result<(), ScopeError> {
        if self.openid { Ok(()) } else { Err(ScopeError::MissingOpenId) }
    }

    /// `openid` was requested.
    pub fn openid(&self) -> bool {
        self.openid
    }

    /// `email` was requested.
    pub fn email(&self) -> bool {
        self.email
    }

    /// `profile` was requested.
    pub fn profile(&self) -> bool {
        self.profile
    }

    /// `groups` was requested.
    pub fn groups(&self) -> bool {
        self.groups
    }

    /// `offline_access` was requested.
    pub fn offline_access(&self) -> bool {
        self.offline_access
    }

    /// `federated:id` was requested.
    pub fn federated_id(&self) -> bool {
        self.federated_id
    }

    /// The peers of the `audience:server:client_id:<peer>` scopes, in request order.
    pub fn cross_client_peers(&self) -> &[String] {
        &self.cross_client_peers
    }

    /// The scopes, de-duplicated, in request order.
    pub fn as_slice(&self) -> &[String] {
        &self.list
    }

    /// The scopes as a list, for storage.
    pub fn to_vec(&self) -> Vec<String> {
        self.list.clone()
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.list.iter().any(|s| s == scope)
    }

    /// Whether there are no scopes at all.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Checks every cross-client scope against the peers' `trustedPeers`.
    ///
    /// `trusted_peers_of(peer_id)` returns the peer client's `trusted_peers`, or `None` when no
    /// such client exists. A client always trusts itself (no lookup is made for it). Fails with
    /// [`ScopeError::UntrustedPeers`] listing the offending scopes.
    pub fn check_peers<'a, F>(&self, client_id: &str, mut trusted_peers_of: F) -> Result<(), ScopeError>
    where
        F: FnMut(&str) -> Option<&'a [String]>,
    {
        let untrusted: Vec<String> = self
            .cross_client_peers
            .iter()
            .filter(|peer| !peer_trusts(client_id, peer, trusted_peers_of(peer)))
            .map(|peer| format!("{CROSS_CLIENT_PREFIX}{peer}"))
            .collect();
        if untrusted.is_empty() { Ok(()) } else { Err(ScopeError::UntrustedPeers(untrusted)) }
    }
}

/// Whether `client_id` may put `peer_id` in a token's audience: true when they are the same
/// client, or when the peer exists and lists the client in `peer_trusted_peers`.
pub fn peer_trusts(client_id: &str, peer_id: &str, peer_trusted_peers: Option<&[String]>) -> bool {
    client_id == peer_id || peer_trusted_peers.is_some_and(|trusted| trusted.iter().any(|t| t == client_id))
}

/// The scopes for a refresh: `requested` (the request's space-separated `scope`) when every one
/// of them was `granted`, or all of `granted` when `requested` is empty (RFC 6749 §6). Asking
/// for anything not granted, including unknown scopes, is [`ScopeError::Widened`].
pub fn narrowed(requested: &str, granted: &Scopes) -> Result<Scopes, ScopeError> {
    let mut widened: Vec<String> = Vec::new();
    let mut out = Scopes::default();
    for scope in requested.split_whitespace() {
        let allowed = granted.contains(scope) && out.insert(scope);
        if !allowed && !widened.iter().any(|w| w == scope) {
            widened.push(scope.to_owned());
        }
    }
    if !widened.is_empty() {
        return Err(ScopeError::Widened(widened));
    }
    if out.is_empty() { Ok(granted.clone()) } else { Ok(out) }
}

impl fmt::Display for Scopes {
    /// The space-separated form, as in a `scope` parameter.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.list.join(" "))
    }
}

impl std::str::FromStr for Scopes {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_and_peers_in_order_without_duplicates() {
        let s = Scopes::parse(
            "  openid email\tprofile groups openid offline_access federated:id \
             audience:server:client_id:kube audience:server:client_id:kube audience:server:client_id:web",
        )
        .unwrap();
        assert!(s.openid() && s.email() && s.profile() && s.groups());
        assert!(s.offline_access() && s.federated_id());
        assert_eq!(s.cross_client_peers(), ["kube", "web"]);
        assert_eq!(
            s.to_string(),
            "openid email profile groups offline_access federated:id \
             audience:server:client_id:kube audience:server:client_id:web"
        );
        assert_eq!(Scopes::parse(&s.to_string()).unwrap(), s, "round trip");
        assert_eq!(s.to_vec().len(), 8);
    }

    #[test]
    fn flags_default_to_false() {
        let s = Scopes::parse("openid").unwrap();
        assert!(s.openid());
        assert!(!s.email() && !s.profile() && !s.groups() && !s.offline_access() && !s.federated_id());
        assert!(s.cross_client_peers().is_empty());
        let empty = Scopes::parse("   ").unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty.to_string(), "");
        assert_eq!(empty.require_openid(), Err(ScopeError::MissingOpenId));
        assert_eq!(s.require_openid(), Ok(()));
    }

    #[test]
    fn unknown_scopes_are_all_reported() {
        let err = Scopes::parse("openid foo email bar foo OPENID").unwrap_err();
        assert_eq!(err, ScopeError::Unrecognized(vec!["foo".into(), "bar".into(), "OPENID".into()]));
        assert_eq!(err.to_string(), r#"Unrecognized scope(s) ["foo" "bar" "OPENID"]"#);
        // A prefix of the cross-client family is not the family.
        assert!(Scopes::parse("audience:server:client_idx").is_err());
    }

    #[test]
    fn lenient_parsing_drops_unknown_scopes() {
        let s = Scopes::from_list_lenient(["openid", "nope", "email"]);
        assert_eq!(s.to_string(), "openid email");
        let stored = vec!["openid".to_owned(), "groups".to_owned()];
        assert_eq!(Scopes::from_list(&stored).unwrap().to_string(), "openid groups");
    }

    #[test]
    fn cross_client_trust() {
        let peers: Vec<(String, Vec<String>)> = vec![
            ("kube".into(), vec!["cli".into()]),
            ("web".into(), vec!["other".into()]),
            ("cli".into(), vec![]),
        ];
        let lookup =
            |id: &str| peers.iter().find(|(peer, _)| peer == id).map(|(_, trusted)| trusted.as_slice());

        let ok =
            Scopes::parse("openid audience:server:client_id:kube audience:server:client_id:cli").unwrap();
        assert_eq!(ok.check_peers("cli", lookup), Ok(()), "kube trusts cli, and cli trusts itself");

        let bad = Scopes::parse(
            "openid audience:server:client_id:web audience:server:client_id:ghost \
             audience:server:client_id:kube",
        )
        .unwrap();
        let err = bad.check_peers("cli", lookup).unwrap_err();
        assert_eq!(
            err,
            ScopeError::UntrustedPeers(vec![
                "audience:server:client_id:web".into(),
                "audience:server:client_id:ghost".into()
            ])
        );
        assert!(
            err.to_string().starts_with("Client can't request scope(s) [\"audience:server:client_id:web\"")
        );

        // Trust is not symmetric: cli does not list kube.
        let reverse = Scopes::parse("openid audience:server:client_id:cli").unwrap();
        assert!(reverse.check_peers("kube", lookup).is_err());

        // An empty peer id names no client.
        let empty = Scopes::parse("openid audience:server:client_id:").unwrap();
        assert_eq!(empty.cross_client_peers(), [""]);
        assert!(empty.check_peers("cli", lookup).is_err());

        assert!(peer_trusts("a", "a", None));
        assert!(!peer_trusts("a", "b", None));
        assert!(peer_trusts("a", "b", Some(&["x".into(), "a".into()])));
    }

    #[test]
    fn refresh_may_narrow_but_not_widen() {
        let granted = Scopes::parse("openid email groups offline_access").unwrap();
        assert_eq!(narrowed("", &granted).unwrap(), granted, "no scope means all granted");
        assert_eq!(narrowed("  ", &granted).unwrap(), granted);
        assert_eq!(narrowed("email openid", &granted).unwrap().to_string(), "email openid");
        assert_eq!(narrowed("openid openid", &granted).unwrap().to_string(), "openid");

        let err = narrowed("openid profile bogus profile", &granted).unwrap_err();
        assert_eq!(err, ScopeError::Widened(vec!["profile".into(), "bogus".into()]));
        assert_eq!(
            err.to_string(),
            r#"Requested scopes contain unauthorized scope(s): ["profile" "bogus"]."#
        );
    }

    #[test]
    fn from_str_matches_parse() {
        let s: Scopes = "openid profile".parse().unwrap();
        assert!(s.profile());
        assert!(s.contains("openid") && !s.contains("email"));
    }
}
