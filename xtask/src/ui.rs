//! `cargo xtask build-ui`: builds the browser app (`frontend/`, Leptos) for
//! wasm32-unknown-unknown, runs wasm-bindgen (`--target web`) and, when available, wasm-opt, and
//! writes content-hashed, precompressed (gzip and brotli) assets plus `manifest.txt` to
//! `frontend/dist`, which `api/build.rs` embeds into the binary.
//!
//! Tools: the `wasm32-unknown-unknown` target (`rustup target add`), `wasm-bindgen` of exactly
//! the version the crate pins (installed with `cargo install` when missing) and optionally
//! `wasm-opt` (on the PATH, or npm `binaryen` in `tests/ui/node_modules`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use sha2::{Digest as _, Sha256};

use crate::{root, run};

/// The wasm-bindgen version `frontend/Cargo.toml` pins (`wasm-bindgen = "=..."`); the CLI must
/// match it exactly.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
const TARGET: &str = "wasm32-unknown-unknown";
const PROFILE: &str = "ui-release";
/// The stem of the asset names (`oxidex-ui-<hash>.js`, `oxidex-ui-<hash>.wasm`).
const STEM: &str = "oxidex-ui";

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ensure_tools() -> Result<()> {
    let targets = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !targets.lines().any(|l| l.trim() == TARGET) {
        run(Command::new("rustup").args(["target", "add", TARGET]))?;
    }
    let version = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if !version.split_whitespace().any(|w| w == WASM_BINDGEN_VERSION) {
        run(Command::new("cargo").args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]))?;
    }
    Ok(())
}

fn wasm_opt(root: &Path) -> Option<PathBuf> {
    if output(Command::new("wasm-opt").arg("--version")).is_some() {
        return Some(PathBuf::from("wasm-opt"));
    }
    let local = root.join("tests/ui/node_modules/.bin/wasm-opt");
    if !local.is_file() && output(Command::new("npm").arg("--version")).is_some() {
        // npm `binaryen` (in tests/ui's lockfile) provides it.
        let _ = run(Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(root.join("tests/ui")));
    }
    local.is_file().then_some(local)
}

fn short_hash(content: &[u8]) -> String {
    Sha256::digest(content).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn compress(path: &Path, content: &[u8]) -> Result<()> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(content)?;
    std::fs::write(path.with_file_name(format!("{}.gz", file_name(path))), gz.finish()?)?;
    let mut br = Vec::new();
    let params = brotli::enc::BrotliEncoderParams { quality: 11, lgwin: 22, ..Default::default() };
    brotli::BrotliCompress(&mut &content[..], &mut br, &params)?;
    std::fs::write(path.with_file_name(format!("{}.br", file_name(path))), br)?;
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Builds the UI into `frontend/dist` and returns that directory.
pub(crate) fn build() -> Result<PathBuf> {
    let root = root();
    ensure_tools()?;
    run(Command::new("cargo")
        .args(["rustc", "-p", "oxidex-frontend", "--lib", "--crate-type", "cdylib", "--target", TARGET])
        .args(["--profile", PROFILE])
        .current_dir(&root))?;
    let wasm_in = target_dir(&root).join(TARGET).join(PROFILE).join("oxidex_frontend.wasm");
    let work = target_dir(&root).join("ui-bindgen");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    run(Command::new("wasm-bindgen")
        .arg(&wasm_in)
        .args(["--target", "web", "--no-typescript", "--out-name", STEM, "--out-dir"])
        .arg(&work))?;
    let bg = work.join(format!("{STEM}_bg.wasm"));
    match wasm_opt(&root) {
        Some(opt) => {
            let optimised = work.join(format!("{STEM}_opt.wasm"));
            run(Command::new(opt)
                .arg(&bg)
                .args(["-Oz", "--strip-debug", "--strip-producers"])
                .args(["--enable-bulk-memory", "--enable-nontrapping-float-to-int", "--enable-sign-ext"])
                .args(["--enable-mutable-globals", "--enable-reference-types", "--enable-multivalue"])
                .arg("-o")
                .arg(&optimised))?;
            std::fs::rename(&optimised, &bg)?;
        }
        None => eprintln!(
            "wasm-opt not found (npm binaryen or the binaryen package): the WASM is not size-optimised"
        ),
    }
    let wasm = std::fs::read(&bg)?;
    let wasm_name = format!("{STEM}-{}.wasm", short_hash(&wasm));
    // The JS glue loads `<out-name>_bg.wasm` next to itself; point it at the hashed name and
    // start the app when the module loads (the page has no inline script: CSP script-src 'self').
    let js = std::fs::read_to_string(work.join(format!("{STEM}.js")))?;
    let default_wasm = format!("'{STEM}_bg.wasm'");
    if !js.contains(&default_wasm) {
        bail!("the wasm-bindgen JS does not reference {default_wasm}; update xtask/src/ui.rs");
    }
    let js = js.replace(&default_wasm, &format!("'{wasm_name}'")) + "\n__wbg_init();\n";
    let js_name = format!("{STEM}-{}.js", short_hash(js.as_bytes()));

    let dist = root.join("frontend/dist");
    let _ = std::fs::remove_dir_all(&dist);
    std::fs::create_dir_all(&dist)?;
    for (name, content) in [(&wasm_name, wasm.as_slice()), (&js_name, js.as_bytes())] {
        let path = dist.join(name);
        std::fs::write(&path, content)?;
        compress(&path, content).with_context(|| format!("compressing {name}"))?;
    }
    // Written last: build.rs embeds only a complete build.
    std::fs::write(
        dist.join("manifest.txt"),
        format!("entry {js_name}\nwasm {wasm_name}\nasset {js_name}\nasset {wasm_name}\n"),
    )?;
    let size = |n: &str| std::fs::metadata(dist.join(n)).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "UI built into {}: {js_name} ({} B, {} B brotli), {wasm_name} ({} B, {} B brotli)",
        dist.display(),
        size(&js_name),
        size(&format!("{js_name}.br")),
        size(&wasm_name),
        size(&format!("{wasm_name}.br")),
    );
    Ok(dist)
}
