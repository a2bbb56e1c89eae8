//! `$VAR` / `${VAR}` expansion with the exact rules of Go's `os.ExpandEnv`, which Dex applies to
//! the string values of `storage.config`, `connectors[].config` and `signer.config`:
//!
//! - `$NAME` takes the longest run of ASCII letters, digits and `_`;
//! - `${NAME}` takes everything up to the closing brace;
//! - `$` followed by one of `*#$@!?-` or a digit names that one-character variable;
//! - an unset variable expands to the empty string;
//! - `$` followed by anything else (or at the end) stays as it is;
//! - malformed `${` (no closing brace) and `${}` are dropped.

use serde_yaml_ng::Value;

fn is_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-' | b'0'..=b'9')
}

fn is_name(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// The variable name after a `$` and the number of bytes it spans (Go's `getShellName`).
/// An empty name with a non-zero width means "bad syntax: drop those bytes".
fn shell_name(s: &str) -> (&str, usize) {
    let b = s.as_bytes();
    match b.first() {
        Some(b'{') => {
            if b.len() > 2 && is_special(b[1]) && b[2] == b'}' {
                return (s.get(1..2).unwrap_or(""), 3);
            }
            match b.iter().skip(1).position(|&c| c == b'}') {
                Some(0) => ("", 2),
                Some(p) => (s.get(1..p + 1).unwrap_or(""), p + 2),
                None => ("", 1),
            }
        }
        Some(&c) if is_special(c) => (s.get(0..1).unwrap_or(""), 1),
        _ => {
            let n = b.iter().take_while(|&&c| is_name(c)).count();
            (s.get(..n).unwrap_or(""), n)
        }
    }
}

/// Expands `$VAR` and `${VAR}` in `s` as Go's `os.Expand` does, looking variables up with `env`.
pub fn expand(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains('$') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0; // Start of the not yet copied text.
    let mut j = 0;
    while j < b.len() {
        if b[j] == b'$' && j + 1 < b.len() {
            out.push_str(s.get(i..j).unwrap_or(""));
            let rest = s.get(j + 1..).unwrap_or("");
            let (name, width) = shell_name(rest);
            if name.is_empty() && width > 0 {
                // Bad syntax: the bytes are eaten.
            } else if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&env(name).unwrap_or_default());
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(s.get(i.min(s.len())..).unwrap_or(""));
    out
}

/// Returns `value` with every string expanded (mapping keys are left alone, as in Dex).
pub(crate) fn expand_value(value: &Value, env: &dyn Fn(&str) -> Option<String>) -> Value {
    match value {
        Value::String(s) => Value::String(expand(s, env)),
        Value::Sequence(seq) => Value::Sequence(seq.iter().map(|v| expand_value(v, env)).collect()),
        Value::Mapping(map) => {
            Value::Mapping(map.iter().map(|(k, v)| (k.clone(), expand_value(v, env))).collect())
        }
        Value::Tagged(t) => expand_value(&t.value, env),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/dex".into()),
            "A_B1" => Some("x".into()),
            "1" => Some("one".into()),
            "weird name" => Some("w".into()),
            _ => None,
        }
    }

    fn ex(s: &str) -> String {
        expand(s, &env)
    }

    #[test]
    fn expands_like_go() {
        assert_eq!(ex("plain"), "plain");
        assert_eq!(ex("$HOME/.kube"), "/home/dex/.kube");
        assert_eq!(ex("${HOME}/.kube"), "/home/dex/.kube");
        assert_eq!(ex("a$A_B1-b"), "ax-b");
        assert_eq!(ex("$UNSET"), "");
        assert_eq!(ex("${UNSET}x"), "x");
        assert_eq!(ex("$1x"), "onex");
        assert_eq!(ex("${1}x"), "onex");
        assert_eq!(ex("${weird name}"), "w");
        assert_eq!(ex("cost$"), "cost$");
        assert_eq!(ex("a$ b"), "a$ b");
        assert_eq!(ex("a$/b"), "a$/b");
        assert_eq!(ex("$$"), "");
        assert_eq!(ex("a${}b"), "ab");
        assert_eq!(ex("a${b"), "ab");
        assert_eq!(ex("é$HOMEé"), "é/home/dexé");
        assert_eq!(ex("$é"), "$é");
        assert_eq!(ex("${é}"), "");
        // A bcrypt hash is mangled exactly as Dex mangles it.
        assert_eq!(ex("$2a$10$abc"), "aone0");
    }

    #[test]
    fn expands_values_not_keys() {
        let v: Value = serde_yaml_ng::from_str("$HOME: [$HOME, {k: '${HOME}'}, 3]").unwrap();
        let out = expand_value(&v, &env);
        let want: Value = serde_yaml_ng::from_str("$HOME: [/home/dex, {k: /home/dex}, 3]").unwrap();
        assert_eq!(out, want);
    }
}
