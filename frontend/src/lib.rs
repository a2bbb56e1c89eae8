//! Oxidex's hosted login pages.
//!
//! Native part (every target): the message catalogs ([`messages`]), the page contract between
//! the gateway and the browser app ([`page`]: the JSON a page embeds, the element ids, the
//! theme's CSS variables) and the base stylesheet ([`APP_CSS`]). The gateway (`oxidex-api`)
//! uses them for the no-JS pages, so both renderings use the same words.
//!
//! Browser part (`wasm32` only, module `app`): a Leptos CSR app that reads the embedded step and
//! renders the page; it submits the same forms as the no-JS page. `cargo xtask build-ui` builds
//! it with wasm-bindgen into `frontend/dist`, which the gateway embeds.

pub mod messages;
pub mod page;

#[cfg(target_arch = "wasm32")]
mod app;

/// The base stylesheet: layout, the light and dark themes as CSS variables (`data-theme` on
/// `<html>`: `light`, `dark`, or `auto` following `prefers-color-scheme`), focus rings.
pub const APP_CSS: &str = include_str!("../style/app.css");
