//! Refresh token strings, and the hashes under which secrets are stored.
//!
//! Dex hands out a refresh token as base64url (unpadded) of the protobuf message
//! `internal.RefreshToken { string refresh_id = 1; string token = 2; }`: the id names the stored
//! token, the secret part proves possession. Rotation keeps the id and replaces the secret.
//! Strings that do not decode are, in Dex, taken as a bare refresh id from very old servers
//! (with no secret, so reuse detection always rejects them); [`decode`] returns `None` for them
//! and leaves that choice to the caller.
//!
//! Oxidex stores only hashes of secrets ([`hash_secret`], hex SHA-256) and compares them in
//! constant time ([`secret_matches`]); authorization codes and device codes are stored the same
//! way ([`hash_code`]).

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use prost::Message as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::clock::new_id;

/// Dex's `internal.RefreshToken`.
#[derive(Clone, PartialEq, prost::Message)]
struct RefreshTokenMessage {
    /// The refresh token id.
    #[prost(string, tag = "1")]
    refresh_id: String,
    /// The secret.
    #[prost(string, tag = "2")]
    token: String,
}

/// Go's `base64.RawURLEncoding`: URL-safe alphabet, no padding written or accepted, tolerant of
/// non-zero trailing bits.
const RAW_URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes a refresh token id and secret as the string handed to the client.
pub fn encode(id: &str, secret: &str) -> String {
    let message = RefreshTokenMessage { refresh_id: id.to_owned(), token: secret.to_owned() };
    RAW_URL.encode(message.encode_to_vec())
}

/// Decodes a presented refresh token string into `(id, secret)`; `None` when it is not
/// base64url of a `RefreshToken` message with a non-empty id.
pub fn decode(presented: &str) -> Option<(String, String)> {
    let bytes = RAW_URL.decode(presented).ok()?;
    let message = RefreshTokenMessage::decode(bytes.as_slice()).ok()?;
    if message.refresh_id.is_empty() {
        return None;
    }
    Some((message.refresh_id, message.token))
}

/// A new random refresh secret (Dex's `NewID`).
pub fn new_secret() -> String {
    new_id()
}

/// A newly minted refresh token: its id, and its secret, which is shown to the client once and
/// stored only as [`hash_secret`]. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    /// The refresh token id (stored in the clear; names the token).
    pub id: String,
    /// The secret part.
    pub secret: String,
}

impl NewRefreshToken {
    /// A brand-new token: random id and random secret.
    pub fn generate() -> Self {
        Self { id: new_id(), secret: new_secret() }
    }

    /// A rotated token: the same id with a fresh secret.
    pub fn rotate(id: &str) -> Self {
        Self { id: id.to_owned(), secret: new_secret() }
    }

    /// The string handed to the client.
    pub fn encoded(&self) -> String {
        encode(&self.id, &self.secret)
    }

    /// The hash to store.
    pub fn secret_hash(&self) -> String {
        hash_secret(&self.secret)
    }
}

impl std::fmt::Debug for NewRefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewRefreshToken").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Hex SHA-256 of a refresh secret: what storage keeps instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    hex_sha256(secret)
}

/// Hex SHA-256 of an authorization code or device code: what storage keeps instead of the code.
pub fn hash_code(code: &str) -> String {
    hex_sha256(code)
}

/// Whether `presented` (a secret or code as the client sent it) hashes to `stored_hash`, compared
/// in constant time. An empty stored hash never matches.
pub fn secret_matches(stored_hash: &str, presented: &str) -> bool {
    if stored_hash.is_empty() {
        return false;
    }
    hex_sha256(presented).as_bytes().ct_eq(stored_hash.as_bytes()).into()
}

fn hex_sha256(value: &str) -> String {
    Sha256::digest(value.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_the_protobuf_wire_format() {
        // Field 1 (tag 0x0a, length 3, "abc"), field 2 (tag 0x12, length 3, "xyz").
        let wire = [0x0a, 3, b'a', b'b', b'c', 0x12, 3, b'x', b'y', b'z'];
        assert_eq!(encode("abc", "xyz"), RAW_URL.encode(wire));
        assert_eq!(encode("abc", "xyz"), "CgNhYmMSA3h5eg");
        assert_eq!(decode("CgNhYmMSA3h5eg"), Some(("abc".into(), "xyz".into())));
    }

    #[test]
    fn real_sized_tokens_round_trip_without_padding() {
        let t = NewRefreshToken::generate();
        let s = t.encoded();
        assert!(!s.contains(['=', '+', '/']), "{s}");
        // 2 + 25 + 2 + 25 bytes of protobuf.
        assert_eq!(RAW_URL.decode(&s).unwrap().len(), 54);
        assert_eq!(decode(&s), Some((t.id.clone(), t.secret.clone())));
        let rotated = NewRefreshToken::rotate(&t.id);
        assert_eq!(rotated.id, t.id);
        assert_ne!(rotated.secret, t.secret);
    }

    #[test]
    fn garbage_and_legacy_ids_do_not_decode() {
        assert_eq!(decode(""), None);
        assert_eq!(decode("not base64!"), None);
        assert_eq!(decode("CgNhYmMSA3h5eg=="), None, "padding is not Dex's encoding");
        // A bare 25-character id from a very old Dex is never valid base64.
        assert_eq!(decode(&new_id()), None);
        // Valid base64 of a truncated message.
        assert_eq!(decode("CgNh"), None);
        // A message without an id.
        assert_eq!(decode(&encode("", "secret")), None);
        // Invalid UTF-8 in a string field.
        assert_eq!(decode(&RAW_URL.encode([0x0a, 1, 0xff])), None);
    }

    #[test]
    fn hashes_are_hex_sha256_and_compare_in_constant_time() {
        assert_eq!(hash_secret("secret"), "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b");
        assert_eq!(hash_code("secret"), hash_secret("secret"));
        let stored = hash_secret("s3cret");
        assert!(secret_matches(&stored, "s3cret"));
        assert!(!secret_matches(&stored, "s3creT"));
        assert!(!secret_matches(&stored, ""));
        assert!(!secret_matches("", ""), "an empty stored hash never matches");
        assert!(!secret_matches(&stored, &stored), "the hash itself is not the secret");
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = NewRefreshToken::generate();
        let shown = format!("{t:?}");
        assert!(shown.contains(&t.id));
        assert!(!shown.contains(&t.secret));
    }
}
