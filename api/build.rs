//! Embeds the browser app built by `cargo xtask build-ui`, when it was built.
//!
//! The assets come from `$OXIDEX_UI_DIST`, or `frontend/dist` of the workspace. Its
//! `manifest.txt` (written last by the build) lists `entry NAME` (the JS module), `wasm NAME`
//! and `asset NAME` lines; every asset NAME has NAME.gz and NAME.br next to it. Without a
//! manifest the table is empty and the gateway serves the no-JS pages only.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=OXIDEX_UI_DIST");
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let dist = std::env::var_os("OXIDEX_UI_DIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir.join("../frontend/dist"));
    let manifest = dist.join("manifest.txt");
    // Watch the manifest when it exists, else the directory that will contain it (a missing
    // path would rerun this script on every build).
    if manifest.is_file() {
        println!("cargo:rerun-if-changed={}", manifest.display());
    } else if dist.is_dir() {
        println!("cargo:rerun-if-changed={}", dist.display());
    } else if let Some(parent) = dist.parent().filter(|p| p.is_dir()) {
        println!("cargo:rerun-if-changed={}", parent.display());
    }
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    let (mut entry, mut wasm, mut assets) = (None, None, Vec::new());
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("entry", n)) => entry = Some(n.trim().to_owned()),
            Some(("wasm", n)) => wasm = Some(n.trim().to_owned()),
            Some(("asset", n)) => assets.push(n.trim().to_owned()),
            _ => {}
        }
    }
    let ok = |n: &str| !n.is_empty() && !n.contains(['/', '\\', '"']) && dist.join(n).is_file();
    let mut out = String::from(
        "/// An asset of the built UI: (name, content, gzip, brotli); an empty variant is absent.\n\
         pub(crate) type UiAsset = (&'static str, &'static [u8], &'static [u8], &'static [u8]);\n\
         /// The built UI.\n\
         pub(crate) static UI_ASSETS: &[UiAsset] = &[\n",
    );
    let mut all_ok = entry.as_deref().is_some_and(ok) && wasm.as_deref().is_some_and(ok);
    for name in &assets {
        if !ok(name) {
            println!("cargo:warning=frontend/dist: {name} is missing; the UI is not embedded");
            all_ok = false;
        }
    }
    if all_ok {
        for name in &assets {
            let path = |suffix: &str| {
                let p = dist.join(format!("{name}{suffix}"));
                if p.is_file() {
                    format!("include_bytes!({:?})", p.canonicalize().unwrap_or(p).display().to_string())
                } else {
                    "&[]".to_owned()
                }
            };
            let _ = writeln!(out, "    ({name:?}, {}, {}, {}),", path(""), path(".gz"), path(".br"));
        }
    }
    out.push_str("];\n");
    let opt = |v: &Option<String>| match v {
        Some(n) if all_ok => format!("Some({n:?})"),
        _ => "None".to_owned(),
    };
    let _ =
        writeln!(out, "/// The app's JS module.\npub(crate) const UI_ENTRY: Option<&str> = {};", opt(&entry));
    let _ = writeln!(out, "/// The app's WASM.\npub(crate) const UI_WASM: Option<&str> = {};", opt(&wasm));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    if let Err(e) = std::fs::write(out_dir.join("ui_assets.rs"), out) {
        panic!("writing ui_assets.rs: {e}");
    }
}
