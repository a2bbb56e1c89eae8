//! `application/x-www-form-urlencoded` parsing and percent-encoding, strict where the protocol
//! asks for it: an invalid escape or bytes that are not UTF-8 make the whole body malformed.

use http::{HeaderMap, header};

/// A form body or query string that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

/// Decodes one form-encoded component: `+` is a space, `%XX` a byte, and the result must be
/// UTF-8 (RFC 6749 appendix B).
pub(crate) fn decode_component(s: &str) -> Result<String, Malformed> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(Malformed("truncated percent escape"))?;
                let hi = hex_value(hex[0]).ok_or(Malformed("invalid percent escape"))?;
                let lo = hex_value(hex[1]).ok_or(Malformed("invalid percent escape"))?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| Malformed("parameters are not UTF-8"))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Parses a query string or form body into its pairs, in order, duplicates kept.
pub(crate) fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, Malformed> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(k)?, decode_component(v)?))
        })
        .collect()
}

/// Whether the request's `Content-Type` is `application/x-www-form-urlencoded`.
pub(crate) fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Parses a request body that must be a form. An empty body without a content type is an empty
/// form.
pub(crate) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Vec<(String, String)>, Malformed> {
    if body.is_empty() && !headers.contains_key(header::CONTENT_TYPE) {
        return Ok(Vec::new());
    }
    if !is_form(headers) {
        return Err(Malformed("the body must be application/x-www-form-urlencoded"));
    }
    let text = std::str::from_utf8(body).map_err(|_| Malformed("the body is not UTF-8"))?;
    parse_pairs(text)
}

/// The first value of `name`, or `""`.
pub(crate) fn first<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// Percent-encodes everything but RFC 3986 unreserved characters: safe in a path segment and in
/// a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_strictly() {
        assert_eq!(decode_component("a+b%2Bc%3A%25").unwrap(), "a b+c:%");
        assert_eq!(decode_component("%e2%82%ac").unwrap(), "€");
        assert!(decode_component("%zz").is_err());
        assert!(decode_component("%4").is_err());
        assert!(decode_component("%ff").is_err());
    }

    #[test]
    fn parses_pairs() {
        let p = parse_pairs("a=1&&b&c=x%20y&a=2").unwrap();
        assert_eq!(
            p,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "".into()),
                ("c".into(), "x y".into()),
                ("a".into(), "2".into())
            ]
        );
        assert_eq!(first(&p, "a"), "1");
        assert_eq!(first(&p, "z"), "");
    }

    #[test]
    fn encodes_round_trip() {
        let s = "a b/c?d&e=f€<>\"'";
        assert_eq!(decode_component(&encode(s)).unwrap(), s);
        assert_eq!(encode("ldap-1_x.y~"), "ldap-1_x.y~");
    }
}
