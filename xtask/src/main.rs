//! Project automation. `cargo xtask test` builds the login UI and runs the whole test suite (what
//! the README and CI run); `cargo xtask build-ui` builds the login UI into `frontend/dist`;
//! `cargo xtask run` builds it and runs `oxidex serve examples/config-dev.yaml`;
//! `cargo xtask rss` measures the resident memory of `oxidex serve` after start.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

mod bench;
mod ui;

const LOCAL_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("build-ui") => ui::build().map(|_| ()),
        Some("run") => {
            ui::build()?;
            let config = args.get(1).map_or("examples/config-dev.yaml", String::as_str);
            run(Command::new("cargo").args(["run", "--", "serve", config]).current_dir(root()))
        }
        Some("rss") => rss(),
        Some("bench") => bench::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask test [extra nextest args] | build-ui | run [CONFIG] | rss | bench [--write] [--help]"
            );
            std::process::exit(2);
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn reachable(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("+ {cmd:?}");
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

/// Installs what the tests need beyond Rust, then runs every test of the workspace.
fn test(extra: &[String]) -> Result<()> {
    let root = root();
    // The Python gRPC client test needs grpcio-tools (from PyPI).
    let has_grpc_tools = Command::new("python3")
        .args(["-c", "import grpc_tools"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_grpc_tools {
        run(Command::new("python3").args(["-m", "pip", "install", "--quiet", "grpcio-tools"]))?;
    }
    // Debian packages: the LDAP connector test starts its own OpenLDAP (slapd, and ldapmodify to
    // change the directory while it runs); the browser tests drive Debian's chromium.
    let mut packages = Vec::new();
    if !Path::new("/usr/sbin/slapd").exists() || !Path::new("/usr/bin/ldapmodify").exists() {
        packages.extend(["slapd", "ldap-utils"]);
    }
    if std::env::var_os("OXIDEX_UI_CHROMIUM").is_none() && !Path::new("/usr/bin/chromium").exists() {
        packages.push("chromium");
    }
    if !packages.is_empty() {
        let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let mut apt = Command::new(if is_root { "apt-get" } else { "sudo" });
        if !is_root {
            apt.arg("apt-get");
        }
        apt.args(["install", "-y", "--no-install-recommends"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut apt)?;
    }
    // The npm packages of the tests (from the npm registry), installed from the committed
    // lockfiles, again whenever a lockfile is newer: tests/js (the openid-client relying party),
    // tests/upstream-oidc (the oidc-provider upstream of the oidc connector tests) and tests/ui
    // (playwright-core, axe-core and binaryen's wasm-opt for the browser tests).
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    for dir in ["tests/js", "tests/upstream-oidc", "tests/ui"] {
        let js = root.join(dir);
        let installed = modified(&js.join("node_modules/.package-lock.json"));
        if installed.is_none_or(|i| modified(&js.join("package-lock.json")).is_some_and(|l| l > i)) {
            run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&js))?;
        }
    }
    // The tests run the binary with the login UI built in (tests/ui_browser.rs needs it).
    ui::build()?;
    let mut cmd;
    let has_nextest = Command::new("cargo")
        .args(["nextest", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_nextest {
        cmd = Command::new("cargo");
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd = Command::new("cargo");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(extra).current_dir(&root);
    if std::env::var_os("OXIDEX_TEST_POSTGRES_URL").is_none() {
        if reachable("127.0.0.1:5432") {
            eprintln!("Postgres answers on 127.0.0.1:5432: Postgres tests use {LOCAL_POSTGRES}");
            cmd.env("OXIDEX_TEST_POSTGRES_URL", LOCAL_POSTGRES);
        } else {
            eprintln!(
                "no Postgres on 127.0.0.1:5432 and OXIDEX_TEST_POSTGRES_URL unset: Postgres tests will skip"
            );
        }
    }
    run(&mut cmd)
}

/// Starts `oxidex serve` (release build) with the example SQLite config and reports its resident
/// memory once it answers, and again after some requests.
fn rss() -> Result<()> {
    let root = root();
    run(Command::new("cargo").args(["build", "--release", "--bin", "oxidex"]).current_dir(&root))?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let dir = std::env::temp_dir().join(format!("oxidex-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let config = std::fs::read_to_string(root.join("examples/config-dev.yaml"))?
        .replace("file: oxidex.db", &format!("file: {}", dir.join("oxidex.db").display()));
    let config_path = dir.join("config.yaml");
    std::fs::write(&config_path, config)?;
    let mut child = Command::new(target.join("release/oxidex"))
        .arg("serve")
        .arg(&config_path)
        .stderr(Stdio::null())
        .spawn()
        .context("starting oxidex")?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !get_ok("127.0.0.1:5556", "/dex/keys") {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("oxidex did not answer on 127.0.0.1:5556 within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(1));
    let idle = rss_kib(child.id())?;
    for _ in 0..1000 {
        get_ok("127.0.0.1:5556", "/dex/keys");
        get_ok("127.0.0.1:5556", "/dex/.well-known/openid-configuration");
    }
    let after = rss_kib(child.id())?;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    println!("RSS after start (SQLite, idle): {:.1} MB", idle as f64 / 1024.0);
    println!("RSS after 2,000 discovery/JWKS requests: {:.1} MB", after as f64 / 1024.0);
    Ok(())
}

fn get_ok(host: &str, path: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = TcpStream::connect(host) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out.starts_with(b"HTTP/1.1 200")
}

fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc/PID/status")
}
