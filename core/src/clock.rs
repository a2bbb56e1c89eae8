//! Time and randomness, injected into services so that tests can control them.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self { millis: Arc::new(AtomicI64::new(start.timestamp_millis())) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.millis.fetch_add(by.num_milliseconds(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.millis.load(Ordering::SeqCst)).unwrap_or_default()
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

/// Dex's `NewID`: 16 random bytes shown as a letter followed by 24 characters of unpadded
/// lower-case base32, so that ids are also valid Kubernetes object names.
pub fn new_id() -> String {
    random_id::<16>()
}

/// A longer id of the same alphabet made from 32 random bytes (Dex's device codes).
pub fn new_long_id() -> String {
    random_id::<32>()
}

fn random_id<const N: usize>() -> String {
    let bytes: [u8; N] = rand::random();
    let mut out = String::with_capacity(N * 8 / 5 + 2);
    out.push(char::from(b'a' + bytes[0] % 26));
    out.push_str(&base32_lower(&bytes[1..]));
    out
}

/// Unpadded lower-case RFC 4648 base32.
pub fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_dex_shape() {
        let id = new_id();
        assert_eq!(id.len(), 25, "{id}");
        assert!(id.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
        assert!(id.chars().all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)));
        assert_ne!(new_id(), new_id());
        assert_eq!(new_long_id().len(), 51);
    }

    #[test]
    fn base32_matches_rfc4648() {
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_lower(b"f"), "my");
    }
}
