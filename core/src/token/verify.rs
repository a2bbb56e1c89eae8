//! Verifying a JWT this server issued, for `/userinfo` and introspection.
//!
//! As Dex, any token signed by one of our published keys is accepted (ID tokens work as bearer
//! tokens): the signature, the issuer and the expiry are checked, the audience is not. Only
//! RS256 and ES256 are accepted, and the header's `alg` must be the key's. The key is chosen by
//! `kid`; a token without `kid` is tried against every key of its algorithm.
//!
//! Time comes from the caller (`now`), never from the wall clock; the token is valid up to and
//! including its `exp` second, with no leeway (as go-oidc in Dex: the issuer and the verifier
//! share one clock).

use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::Value;

/// Why a token was not accepted. None of these reveal anything about the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a JWS compact token we could parse, an algorithm other than RS256/ES256 (including
    /// `none`), or claims that are not a JSON object with a numeric `exp`.
    #[error("malformed token")]
    Malformed,
    /// No published key has the token's `kid` and algorithm.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `iss` is missing or not this issuer.
    #[error("token issued by another issuer")]
    WrongIssuer,
}

/// Verifies `token` against the public keys `jwks` (as published on `/keys`) and returns its
/// claims. Checks the signature, that `iss` equals `issuer`, and that `exp >= now` (seconds
/// since the epoch); not the audience.
pub fn verify_token(token: &str, jwks: &[Value], issuer: &str, now: i64) -> Result<Value, VerifyError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| VerifyError::Malformed)?;
    if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
        return Err(VerifyError::Malformed);
    }
    let candidates: Vec<DecodingKey> = jwks
        .iter()
        .filter(|jwk| match (&header.kid, jwk.get("kid").and_then(Value::as_str)) {
            (Some(kid), Some(key_kid)) => kid == key_kid,
            (Some(_), None) => false,
            (None, _) => true,
        })
        .filter(|jwk| jwk_alg(jwk) == Some(header.alg))
        .filter_map(decoding_key)
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::UnknownKey);
    }

    let mut validation = Validation::new(header.alg);
    // Only the signature is checked by the library; time and issuer are checked below with the
    // caller's clock.
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;

    let mut outcome = Err(VerifyError::BadSignature);
    for key in &candidates {
        match jsonwebtoken::decode::<Value>(token, key, &validation) {
            Ok(data) => {
                outcome = Ok(data.claims);
                break;
            }
            Err(e) => {
                if !matches!(
                    e.kind(),
                    ErrorKind::InvalidSignature
                        | ErrorKind::InvalidEcdsaKey
                        | ErrorKind::InvalidRsaKey(_)
                        | ErrorKind::InvalidKeyFormat
                ) {
                    // Anything but a signature mismatch means the token itself cannot be parsed.
                    return Err(VerifyError::Malformed);
                }
            }
        }
    }
    let claims = outcome?;

    let Some(object) = claims.as_object() else {
        return Err(VerifyError::Malformed);
    };
    if object.get("iss").and_then(Value::as_str) != Some(issuer) {
        return Err(VerifyError::WrongIssuer);
    }
    let exp = object.get("exp").and_then(numeric_date).ok_or(VerifyError::Malformed)?;
    if now > exp {
        return Err(VerifyError::Expired);
    }
    Ok(claims)
}

/// A JSON NumericDate as whole seconds (fractions are truncated, as Go's `int64` decoding of
/// Dex's own integers never needs).
fn numeric_date(v: &Value) -> Option<i64> {
    // `as_f64` accepts any JSON number; saturating conversion keeps huge values harmless.
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// The algorithm a published key is for: its `alg` member, or else what its key type implies.
fn jwk_alg(jwk: &Value) -> Option<Algorithm> {
    let kty = jwk.get("kty").and_then(Value::as_str)?;
    let implied = match kty {
        "RSA" => Algorithm::RS256,
        "EC" if jwk.get("crv").and_then(Value::as_str) == Some("P-256") => Algorithm::ES256,
        _ => return None,
    };
    match jwk.get("alg").and_then(Value::as_str) {
        None => Some(implied),
        Some("RS256") if implied == Algorithm::RS256 => Some(implied),
        Some("ES256") if implied == Algorithm::ES256 => Some(implied),
        Some(_) => None,
    }
}

fn decoding_key(jwk: &Value) -> Option<DecodingKey> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    match member("kty")? {
        "RSA" => DecodingKey::from_rsa_components(member("n")?, member("e")?).ok(),
        "EC" => DecodingKey::from_ec_components(member("x")?, member("y")?).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;
    use crate::storage::{SigningAlg, SigningKey};
    use crate::token::keys::{Signer, generate};

    const ISS: &str = "https://dex.example.com";
    const NOW: i64 = 1_700_000_000;

    fn sign(key: &SigningKey, claims: &Value) -> String {
        Signer::new(key).unwrap().sign(claims).unwrap()
    }

    fn claims(exp: i64) -> Value {
        json!({ "iss": ISS, "sub": "CgNhYmMSBWxvY2Fs", "aud": "app", "exp": exp, "iat": NOW })
    }

    /// A JWS with a hand-made header and payload and the given signature bytes.
    fn forge(header: &Value, payload: &Value, signature: &[u8]) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(payload).unwrap()),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn accepts_our_tokens_with_either_algorithm() {
        let rsa = generate(SigningAlg::RS256).unwrap();
        let ec = generate(SigningAlg::ES256).unwrap();
        let jwks = [rsa.public_jwk.clone(), ec.public_jwk.clone()];
        for key in [&rsa, &ec] {
            let token = sign(key, &claims(NOW + 60));
            assert_eq!(verify_token(&token, &jwks, ISS, NOW), Ok(claims(NOW + 60)));
            // Valid through its `exp` second, not after.
            assert!(verify_token(&token, &jwks, ISS, NOW + 60).is_ok());
            assert_eq!(verify_token(&token, &jwks, ISS, NOW + 61), Err(VerifyError::Expired));
            assert_eq!(
                verify_token(&token, &jwks, "https://dex.example.com/", NOW),
                Err(VerifyError::WrongIssuer)
            );
        }
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        let key = generate(SigningAlg::ES256).unwrap();
        let jwks = [key.public_jwk.clone()];
        for garbage in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "not a token",
            "eyJhbGciOiJFUzI1NiJ9",
            "eyJhbGciOiJFUzI1NiJ9..",
            "eyJhbGciOiJFUzI1NiJ9.e30.",
            "\u{0}.\u{ff}.💥",
            "e30.e30.e30",
        ] {
            let err = verify_token(garbage, &jwks, ISS, NOW).unwrap_err();
            assert!(
                matches!(err, VerifyError::Malformed | VerifyError::UnknownKey | VerifyError::BadSignature),
                "{garbage:?}: {err:?}"
            );
        }
        // Garbage in the key set is skipped, not a panic.
        let token = sign(&key, &claims(NOW + 60));
        let junk = [json!(null), json!({"kty": "EC", "crv": "P-256", "kid": key.kid, "x": "!", "y": 3})];
        assert_eq!(verify_token(&token, &junk, ISS, NOW), Err(VerifyError::UnknownKey));
        assert_eq!(verify_token(&token, &[], ISS, NOW), Err(VerifyError::UnknownKey));
    }

    #[test]
    fn rejects_alg_none_and_symmetric_algorithms() {
        let key = generate(SigningAlg::RS256).unwrap();
        let jwks = [key.public_jwk.clone()];
        let none = forge(&json!({"alg": "none", "kid": key.kid}), &claims(NOW + 60), b"");
        assert_eq!(verify_token(&none, &jwks, ISS, NOW), Err(VerifyError::Malformed));
        let unsigned = format!("{}.", none.trim_end_matches('.'));
        assert_eq!(verify_token(&unsigned, &jwks, ISS, NOW), Err(VerifyError::Malformed));
        let hs = forge(&json!({"alg": "HS256", "kid": key.kid}), &claims(NOW + 60), b"mac");
        assert_eq!(verify_token(&hs, &jwks, ISS, NOW), Err(VerifyError::Malformed));
    }

    #[test]
    fn rejects_foreign_keys_and_tampering() {
        let ours = generate(SigningAlg::ES256).unwrap();
        let theirs = generate(SigningAlg::ES256).unwrap();
        let jwks = [ours.public_jwk.clone()];
        let foreign = sign(&theirs, &claims(NOW + 60));
        assert_eq!(verify_token(&foreign, &jwks, ISS, NOW), Err(VerifyError::UnknownKey));

        // Their token claiming our kid.
        let mut mine = generate(SigningAlg::ES256).unwrap();
        mine.kid = ours.kid.clone();
        let impostor = sign(&mine, &claims(NOW + 60));
        assert_eq!(verify_token(&impostor, &jwks, ISS, NOW), Err(VerifyError::BadSignature));

        // Our signature over a changed payload.
        let token = sign(&ours, &claims(NOW + 60));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(NOW + 9_999)).unwrap());
        let tampered = format!("{}.{}.{}", parts[0], tampered_payload, parts[2]);
        assert_eq!(verify_token(&tampered, &jwks, ISS, NOW), Err(VerifyError::BadSignature));
        let truncated_sig = format!("{}.{}.{}", parts[0], parts[1], &parts[2][..12]);
        assert_eq!(verify_token(&truncated_sig, &jwks, ISS, NOW), Err(VerifyError::BadSignature));
        // A signature that is not even base64url is malformed.
        let undecodable = format!("{}.{}.{}!", parts[0], parts[1], parts[2]);
        assert_eq!(verify_token(&undecodable, &jwks, ISS, NOW), Err(VerifyError::Malformed));
    }

    #[test]
    fn header_alg_must_be_the_key_s() {
        let rsa = generate(SigningAlg::RS256).unwrap();
        // An RS256 signature presented as ES256 under the RSA key's kid.
        let token = sign(&rsa, &claims(NOW + 60));
        let parts: Vec<&str> = token.split('.').collect();
        let header =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"alg": "ES256", "kid": rsa.kid})).unwrap());
        let relabelled = format!("{header}.{}.{}", parts[1], parts[2]);
        assert_eq!(
            verify_token(&relabelled, std::slice::from_ref(&rsa.public_jwk), ISS, NOW),
            Err(VerifyError::UnknownKey)
        );
        // A JWK whose declared alg disagrees with its key type is never used.
        let mut odd = rsa.public_jwk.clone();
        odd["alg"] = json!("ES256");
        assert_eq!(verify_token(&token, &[odd], ISS, NOW), Err(VerifyError::UnknownKey));
    }

    #[test]
    fn retired_keys_still_verify_and_missing_kid_tries_all() {
        let old = generate(SigningAlg::ES256).unwrap();
        let new = generate(SigningAlg::ES256).unwrap();
        let jwks = [new.public_jwk.clone(), old.public_jwk.clone()];
        assert!(verify_token(&sign(&old, &claims(NOW + 60)), &jwks, ISS, NOW).is_ok());

        // A token without `kid`, signed by hand with the retired key: every key is tried.
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &old.private_pkcs8).unwrap();
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json!({"alg": "ES256"})).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(NOW + 60)).unwrap())
        );
        let signature = pair.sign(&aws_lc_rs::rand::SystemRandom::new(), message.as_bytes()).unwrap();
        let no_kid = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()));
        assert_eq!(verify_token(&no_kid, &jwks, ISS, NOW), Ok(claims(NOW + 60)));
        assert_eq!(verify_token(&no_kid, &jwks[..1], ISS, NOW), Err(VerifyError::BadSignature));
    }

    #[test]
    fn claims_must_carry_issuer_and_expiry() {
        let key = generate(SigningAlg::ES256).unwrap();
        let jwks = [key.public_jwk.clone()];
        let no_iss = sign(&key, &json!({"sub": "x", "exp": NOW + 60}));
        assert_eq!(verify_token(&no_iss, &jwks, ISS, NOW), Err(VerifyError::WrongIssuer));
        let no_exp = sign(&key, &json!({"iss": ISS}));
        assert_eq!(verify_token(&no_exp, &jwks, ISS, NOW), Err(VerifyError::Malformed));
        let string_exp = sign(&key, &json!({"iss": ISS, "exp": "tomorrow"}));
        assert_eq!(verify_token(&string_exp, &jwks, ISS, NOW), Err(VerifyError::Malformed));
        let array = sign(&key, &json!([1, 2]));
        assert_eq!(verify_token(&array, &jwks, ISS, NOW), Err(VerifyError::Malformed));
        let huge = sign(&key, &json!({"iss": ISS, "exp": 1e300}));
        assert!(verify_token(&huge, &jwks, ISS, NOW).is_ok());
    }
}
