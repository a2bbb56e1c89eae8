//! The contract between the gateway's HTML shell and the browser app.
//!
//! A page is `<html lang=.. data-theme=..>` with the no-JS rendering inside
//! `<main id="app">` ([`APP_ROOT_ID`]) and the step as JSON in
//! `<script type="application/json" id="step">` ([`STEP_ELEMENT_ID`]): an [`Embedded`] with the
//! `FlowStep` core answered (serde of `oxidex.v1.FlowStep`, proto field names) and the
//! [`PageContext`]. The app replaces the no-JS content with its own rendering and submits the
//! same forms.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The id of the element the app renders into.
pub const APP_ROOT_ID: &str = "app";
/// The id of the `<script type="application/json">` holding the [`Embedded`] JSON.
pub const STEP_ELEMENT_ID: &str = "step";

/// What a page needs besides the step.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(default)]
pub struct PageContext {
    /// The issuer path (`/dex`, or empty): prefix of every form action and link.
    pub base: String,
    /// The page's locale tag (`en`, `de`).
    pub locale: String,
    /// `frontend.issuer`: the provider's display name.
    pub issuer: String,
    /// `frontend.logoURL` (empty for none).
    pub logo_url: String,
    /// `frontend.extra`: free-form values for custom themes.
    pub extra: BTreeMap<String, String>,
}

/// The embedded JSON: `{"ctx": PageContext, "step": FlowStep}`. Generic over the step so that
/// the native part needs no protobuf types (the gateway serializes `oxidex.v1.FlowStep`, the
/// app deserializes it).
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct Embedded<S> {
    pub ctx: PageContext,
    pub step: S,
}

/// JSON made safe inside a `<script>` element: `<`, `>`, `&` and the JavaScript line
/// separators are escaped as `\uXXXX`, so the text can never close the element or open a
/// comment, whatever the strings contain.
pub fn script_safe_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            _ => out.push(c),
        }
    }
    out
}

/// The origin of an http(s) URL (`https://host:port`, lower case), as a page's
/// Content-Security-Policy lists image sources (the gateway) and as the app checks a logo against
/// them; `None` for anything else or anything that is not a plain host.
pub fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let valid = !host_port.is_empty()
        && host_port.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    valid.then(|| format!("{}://{}", scheme.to_ascii_lowercase(), host_port.to_ascii_lowercase()))
}

/// The theme's brand colours: the `frontend.colors` key and the CSS variable it sets.
pub const COLOR_VARIABLES: &[(&str, &str)] = &[
    ("primary", "--ox-primary"),
    ("primaryText", "--ox-on-primary"),
    ("background", "--ox-bg"),
    ("surface", "--ox-surface"),
    ("text", "--ox-text"),
    ("mutedText", "--ox-muted"),
    ("link", "--ox-link"),
    ("error", "--ox-error"),
    ("focus", "--ox-focus"),
];

/// The built-in themes (`frontend.theme`).
pub const THEMES: &[&str] = &["light", "dark", "auto"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_json_cannot_close_the_element() {
        let json = serde_json::to_string(&serde_json::json!({"m": "</script><!-- & \u{2028}"})).unwrap();
        let safe = script_safe_json(&json);
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["m"], "</script><!-- & \u{2028}");
    }
}
