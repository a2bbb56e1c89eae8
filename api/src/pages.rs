//! Minimal server-rendered HTML for the browser flow (until the Leptos UI replaces it). Every
//! value is escaped, every page carries the security headers of [`security_headers`], and no
//! page loads anything from elsewhere.

use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use oxidex_proto::oxidex::v1 as pb;

use crate::form::encode;

/// The pages' Content-Security-Policy. There is no `form-action`: browsers apply it to the
/// redirects that follow a form POST too, and those go to upstream providers and to the
/// clients' redirect URIs, which the page cannot know. Scripts and every other resource are
/// refused by `default-src 'none'`.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;\
line-height:1.5}label{display:block;margin-top:1rem}input{display:block;width:100%;padding:.4rem;\
box-sizing:border-box}button{margin-top:1rem;margin-right:.5rem;padding:.4rem 1rem}\
.alert{color:#a00;font-weight:bold}";

/// Escapes text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The headers every response of a flow route carries (HTML pages and redirects alike).
pub(crate) fn security_headers(h: &mut HeaderMap) {
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
}

/// A complete HTML page.
pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head>\n<body><main>\n<h1>{}</h1>\n{body}\n</main></body></html>\n",
        escape(title),
        escape(title),
    );
    let mut response = (status, Html(html)).into_response();
    security_headers(response.headers_mut());
    response
}

/// An error page.
pub(crate) fn error(status: StatusCode, title: &str, message: &str) -> Response {
    page(status, title, &format!("<p role=\"alert\">{}</p>", escape(message)))
}

/// Adds `Retry-After` and picks 429 when the user must wait.
fn throttled(mut response: Response, retry_after_seconds: i64) -> Response {
    if retry_after_seconds > 0 {
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        if let Ok(v) = HeaderValue::try_from(retry_after_seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    response
}

fn retry_message(retry_after_seconds: i64) -> String {
    format!(
        "<p class=\"alert\" role=\"alert\">Too many attempts. Please try again in {retry_after_seconds} s.</p>"
    )
}

fn client_name(client: Option<&pb::ClientInfo>) -> String {
    match client {
        Some(c) if !c.name.is_empty() => c.name.clone(),
        Some(c) => c.id.clone(),
        None => String::new(),
    }
}

fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(name), escape(value))
}

/// The connector chooser: one link per connector.
pub(crate) fn chooser(base: &str, c: &pb::ConnectorChooser) -> Response {
    let client = client_name(c.client.as_ref());
    let mut body = String::new();
    if !client.is_empty() {
        body.push_str(&format!("<p>Log in to continue to <strong>{}</strong>.</p>\n", escape(&client)));
    }
    body.push_str("<ul>\n");
    for conn in &c.connectors {
        let name = if conn.name.is_empty() { &conn.id } else { &conn.name };
        let href = format!("{base}/auth/{}?req={}", encode(&conn.id), encode(&c.request_id));
        body.push_str(&format!("<li><a href=\"{}\">Log in with {}</a></li>\n", escape(&href), escape(name)));
    }
    body.push_str("</ul>");
    page(StatusCode::OK, "Log in", &body)
}

/// The username and password form of a password connector.
pub(crate) fn password_form(base: &str, f: &pb::PasswordForm) -> Response {
    let client = client_name(f.client.as_ref());
    let prompt = if f.username_prompt.is_empty() { "Username" } else { &f.username_prompt };
    let action = format!("{base}/auth/{}/login", encode(&f.connector_id));
    let mut body = String::new();
    if !client.is_empty() {
        body.push_str(&format!("<p>Log in to continue to <strong>{}</strong>.</p>\n", escape(&client)));
    }
    if f.retry_after_seconds > 0 {
        body.push_str(&retry_message(f.retry_after_seconds));
    } else if f.invalid {
        body.push_str("<p class=\"alert\" role=\"alert\">Invalid username or password.</p>\n");
    }
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}\">\n{}\n\
<label for=\"login\">{}</label><input id=\"login\" name=\"login\" type=\"text\" value=\"{}\" \
autocomplete=\"username\" required autofocus>\n\
<label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" \
autocomplete=\"current-password\" required>\n<button type=\"submit\">Log in</button>\n</form>",
        escape(&action),
        hidden("req", &f.request_id),
        escape(prompt),
        escape(&f.username),
    ));
    let status = if f.invalid { StatusCode::UNAUTHORIZED } else { StatusCode::OK };
    throttled(page(status, "Log in", &body), f.retry_after_seconds)
}

/// The consent page.
pub(crate) fn approval(base: &str, a: &pb::Approval) -> Response {
    let client = client_name(a.client.as_ref());
    let mut body = String::new();
    let who = match (a.username.is_empty(), a.email.is_empty()) {
        (false, false) => format!("{} ({})", a.username, a.email),
        (false, true) => a.username.clone(),
        (true, false) => a.email.clone(),
        (true, true) => String::new(),
    };
    if !who.is_empty() {
        body.push_str(&format!("<p>Logged in as <strong>{}</strong>.</p>\n", escape(&who)));
    }
    body.push_str(&format!("<p><strong>{}</strong> would like to:</p>\n<ul>\n", escape(&client)));
    for s in &a.scopes {
        let text = if s.description.is_empty() { &s.scope } else { &s.description };
        body.push_str(&format!("<li>{}</li>\n", escape(text)));
    }
    body.push_str("</ul>\n");
    body.push_str(&format!(
        "<form method=\"post\" action=\"{}\">\n{}{}\n\
<button type=\"submit\" name=\"approval\" value=\"approve\">Grant access</button>\n\
<button type=\"submit\" name=\"approval\" value=\"rejected\">Cancel</button>\n</form>",
        escape(&format!("{base}/approval")),
        hidden("req", &a.request_id),
        hidden("hmac", &a.hmac),
    ));
    page(StatusCode::OK, "Grant access", &body)
}

/// The code for an out-of-band client.
pub(crate) fn oob(o: &pb::OobCode) -> Response {
    let body = format!(
        "<p>Copy this code and paste it into your application:</p>\n\
<label for=\"code\">Login code</label><input id=\"code\" type=\"text\" readonly value=\"{}\">",
        escape(&o.code)
    );
    page(StatusCode::OK, "Login successful", &body)
}

/// The end of the device flow.
pub(crate) fn device_success(d: &pb::DeviceSuccess) -> Response {
    let client = client_name(d.client.as_ref());
    let body = if client.is_empty() {
        "<p>You are logged in. Return to your device to continue.</p>".to_owned()
    } else {
        format!(
            "<p>You are logged in to <strong>{}</strong>. Return to your device to continue.</p>",
            escape(&client)
        )
    };
    page(StatusCode::OK, "Login successful", &body)
}

/// The user-code entry page of the device flow.
pub(crate) fn device_entry(base: &str, d: &pb::DeviceEntry) -> Response {
    let mut body = String::new();
    if d.retry_after_seconds > 0 {
        body.push_str(&retry_message(d.retry_after_seconds));
    } else if d.invalid {
        body.push_str("<p class=\"alert\" role=\"alert\">Invalid or expired code. Please try again.</p>\n");
    }
    body.push_str(&format!(
        "<p>Enter the code shown on your device.</p>\n<form method=\"post\" action=\"{}\">\n\
<label for=\"user_code\">Code</label><input id=\"user_code\" name=\"user_code\" type=\"text\" value=\"{}\" \
autocomplete=\"off\" autocapitalize=\"characters\" required autofocus>\n\
<button type=\"submit\">Continue</button>\n</form>",
        escape(&format!("{base}/device/auth/verify_code")),
        escape(&d.user_code),
    ));
    let status = if d.invalid { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    throttled(page(status, "Enter the code", &body), d.retry_after_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    }
}
