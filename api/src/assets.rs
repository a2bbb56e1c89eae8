//! The login pages' static assets under `{issuer path}/static/`.
//!
//! Two kinds, one table:
//! - built into the binary: the browser app's JS and WASM (`cargo xtask build-ui` writes them,
//!   already content-hashed and compressed with gzip and brotli, to `frontend/dist`; `build.rs`
//!   embeds whatever is there, nothing when the UI was not built) and the base stylesheet;
//! - made at start from the config: `theme.css` (`frontend.colors` as CSS variables, then the
//!   `frontend.customCSS` file) and the favicon, so a theme change needs a restart, not a
//!   rebuild.
//!
//! Every name carries a hash of its content, so an asset is served with
//! `Cache-Control: public, max-age=31536000, immutable`; the HTML pages that link them are
//! `no-store`. Each asset is compressed once (at build or at start) and served as brotli or gzip
//! by `Accept-Encoding`, with `Vary: Accept-Encoding`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use sha2::{Digest as _, Sha256};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// What the operator configured under `frontend:` (validated by core's config loader).
#[derive(Debug, Clone, Default)]
pub struct FrontendSettings {
    /// `frontend.theme`: `light`, `dark` or `auto`.
    pub theme: String,
    /// `frontend.issuer`: the display name.
    pub issuer: String,
    /// `frontend.logoURL`.
    pub logo_url: Option<String>,
    /// `frontend.extra`.
    pub extra: BTreeMap<String, String>,
    /// `frontend.defaultLocale`: the locale when neither `ui_locales` nor `Accept-Language`
    /// names a supported one.
    pub default_locale: String,
    /// `frontend.colors`: brand colours by key (see `oxidex_frontend::page::COLOR_VARIABLES`).
    pub colors: BTreeMap<String, String>,
    /// The content of the `frontend.customCSS` file.
    pub custom_css: Option<String>,
    /// The content and the file name of `frontend.favicon`.
    pub favicon: Option<(Vec<u8>, String)>,
}

struct Asset {
    content_type: &'static str,
    raw: Bytes,
    gzip: Option<Bytes>,
    brotli: Option<Bytes>,
}

/// The asset table and the names the pages link.
pub(crate) struct Assets {
    by_name: HashMap<String, Asset>,
    /// The base stylesheet's name.
    pub(crate) app_css: String,
    /// The theme stylesheet's name.
    pub(crate) theme_css: String,
    /// The favicon's name, when configured.
    pub(crate) favicon: Option<String>,
    /// The app's JS module, when the UI was built into this binary.
    pub(crate) entry_js: Option<&'static str>,
    /// The app's WASM, when the UI was built into this binary.
    pub(crate) wasm: Option<&'static str>,
}

/// The first 16 hex digits of the SHA-256 of `content`.
fn short_hash(content: &[u8]) -> String {
    Sha256::digest(content).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn gzip(content: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(content).ok()?;
    enc.finish().ok().map(Bytes::from)
}

fn brotli(content: &[u8]) -> Option<Bytes> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 9, ..Default::default() };
    brotli::BrotliCompress(&mut &content[..], &mut out, &params).ok()?;
    Some(Bytes::from(out))
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

/// The theme stylesheet: the brand colours as variables on every theme, then the custom CSS.
pub(crate) fn theme_css(settings: &FrontendSettings) -> String {
    let mut css = String::from("/* Generated from the frontend: section of the config. */\n");
    let vars: Vec<String> = settings
        .colors
        .iter()
        .filter_map(|(key, value)| {
            let var = oxidex_frontend::page::COLOR_VARIABLES.iter().find(|(k, _)| k == key)?.1;
            Some(format!("  {var}: {value};\n"))
        })
        .collect();
    if !vars.is_empty() {
        css.push_str(":root, :root[data-theme] {\n");
        vars.iter().for_each(|v| css.push_str(v));
        css.push_str("}\n");
    }
    if let Some(custom) = &settings.custom_css {
        css.push_str(custom);
        css.push('\n');
    }
    css
}

impl Assets {
    pub(crate) fn new(settings: &FrontendSettings) -> Arc<Assets> {
        let mut by_name = HashMap::new();
        for (name, raw, gz, br) in embedded::UI_ASSETS {
            by_name.insert(
                (*name).to_owned(),
                Asset {
                    content_type: content_type(name),
                    raw: Bytes::from_static(raw),
                    gzip: (!gz.is_empty()).then(|| Bytes::from_static(gz)),
                    brotli: (!br.is_empty()).then(|| Bytes::from_static(br)),
                },
            );
        }
        let mut add = |stem: &str, ext: &str, content: Vec<u8>, compress: bool| {
            let name = format!("{stem}-{}.{ext}", short_hash(&content));
            let asset = Asset {
                content_type: content_type(&name),
                gzip: if compress { gzip(&content) } else { None },
                brotli: if compress { brotli(&content) } else { None },
                raw: Bytes::from(content),
            };
            by_name.insert(name.clone(), asset);
            name
        };
        let app_css = add("app", "css", oxidex_frontend::APP_CSS.as_bytes().to_vec(), true);
        let theme_css = add("theme", "css", theme_css(settings).into_bytes(), true);
        let favicon = settings.favicon.as_ref().map(|(content, file)| {
            let ext = file.rsplit('.').next().unwrap_or("ico").to_ascii_lowercase();
            add("favicon", &ext, content.clone(), ext == "svg")
        });
        Arc::new(Assets {
            by_name,
            app_css,
            theme_css,
            favicon,
            entry_js: embedded::UI_ENTRY,
            wasm: embedded::UI_WASM,
        })
    }
}

/// Whether `Accept-Encoding` accepts `coding` (a listed coding with `q=0` is refused).
fn accepts(headers: &HeaderMap, coding: &str) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim().strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            name.eq_ignore_ascii_case(coding) && !refused
        })
    })
}

/// `GET {base}/static/{name}`.
pub(crate) async fn serve(
    State(assets): State<Arc<Assets>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = assets.by_name.get(&name) else {
        return (StatusCode::NOT_FOUND, [(header::CACHE_CONTROL, "no-store")], "not found\n").into_response();
    };
    let (body, encoding) = match (&asset.brotli, &asset.gzip) {
        (Some(br), _) if accepts(&headers, "br") => (br.clone(), Some("br")),
        (_, Some(gz)) if accepts(&headers, "gzip") => (gz.clone(), Some("gzip")),
        _ => (asset.raw.clone(), None),
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(e) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_honours_q_zero() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip, deflate, br;q=0"));
        assert!(accepts(&h, "gzip"));
        assert!(!accepts(&h, "br"));
    }

    #[test]
    fn theme_css_sets_the_configured_colours_and_appends_custom_css() {
        let settings = FrontendSettings {
            colors: [("primary".to_owned(), "#123456".to_owned())].into(),
            custom_css: Some("main { border-width: 3px; }".into()),
            ..FrontendSettings::default()
        };
        let css = theme_css(&settings);
        assert!(css.contains("--ox-primary: #123456;"), "{css}");
        assert!(css.ends_with("main { border-width: 3px; }\n"), "{css}");
    }
}
