//! The encoded `sub` claim, byte-compatible with Dex.
//!
//! Dex puts in the ID token's `sub` the connector-local user id together with the connector id:
//! the protobuf message `internal.IDTokenSubject { string user_id = 1; string conn_id = 2; }`,
//! serialised, then base64url-encoded without padding. Users, RPs and the admin API
//! (`ListRefresh`, `RevokeRefresh`) see only that string, so Oxidex must produce the very same
//! bytes: `encode_subject("2342744", "github") == "CgcyMzQyNzQ0EgZnaXRodWI"`.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost::Message as _;

/// Dex's `internal.IDTokenSubject`.
#[derive(Clone, PartialEq, prost::Message)]
struct IdTokenSubject {
    /// The connector-local user id.
    #[prost(string, tag = "1")]
    user_id: String,
    /// The connector id.
    #[prost(string, tag = "2")]
    conn_id: String,
}

/// Go's `base64.RawURLEncoding`: URL-safe alphabet, no padding written or accepted, and (being
/// non-strict) tolerant of non-zero trailing bits.
const RAW_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes a user of a connector as Dex's `sub` claim.
pub fn encode_subject(user_id: &str, conn_id: &str) -> String {
    let message = IdTokenSubject { user_id: user_id.to_owned(), conn_id: conn_id.to_owned() };
    RAW_URL.encode(message.encode_to_vec())
}

/// Decodes a `sub` claim into `(user_id, conn_id)`; `None` when it is not base64url of an
/// `IDTokenSubject`.
pub fn decode_subject(sub: &str) -> Option<(String, String)> {
    let bytes = RAW_URL.decode(sub).ok()?;
    let message = IdTokenSubject::decode(bytes.as_slice()).ok()?;
    Some((message.user_id, message.conn_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_dex_encoding() {
        assert_eq!(encode_subject("2342744", "github"), "CgcyMzQyNzQ0EgZnaXRodWI");
        assert_eq!(decode_subject("CgcyMzQyNzQ0EgZnaXRodWI"), Some(("2342744".into(), "github".into())));
    }

    #[test]
    fn round_trips() {
        for (u, c) in [("", "local"), ("08a8684b-db88-4b73-90a9-3cd1661f5466", "local"), ("ü ser/+", "ldap")]
        {
            let sub = encode_subject(u, c);
            assert!(!sub.contains('=') && !sub.contains('+') && !sub.contains('/'), "{sub}");
            assert_eq!(decode_subject(&sub), Some((u.to_owned(), c.to_owned())));
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode_subject("not base64!"), None);
        assert_eq!(decode_subject("CgcyMzQyNzQ0EgZnaXRodWI="), None, "padding is not Dex's encoding");
        // Valid base64 but a truncated protobuf (length prefix 7, 2 bytes follow).
        assert_eq!(decode_subject("CgcyMw"), None);
    }
}
