//! Go-style duration strings (`time.ParseDuration`), as Dex writes them: `24h`, `1h30m`, `500ms`,
//! `1.5h`, `300us`. A sequence of decimal numbers, each with an optional fraction and a unit
//! (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`); `0` alone needs no unit.
//!
//! Unlike Go, a negative duration is an error: no Dex setting has a meaning for one.

use std::time::Duration;

/// Why a duration string was rejected. The messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration")]
    Empty,
    /// A number is missing where one was expected (e.g. `h`, `1h.m`).
    #[error("expected a number")]
    MissingNumber,
    /// A number has no unit (e.g. `30`).
    #[error("missing unit after a number (write e.g. 30s, 5m or 24h)")]
    MissingUnit,
    /// The unit is not one of Go's.
    #[error("unknown unit {0:?} (valid units: ns, us, ms, s, m, h)")]
    UnknownUnit(String),
    /// The duration is negative.
    #[error("negative durations are not allowed")]
    Negative,
    /// The duration does not fit (Go's limit: about 292 years).
    #[error("duration too large")]
    Overflow,
}

/// Go's limit: `math.MaxInt64` nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string.
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let mut s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(DurationError::MissingNumber);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        // The integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        let mut value: u128 = 0;
        for d in int_digits.bytes() {
            value = value * 10 + u128::from(d - b'0');
            if value > MAX_NANOS {
                return Err(DurationError::Overflow);
            }
        }
        // The optional fraction.
        let mut frac: u128 = 0;
        let mut scale: u128 = 1;
        let mut frac_len = 0;
        let mut after_num = after_int;
        if let Some(after_dot) = after_int.strip_prefix('.') {
            frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            let (frac_digits, tail) = after_dot.split_at(frac_len);
            // Digits beyond nanosecond-of-an-hour precision cannot change the result.
            for d in frac_digits.bytes().take(24) {
                frac = frac * 10 + u128::from(d - b'0');
                scale *= 10;
            }
            after_num = tail;
        }
        if int_len == 0 && frac_len == 0 {
            return Err(DurationError::MissingNumber);
        }
        // The unit: everything up to the next number.
        let unit_len = after_num.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(after_num.len());
        let (unit, tail) = after_num.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit);
        }
        let Some(mult) = unit_nanos(unit) else {
            return Err(DurationError::UnknownUnit(unit.chars().take(16).collect()));
        };
        let part = value
            .checked_mul(mult)
            .and_then(|v| v.checked_add(frac * mult / scale))
            .ok_or(DurationError::Overflow)?;
        total = total.checked_add(part).ok_or(DurationError::Overflow)?;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow);
        }
        rest = tail;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    let nanos = u64::try_from(total).map_err(|_| DurationError::Overflow)?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse(s).unwrap_or_else(|e| panic!("{s:?} rejected: {e}"))
    }

    #[test]
    fn accepts_go_forms() {
        assert_eq!(ok("24h"), Duration::from_secs(24 * 3600));
        assert_eq!(ok("1h30m"), Duration::from_secs(5400));
        assert_eq!(ok("3s"), Duration::from_secs(3));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("300us"), Duration::from_micros(300));
        assert_eq!(ok("300µs"), Duration::from_micros(300));
        assert_eq!(ok("300μs"), Duration::from_micros(300));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("+5m"), Duration::from_secs(300));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("2h45m30.5s"), Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500));
        assert_eq!(ok("2160h"), Duration::from_secs(2160 * 3600));
        assert_eq!(ok("1m1m"), Duration::from_secs(120));
        assert_eq!(ok(" 5m "), Duration::from_secs(300));
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        assert_eq!(ok("1.0000000000000000000000000001h"), Duration::from_secs(3600));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse(""), Err(DurationError::Empty));
        assert_eq!(parse("   "), Err(DurationError::Empty));
        assert_eq!(parse("-"), Err(DurationError::MissingNumber));
        assert_eq!(parse("30"), Err(DurationError::MissingUnit));
        assert_eq!(parse("1h30"), Err(DurationError::MissingUnit));
        assert_eq!(parse("h"), Err(DurationError::MissingNumber));
        assert_eq!(parse("."), Err(DurationError::MissingNumber));
        assert_eq!(parse("1.h.s"), Err(DurationError::MissingNumber));
        assert_eq!(parse("24 hours"), Err(DurationError::UnknownUnit(" hours".into())));
        assert_eq!(parse("1d"), Err(DurationError::UnknownUnit("d".into())));
        assert_eq!(parse("5M"), Err(DurationError::UnknownUnit("M".into())));
        assert_eq!(parse("-5m"), Err(DurationError::Negative));
        assert_eq!(parse("9999999999999999999999h"), Err(DurationError::Overflow));
        assert_eq!(parse("3000000h"), Err(DurationError::Overflow));
        assert_eq!(parse("2562047h47m16.854775807s"), Ok(Duration::from_nanos(i64::MAX as u64)));
        assert_eq!(parse("2562047h47m16.854775808s"), Err(DurationError::Overflow));
        assert!(parse("ß").is_err());
        assert!(parse("1µ").is_err());
        assert!(parse("1é2s").is_err());
    }
}
