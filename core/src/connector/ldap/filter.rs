//! LDAP search filters (RFC 4515): escaping user-supplied values and checking configured
//! filters.

use std::fmt::Write;

/// Escapes a value for use inside a filter's assertion value (RFC 4515 section 3): `*`, `(`,
/// `)`, `\` and NUL become `\2a`, `\28`, `\29`, `\5c` and `\00`, so that a username can never
/// add wildcards or filter components. Every other character is kept (the filter is UTF-8).
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\{:02x}", c as u32);
            }
            _ => out.push(c),
        }
    }
    out
}

/// An equality filter `(attr=value)` with `value` escaped.
pub fn equality(attr: &str, value: &str) -> String {
    format!("({attr}={})", escape_value(value))
}

/// `(&{extra}{filter})` when a configured filter is set, else `filter`.
pub fn and(extra: Option<&str>, filter: String) -> String {
    match extra {
        Some(extra) => format!("(&{extra}{filter})"),
        None => filter,
    }
}

/// `(|f1 f2 ...)` for several filters, the filter itself for one.
pub fn or(mut filters: Vec<String>) -> String {
    if filters.len() == 1 { filters.remove(0) } else { format!("(|{})", filters.concat()) }
}

/// A configured filter, normalised: surrounding whitespace removed and parentheses added when
/// missing (`objectClass=person` -> `(objectClass=person)`). `Err` when it does not parse.
pub fn configured(filter: &str) -> Result<Option<String>, String> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Ok(None);
    }
    let filter = if filter.starts_with('(') { filter.to_owned() } else { format!("({filter})") };
    ldap3::parse_filter(&filter).map_err(|()| "not a valid LDAP search filter (RFC 4515)".to_owned())?;
    Ok(Some(filter))
}

/// Whether `name` is a valid attribute description (a name or OID, with options, or an
/// extensible-match prefix such as `member:1.2.840.113556.1.4.1941:`), so that it can be put
/// into a filter unescaped.
pub fn is_attribute_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ';' | ':'))
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_rfc_4515_specials() {
        assert_eq!(escape_value("jane"), "jane");
        assert_eq!(escape_value("*"), "\\2a");
        assert_eq!(escape_value("admin)(uid=*"), "admin\\29\\28uid=\\2a");
        assert_eq!(escape_value("*)(|(uid=*"), "\\2a\\29\\28|\\28uid=\\2a");
        assert_eq!(escape_value("a\\b\0c"), "a\\5cb\\00c");
        assert_eq!(escape_value("Jöhn Dœ"), "Jöhn Dœ");
    }

    #[test]
    fn escaped_filters_parse_and_stay_one_equality() {
        for hostile in ["*", "admin)(uid=*", "*)(|(uid=*", "x\\", "(", ")", "\0"] {
            let f = and(Some("(objectClass=person)"), equality("uid", hostile));
            assert!(ldap3::parse_filter(&f).is_ok(), "{f}");
            assert_eq!(f.matches('(').count(), 3, "{f}");
        }
    }

    #[test]
    fn configured_filters_are_normalised_and_checked() {
        assert_eq!(configured("").unwrap(), None);
        assert_eq!(configured(" objectClass=person ").unwrap().unwrap(), "(objectClass=person)");
        assert_eq!(configured("(&(a=b)(c=d))").unwrap().unwrap(), "(&(a=b)(c=d))");
        assert!(configured("(a=b").is_err());
        assert!(configured("(&(a=b)").is_err());
    }

    #[test]
    fn or_of_one_is_the_filter() {
        assert_eq!(or(vec!["(a=b)".into()]), "(a=b)");
        assert_eq!(or(vec!["(a=b)".into(), "(c=d)".into()]), "(|(a=b)(c=d))");
    }

    #[test]
    fn attribute_names() {
        assert!(is_attribute_name("uid"));
        assert!(is_attribute_name("memberUid"));
        assert!(is_attribute_name("member:1.2.840.113556.1.4.1941:"));
        assert!(!is_attribute_name(""));
        assert!(!is_attribute_name("uid=*"));
        assert!(!is_attribute_name("a)(b"));
    }
}
