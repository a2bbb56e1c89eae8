//! The claims of the ID and access tokens, shaped exactly as Dex's.
//!
//! Dex's rules (`server/tokens/claims.go`, `issuer.go`), which these types reproduce:
//! - `aud` is the requesting client plus every cross-client peer (peers first, in scope order, then
//!   the client unless it is itself one of the peers); it is a single string when there is one
//!   audience and an array otherwise. `azp` is the requesting client, set only when there is more
//!   than one audience.
//! - `sub` is [`encode_subject`]`(user_id, connector_id)`; `jti` is a random UUID (Dex master).
//! - `nonce`, `at_hash`, `c_hash` are omitted when empty.
//! - `email` + `email_verified` only with the `email` scope (`email_verified` is then always
//!   present, even `false`); `groups` only with `groups`; `name` (the connector's *username*) and
//!   `preferred_username` only with `profile`; `federated_claims {connector_id, user_id}` only
//!   with `federated:id`. Like Go's `omitempty`, empty strings and empty lists are left out.
//! - `auth_time` and `sid` (Dex master, with sessions) are omitted when unknown.
//! - Members are serialized in Dex's order, so payloads read the same.
//!
//! **Access tokens.** Dex's access token is the same ID token minted over a throw-away value:
//! `SignAccessToken` calls `SignIDToken(auth, NewID(), "")`. It therefore carries the same claim
//! set *including* `nonce`, has an `at_hash` computed over a random id that is never revealed,
//! and no `c_hash`. [`access_token_claims`] follows Dex exactly, so that whatever relying parties
//! (and Kubernetes) accept from Dex they accept from Oxidex.
//!
//! Cross-client trust is not checked here (this module is pure): callers check it with
//! [`Scopes::check_peers`](super::scopes::Scopes::check_peers) before minting, as Dex does at
//! `/auth`, at the token endpoint and when signing.
//!
//! [`encode_subject`]: super::subject::encode_subject

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::scopes::Scopes;
use super::subject::encode_subject;
use crate::storage::{Claims, SigningAlg};

/// The `aud` claim: one string when there is a single audience, an array otherwise (an empty
/// audience serializes as `[]`). Deserializes from either form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audience(pub Vec<String>);

impl Audience {
    /// Whether `client_id` is one of the audiences.
    pub fn contains(&self, client_id: &str) -> bool {
        self.0.iter().any(|a| a == client_id)
    }

    /// The audiences.
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Number of audiences.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is no audience.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Dex's `GetAudience`: every cross-client peer in scope order, then `client_id` unless it is
    /// already one of them; just `client_id` when there are no peers.
    pub fn for_client(client_id: &str, scopes: &Scopes) -> Self {
        let mut aud: Vec<String> = scopes.cross_client_peers().to_vec();
        if !aud.iter().any(|a| a == client_id) {
            aud.push(client_id.to_owned());
        }
        Self(aud)
    }

    /// Dex's `GetClientID`: the client a token was issued to, the single audience or else `azp`.
    pub fn client_id<'a>(&'a self, azp: Option<&'a str>) -> Option<&'a str> {
        match self.0.as_slice() {
            [] => None,
            [only] => Some(only),
            _ => azp,
        }
    }
}

impl Serialize for Audience {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [only] => serializer.serialize_str(only),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Audience {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;

        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or an array of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Audience, E> {
                Ok(Audience(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
                while let Some(item) = seq.next_element::<String>()? {
                    out.push(item);
                }
                Ok(Audience(out))
            }
        }

        deserializer.deserialize_any(AudienceVisitor)
    }
}

/// `federated_claims`: the upstream identity, with the `federated:id` scope.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FederatedClaims {
    /// The connector id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub connector_id: String,
    /// The connector-local user id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user_id: String,
}

fn none_or_empty(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(str::is_empty)
}

fn none_or_empty_list(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

/// The claims of an ID token (and of Dex's JWT access token), member for member as Dex writes
/// them. Optional members are omitted when `None` or empty, as Go's `omitempty`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IdTokenClaims {
    /// `iss`: the issuer URL.
    pub iss: String,
    /// `sub`: Dex's encoded (user id, connector id).
    pub sub: String,
    /// `aud`: the client and its cross-client peers.
    pub aud: Audience,
    /// `exp`: expiry, seconds since the epoch.
    pub exp: i64,
    /// `iat`: issue time, seconds since the epoch.
    pub iat: i64,
    /// `jti`: a random UUID (Dex master).
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub jti: Option<String>,
    /// `azp`: the requesting client, when there is more than one audience.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub azp: Option<String>,
    /// `nonce` of the authorization request.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub nonce: Option<String>,
    /// `auth_time`: when the user authenticated (Dex master, when known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// `sid`: the browser session (Dex master, with sessions).
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub sid: Option<String>,
    /// `at_hash`: [`left_half_hash`] of the access token.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub at_hash: Option<String>,
    /// `c_hash`: [`left_half_hash`] of the authorization code.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub c_hash: Option<String>,
    /// `email`, with the `email` scope.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub email: Option<String>,
    /// `email_verified`, with the `email` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// `groups`, with the `groups` scope.
    #[serde(default, skip_serializing_if = "none_or_empty_list")]
    pub groups: Option<Vec<String>>,
    /// `name` (the connector's username), with the `profile` scope.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub name: Option<String>,
    /// `preferred_username`, with the `profile` scope.
    #[serde(default, skip_serializing_if = "none_or_empty")]
    pub preferred_username: Option<String>,
    /// `federated_claims`, with the `federated:id` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated_claims: Option<FederatedClaims>,
}

/// Everything a token's claims are made from.
#[derive(Debug, Clone, Copy)]
pub struct ClaimsInput<'a> {
    /// The issuer URL, exactly as configured (it is compared byte for byte by relying parties).
    pub issuer: &'a str,
    /// The client the token is issued to.
    pub client_id: &'a str,
    /// The granted scopes; the cross-client peers in them join the audience. Their trust must
    /// already have been checked.
    pub scopes: &'a Scopes,
    /// The user's claims from the connector.
    pub claims: &'a Claims,
    /// The connector that authenticated the user.
    pub connector_id: &'a str,
    /// The authorization request's `nonce`; empty when none.
    pub nonce: &'a str,
    /// Issue time (`iat`).
    pub issued_at: DateTime<Utc>,
    /// Expiry (`exp`): `issued_at` plus `expiry.idTokens`.
    pub expiry: DateTime<Utc>,
    /// The access token issued alongside, for `at_hash`.
    pub access_token: Option<&'a str>,
    /// The authorization code issued alongside (hybrid flow), for `c_hash`.
    pub code: Option<&'a str>,
    /// The algorithm of the key that will sign the token (chooses the `at_hash` digest).
    pub alg: SigningAlg,
    /// The token id; use [`new_jti`].
    pub jti: &'a str,
    /// When the user authenticated, if known (`auth_time`).
    pub auth_time: Option<DateTime<Utc>>,
    /// The browser session, if any (`sid`).
    pub session_id: Option<&'a str>,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Builds the claims of an ID token by Dex's rules (see the module documentation).
pub fn id_token_claims(input: &ClaimsInput<'_>) -> IdTokenClaims {
    let scopes = input.scopes;
    let user = input.claims;
    let aud = Audience::for_client(input.client_id, scopes);
    let azp = (aud.len() > 1).then(|| input.client_id.to_owned());
    IdTokenClaims {
        iss: input.issuer.to_owned(),
        sub: encode_subject(&user.user_id, input.connector_id),
        aud,
        exp: input.expiry.timestamp(),
        iat: input.issued_at.timestamp(),
        jti: non_empty(input.jti),
        azp,
        nonce: non_empty(input.nonce),
        auth_time: input.auth_time.map(|t| t.timestamp()),
        sid: input.session_id.and_then(non_empty),
        at_hash: input.access_token.filter(|t| !t.is_empty()).map(|t| left_half_hash(input.alg, t)),
        c_hash: input.code.filter(|c| !c.is_empty()).map(|c| left_half_hash(input.alg, c)),
        email: scopes.email().then(|| non_empty(&user.email)).flatten(),
        email_verified: scopes.email().then_some(user.email_verified),
        groups: (scopes.groups() && !user.groups.is_empty()).then(|| user.groups.clone()),
        name: scopes.profile().then(|| non_empty(&user.username)).flatten(),
        preferred_username: scopes.profile().then(|| non_empty(&user.preferred_username)).flatten(),
        federated_claims: scopes.federated_id().then(|| FederatedClaims {
            connector_id: input.connector_id.to_owned(),
            user_id: user.user_id.clone(),
        }),
    }
}

/// Builds the claims of a JWT access token as Dex does: the ID token's claims (nonce included)
/// with `at_hash` computed over `throwaway` (pass a fresh [`crate::clock::new_id`], never
/// revealed) and no `c_hash`. `input.access_token` and `input.code` are ignored.
pub fn access_token_claims(input: &ClaimsInput<'_>, throwaway: &str) -> IdTokenClaims {
    id_token_claims(&ClaimsInput { access_token: Some(throwaway), code: None, ..*input })
}

/// The `at_hash`/`c_hash` rule (OIDC Core 3.1.3.6, 3.3.2.11): base64url, unpadded, of the left
/// half of the digest of `value`, the digest being the signing algorithm's (SHA-256 for RS256 and
/// ES256).
pub fn left_half_hash(alg: SigningAlg, value: &str) -> String {
    let digest = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => Sha256::digest(value.as_bytes()),
    };
    let half = digest.len() / 2;
    URL_SAFE_NO_PAD.encode(digest.get(..half).unwrap_or_default())
}

/// A random version-4 UUID in its hyphenated lower-case form, for `jti` (as Dex's
/// `uuid.New().String()`).
pub fn new_jti() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;
    use serde_json::json;

    use super::*;
    use crate::token::keys::{Signer, generate};
    use crate::token::verify::verify_token;

    fn user() -> Claims {
        Claims {
            user_id: "08a8684b-db88-4b73-90a9-3cd1661f5466".into(),
            username: "admin".into(),
            preferred_username: "admin-pref".into(),
            email: "admin@example.com".into(),
            email_verified: true,
            groups: vec!["admins".into(), "devs".into()],
        }
    }

    fn input<'a>(scopes: &'a Scopes, claims: &'a Claims) -> ClaimsInput<'a> {
        ClaimsInput {
            issuer: "https://dex.example.com/dex",
            client_id: "example-app",
            scopes,
            claims,
            connector_id: "local",
            nonce: "",
            issued_at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            expiry: Utc.timestamp_opt(1_700_086_400, 0).unwrap(),
            access_token: None,
            code: None,
            alg: SigningAlg::RS256,
            jti: "",
            auth_time: None,
            session_id: None,
        }
    }

    #[test]
    fn left_half_hash_matches_oidc_core_examples() {
        // OIDC Core A.3 (at_hash) and A.4 (c_hash), RS256.
        assert_eq!(
            left_half_hash(SigningAlg::RS256, "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(
            left_half_hash(SigningAlg::RS256, "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"),
            "LDktKdoQak3Pk0cnXxCltA"
        );
        assert_eq!(left_half_hash(SigningAlg::ES256, "x"), left_half_hash(SigningAlg::RS256, "x"));
        assert_eq!(left_half_hash(SigningAlg::ES256, "x").len(), 22);
    }

    #[test]
    fn subject_of_the_local_password_connector_is_dex_s() {
        // Hand-derived: 0x0a 0x24 "08a8684b-…" 0x12 0x05 "local", base64url without padding.
        let mut wire = vec![0x0a, 36];
        wire.extend_from_slice(b"08a8684b-db88-4b73-90a9-3cd1661f5466");
        wire.extend_from_slice(&[0x12, 5]);
        wire.extend_from_slice(b"local");
        let expected = "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs";
        assert_eq!(URL_SAFE_NO_PAD.encode(&wire), expected);
        assert_eq!(encode_subject("08a8684b-db88-4b73-90a9-3cd1661f5466", "local"), expected);
    }

    #[test]
    fn audience_serializes_as_string_or_array() {
        let one = Audience(vec!["a".into()]);
        let two = Audience(vec!["a".into(), "b".into()]);
        assert_eq!(serde_json::to_string(&one).unwrap(), r#""a""#);
        assert_eq!(serde_json::to_string(&two).unwrap(), r#"["a","b"]"#);
        assert_eq!(serde_json::to_string(&Audience::default()).unwrap(), "[]");
        assert_eq!(serde_json::from_str::<Audience>(r#""a""#).unwrap(), one);
        assert_eq!(serde_json::from_str::<Audience>(r#"["a","b"]"#).unwrap(), two);
        assert!(serde_json::from_str::<Audience>("3").is_err());
        assert!(serde_json::from_str::<Audience>("[3]").is_err());
        assert_eq!(one.client_id(Some("z")), Some("a"));
        assert_eq!(two.client_id(Some("b")), Some("b"));
        assert_eq!(Audience::default().client_id(Some("b")), None);
    }

    #[test]
    fn audience_follows_dex_get_audience() {
        let plain = Scopes::parse("openid").unwrap();
        assert_eq!(Audience::for_client("cli", &plain).0, ["cli"]);
        let peers =
            Scopes::parse("openid audience:server:client_id:kube audience:server:client_id:web").unwrap();
        assert_eq!(Audience::for_client("cli", &peers).0, ["kube", "web", "cli"]);
        let own = Scopes::parse("openid audience:server:client_id:cli").unwrap();
        assert_eq!(Audience::for_client("cli", &own).0, ["cli"]);
    }

    #[test]
    fn minimal_token_has_only_the_mandatory_claims() {
        let scopes = Scopes::parse("openid").unwrap();
        let user = user();
        let claims = id_token_claims(&input(&scopes, &user));
        assert_eq!(
            serde_json::to_string(&claims).unwrap(),
            r#"{"iss":"https://dex.example.com/dex","sub":"CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs","aud":"example-app","exp":1700086400,"iat":1700000000}"#
        );
    }

    #[test]
    fn full_token_has_every_claim_in_dex_order() {
        let scopes = Scopes::parse(
            "openid email profile groups federated:id offline_access audience:server:client_id:kube",
        )
        .unwrap();
        let user = user();
        let mut i = input(&scopes, &user);
        i.nonce = "n-0S6_WzA2Mj";
        i.access_token = Some("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y");
        i.code = Some("Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk");
        i.jti = "6f1c2f0e-58c4-4a0e-9d0c-1a2b3c4d5e6f";
        i.auth_time = Some(Utc.timestamp_opt(1_699_999_000, 0).unwrap());
        i.session_id = Some("sess");
        let claims = id_token_claims(&i);
        let value = serde_json::to_value(&claims).unwrap();
        assert_eq!(
            value,
            json!({
                "iss": "https://dex.example.com/dex",
                "sub": "CiQwOGE4Njg0Yi1kYjg4LTRiNzMtOTBhOS0zY2QxNjYxZjU0NjYSBWxvY2Fs",
                "aud": ["kube", "example-app"],
                "exp": 1_700_086_400,
                "iat": 1_700_000_000,
                "jti": "6f1c2f0e-58c4-4a0e-9d0c-1a2b3c4d5e6f",
                "azp": "example-app",
                "nonce": "n-0S6_WzA2Mj",
                "auth_time": 1_699_999_000,
                "sid": "sess",
                "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
                "c_hash": "LDktKdoQak3Pk0cnXxCltA",
                "email": "admin@example.com",
                "email_verified": true,
                "groups": ["admins", "devs"],
                "name": "admin",
                "preferred_username": "admin-pref",
                "federated_claims": {"connector_id": "local", "user_id": "08a8684b-db88-4b73-90a9-3cd1661f5466"},
            })
        );
        let text = serde_json::to_string(&claims).unwrap();
        let keys: Vec<usize> = [
            "\"iss\"",
            "\"sub\"",
            "\"aud\"",
            "\"exp\"",
            "\"iat\"",
            "\"jti\"",
            "\"azp\"",
            "\"nonce\"",
            "\"auth_time\"",
            "\"sid\"",
            "\"at_hash\"",
            "\"c_hash\"",
            "\"email\"",
            "\"email_verified\"",
            "\"groups\"",
            "\"name\"",
            "\"preferred_username\"",
            "\"federated_claims\"",
        ]
        .iter()
        .map(|k| text.find(k).unwrap())
        .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "members must be in Dex's order: {text}");
        // The claims read back unchanged.
        assert_eq!(serde_json::from_str::<IdTokenClaims>(&text).unwrap(), claims);
    }

    #[test]
    fn scope_gated_claims_follow_dex_omitempty() {
        let user = Claims { user_id: "u".into(), email_verified: false, groups: vec![], ..Claims::default() };
        let scopes = Scopes::parse("openid email profile groups federated:id").unwrap();
        let value = serde_json::to_value(id_token_claims(&input(&scopes, &user))).unwrap();
        // email_verified is a pointer in Dex: present (false) with the email scope even when the
        // email is empty; empty strings and lists are omitted.
        assert_eq!(value["email_verified"], json!(false));
        for absent in ["email", "groups", "name", "preferred_username", "nonce", "azp", "at_hash", "c_hash"] {
            assert!(value.get(absent).is_none(), "{absent} should be omitted: {value}");
        }
        assert_eq!(value["federated_claims"], json!({"connector_id": "local", "user_id": "u"}));

        // Without the scopes, nothing of the user leaks beyond `sub`.
        let user = self::user();
        let scopes = Scopes::parse("openid offline_access").unwrap();
        let value = serde_json::to_value(id_token_claims(&input(&scopes, &user))).unwrap();
        for absent in ["email", "email_verified", "groups", "name", "preferred_username", "federated_claims"]
        {
            assert!(value.get(absent).is_none(), "{absent} needs its scope: {value}");
        }
    }

    #[test]
    fn access_token_claims_are_the_id_token_over_a_throwaway() {
        let scopes = Scopes::parse("openid email").unwrap();
        let user = user();
        let mut i = input(&scopes, &user);
        i.nonce = "abc";
        i.code = Some("code");
        i.access_token = Some("ignored");
        let at = access_token_claims(&i, "throwaway");
        assert_eq!(at.nonce.as_deref(), Some("abc"));
        assert_eq!(at.at_hash, Some(left_half_hash(SigningAlg::RS256, "throwaway")));
        assert_eq!(at.c_hash, None);
        assert_eq!(at.email.as_deref(), Some("admin@example.com"));
        let id = id_token_claims(&i);
        assert_eq!(
            IdTokenClaims { at_hash: None, c_hash: None, ..id },
            IdTokenClaims { at_hash: None, ..at }
        );
    }

    #[test]
    fn jti_is_a_v4_uuid() {
        let a = new_jti();
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].chars().next(), Some('8' | '9' | 'a' | 'b')));
        assert_ne!(a, new_jti());
    }

    #[test]
    fn signed_claims_verify_and_read_back() {
        for alg in [SigningAlg::RS256, SigningAlg::ES256] {
            let key = generate(alg).unwrap();
            let signer = Signer::new(&key).unwrap();
            let scopes = Scopes::parse("openid email groups audience:server:client_id:kube").unwrap();
            let user = user();
            let now = Utc::now();
            let jti = new_jti();
            let mut i = input(&scopes, &user);
            i.alg = signer.alg();
            i.issued_at = now;
            i.expiry = now + chrono::Duration::hours(24);
            i.jti = &jti;
            let claims = id_token_claims(&i);
            let token = signer.sign(&claims).unwrap();
            let verified =
                verify_token(&token, std::slice::from_ref(&key.public_jwk), i.issuer, now.timestamp())
                    .unwrap();
            assert_eq!(verified, serde_json::to_value(&claims).unwrap());
            assert_eq!(serde_json::from_value::<IdTokenClaims>(verified).unwrap(), claims);
        }
    }
}
