//! The raw, permissive layer: a walker over the parsed YAML tree that matches keys the way Go's
//! `encoding/json` does (case-insensitively, the last duplicate wins), converts scalars the way
//! Dex's YAML-to-JSON step does (a number or boolean is accepted where a string is expected), and
//! records every problem with its key path instead of stopping.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml_ng::Value;

use super::Problem;
use super::duration;

/// Collects findings while the tree is walked.
pub(crate) struct Ctx<'e> {
    /// Looks an environment variable up.
    pub env: &'e dyn Fn(&str) -> Option<String>,
    /// Problems that make the file unusable.
    pub errors: Vec<Problem>,
    /// Findings that do not stop the server.
    pub warnings: Vec<Problem>,
    /// Unknown keys: warnings, or errors in strict mode.
    pub unknown: Vec<Problem>,
}

impl<'e> Ctx<'e> {
    pub(crate) fn new(env: &'e dyn Fn(&str) -> Option<String>) -> Self {
        Self { env, errors: Vec::new(), warnings: Vec::new(), unknown: Vec::new() }
    }

    /// Records an error at `path`.
    pub(crate) fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(Problem { path: path.to_owned(), message: message.into() });
    }

    /// Records a warning at `path`.
    pub(crate) fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.warnings.push(Problem { path: path.to_owned(), message: message.into() });
    }

    /// Reads an environment variable; unset and non-UTF-8 values are `None`.
    pub(crate) fn var(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// Reads a boolean feature flag the way Dex does (`strconv.ParseBool`; a bad value means the
    /// default).
    pub(crate) fn flag(&self, name: &str, default: bool) -> bool {
        match self.var(name).as_deref().map(str::trim) {
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
            _ => default,
        }
    }
}

/// `parent.key`, or `key` at the top.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// Strips YAML tags (`!foo value` is read as `value`).
pub(crate) fn untag(v: &Value) -> &Value {
    let mut v = v;
    while let Value::Tagged(t) = v {
        v = &t.value;
    }
    v
}

/// What kind of value this is, for messages ("expected a string, found a list").
pub(crate) fn kind(v: &Value) -> &'static str {
    match untag(v) {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A scalar as text, the way Dex's YAML-to-JSON step turns numbers and booleans into strings.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match untag(v) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A key as shown in a path: very long keys are shortened.
fn shown_key(key: &str) -> String {
    if key.chars().count() > 64 {
        let mut s: String = key.chars().take(61).collect();
        s.push_str("...");
        s
    } else {
        key.to_owned()
    }
}

/// The Levenshtein distance of two short ASCII-case-folded strings.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known key nearest to `key`, if it is near enough to be a likely typo.
pub(crate) fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    if key.len() > 64 {
        return None;
    }
    let lower = key.to_lowercase();
    let mut best: Option<(usize, &'k str)> = None;
    for &k in known {
        let d = distance(key, k);
        let limit = (k.len() / 3).max(2);
        let near = d <= limit || (lower.len() >= 4 && k.to_lowercase().starts_with(&lower));
        if near && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// One field of a mapping, matched to a known key.
struct Field<'a> {
    /// The key as Dex spells it.
    canonical: &'static str,
    /// The path of the value, with the key as the file spells it.
    path: String,
    /// The value.
    value: &'a Value,
}

/// A mapping whose keys were matched against a list of known keys.
pub(crate) struct Obj<'a> {
    path: String,
    fields: Vec<Field<'a>>,
}

impl<'a> Obj<'a> {
    /// Reads `value` (at `path`) as a mapping with the keys `known`. Unknown keys are recorded
    /// (with a suggestion); `null` is an empty mapping; anything else is an error and `None`.
    pub(crate) fn new(
        ctx: &mut Ctx<'_>,
        path: &str,
        value: &'a Value,
        known: &[&'static str],
    ) -> Option<Self> {
        let map = match untag(value) {
            Value::Null => return Some(Self { path: path.to_owned(), fields: Vec::new() }),
            Value::Mapping(m) => m,
            other => {
                ctx.error(path, format!("expected a mapping of keys to values, found {}", kind(other)));
                return None;
            }
        };
        let mut fields: Vec<Field<'a>> = Vec::new();
        for (k, v) in map {
            let Some(key) = scalar_text(k) else {
                let where_ = if path.is_empty() { "the top level".to_owned() } else { path.to_owned() };
                ctx.error(path, format!("a key in {where_} is {}; keys must be plain names", kind(k)));
                continue;
            };
            let shown = shown_key(&key);
            let field_path = join(path, &shown);
            // Go prefers an exact match, then any case-insensitive one.
            let canonical = known
                .iter()
                .find(|&&c| c == key)
                .or_else(|| known.iter().find(|c| c.eq_ignore_ascii_case(&key)));
            let Some(&canonical) = canonical else {
                let message = match suggest(&key, known) {
                    Some(s) => format!("unknown key (did you mean {s}?)"),
                    None => "unknown key; it is ignored".to_owned(),
                };
                ctx.unknown.push(Problem { path: field_path, message });
                continue;
            };
            if let Some(pos) = fields.iter().position(|f| f.canonical == canonical) {
                let earlier = fields.remove(pos);
                ctx.warn(
                    &field_path,
                    format!("{} is set twice (as {}); the last one wins", canonical, earlier.path),
                );
            }
            fields.push(Field { canonical, path: field_path, value: v });
        }
        Some(Self { path: path.to_owned(), fields })
    }

    /// The path of this mapping.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The path a key has (or would have) in this mapping.
    pub(crate) fn key_path(&self, key: &str) -> String {
        self.fields
            .iter()
            .find(|f| f.canonical == key)
            .map_or_else(|| join(&self.path, key), |f| f.path.clone())
    }

    /// The value of `key` with its path; `None` when absent or `null` (as Go treats `null`).
    pub(crate) fn get(&self, key: &str) -> Option<(String, &'a Value)> {
        let f = self.fields.iter().find(|f| f.canonical == key)?;
        match untag(f.value) {
            Value::Null => None,
            v => Some((f.path.clone(), v)),
        }
    }

    /// Whether `key` is present with a non-null value.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A string (numbers and booleans are converted, as Dex does).
    pub(crate) fn string(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<String> {
        let (path, v) = self.get(key)?;
        let s = scalar_text(v);
        if s.is_none() {
            ctx.error(&path, format!("expected a string, found {}", kind(v)));
        }
        s
    }

    /// A non-empty string, or `None` (an empty string counts as absent, as in Dex).
    pub(crate) fn nonempty(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<String> {
        self.string(ctx, key).filter(|s| !s.is_empty())
    }

    /// A non-empty string that must be there: when it is absent or empty, records `message` (a
    /// value of the wrong type has already been reported by then).
    pub(crate) fn required(&self, ctx: &mut Ctx<'_>, key: &str, message: &str) -> Option<String> {
        let v = self.nonempty(ctx, key);
        if v.is_none() && self.get(key).is_none_or(|(_, v)| matches!(v, Value::String(_))) {
            ctx.error(&self.key_path(key), message);
        }
        v
    }

    /// A boolean. YAML 1.1 spellings (`yes`, `on`, ...) are accepted, as Dex's YAML parser does.
    pub(crate) fn boolean(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<bool> {
        let (path, v) = self.get(key)?;
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "on" => Some(true),
                "false" | "no" | "n" | "off" => Some(false),
                _ => {
                    ctx.error(&path, "expected true or false");
                    None
                }
            },
            other => {
                ctx.error(&path, format!("expected true or false, found {}", kind(other)));
                None
            }
        }
    }

    /// A boolean, `false` when absent.
    pub(crate) fn flag(&self, ctx: &mut Ctx<'_>, key: &str) -> bool {
        self.boolean(ctx, key).unwrap_or(false)
    }

    /// A whole number in `0..=max`. A string of digits is accepted (environment expansion yields
    /// strings).
    pub(crate) fn uint(&self, ctx: &mut Ctx<'_>, key: &str, max: u64) -> Option<u64> {
        let (path, v) = self.get(key)?;
        let n = match v {
            Value::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => Some(u),
                (None, Some(_)) => {
                    ctx.error(&path, "must not be negative");
                    return None;
                }
                _ => None,
            },
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n <= max => Some(n),
            Some(_) => {
                ctx.error(&path, format!("too large; the largest value allowed is {max}"));
                None
            }
            None => {
                ctx.error(&path, format!("expected a whole number, found {}", kind(v)));
                None
            }
        }
    }

    /// A Go duration string such as `24h` or `1h30m`.
    pub(crate) fn duration(&self, ctx: &mut Ctx<'_>, key: &str) -> Option<Duration> {
        let (path, v) = self.get(key)?;
        let Some(text) = scalar_text(v) else {
            ctx.error(&path, format!("expected a duration such as 24h, found {}", kind(v)));
            return None;
        };
        match duration::parse(&text) {
            Ok(d) => Some(d),
            Err(e) => {
                let shown: String = text.chars().take(40).collect();
                ctx.error(
                    &path,
                    format!(
                        "invalid duration {shown:?}: {e}; use a Go duration such as 24h, 90m, 1h30m or 500ms"
                    ),
                );
                None
            }
        }
    }

    /// A list of strings (a missing key is an empty list).
    pub(crate) fn strings(&self, ctx: &mut Ctx<'_>, key: &str) -> Vec<String> {
        let Some((path, v)) = self.get(key) else { return Vec::new() };
        let Value::Sequence(seq) = v else {
            ctx.error(&path, format!("expected a list of strings, found {}", kind(v)));
            return Vec::new();
        };
        let mut out = Vec::with_capacity(seq.len());
        for (i, item) in seq.iter().enumerate() {
            match scalar_text(item) {
                Some(s) => out.push(s),
                None => ctx.error(&index(&path, i), format!("expected a string, found {}", kind(item))),
            }
        }
        out
    }

    /// A mapping of strings to strings.
    pub(crate) fn string_map(&self, ctx: &mut Ctx<'_>, key: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some((path, v)) = self.get(key) else { return out };
        let Value::Mapping(map) = v else {
            ctx.error(&path, format!("expected a mapping of names to strings, found {}", kind(v)));
            return out;
        };
        for (k, val) in map {
            let Some(name) = scalar_text(k) else {
                ctx.error(&path, format!("a key is {}; keys must be plain names", kind(k)));
                continue;
            };
            let item_path = join(&path, &shown_key(&name));
            match untag(val) {
                Value::Null => {
                    out.insert(name, String::new());
                }
                other => match scalar_text(other) {
                    Some(s) => {
                        out.insert(name, s);
                    }
                    None => ctx.error(&item_path, format!("expected a string, found {}", kind(other))),
                },
            }
        }
        out
    }

    /// A nested mapping with its own known keys; `None` when absent or not a mapping.
    pub(crate) fn child(&self, ctx: &mut Ctx<'_>, key: &str, known: &[&'static str]) -> Option<Obj<'a>> {
        let (path, v) = self.get(key)?;
        Obj::new(ctx, &path, v, known)
    }

    /// The items of a list with their paths (a missing key is an empty list).
    pub(crate) fn list(&self, ctx: &mut Ctx<'_>, key: &str) -> Vec<(String, &'a Value)> {
        let Some((path, v)) = self.get(key) else { return Vec::new() };
        let Value::Sequence(seq) = v else {
            ctx.error(&path, format!("expected a list, found {}", kind(v)));
            return Vec::new();
        };
        seq.iter().enumerate().map(|(i, item)| (index(&path, i), item)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn suggestions() {
        let known = ["redirectURIs", "trustedPeers", "public", "name", "secret", "secretEnv"];
        assert_eq!(suggest("redirectURI", &known), Some("redirectURIs"));
        assert_eq!(suggest("redirecturl", &known), Some("redirectURIs"));
        assert_eq!(suggest("trustedPeer", &known), Some("trustedPeers"));
        assert_eq!(suggest("secrte", &known), Some("secret"));
        assert_eq!(suggest("completelyDifferent", &known), None);
        assert_eq!(suggest(&"x".repeat(1000), &known), None);
    }

    #[test]
    fn keys_match_case_insensitively_and_last_wins() {
        let v: Value = serde_yaml_ng::from_str("Issuer: a\nISSUER: b\nfoo: 1\n").unwrap();
        let env = no_env;
        let mut ctx = Ctx::new(&env);
        let obj = Obj::new(&mut ctx, "", &v, &["issuer"]).unwrap();
        assert_eq!(obj.string(&mut ctx, "issuer").as_deref(), Some("b"));
        assert_eq!(obj.key_path("issuer"), "ISSUER");
        assert_eq!(ctx.warnings.len(), 1, "{:?}", ctx.warnings);
        assert_eq!(ctx.unknown.len(), 1);
        assert_eq!(ctx.unknown[0].path, "foo");
    }

    #[test]
    fn scalar_conversions() {
        let v: Value =
            serde_yaml_ng::from_str("a: 1.2\nb: yes\nc: '42'\nd: -1\ne: [1, x, true]\nf: [[1]]\ng: 1.5")
                .unwrap();
        let env = no_env;
        let mut ctx = Ctx::new(&env);
        let o = Obj::new(&mut ctx, "p", &v, &["a", "b", "c", "d", "e", "f", "g"]).unwrap();
        assert_eq!(o.string(&mut ctx, "a").as_deref(), Some("1.2"));
        assert_eq!(o.boolean(&mut ctx, "b"), Some(true));
        assert_eq!(o.uint(&mut ctx, "c", 100), Some(42));
        assert!(ctx.errors.is_empty());
        assert_eq!(o.uint(&mut ctx, "d", 100), None);
        assert_eq!(o.uint(&mut ctx, "g", u64::MAX), None);
        assert_eq!(o.uint(&mut ctx, "c", 10), None);
        assert_eq!(o.strings(&mut ctx, "e"), vec!["1", "x", "true"]);
        assert!(o.strings(&mut ctx, "f").is_empty());
        let paths: Vec<_> = ctx.errors.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["p.d", "p.g", "p.c", "p.f[0]"]);
    }
}
