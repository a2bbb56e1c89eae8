//! Signing keys: generation (RSA-2048 for RS256, P-256 for ES256), their public JWKs, and JWS
//! signing with a parsed key kept in memory.
//!
//! Signing uses aws-lc-rs directly with the key parsed once, rather than a JWT library that would
//! re-parse the private key on every token: parsing an RSA key costs about as much as a signature.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::json;

use crate::storage::{SigningAlg, SigningKey};

/// Errors of key handling.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The crypto library could not generate a key.
    #[error("could not generate a {0} key")]
    Generate(&'static str),
    /// A stored key could not be parsed.
    #[error("stored signing key {kid} cannot be used: {reason}")]
    Invalid {
        /// The key id.
        kid: String,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// The claims could not be serialized.
    #[error("claims cannot be serialized: {0}")]
    Claims(#[from] serde_json::Error),
}

/// Generates a new key pair for `alg` with a random 40-hex-character `kid` (as Dex).
pub fn generate(alg: SigningAlg) -> Result<SigningKey, KeyError> {
    let kid = hex(&rand::random::<[u8; 20]>());
    let (private_pkcs8, public_jwk) = match alg {
        SigningAlg::RS256 => {
            let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| KeyError::Generate("RSA-2048"))?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der<'_>>::as_der(&pair)
                .map_err(|_| KeyError::Generate("RSA-2048"))?;
            let public = pair.public_key();
            let jwk = json!({
                "kty": "RSA",
                "kid": kid,
                "alg": "RS256",
                "use": "sig",
                "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
                "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
            });
            (der.as_ref().to_vec(), jwk)
        }
        SigningAlg::ES256 => {
            let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                .map_err(|_| KeyError::Generate("P-256"))?;
            let der = pair.to_pkcs8v1().map_err(|_| KeyError::Generate("P-256"))?;
            let point = pair.public_key().as_ref();
            // An uncompressed SEC1 point: 0x04 || X (32 bytes) || Y (32 bytes).
            if point.len() != 65 {
                return Err(KeyError::Generate("P-256"));
            }
            let jwk = json!({
                "kty": "EC",
                "kid": kid,
                "alg": "ES256",
                "use": "sig",
                "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            });
            (der.as_ref().to_vec(), jwk)
        }
    };
    Ok(SigningKey { kid, alg, private_pkcs8, public_jwk })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

/// A signing key parsed and ready to sign.
pub struct Signer {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    rng: SystemRandom,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl Signer {
    /// Parses a stored key.
    pub fn new(key: &SigningKey) -> Result<Self, KeyError> {
        let invalid = |reason: &str| KeyError::Invalid { kid: key.kid.clone(), reason: reason.to_owned() };
        let pair = match key.alg {
            SigningAlg::RS256 => {
                Pair::Rsa(RsaKeyPair::from_pkcs8(&key.private_pkcs8).map_err(|e| invalid(&e.to_string()))?)
            }
            SigningAlg::ES256 => Pair::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.private_pkcs8)
                    .map_err(|e| invalid(&e.to_string()))?,
            ),
        };
        Ok(Self { kid: key.kid.clone(), alg: key.alg, pair, rng: SystemRandom::new() })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// Signs `claims` as a compact JWS with `alg`, `kid` and `typ: JWT` in the header.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, KeyError> {
        let header = json!({ "alg": self.alg.as_str(), "kid": self.kid, "typ": "JWT" });
        let mut out = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
        let signature = self.sign_bytes(out.as_bytes())?;
        out.push('.');
        out.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(out)
    }

    fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig).map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Pair::Ec(pair) => {
                Ok(pair.sign(&self.rng, message).map_err(|_| KeyError::Sign)?.as_ref().to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};

    use super::*;

    fn decoding_key(jwk: &serde_json::Value) -> DecodingKey {
        let s = |k: &str| jwk[k].as_str().unwrap().to_owned();
        match jwk["kty"].as_str() {
            Some("RSA") => DecodingKey::from_rsa_components(&s("n"), &s("e")).unwrap(),
            _ => DecodingKey::from_ec_components(&s("x"), &s("y")).unwrap(),
        }
    }

    fn round_trip(alg: SigningAlg, jwt_alg: Algorithm) {
        let key = generate(alg).unwrap();
        assert_eq!(key.kid.len(), 40);
        assert!(key.public_jwk.get("d").is_none(), "public JWK must not carry private members");
        let signer = Signer::new(&key).unwrap();
        let token = signer.sign(&json!({ "sub": "abc", "exp": 4_000_000_000u64 })).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));
        let mut validation = Validation::new(jwt_alg);
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding_key(&key.public_jwk), &validation)
                .unwrap();
        assert_eq!(data.claims["sub"], "abc");

        // A token signed by another key of the same kind does not verify.
        let other = generate(alg).unwrap();
        assert!(
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding_key(&other.public_jwk), &validation)
                .is_err()
        );
    }

    #[test]
    fn rs256_signs_verifiable_tokens() {
        round_trip(SigningAlg::RS256, Algorithm::RS256);
    }

    #[test]
    fn es256_signs_verifiable_tokens() {
        round_trip(SigningAlg::ES256, Algorithm::ES256);
    }

    #[test]
    fn corrupt_stored_key_is_an_error_not_a_panic() {
        let mut key = generate(SigningAlg::ES256).unwrap();
        key.private_pkcs8.truncate(10);
        assert!(matches!(Signer::new(&key), Err(KeyError::Invalid { .. })));
    }
}
