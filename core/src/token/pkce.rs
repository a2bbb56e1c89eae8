//! PKCE (RFC 7636): checking a `code_verifier` against the stored `code_challenge`.
//!
//! Methods are `S256` (the challenge is base64url, unpadded, of SHA-256 of the verifier) and
//! `plain` (the challenge is the verifier); an empty method means `plain`, RFC 7636's default,
//! as Dex does at `/auth`. Comparisons are constant-time.
//!
//! Unlike Dex, the verifier's syntax is enforced (RFC 7636 §4.1: 43 to 128 characters of
//! `[A-Za-z0-9-._~]`); Dex accepts any verifier that matches.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The `S256` method.
pub const S256: &str = "S256";
/// The `plain` method.
pub const PLAIN: &str = "plain";

/// Whether `verifier` is a syntactically valid `code_verifier` (RFC 7636 §4.1).
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The `S256` challenge of a verifier.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` answers `challenge` under `method` (`S256`, `plain`, or empty for
/// `plain`). False for an unknown method, an empty challenge or a malformed verifier.
pub fn verify(method: &str, challenge: &str, verifier: &str) -> bool {
    if challenge.is_empty() || !is_valid_verifier(verifier) {
        return false;
    }
    let expected = match method {
        S256 => s256_challenge(verifier),
        PLAIN | "" => verifier.to_owned(),
        _ => return false,
    };
    expected.as_bytes().ct_eq(challenge.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B: the verifier is base64url of the octets listed there.
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b() {
        let octets = [
            116u8, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77,
            105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        assert_eq!(URL_SAFE_NO_PAD.encode(octets), RFC_VERIFIER);
        assert_eq!(s256_challenge(RFC_VERIFIER), RFC_CHALLENGE);
        assert!(verify(S256, RFC_CHALLENGE, RFC_VERIFIER));
        assert!(!verify(S256, RFC_VERIFIER, RFC_VERIFIER), "S256 is not plain");
        assert!(!verify(S256, RFC_CHALLENGE, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj"));
    }

    #[test]
    fn a_misquoted_vector_does_not_verify() {
        // A pair that circulates with the right challenge prefix but a different verifier: SHA-256
        // of this verifier is something else entirely.
        let verifier = "dBjftJeZ4CVP-mJ0LChyNBCDuKMAhybnhe4YbO1qINg";
        assert_eq!(s256_challenge(verifier), "REpap4S3RpMhajufH3fFUhESCzBcXfa6-9nVfcMFjKg");
        assert!(!verify(S256, "E9Melhoa2OwvFrEMTJguCHaoeK1zNSvmrSOLnEpNGGc", verifier));
    }

    #[test]
    fn plain_and_default_method() {
        assert!(verify(PLAIN, RFC_VERIFIER, RFC_VERIFIER));
        assert!(verify("", RFC_VERIFIER, RFC_VERIFIER), "empty method is plain");
        assert!(!verify(PLAIN, RFC_CHALLENGE, RFC_VERIFIER));
        assert!(!verify("s256", RFC_CHALLENGE, RFC_VERIFIER), "method names are case-sensitive");
        assert!(!verify("S512", RFC_CHALLENGE, RFC_VERIFIER));
        assert!(!verify(S256, "", RFC_VERIFIER));
    }

    #[test]
    fn verifier_syntax() {
        assert!(is_valid_verifier(&"a".repeat(43)));
        assert!(is_valid_verifier(&"Az09-._~".repeat(16)));
        assert!(!is_valid_verifier(&"a".repeat(42)));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", "a".repeat(42))));
        assert!(!is_valid_verifier(&format!("{} ", "a".repeat(42))));
        assert!(!is_valid_verifier(&"é".repeat(30)));
        assert!(!is_valid_verifier(""));
        // A too-short verifier fails even when it equals a plain challenge.
        assert!(!verify(PLAIN, "short", "short"));
    }
}
