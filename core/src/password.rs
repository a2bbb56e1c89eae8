//! Password hashing rules (bcrypt, Dex compatible).
//!
//! Dex stores local passwords as bcrypt hashes and accepts, through its API, only hashes whose
//! cost lies between 10 (Go's `bcrypt.DefaultCost`) and 16 (its "sane upper bound"); Oxidex
//! keeps those rules so that a Dex password database works unchanged.
//!
//! bcrypt only reads the first 72 bytes of a password. Silently truncating would let two
//! passwords that differ only after byte 72 both match the same hash, so [`verify`] refuses
//! passwords longer than [`MAX_PASSWORD_BYTES`] (they never verify), as Go's bcrypt does since
//! it started returning `ErrPasswordTooLong`.

use base64::Engine as _;

/// The lowest bcrypt cost accepted (Go's `bcrypt.DefaultCost`, Dex's lower bound).
pub const MIN_COST: u32 = 10;
/// The highest bcrypt cost accepted (Dex's `upBoundCost`): higher costs would let one login
/// occupy a CPU for seconds.
pub const MAX_COST: u32 = 16;
/// The cost Dex recommends (`recCost`).
pub const RECOMMENDED_COST: u32 = 12;
/// The longest password bcrypt can tell apart from its prefixes.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// A cost-10 bcrypt hash of a random, discarded password: [`dummy_verify`] checks against it so
/// that an unknown user costs as much time as a known one.
const DUMMY_HASH: &str = "$2b$10$0R/1fE0cOFhaFy43MlCUNeg8ZhjVHMwmLjScJckAiOvgVwMy.p/vS";

/// Why a hash is not acceptable. Messages are safe to show to an API caller: they never repeat
/// the hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The value is not a bcrypt hash in modular crypt format (`$2b$NN$` + 53 characters).
    #[error("not a bcrypt hash: {0}")]
    Malformed(&'static str),
    /// The hash is well formed but its cost is outside `MIN_COST..=MAX_COST`.
    #[error(
        "bcrypt cost {cost} is not allowed: the cost must be between {MIN_COST} and {MAX_COST} \
         (recommended {RECOMMENDED_COST})"
    )]
    CostOutOfRange {
        /// The cost found in the hash.
        cost: u32,
    },
}

/// The parts of a bcrypt hash Oxidex needs to check.
struct Parsed {
    cost: u32,
}

/// Parses `$2a$`, `$2b$` or `$2y$` hashes strictly: 60 ASCII characters, a two-digit cost, a
/// 22-character salt decoding to 16 bytes and a 31-character digest decoding to 23 bytes.
/// `$2x$` (the variant that reproduces an old crypt_blowfish bug) is refused: it cannot be
/// verified faithfully.
fn parse(hash: &[u8]) -> Result<Parsed, PasswordError> {
    let text = std::str::from_utf8(hash).map_err(|_| PasswordError::Malformed("not UTF-8 text"))?;
    if text.len() != 60 {
        return Err(PasswordError::Malformed("a bcrypt hash has 60 characters"));
    }
    let mut fields = text.split('$');
    let (Some(""), Some(version), Some(cost), Some(rest), None) =
        (fields.next(), fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(PasswordError::Malformed("expected $2b$<cost>$<salt and digest>"));
    };
    if !matches!(version, "2a" | "2b" | "2y") {
        return Err(PasswordError::Malformed("unsupported version (expected 2a, 2b or 2y)"));
    }
    if cost.len() != 2 || !cost.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PasswordError::Malformed("the cost must be two digits"));
    }
    let cost: u32 = cost.parse().map_err(|_| PasswordError::Malformed("the cost must be two digits"))?;
    if rest.len() != 53 {
        return Err(PasswordError::Malformed("salt and digest must be 53 characters"));
    }
    let (salt, digest) = rest.split_at(22);
    let salt_ok = bcrypt::BASE_64.decode(salt).is_ok_and(|s| s.len() == 16);
    let digest_ok = bcrypt::BASE_64.decode(digest).is_ok_and(|d| d.len() == 23);
    if !salt_ok || !digest_ok {
        return Err(PasswordError::Malformed("salt or digest is not bcrypt base64"));
    }
    Ok(Parsed { cost })
}

/// Checks that `hash` is a bcrypt hash Oxidex accepts: well formed, with a cost between
/// [`MIN_COST`] and [`MAX_COST`] inclusive (Dex's `checkCost`).
pub fn check_bcrypt_hash(hash: &[u8]) -> Result<(), PasswordError> {
    let parsed = parse(hash)?;
    if !(MIN_COST..=MAX_COST).contains(&parsed.cost) {
        return Err(PasswordError::CostOutOfRange { cost: parsed.cost });
    }
    Ok(())
}

/// Whether `password` matches the bcrypt `hash`, in constant time with respect to the digest.
///
/// Returns false for a malformed hash and for passwords longer than [`MAX_PASSWORD_BYTES`]
/// bytes: bcrypt ignores everything after byte 72, so accepting them would make two passwords
/// that differ only after byte 72 equivalent. The cost of the hash is not checked here (hashes
/// from the config file may be cheaper than the API allows); this takes as long as the hash's
/// cost says and should run on a blocking thread.
pub fn verify(password: &str, hash: &[u8]) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(hash) = std::str::from_utf8(hash) else {
        return false;
    };
    // With at most 72 bytes nothing is truncated except the terminating NUL of a 72-byte
    // password, which Go's and OpenBSD's bcrypt drop the same way.
    bcrypt::verify(password.as_bytes(), hash).unwrap_or(false)
}

/// Spends as long as [`verify`] does on a cost-10 hash (the minimum cost, and that of Dex's
/// examples) and returns nothing: call it when the user is unknown so that response times do not
/// reveal which users exist.
pub fn dummy_verify(password: &str) {
    // The result is always false and intentionally ignored; `black_box` keeps the work.
    std::hint::black_box(verify(password, DUMMY_HASH.as_bytes()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(password: &str, cost: u32) -> Vec<u8> {
        bcrypt::hash(password, cost).map(String::into_bytes).unwrap_or_default()
    }

    #[test]
    fn accepts_costs_ten_to_sixteen() {
        assert_eq!(check_bcrypt_hash(&hash("pw", 10)), Ok(()));
        // A 2a hash of cost 16 (made without spending the seconds it takes to compute one).
        let sixteen = b"$2a$16$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        assert_eq!(check_bcrypt_hash(sixteen), Ok(()));
        let twelve = b"$2y$12$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        assert_eq!(check_bcrypt_hash(twelve), Ok(()));
    }

    #[test]
    fn rejects_costs_outside_the_range_with_the_range_in_the_message() {
        let four = hash("pw", 4);
        let err = check_bcrypt_hash(&four).err();
        assert_eq!(err, Some(PasswordError::CostOutOfRange { cost: 4 }));
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("between 10 and 16"), "{msg}");
        let seventeen = b"$2b$17$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        assert_eq!(check_bcrypt_hash(seventeen), Err(PasswordError::CostOutOfRange { cost: 17 }));
        let nine = hash("pw", 9);
        assert_eq!(check_bcrypt_hash(&nine), Err(PasswordError::CostOutOfRange { cost: 9 }));
    }

    #[test]
    fn rejects_malformed_hashes_without_echoing_them() {
        let bad: [&[u8]; 7] = [
            b"",
            b"password",
            b"$2b$10$short",
            b"$2x$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            b"$2b$1a$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
            b"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lh!y",
            b"\xff2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
        ];
        for h in bad {
            let err = check_bcrypt_hash(h);
            assert!(matches!(err, Err(PasswordError::Malformed(_))), "{h:?}: {err:?}");
            let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(!msg.contains("N9qo8"), "{msg}");
        }
    }

    #[test]
    fn verifies_right_and_wrong_passwords() {
        let h = hash("correct horse", 10);
        assert!(verify("correct horse", &h));
        assert!(!verify("correct horsE", &h));
        assert!(!verify("", &h));
        assert!(!verify("correct horse", b"not a hash"));
        assert!(!verify("correct horse", b"\xff\xfe"));
    }

    #[test]
    fn verifies_dex_hash() {
        // The hash of "password" from Dex's example config (examples/config-dev.yaml).
        let dex = b"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
        assert!(verify("password", dex));
        assert!(!verify("Password", dex));
    }

    #[test]
    fn passwords_longer_than_72_bytes_never_verify() {
        let base = "a".repeat(72);
        let h = hash(&base, 10);
        assert!(verify(&base, &h), "exactly 72 bytes is allowed");
        let longer_1 = format!("{base}X");
        let longer_2 = format!("{base}Y");
        // Plain bcrypt would accept both (it ignores bytes after 72); Oxidex accepts neither.
        assert!(bcrypt::verify(&longer_1, std::str::from_utf8(&h).unwrap_or_default()).unwrap_or(false));
        assert!(!verify(&longer_1, &h));
        assert!(!verify(&longer_2, &h));
        let h_long = hash(&longer_1, 10);
        assert!(!verify(&longer_1, &h_long));
        assert!(!verify(&longer_2, &h_long));
    }

    #[test]
    fn dummy_verify_takes_as_long_as_a_real_one() {
        assert_eq!(check_bcrypt_hash(DUMMY_HASH.as_bytes()), Ok(()));
        let h = hash("pw", MIN_COST);
        // Interleaved runs, keeping the fastest of each: robust against a busy machine.
        let (mut real, mut dummy) = (f64::MAX, f64::MAX);
        for _ in 0..4 {
            let start = std::time::Instant::now();
            std::hint::black_box(verify("wrong", &h));
            real = real.min(start.elapsed().as_secs_f64());
            let start = std::time::Instant::now();
            dummy_verify("wrong");
            dummy = dummy.min(start.elapsed().as_secs_f64());
        }
        let ratio = dummy / real;
        assert!((0.5..2.0).contains(&ratio), "real {real}s, dummy {dummy}s");
    }
}
