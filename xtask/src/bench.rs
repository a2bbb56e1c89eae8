//! `cargo xtask bench`: the raw signing rate of this machine, then token grants per second
//! through the HTTP endpoint of a release `oxidex serve` on SQLite and on Postgres, with p50/p99
//! latency, errors, server CPU and peak RSS. `--write` records the run in `BENCHMARKS.md`.
//!
//! The figures only mean something from optimised code, so a debug `xtask` builds the release
//! `oxidex` and `xtask` binaries and runs the benchmark from the release `xtask`: the load
//! generator shares the machine with the server and must not waste its cores.
//!
//! Every exit path (error, panic, Ctrl-C, SIGTERM) kills the server, removes its temp dir and
//! drops the Postgres database the run created; a server that fails to start shows its log.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oxidex_core::storage::SigningAlg;
use oxidex_core::token::keys::{self, Signer};
use serde_json::Value;

mod rotation;

/// Set by the debug `xtask` for the release one it starts: the binaries are built already.
const RELEASE_ENV: &str = "OXIDEX_BENCH_RELEASE";
const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-secret";
/// Never called: the benchmark reads the code from the `Location` header.
const REDIRECT_URI: &str = "http://127.0.0.1:9/cb";
/// Where runs go in `BENCHMARKS.md`: new runs are inserted below it, the text above is kept.
const RUNS_MARKER: &str = "<!-- runs: newest first; `cargo xtask bench --write` inserts below -->";
/// Stop a worker after this many errors in a row (the server is gone or broken).
const MAX_CONSECUTIVE_ERRORS: u32 = 50;

const USAGE: &str = "usage: cargo xtask bench [--write] [--quick] [--duration SECS] [--warmup SECS]
                        [--sign-seconds SECS] [--concurrency 1,8,32] [--storage sqlite,postgres]
                        [--alg RS256|ES256] [--oxidex PATH] [--sqlite-dir DIR]
                        [--scenario refresh_token,client_credentials,discovery,keys,rotation]

  --write          record the run in BENCHMARKS.md (default: print only)
  --quick          short run to check the harness (1 s warm-up, 3 s runs, concurrency 1,8)
  --duration       measured seconds per scenario (default 15)
  --warmup         warm-up seconds per scenario, not measured (default 2)
  --sign-seconds   seconds per raw signing measurement (default 3)
  --concurrency    load workers, each with its own keep-alive connection (default 1,8,32)
  --storage        backends to run (default sqlite,postgres; Postgres is skipped when absent)
  --alg            the server's signing algorithm (default RS256, Dex's default)
  --no-rotation    run the server with expiry.refreshTokens.disableRotation, to see what the
                   rotation's durable write costs (a refresh then only reads storage)
  --oxidex         use this oxidex binary instead of building the release one
  --scenario       what to run (default: all; discovery and keys are baselines, run on the
                   first backend at the highest concurrency only; rotation is the storage work
                   of a refresh rotation alone, in this process, at the highest concurrency)
  --sqlite-dir     put the SQLite database (and the server's temp dir) under DIR, e.g. to
                   compare disks (default: the system temp dir)

Postgres: OXIDEX_TEST_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/test; the run
creates its own database oxidex_bench_<pid> and drops it afterwards.";

/// `cargo xtask bench ARGS`.
pub fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let root = super::root();
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_ENV).is_none() {
        return run_release_xtask(&root, &opts, args);
    }
    let bin = match &opts.oxidex {
        Some(path) => path.clone(),
        None => {
            if std::env::var_os(RELEASE_ENV).is_none() {
                super::run(
                    Command::new("cargo").args(["build", "--release", "--bin", "oxidex"]).current_dir(&root),
                )?;
            }
            target_dir(&root).join("release/oxidex")
        }
    };
    ensure!(bin.is_file(), "no oxidex binary at {}", bin.display());

    let meta = Meta::collect(&root, &opts);
    if meta.load_start[0] > 0.5 {
        eprintln!(
            "note: load average {:.2} (> 0.5): other work shares the CPUs, the figures will be noisy",
            meta.load_start[0]
        );
    }
    eprintln!("measuring the raw signing rate ({} s per figure)", opts.sign_time.as_secs_f64());
    let mut signing = Signing {
        start: measure_signing(opts.sign_time, &[SigningAlg::RS256, SigningAlg::ES256])?,
        end: None,
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let storages = rt.block_on(async {
        tokio::select! {
            r = run_http(&opts, &bin, &signing) => r,
            r = interrupted() => r,
        }
    })?;
    // The runtime goes before the report is written: no server or database outlives this point.
    drop(rt);
    eprintln!("measuring the {} signing rate again", opts.alg.as_str());
    signing.end = measure_signing(opts.sign_time, &[opts.alg])?.pop();

    let mut meta = meta;
    meta.load_end = load_average();
    let report = Report { meta, signing, storages };
    let markdown = report.markdown();
    println!("{markdown}");
    if opts.write {
        let path = root.join("BENCHMARKS.md");
        write_benchmarks(&path, &markdown)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(failed) = report.storages.iter().find_map(|s| s.failure.as_ref()) {
        bail!("a storage run failed: {failed}");
    }
    Ok(())
}

/// Builds the release `oxidex` and `xtask` in one cargo call, then runs the release `xtask`.
fn run_release_xtask(root: &Path, opts: &Options, args: &[String]) -> Result<()> {
    let mut build = Command::new("cargo");
    build.args(["build", "--release", "-p", "xtask"]);
    if opts.oxidex.is_none() {
        build.args(["-p", "oxidex"]);
    }
    super::run(build.current_dir(root))?;
    let xtask = target_dir(root).join("release/xtask");
    let status = Command::new(&xtask)
        .arg("bench")
        .args(args)
        .env(RELEASE_ENV, "1")
        .current_dir(root)
        .status()
        .with_context(|| format!("running {}", xtask.display()))?;
    if !status.success() {
        bail!("the release benchmark failed with {status}");
    }
    Ok(())
}

/// The cargo target directory: the one this binary was built into.
fn target_dir(root: &Path) -> PathBuf {
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().and_then(Path::parent).map(Path::to_path_buf))
        .filter(|dir| dir.join("release").is_dir() || dir.join("debug").is_dir());
    from_exe
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
        .unwrap_or_else(|| root.join("target"))
}

async fn interrupted() -> Result<Vec<StorageReport>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    bail!("interrupted: the server was stopped and its storage removed")
}

// ---------------------------------------------------------------------------------------------
// Options

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StorageKind {
    Sqlite,
    Postgres,
}

impl StorageKind {
    fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "Postgres",
        }
    }
}

#[derive(Debug, Clone)]
struct Options {
    write: bool,
    quick: bool,
    warmup: Duration,
    duration: Duration,
    sign_time: Duration,
    concurrency: Vec<usize>,
    storages: Vec<StorageKind>,
    /// Whether `--storage` was given (then an absent Postgres is an error, not a skip).
    storage_explicit: bool,
    alg: SigningAlg,
    /// Whether the server rotates refresh tokens (Dex's default, and the goal's setting).
    rotation: bool,
    oxidex: Option<PathBuf>,
    /// Where the SQLite file's temp dir goes (default: the system temp dir).
    sqlite_dir: Option<PathBuf>,
    /// What to run; the baselines only on the first backend.
    scenarios: Vec<Kind>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options {
            write: false,
            quick: false,
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(15),
            sign_time: Duration::from_secs(3),
            concurrency: vec![1, 8, 32],
            storages: vec![StorageKind::Sqlite, StorageKind::Postgres],
            storage_explicit: false,
            alg: SigningAlg::RS256,
            rotation: true,
            oxidex: None,
            sqlite_dir: None,
            scenarios: vec![
                Kind::Refresh,
                Kind::ClientCredentials,
                Kind::Discovery,
                Kind::Keys,
                Kind::Rotation,
            ],
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            let mut value = || it.next().cloned().with_context(|| format!("{arg} needs a value\n{USAGE}"));
            match arg.as_str() {
                "--write" => o.write = true,
                "--quick" => {
                    o.quick = true;
                    o.warmup = Duration::from_secs(1);
                    o.duration = Duration::from_secs(3);
                    o.sign_time = Duration::from_secs(1);
                    o.concurrency = vec![1, 8];
                }
                "--duration" => o.duration = seconds(&value()?)?,
                "--warmup" => o.warmup = seconds(&value()?)?,
                "--sign-seconds" => o.sign_time = seconds(&value()?)?,
                "--concurrency" => {
                    o.concurrency = value()?
                        .split(',')
                        .map(|c| c.trim().parse::<usize>().ok().filter(|&n| (1..=1024).contains(&n)))
                        .collect::<Option<Vec<_>>>()
                        .context("--concurrency takes a list of numbers from 1 to 1024, like 1,8,32")?;
                }
                "--storage" => {
                    o.storage_explicit = true;
                    o.storages = value()?
                        .split(',')
                        .map(|s| match s.trim().to_ascii_lowercase().as_str() {
                            "sqlite" | "sqlite3" => Ok(StorageKind::Sqlite),
                            "postgres" | "pg" => Ok(StorageKind::Postgres),
                            other => bail!("unknown storage {other:?}; use sqlite and/or postgres"),
                        })
                        .collect::<Result<_>>()?;
                }
                "--no-rotation" => o.rotation = false,
                "--alg" => {
                    o.alg = match value()?.to_ascii_uppercase().as_str() {
                        "RS256" => SigningAlg::RS256,
                        "ES256" => SigningAlg::ES256,
                        other => bail!("unknown algorithm {other:?}; use RS256 or ES256"),
                    }
                }
                // Absolute: the release xtask runs from the workspace root.
                "--oxidex" => o.oxidex = Some(std::path::absolute(value()?)?),
                "--sqlite-dir" => o.sqlite_dir = Some(PathBuf::from(value()?)),
                "--scenario" => {
                    o.scenarios = value()?
                        .split(',')
                        .map(|s| match s.trim() {
                            "refresh_token" | "refresh" => Ok(Kind::Refresh),
                            "client_credentials" | "cc" => Ok(Kind::ClientCredentials),
                            "discovery" => Ok(Kind::Discovery),
                            "keys" => Ok(Kind::Keys),
                            "rotation" => Ok(Kind::Rotation),
                            other => bail!(
                                "unknown scenario {other:?}; use refresh_token, client_credentials, discovery, keys, rotation"
                            ),
                        })
                        .collect::<Result<_>>()?;
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => bail!("unknown option {other:?}\n{USAGE}"),
            }
        }
        ensure!(!o.concurrency.is_empty() && !o.storages.is_empty(), "nothing to measure\n{USAGE}");
        ensure!(!o.duration.is_zero(), "--duration must be positive");
        Ok(o)
    }

    fn max_concurrency(&self) -> usize {
        self.concurrency.iter().copied().max().unwrap_or(1)
    }
}

fn seconds(s: &str) -> Result<Duration> {
    let n: f64 =
        s.trim_end_matches('s').parse().with_context(|| format!("not a number of seconds: {s:?}"))?;
    ensure!(n.is_finite() && (0.0..=3600.0).contains(&n), "seconds out of range: {s:?}");
    Ok(Duration::from_secs_f64(n))
}

// ---------------------------------------------------------------------------------------------
// Raw signing rate

/// Signatures per second of Oxidex's own signer, per algorithm.
#[derive(Debug, Clone, Copy)]
struct SignRate {
    alg: SigningAlg,
    one_thread: f64,
    two_threads: f64,
}

/// Signing rates measured at the start of the run, and the server's algorithm again at the end:
/// the machine's speed drifts, so ceilings use the mean of the two.
#[derive(Debug)]
struct Signing {
    start: Vec<SignRate>,
    end: Option<SignRate>,
}

impl Signing {
    fn rate(&self, alg: SigningAlg, pick: fn(&SignRate) -> f64) -> Option<f64> {
        let start = self.start.iter().find(|r| r.alg == alg).map(pick)?;
        Some(match self.end.as_ref().filter(|r| r.alg == alg) {
            Some(end) => (start + pick(end)) / 2.0,
            None => start,
        })
    }
    fn two_threads(&self, alg: SigningAlg) -> Option<f64> {
        self.rate(alg, |r| r.two_threads)
    }
    fn one_thread(&self, alg: SigningAlg) -> Option<f64> {
        self.rate(alg, |r| r.one_thread)
    }
    /// The two-thread rate at the end over the one at the start, minus one.
    fn drift(&self) -> Option<(SignRate, SignRate, f64)> {
        let end = self.end?;
        let start = *self.start.iter().find(|r| r.alg == end.alg)?;
        Some((start, end, end.two_threads / start.two_threads - 1.0))
    }
}

fn measure_signing(time: Duration, algs: &[SigningAlg]) -> Result<Vec<SignRate>> {
    let mut rates = Vec::new();
    for &alg in algs {
        let key = keys::generate(alg).with_context(|| format!("generating a {} key", alg.as_str()))?;
        let signer = Signer::new(&key)?;
        let one_thread = sign_rate(&signer, 1, time)?;
        let two_threads = sign_rate(&signer, 2, time)?;
        eprintln!(
            "  {}: {:.0} signatures/s on 1 thread, {:.0} on 2 threads",
            alg.as_str(),
            one_thread,
            two_threads
        );
        rates.push(SignRate { alg, one_thread, two_threads });
    }
    Ok(rates)
}

/// Claims shaped like an ID token of the refresh grant (the signature cost barely depends on the
/// size; serialisation and base64 are part of the signer's work, so they are included).
fn sample_claims(i: u64) -> Value {
    serde_json::json!({
        "iss": "http://127.0.0.1:5556/dex",
        "sub": "CgwwLTM4NS0yODA4OS0wEgRtb2Nr",
        "aud": "bench",
        "exp": 1_900_000_000u64 + i,
        "iat": 1_800_000_000u64 + i,
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q",
        "jti": format!("{i:032x}"),
        "email": "kilgore@kilgore.trout",
        "email_verified": true,
        "name": "Kilgore Trout",
        "groups": ["authors"],
        "federated_claims": { "connector_id": "mock", "user_id": "0-385-28089-0" },
    })
}

/// Signs for `time` on `threads` threads sharing one signer (as the server's workers do).
fn sign_rate(signer: &Signer, threads: usize, time: Duration) -> Result<f64> {
    // Distinct claims, built beforehand: building them is not the signer's work.
    let claims: Vec<Value> = (0..64).map(sample_claims).collect();
    let claims = &claims;
    for c in claims {
        signer.sign(c)?;
    }
    let start = Instant::now();
    let deadline = start + time;
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> Result<u64> {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        signer.sign(&claims[(n as usize * 2 + t) % claims.len()])?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("signing thread panicked"))?)
            .collect::<Result<Vec<u64>>>()
    })?;
    let elapsed = start.elapsed().as_secs_f64();
    Ok(counts.iter().sum::<u64>() as f64 / elapsed)
}

// ---------------------------------------------------------------------------------------------
// The server under test

/// A directory removed when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(base: Option<&Path>, label: &str) -> Result<Self> {
        let base = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let path = base.join(format!("oxidex-bench-{}-{label}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `oxidex serve`, killed when dropped (before its temp dir is removed).
#[derive(Debug)]
struct Server {
    child: Child,
    issuer: String,
    log: PathBuf,
    _dir: TempDir,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    async fn start(bin: &Path, dir: TempDir, storage_yaml: &str, opts: &Options) -> Result<Server> {
        let (web, grpc, telemetry) = (free_port()?, free_port()?, free_port()?);
        let issuer = format!("http://127.0.0.1:{web}/dex");
        let config = format!(
            "issuer: {issuer}\n\
             storage:\n{storage_yaml}\n\
             web:\n  http: 127.0.0.1:{web}\n\
             grpc:\n  addr: 127.0.0.1:{grpc}\n\
             telemetry:\n  http: 127.0.0.1:{telemetry}\n\
             logger:\n  level: warn\n\
             expiry:\n  refreshTokens:\n    disableRotation: {no_rotation}\n\
             signer:\n  type: local\n  config:\n    algorithm: {alg}\n\
             oauth2:\n  skipApprovalScreen: true\n  grantTypes: [authorization_code, refresh_token, client_credentials]\n\
             connectors:\n- type: mockCallback\n  id: mock\n  name: Mock\n\
             staticClients:\n- id: {CLIENT_ID}\n  name: Bench\n  secret: {CLIENT_SECRET}\n  redirectURIs: ['{REDIRECT_URI}']\n",
            alg = opts.alg.as_str(),
            no_rotation = !opts.rotation,
        );
        let config_path = dir.0.join("config.yaml");
        std::fs::write(&config_path, config)?;
        let log = dir.0.join("oxidex.log");
        let out = std::fs::File::create(&log)?;
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Server { child, issuer, log, _dir: dir };
        server.wait_ready().await?;
        Ok(server)
    }

    /// Waits until `/keys` answers 200 (storage open, keys loaded).
    async fn wait_ready(&mut self) -> Result<()> {
        let http = http_client()?;
        let url = format!("{}/keys", self.issuer);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            self.check_alive()?;
            if let Ok(r) = http.get(&url).send().await
                && r.status() == 200
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("oxidex did not answer {url} within 60 s; its log:\n{}", self.log_tail())
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("oxidex exited with {status}; its log:\n{}", self.log_tail());
        }
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last 4 KB of the server's log.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4096);
        let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
        text[start..].to_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Postgres database created for one run, dropped when this is dropped (on every path,
/// including a panic or Ctrl-C, from a thread of its own since `Drop` cannot await).
#[derive(Debug)]
struct PgDb {
    admin: sqlx::postgres::PgConnectOptions,
    name: String,
}

impl PgDb {
    async fn create(admin: sqlx::postgres::PgConnectOptions, name: String) -> Result<Self> {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect_with(&admin).await.context("connecting to Postgres")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
            .execute(&mut conn)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("creating database {name}"))?;
        let _ = conn.close().await;
        Ok(Self { admin, name })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || -> Result<()> {
            use sqlx::Connection as _;
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect_with(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")))
                    .execute(&mut conn)
                    .await?;
                let _ = conn.close().await;
                Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop database {}: {e:#}", self.name),
            Err(_) => eprintln!("warning: dropping database {} panicked", self.name),
        }
    }
}

/// The admin connection, and the storage block of the config for database `name`.
fn postgres_target(name: &str) -> Result<(sqlx::postgres::PgConnectOptions, String, String)> {
    let raw = std::env::var("OXIDEX_TEST_POSTGRES_URL").unwrap_or_else(|_| super::LOCAL_POSTGRES.to_owned());
    let url = url::Url::parse(&raw).context("OXIDEX_TEST_POSTGRES_URL is not a URL")?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(5432);
    let user = if url.username().is_empty() { "postgres".to_owned() } else { url.username().to_owned() };
    let password = url.password().map(str::to_owned);
    let mut admin = sqlx::postgres::PgConnectOptions::new()
        .host(&host)
        .port(port)
        .username(&user)
        .database(url.path().trim_start_matches('/'))
        .ssl_mode(sqlx::postgres::PgSslMode::Disable);
    if let Some(p) = &password {
        admin = admin.password(p);
    }
    let mut yaml = format!(
        "  type: postgres\n  config:\n    host: {host}\n    port: {port}\n    database: {name}\n    user: {user}\n"
    );
    if let Some(p) = &password {
        let _ = writeln!(yaml, "    password: '{}'", p.replace('\'', "''"));
    }
    yaml.push_str("    ssl:\n      mode: disable");
    Ok((admin, yaml, format!("{host}:{port}")))
}

/// The libpq URL of database `name` on the test server.
fn postgres_url(name: &str) -> Result<String> {
    let raw = std::env::var("OXIDEX_TEST_POSTGRES_URL").unwrap_or_else(|_| super::LOCAL_POSTGRES.to_owned());
    let mut url = url::Url::parse(&raw).context("OXIDEX_TEST_POSTGRES_URL is not a URL")?;
    url.set_path(name);
    url.set_query(Some("sslmode=disable"));
    Ok(url.to_string())
}

// ---------------------------------------------------------------------------------------------
// /proc

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resets VmHWM to the current RSS (Linux 4.0+); false when the kernel refuses.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// User plus system CPU time of a process so far, in seconds.
fn cpu_seconds(pid: &str, ticks_per_second: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command: state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second)
}

/// The machine's busy, iowait and total CPU ticks so far (all CPUs, from `/proc/stat`).
fn machine_ticks() -> Option<[f64; 3]> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let v: Vec<f64> = line.split_whitespace().skip(1).take(8).filter_map(|x| x.parse().ok()).collect();
    if v.len() < 8 {
        return None;
    }
    let (idle, iowait) = (v[3], v[4]);
    let total: f64 = v.iter().sum();
    Some([total - idle - iowait, iowait, total])
}

/// Cores busy and cores waiting for I/O between two `machine_ticks` samples.
fn machine_cores(a: Option<[f64; 3]>, b: Option<[f64; 3]>, cpus: f64) -> Option<(f64, f64)> {
    let (a, b) = (a?, b?);
    let total = b[2] - a[2];
    (total > 0.0).then(|| (cpus * (b[0] - a[0]) / total, cpus * (b[1] - a[1]) / total))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN));
    [it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN), it.next().unwrap_or(f64::NAN)]
}

// ---------------------------------------------------------------------------------------------
// HTTP clients and the flows

fn http_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .context("building an HTTP client")
}

fn random_b64(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| anyhow::anyhow!("no randomness"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

/// The URLs of one server.
#[derive(Debug)]
struct Target {
    issuer: String,
    token: String,
    discovery: String,
    keys: String,
}

impl Target {
    fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            token: format!("{issuer}/token"),
            discovery: format!("{issuer}/.well-known/openid-configuration"),
            keys: format!("{issuer}/keys"),
        }
    }
}

/// The authorization-code flow with PKCE through the `mockCallback` connector, as a browser
/// would run it (cookies kept, redirects followed by hand); returns the token response.
async fn login(t: &Target) -> Result<Value> {
    let browser = reqwest::Client::builder()
        .no_proxy()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    let verifier = random_b64(32)?;
    let challenge =
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()));
    let state = random_b64(12)?;
    let mut url = url::Url::parse(&format!("{}/auth", t.issuer))?;
    url.query_pairs_mut()
        .append_pair("client_id", CLIENT_ID)
        .append_pair("redirect_uri", REDIRECT_URI)
        .append_pair("response_type", "code")
        .append_pair("scope", "openid email offline_access")
        .append_pair("state", &state)
        .append_pair("nonce", &random_b64(12)?)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let mut code = None;
    for _ in 0..10 {
        let resp = browser.get(url.as_str()).send().await.context("authorization flow")?;
        let status = resp.status();
        let location =
            resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let Some(location) = location.filter(|_| status.is_redirection()) else {
            let body = resp.bytes().await.unwrap_or_default();
            bail!("GET {} answered {status} without a redirect: {}", url.path(), snippet(&body));
        };
        let next = url.join(&location).context("a Location that is not a URL")?;
        if next.as_str().starts_with(REDIRECT_URI) {
            let q: HashMap<String, String> = next.query_pairs().into_owned().collect();
            if let Some(error) = q.get("error") {
                bail!(
                    "the authorization answered error={error} ({})",
                    q.get("error_description").map_or("", |s| s)
                );
            }
            ensure!(q.get("state") == Some(&state), "the authorization response lost the state");
            code = Some(q.get("code").cloned().context("the authorization response has no code")?);
            break;
        }
        url = next;
    }
    let code = code.with_context(|| format!("no redirect to {REDIRECT_URI} within 10 hops"))?;
    let resp = browser
        .post(&t.token)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ])
        .send()
        .await?;
    let status = resp.status();
    let body = resp.bytes().await?;
    ensure!(status == 200, "the code exchange answered {status}: {}", snippet(&body));
    let v: Value = serde_json::from_slice(&body).context("the code exchange answered no JSON")?;
    ensure!(
        v.get("refresh_token").and_then(Value::as_str).is_some_and(|s| !s.is_empty()),
        "the code exchange issued no refresh token (is offline_access honoured?)"
    );
    Ok(v)
}

fn refresh_token_of(v: &Value) -> Option<String> {
    v.get("refresh_token").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// How many of the response's string members are signed JWTs (each cost the server a signature).
fn count_jwts(v: &Value) -> usize {
    let Some(obj) = v.as_object() else { return 0 };
    obj.values()
        .filter_map(Value::as_str)
        .filter(|s| {
            let parts: Vec<&str> = s.split('.').collect();
            parts.len() == 3
                && !parts[2].is_empty()
                && URL_SAFE_NO_PAD
                    .decode(parts[0])
                    .ok()
                    .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
                    .is_some_and(|h| h.get("alg").and_then(Value::as_str).is_some_and(|a| a != "none"))
        })
        .count()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Refresh,
    ClientCredentials,
    Discovery,
    Keys,
    /// Not over HTTP: the storage work of a refresh rotation, in this process.
    Rotation,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Refresh => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::Discovery => "discovery (baseline)",
            Self::Keys => "/keys (baseline)",
            Self::Rotation => "rotation (storage alone)",
        }
    }
    fn is_http(self) -> bool {
        self != Self::Rotation
    }
    fn is_grant(self) -> bool {
        matches!(self, Self::Refresh | Self::ClientCredentials)
    }
}

/// One request of a scenario. A refresh follows its chain: `chain` becomes the returned token.
/// Returns the parsed response of grants (`Null` for the baselines); any non-200 is an error.
async fn request(
    kind: Kind,
    http: &reqwest::Client,
    t: &Target,
    chain: &mut String,
) -> Result<Value, String> {
    let req = match kind {
        Kind::Refresh => http
            .post(&t.token)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", chain.as_str())]),
        Kind::ClientCredentials => http
            .post(&t.token)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("grant_type", "client_credentials"), ("scope", "openid")]),
        Kind::Discovery => http.get(&t.discovery),
        Kind::Keys => http.get(&t.keys),
        Kind::Rotation => return Err("the rotation scenario makes no HTTP request".into()),
    };
    let resp = req.send().await.map_err(|e| format!("transport error: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("transport error reading the body: {e}"))?;
    if status != 200 {
        return Err(format!("HTTP {}: {}", status.as_u16(), snippet(&body)));
    }
    if !kind.is_grant() {
        return Ok(Value::Null);
    }
    let v: Value =
        serde_json::from_slice(&body).map_err(|_| format!("HTTP 200 without JSON: {}", snippet(&body)))?;
    if kind == Kind::Refresh {
        *chain = refresh_token_of(&v).ok_or("HTTP 200 without a refresh_token")?;
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------------
// Load

#[derive(Debug, Clone, Copy)]
struct Window {
    measure: Instant,
    end: Instant,
}

#[derive(Debug, Default)]
struct WorkerOut {
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    relogins: u64,
    chain: String,
}

/// Sends requests back to back until the window ends. Only requests that complete inside the
/// measured window count towards throughput and latency; errors count everywhere (warm-up too).
async fn worker(kind: Kind, t: Arc<Target>, mut chain: String, window: Window) -> WorkerOut {
    let mut out = WorkerOut::default();
    let http = match http_client() {
        Ok(h) => h,
        Err(e) => {
            out.errors += 1;
            out.first_error = Some(format!("{e:#}"));
            return out;
        }
    };
    let mut consecutive = 0;
    loop {
        let start = Instant::now();
        if start >= window.end {
            break;
        }
        let result = request(kind, &http, &t, &mut chain).await;
        let done = Instant::now();
        match result {
            Ok(_) => {
                consecutive = 0;
                if done >= window.measure && done <= window.end {
                    out.latencies.push(done - start);
                }
            }
            Err(e) => {
                out.errors += 1;
                consecutive += 1;
                out.first_error.get_or_insert(e);
                if consecutive >= MAX_CONSECUTIVE_ERRORS {
                    break;
                }
                if kind == Kind::Refresh {
                    // The chain may be revoked: start a new one (not counted as a grant).
                    match login(&t).await {
                        Ok(v) => {
                            out.relogins += 1;
                            chain = refresh_token_of(&v).unwrap_or_default();
                        }
                        Err(e) => {
                            out.first_error.get_or_insert(format!("re-login failed: {e:#}"));
                            break;
                        }
                    }
                }
            }
        }
    }
    out.chain = chain;
    out
}

/// What one scenario at one concurrency measured.
#[derive(Debug, Clone)]
struct Measured {
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
    relogins: u64,
    /// Cores the server used during the window.
    server_cpu: Option<f64>,
    /// Cores the load generator (this process) used during the window.
    client_cpu: Option<f64>,
    /// Cores busy on the whole machine (server, client, Postgres, anything else), and cores
    /// idle waiting for I/O (fsync), during the window.
    machine_cpu: Option<(f64, f64)>,
    /// VmHWM after the scenario, and whether it was reset before it (else it is since start).
    peak_rss_kib: Option<u64>,
    peak_reset: bool,
    /// JWTs per response (signatures per grant).
    signatures: usize,
}

#[derive(Debug, Clone)]
enum Outcome {
    Measured(Box<Measured>),
    NotAvailable(String),
    Failed(String),
}

#[derive(Debug, Clone)]
struct Row {
    kind: Kind,
    concurrency: usize,
    outcome: Outcome,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs `kind` with `concurrency` workers; refresh workers take (and give back) `chains`.
async fn scenario(
    server: &Server,
    t: &Arc<Target>,
    kind: Kind,
    concurrency: usize,
    chains: &mut [String],
    opts: &Options,
    signatures: usize,
) -> Result<Measured> {
    let pid = server.pid();
    let peak_reset = reset_peak_rss(pid);
    let ticks = clock_ticks();
    let t0 = Instant::now();
    let window = Window { measure: t0 + opts.warmup, end: t0 + opts.warmup + opts.duration };
    let handles: Vec<_> = (0..concurrency)
        .map(|i| {
            let chain = if kind == Kind::Refresh { std::mem::take(&mut chains[i]) } else { String::new() };
            tokio::spawn(worker(kind, Arc::clone(t), chain, window))
        })
        .collect();
    // CPU of the server and of this process over exactly the measured window.
    let server_pid = pid.to_string();
    tokio::time::sleep_until(window.measure.into()).await;
    let cpu_start = (cpu_seconds(&server_pid, ticks), cpu_seconds("self", ticks), Instant::now());
    let machine_start = machine_ticks();
    tokio::time::sleep_until(window.end.into()).await;
    let cpu_end = (cpu_seconds(&server_pid, ticks), cpu_seconds("self", ticks), Instant::now());
    let machine_end = machine_ticks();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let wall = (cpu_end.2 - cpu_start.2).as_secs_f64();
    let cores = |a: Option<f64>, b: Option<f64>| Some((b? - a?) / wall);

    let mut latencies = Vec::new();
    let (mut errors, mut relogins, mut first_error) = (0, 0, None);
    for (i, h) in handles.into_iter().enumerate() {
        let out = h.await.context("a load worker panicked")?;
        latencies.extend(out.latencies);
        errors += out.errors;
        relogins += out.relogins;
        if first_error.is_none() {
            first_error = out.first_error;
        }
        if kind == Kind::Refresh {
            chains[i] = out.chain;
        }
    }
    latencies.sort_unstable();
    Ok(Measured {
        per_second: latencies.len() as f64 / opts.duration.as_secs_f64(),
        p50: percentile(&latencies, 50.0),
        p99: percentile(&latencies, 99.0),
        max: latencies.last().copied().unwrap_or_default(),
        ok: latencies.len() as u64,
        errors,
        first_error,
        relogins,
        server_cpu: cores(cpu_start.0, cpu_end.0),
        client_cpu: cores(cpu_start.1, cpu_end.1),
        machine_cpu: machine_cores(machine_start, machine_end, cpus),
        peak_rss_kib: proc_status_kib(pid, "VmHWM"),
        peak_reset,
        signatures,
    })
}

/// Everything measured on one storage backend.
#[derive(Debug)]
struct StorageReport {
    storage: StorageKind,
    idle_rss_kib: Option<u64>,
    rows: Vec<Row>,
    /// Why the whole backend could not be measured (server did not start, ...).
    failure: Option<String>,
    /// Why it was skipped (Postgres absent).
    skipped: Option<String>,
    /// The storage work of a refresh rotation alone (or why it could not be measured).
    rotation: Option<Result<rotation::Rotation, String>>,
}

async fn run_http(opts: &Options, bin: &Path, signing: &Signing) -> Result<Vec<StorageReport>> {
    let mut reports = Vec::new();
    for (i, &storage) in opts.storages.iter().enumerate() {
        eprintln!("{}: starting oxidex", storage.label());
        let mut report = StorageReport {
            storage,
            idle_rss_kib: None,
            rows: Vec::new(),
            failure: None,
            skipped: None,
            rotation: None,
        };
        match run_storage(opts, bin, signing, storage, i == 0, &mut report).await {
            Ok(()) => {}
            Err(e) if report.skipped.is_some() => eprintln!("{}: skipped: {e:#}", storage.label()),
            Err(e) => {
                eprintln!("{}: FAILED: {e:#}", storage.label());
                report.failure = Some(format!("{e:#}"));
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

async fn run_storage(
    opts: &Options,
    bin: &Path,
    signing: &Signing,
    storage: StorageKind,
    baselines: bool,
    report: &mut StorageReport,
) -> Result<()> {
    // Declared before the server so that it is dropped after the server is killed.
    let mut _database = None;
    let pg_name = format!("oxidex_bench_{}", std::process::id());
    let storage_yaml = match storage {
        StorageKind::Sqlite => None,
        StorageKind::Postgres => {
            let name = pg_name.clone();
            let (admin, yaml, addr) = postgres_target(&name)?;
            if !super::reachable(&addr) && !opts.storage_explicit {
                report.skipped = Some(format!("no Postgres answers on {addr}"));
                bail!("no Postgres answers on {addr}");
            }
            _database = Some(PgDb::create(admin, name).await?);
            Some(yaml)
        }
    };
    let dir = TempDir::new(opts.sqlite_dir.as_deref(), &storage.label().to_ascii_lowercase())?;
    let storage_yaml = storage_yaml.unwrap_or_else(|| {
        format!("  type: sqlite3\n  config:\n    file: {}", dir.0.join("oxidex.db").display())
    });
    let mut server = Server::start(bin, dir, &storage_yaml, opts).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    report.idle_rss_kib = proc_status_kib(server.pid(), "VmRSS");
    let t = Arc::new(Target::new(&server.issuer));

    // One refresh-token chain per worker, from real logins.
    let mut chains = vec![String::new()];
    let chain_count = if opts.scenarios.contains(&Kind::Refresh) { opts.max_concurrency() } else { 0 };
    if chain_count > 0 {
        chains.clear();
    }
    for _ in 0..chain_count {
        let v = login(&t).await.context("obtaining refresh tokens through the authorization-code flow")?;
        chains.push(refresh_token_of(&v).unwrap_or_default());
    }

    let kinds = opts.scenarios.iter().copied().filter(|k| k.is_http() && (k.is_grant() || baselines));
    for kind in kinds {
        // A probe request: is the grant available, and how many signatures does it cost?
        let probe_http = http_client()?;
        let probe = request(kind, &probe_http, &t, &mut chains[0]).await;
        let signatures = match probe {
            Ok(v) => count_jwts(&v),
            Err(e) if e.contains("unsupported_grant_type") => {
                eprintln!("{}: {}: not available ({e})", storage.label(), kind.label());
                report.rows.push(Row { kind, concurrency: 0, outcome: Outcome::NotAvailable(e) });
                continue;
            }
            Err(e) => {
                eprintln!("{}: {}: the probe request failed: {e}", storage.label(), kind.label());
                report.rows.push(Row { kind, concurrency: 0, outcome: Outcome::Failed(e) });
                continue;
            }
        };
        // Baselines run at the highest concurrency only.
        let levels = if kind.is_grant() { opts.concurrency.clone() } else { vec![opts.max_concurrency()] };
        for concurrency in levels {
            settle(storage.label()).await;
            let m = scenario(&server, &t, kind, concurrency, &mut chains, opts, signatures).await?;
            server.check_alive()?;
            let ceiling =
                signing.two_threads(opts.alg).filter(|_| signatures > 0).map(|r| r / signatures as f64);
            eprintln!(
                "{}: {} x{concurrency}: {:.0}/s ({} answers), p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, {} errors{}",
                storage.label(),
                kind.label(),
                m.per_second,
                m.ok,
                ms(m.p50),
                ms(m.p99),
                ms(m.max),
                m.errors,
                ceiling
                    .map_or(String::new(), |c| format!(", {:.0}% of the ceiling", 100.0 * m.per_second / c)),
            );
            if let Some(e) = &m.first_error {
                eprintln!("  first error: {e}");
                eprintln!("  server log tail:\n{}", server.log_tail());
            }
            report.rows.push(Row { kind, concurrency, outcome: Outcome::Measured(Box::new(m)) });
        }
    }
    if opts.scenarios.contains(&Kind::Rotation) {
        let workers = opts.max_concurrency();
        eprintln!("{}: the storage work of a refresh rotation alone, x{workers}", storage.label());
        settle(storage.label()).await;
        let measured = storage_rotation(opts, storage, &pg_name, workers).await;
        match &measured {
            Ok(r) => eprintln!(
                "{}: {:.0} rotations/s, {} ms of this process's CPU and {} ms of the machine's each",
                storage.label(),
                r.per_second,
                opt_f(r.process_ms(), 3),
                opt_f(r.machine_ms(), 3)
            ),
            Err(e) => eprintln!("{}: the rotation measurement failed: {e:#}", storage.label()),
        }
        report.rotation = Some(measured.map_err(|e| format!("{e:#}")));
    }
    Ok(())
}

/// Below this many busy cores the machine counts as quiet.
const QUIET_CORES: f64 = 0.3;

/// Waits (up to 30 s) until the machine is quiet before a row starts, so that a row does not pay
/// for the one before it: after the refresh rows Postgres vacuums and checkpoints the rows they
/// updated, on the same cores, and that used to land in the client_credentials rows.
async fn settle(label: &str) {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut busy = f64::NAN;
    while Instant::now() < deadline {
        let before = machine_ticks();
        tokio::time::sleep(Duration::from_millis(500)).await;
        busy = machine_cores(before, machine_ticks(), cpus).map_or(0.0, |c| c.0);
        if busy < QUIET_CORES {
            return;
        }
    }
    eprintln!("{label}: the machine did not settle ({busy:.2} cores busy); measuring anyway");
}

/// Opens `storage` in this process as the server does (the Postgres database of this run, or a
/// SQLite file of its own) and measures refresh rotations on it.
async fn storage_rotation(
    opts: &Options,
    storage: StorageKind,
    pg_name: &str,
    workers: usize,
) -> Result<rotation::Rotation> {
    use oxidex_core::storage::DurableStorage;
    use oxidex_core::storage::sql::{PostgresStorage, SqliteStorage};
    let dir = TempDir::new(opts.sqlite_dir.as_deref(), "sqlite-rotation")?;
    let durable: Arc<dyn DurableStorage> = match storage {
        StorageKind::Sqlite => {
            let file = dir.0.join("rotation.db");
            Arc::new(SqliteStorage::open(&file.to_string_lossy()).await?)
        }
        StorageKind::Postgres => Arc::new(PostgresStorage::connect_url(&postgres_url(pg_name)?).await?),
    };
    rotation::measure(durable, workers, opts.warmup, opts.duration).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug)]
struct Meta {
    date: String,
    cpus: usize,
    cpu_model: String,
    rustc: String,
    commit: String,
    load_start: [f64; 3],
    load_end: [f64; 3],
    opts: Options,
}

fn command_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl Meta {
    fn collect(root: &Path, opts: &Options) -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines().find_map(|l| {
                    l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let commit =
            command_line(Command::new("git").args(["rev-parse", "--short", "HEAD"]).current_dir(root))
                .unwrap_or_else(|| "unknown".into());
        let dirty = command_line(
            Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]).current_dir(root),
        )
        .is_some_and(|s| !s.is_empty());
        Meta {
            date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            rustc: command_line(Command::new("rustc").arg("--version")).unwrap_or_else(|| "rustc ?".into()),
            commit: if dirty { format!("{commit} with uncommitted changes") } else { commit },
            load_start: load_average(),
            load_end: [f64::NAN; 3],
            opts: opts.clone(),
        }
    }
}

#[derive(Debug)]
struct Report {
    meta: Meta,
    signing: Signing,
    storages: Vec<StorageReport>,
}

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "?".into(), |v| format!("{v:.digits$}"))
}

fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    fn markdown(&self) -> String {
        let m = &self.meta;
        let o = &m.opts;
        let alg = o.alg.as_str();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "### {}: {alg} keys{}{}\n",
            m.date,
            if o.rotation { "" } else { ", refresh rotation disabled" },
            if o.quick { " (quick run)" } else { "" }
        );
        let _ =
            writeln!(s, "- Machine: {} CPUs ({}), {}; oxidex {}.", m.cpus, m.cpu_model, m.rustc, m.commit);
        let _ = writeln!(
            s,
            "- Load average (1, 5, 15 min): {:.2} {:.2} {:.2} at the start, {:.2} {:.2} {:.2} at the end{}.",
            m.load_start[0],
            m.load_start[1],
            m.load_start[2],
            m.load_end[0],
            m.load_end[1],
            m.load_end[2],
            if m.load_start[0] > 0.5 { " (busy machine: figures are noisy)" } else { "" }
        );
        let _ = writeln!(
            s,
            "- Method: {} s warm-up then {} s measured per row; concurrency = load workers, each with its own \
             keep-alive connection, in this process on the same {} cores as the server.\n",
            o.warmup.as_secs_f64(),
            o.duration.as_secs_f64(),
            m.cpus
        );

        let _ = writeln!(s, "Raw signing rate (Oxidex's signer, one parsed key, ID-token-sized claims):\n");
        let _ = writeln!(s, "| alg | 1 thread | 2 threads |\n|---|---:|---:|");
        for r in &self.signing.start {
            let _ = writeln!(
                s,
                "| {} | {} sig/s | {} sig/s |",
                r.alg.as_str(),
                thousands(r.one_thread),
                thousands(r.two_threads)
            );
        }
        let _ = writeln!(s);

        let two = self.signing.two_threads(o.alg);
        let one = self.signing.one_thread(o.alg);
        let _ = writeln!(
            s,
            "| storage | scenario | conc. | per s | p50 ms | p99 ms | errors | sig/grant | ceiling/s | of ceiling | CPU cores: server / client / all | iowait | server CPU/req | peak RSS |"
        );
        let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut notes = Vec::new();
        for st in &self.storages {
            let name = st.storage.label();
            if let Some(why) = &st.skipped {
                let _ = writeln!(s, "| {name} | skipped: {why} | | | | | | | | | | | | |");
                continue;
            }
            if let Some(why) = &st.failure {
                let _ = writeln!(
                    s,
                    "| {name} | **failed**: {} | | | | | | | | | | | | |",
                    why.lines().next().unwrap_or("")
                );
                notes.push(format!("{name} failed:\n\n```text\n{}\n```", why.trim_end()));
            }
            for row in &st.rows {
                let label = row.kind.label();
                match &row.outcome {
                    Outcome::NotAvailable(why) => {
                        let _ = writeln!(s, "| {name} | {label} | | not available | | | | | | | | | | |");
                        notes.push(format!("{name} {label}: not available ({why})."));
                    }
                    Outcome::Failed(why) => {
                        let _ = writeln!(s, "| {name} | {label} | | **failed** | | | | | | | | | | |");
                        notes.push(format!("{name} {label}: the first request failed: {why}"));
                    }
                    Outcome::Measured(r) => {
                        let ceiling = two.filter(|_| r.signatures > 0).map(|c| c / r.signatures as f64);
                        let cpu_per_req =
                            r.server_cpu.filter(|_| r.per_second > 0.0).map(|c| 1000.0 * c / r.per_second);
                        let cpu = format!(
                            "{} / {} / {}",
                            opt_f(r.server_cpu, 2),
                            opt_f(r.client_cpu, 2),
                            opt_f(r.machine_cpu.map(|m| m.0), 2)
                        );
                        let _ = writeln!(
                            s,
                            "| {name} | {label} | {} | {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} |",
                            row.concurrency,
                            thousands(r.per_second),
                            ms(r.p50),
                            ms(r.p99),
                            if r.errors > 0 { format!("**{}**", r.errors) } else { "0".into() },
                            if row.kind.is_grant() { r.signatures.to_string() } else { String::new() },
                            ceiling.filter(|_| row.kind.is_grant()).map_or(String::new(), thousands),
                            ceiling
                                .filter(|_| row.kind.is_grant())
                                .map_or(String::new(), |c| format!("{:.0}%", 100.0 * r.per_second / c)),
                            cpu,
                            opt_f(r.machine_cpu.map(|m| m.1), 2),
                            cpu_per_req.map_or("?".into(), |v| format!("{v:.2} ms")),
                            r.peak_rss_kib.map_or("?".into(), |k| format!(
                                "{:.1} MB{}",
                                mb(k),
                                if r.peak_reset { "" } else { "*" }
                            )),
                        );
                        if let Some(e) = &r.first_error {
                            notes.push(format!(
                                "{name} {label} x{}: {} errors (and {} re-logins); the first: {e}",
                                row.concurrency, r.errors, r.relogins
                            ));
                        }
                    }
                }
            }
        }
        let _ = writeln!(s);
        let idle: Vec<String> = self
            .storages
            .iter()
            .filter_map(|st| st.idle_rss_kib.map(|k| format!("{} {:.1} MB", st.storage.label(), mb(k))))
            .collect();
        if !idle.is_empty() {
            let _ = writeln!(s, "Idle RSS after start (VmRSS): {}.", idle.join(", "));
        }
        if self.rows().any(|(_, _, r)| !r.peak_reset) {
            let _ = writeln!(s, "\\* VmHWM could not be reset: peak since the server started.");
        }
        if let (Some(one), Some(two)) = (one, two) {
            let _ = writeln!(
                s,
                "Signing one {alg} signature costs {:.3} ms of CPU ({} sig/s on one thread); ceiling = {} sig/s on 2 threads / signatures per grant.",
                1000.0 / one,
                thousands(one),
                thousands(two)
            );
        }
        if let Some((start, end, drift)) = self.signing.drift() {
            let _ = writeln!(
                s,
                "The {alg} rate was measured at the start and again at the end of the run: {} and {} sig/s on 2 \
                 threads ({:+.0}%); the figures above use their mean{}.",
                thousands(start.two_threads),
                thousands(end.two_threads),
                100.0 * drift,
                if drift.abs() > 0.1 {
                    ". The machine's speed changed during the run: read the shares of the ceiling as rough"
                } else {
                    ""
                }
            );
        }
        self.rotation_table(&mut s, &mut notes);
        for n in &notes {
            // Continuation lines are indented to stay inside the list item.
            let _ = writeln!(s, "\n- {}", n.replace('\n', "\n  "));
        }
        let _ = writeln!(s, "\nGoals:\n");
        for line in self.goals() {
            let _ = writeln!(s, "- {line}");
        }
        s
    }

    /// The storage work of a refresh rotation alone, per backend.
    fn rotation_table(&self, s: &mut String, notes: &mut Vec<String>) {
        let measured: Vec<_> =
            self.storages.iter().filter_map(|st| st.rotation.as_ref().map(|r| (st.storage, r))).collect();
        if measured.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\nThe storage work of one refresh rotation alone (`get_refresh`, then the compare-and-swap \
             `update_refresh_seen` that stores the rotation durably), in the load generator's process with \
             the server idle: no HTTP, no gRPC, no signing.\n"
        );
        let _ = writeln!(
            s,
            "| storage | workers | rotations/s | CPU cores: process / all | CPU per rotation: process / all |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|");
        for (storage, r) in measured {
            match r {
                Ok(r) => {
                    let _ = writeln!(
                        s,
                        "| {} | {} | {} | {} / {} | {} / {} ms |",
                        storage.label(),
                        r.workers,
                        thousands(r.per_second),
                        opt_f(r.process_cpu, 2),
                        opt_f(r.machine_cpu, 2),
                        opt_f(r.process_ms(), 3),
                        opt_f(r.machine_ms(), 3)
                    );
                }
                Err(why) => {
                    let _ = writeln!(s, "| {} | | **failed** | | |", storage.label());
                    notes.push(format!("{} rotation alone failed: {why}", storage.label()));
                }
            }
        }
    }

    /// Where a refresh grant's CPU goes against what 70% of the ceiling allows, per backend: the
    /// whole machine's CPU per grant, since the load generator and Postgres share the cores.
    fn refresh_budget(&self) -> Vec<String> {
        let alg = self.meta.opts.alg;
        let (Some(two), cpus) = (self.signing.two_threads(alg), self.meta.cpus as f64) else {
            return Vec::new();
        };
        let best = |storage: StorageKind, kind: Kind| {
            self.rows()
                .filter(|(s, row, m)| *s == storage && row.kind == kind && m.signatures > 0)
                .max_by(|a, b| a.2.per_second.total_cmp(&b.2.per_second))
                .map(|(_, _, m)| m)
        };
        let mut lines = Vec::new();
        for st in &self.storages {
            let Some(refresh) = best(st.storage, Kind::Refresh) else { continue };
            // Machine CPU (ms) per grant for signing alone, at the two-thread rate; 70% of the
            // ceiling leaves everything else 1/0.7 - 1 of it.
            let signing = 1000.0 * cpus * refresh.signatures as f64 / two;
            let allowed = allowance(signing);
            let used = |m: &Measured| {
                m.machine_cpu.filter(|_| m.per_second > 0.0).map(|c| 1000.0 * c.0 / m.per_second - signing)
            };
            let cc = best(st.storage, Kind::ClientCredentials).filter(|m| m.signatures == refresh.signatures);
            let rotation = st.rotation.as_ref().and_then(|r| r.as_ref().ok()).and_then(|r| r.machine_ms());
            let mut line = format!(
                "{} refresh_token, where the CPU goes: at 70% of the ceiling, a grant may cost the machine \
                 {:.3} ms of CPU besides its signatures ({:.3} ms at the two-thread rate); it cost {} ms",
                st.storage.label(),
                allowed,
                signing,
                opt_f(used(refresh), 3),
            );
            let cc = cc.and_then(used);
            if let Some(cc) = cc {
                let _ = write!(
                    line,
                    ", client_credentials {cc:.3} ms (HTTP, gRPC, claims, JSON, load generator)"
                );
            }
            if let Some(r) = rotation {
                let _ = write!(line, ", and the storage work of one rotation alone {r:.3} ms");
            }
            // With the machine saturated, the share of the ceiling is the signing cost over the
            // whole cost: a refresh can do no less than client_credentials plus one rotation.
            if let (Some(cc), Some(r)) = (cc, rotation) {
                let _ = write!(
                    line,
                    "; a refresh costing only those two together would reach {:.0}% of the ceiling",
                    100.0 * share_of_ceiling(signing, cc + r)
                );
            }
            line.push('.');
            lines.push(line);
        }
        lines
    }

    fn rows(&self) -> impl Iterator<Item = (StorageKind, &Row, &Measured)> {
        self.storages.iter().flat_map(|st| {
            st.rows.iter().filter_map(move |row| match &row.outcome {
                Outcome::Measured(m) => Some((st.storage, row, m.as_ref())),
                _ => None,
            })
        })
    }

    /// The goals of the issue, checked against the best concurrency of each grant.
    fn goals(&self) -> Vec<String> {
        let alg = self.meta.opts.alg;
        let mut lines = Vec::new();
        for st in &self.storages {
            for kind in [Kind::Refresh, Kind::ClientCredentials] {
                let name = format!("{} {}", st.storage.label(), kind.label());
                let best = self
                    .rows()
                    .filter(|(s, row, _)| *s == st.storage && row.kind == kind)
                    .max_by(|a, b| a.2.per_second.total_cmp(&b.2.per_second));
                let Some((_, row, m)) = best else {
                    let status = st.rows.iter().find(|r| r.kind == kind).map_or("not measured", |r| {
                        if matches!(r.outcome, Outcome::NotAvailable(_)) { "not available" } else { "failed" }
                    });
                    lines.push(format!("{name} >= 70% of the signing-limited ceiling: {status}."));
                    continue;
                };
                let Some(ceiling) = self
                    .signing
                    .two_threads(alg)
                    .filter(|_| m.signatures > 0)
                    .map(|c| c / m.signatures as f64)
                else {
                    lines.push(format!("{name}: the response carried no signed token, no ceiling."));
                    continue;
                };
                let ratio = m.per_second / ceiling;
                let verdict = if kind == Kind::Refresh && !self.meta.opts.rotation {
                    "not judged: rotation was disabled, the goal is with rotation on"
                } else if ratio >= 0.7 {
                    "met"
                } else {
                    "missed"
                };
                lines.push(format!(
                    "{name} >= 70% of the ceiling: **{verdict}** ({} of {} grants/s = {:.0}%, best at concurrency {}{}).",
                    thousands(m.per_second),
                    thousands(ceiling),
                    100.0 * ratio,
                    row.concurrency,
                    if m.errors > 0 { format!(", {} errors", m.errors) } else { String::new() },
                ));
            }
        }
        lines.extend(self.refresh_budget());
        let peak = self.rows().filter_map(|(_, _, m)| m.peak_rss_kib).max();
        if let Some(peak) = peak {
            lines.push(format!(
                "RSS under load < 60 MB: **{}** (highest peak {:.1} MB).",
                if mb(peak) < 60.0 { "met" } else { "missed" },
                mb(peak)
            ));
        }
        let errors: u64 = self.rows().map(|(_, _, m)| m.errors).sum();
        lines.push(if self.rows().next().is_none() {
            "Nothing was measured.".to_owned()
        } else if errors == 0 {
            "No request failed.".to_owned()
        } else {
            format!("**{errors} requests failed** (see the notes above).")
        });
        lines
    }
}

/// Machine CPU (ms) a grant may spend besides its signatures (`signing` ms) at 70% of the
/// ceiling: at that rate a saturated machine spends `signing / 0.7` ms per grant.
fn allowance(signing: f64) -> f64 {
    signing / 0.7 - signing
}

/// The share of the ceiling a saturated machine reaches when each grant costs `signing` ms of
/// CPU for its signatures and `other` ms for everything else.
fn share_of_ceiling(signing: f64, other: f64) -> f64 {
    signing / (signing + other)
}

const BENCHMARKS_HEADER: &str = "# Benchmarks

Throughput, latency and memory of `oxidex serve` on this project's reference machine (2 cores),
measured by `cargo xtask bench` (`cargo xtask bench --write` adds a run to this file; `--quick`
checks the harness in about a minute; `--help` lists the options). The figures depend on the
machine and on what else runs on it: take final figures on an idle machine (load average below
~0.5); every run records the load it was measured under.

## What is measured

1. **Raw signing rate**: Oxidex's own signer (`core/src/token/keys.rs`: one key parsed once,
   claims serialised and base64-encoded, as the server does per token), RS256 (RSA-2048) and
   ES256 (P-256), on one thread and on two threads sharing the key (the server runs two tokio
   workers on two cores), at the start of the run; the server's algorithm is measured again at
   the end, and ceilings use the mean of the two (the run prints the drift).
2. **Grants through HTTP** against a release `oxidex serve` with a generated config
   (`logger.level: warn`, a static confidential client, the `mockCallback` connector,
   `skipApprovalScreen`), once on SQLite (a file in a temp dir) and once on Postgres (a database
   created for the run and dropped afterwards):
   - `refresh_token`: each load worker first obtains a refresh token through the
     authorization-code flow with PKCE (over HTTP, cookies kept, redirects followed by hand),
     then refreshes in a loop, always presenting the token the previous call returned (rotation
     is on, so every grant is a compare-and-swap write to storage plus two signatures).
   - `client_credentials`: `scope=openid`, client authenticated with HTTP Basic.
   - Baselines (first backend only, highest concurrency): the discovery document (served by the
     gateway alone) and `/keys` (one in-process gRPC call to core): the cost of HTTP, the
     gateway and the gRPC hop without signing or storage.
3. Per row: a wait until the machine is quiet (under 0.3 cores busy, at most 30 s: Postgres
   vacuums after the refresh rows), a warm-up, then a measured window. **per s** counts 200 answers completed inside the
   window; **p50/p99** are their latencies; **errors** counts every non-200 answer and transport
   failure, warm-up included (a failed refresh chain is replaced by a new login). **CPU cores**
   are cores used during the window by the server, by the load generator (utime + stime from
   `/proc/PID/stat`) and by the whole machine (`/proc/stat`: includes Postgres and anything else
   running); **iowait** is cores idle waiting for I/O (fsync); **server CPU/req** is server CPU
   time per answer; **peak RSS** is the server's VmHWM, reset before each row through
   `/proc/PID/clear_refs`.
4. **The storage work of a refresh rotation alone** (`xtask/src/bench/rotation.rs`, scenario
   `rotation`): in the load generator's process, with the server idle, on the run's own backend
   and through the same `oxidex_core` storage code and pool settings as the server, each worker
   rotates its own token in a loop (`get_refresh`, then the compare-and-swap
   `update_refresh_seen` that stores the rotation durably): no HTTP, no gRPC, no signing. **CPU
   per rotation** is this process's CPU and the whole machine's (with Postgres) per rotation.
5. **Where a refresh grant's CPU goes** (under the goals): at 70% of the ceiling a saturated
   machine may spend `signing / 0.7` ms of CPU per grant, so everything besides the signatures
   (HTTP, gRPC, storage, the database, the load generator) may cost `signing / 0.7 - signing`.
   The line sets that against what `refresh_token` and `client_credentials` spent and what a
   rotation's storage work costs alone, and gives the share a refresh costing only
   client_credentials' work plus one rotation would reach. `--no-rotation` runs the server with
   `expiry.refreshTokens.disableRotation` to show what the rotation's durable write costs.

## How to read this

- **Ceiling** = the two-thread signing rate of the server's algorithm / the signatures one grant
  costs (the signed JWTs in its response: access token + ID token = 2). **of ceiling** is the
  throughput achieved as a share of it; the goal is at least 70%.
- The load generator runs on the same two cores as the server (the **client** CPU figure), and
  on Postgres so does the database, so the server never has both cores to itself: the ceiling is
  an upper bound the server could only reach if everything else were free. **all** close to 2.0
  means the machine is saturated; well below 2.0 with requests queueing means the server waits
  (for a lock, the single SQLite writer, an fsync: see **iowait**) rather than computes.
- **server CPU/req** against the cost of the signatures (printed under each table) says where a
  grant's time goes: if signing is a small share, HTTP, gRPC, storage and JSON dominate, and
  the baselines show how much of that is the HTTP/gateway path alone.
- Latency at concurrency 1 is the cost of one grant end to end; at higher concurrency it grows
  with queueing (p99 includes SQLite write-lock waits and Postgres round trips).
- Goals (from the benchmark issue): each grant reaches at least 70% of its signing-limited
  ceiling, and the server's RSS under load stays below 60 MB.

## Runs

";

/// Writes `BENCHMARKS.md`: this run goes first under the runs marker, above the runs already
/// recorded. The text above the marker is kept as it is (it may carry hand-written findings);
/// a file without the marker gets the standard header, and its old text is kept below.
fn write_benchmarks(path: &Path, run: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let (header, earlier) = match old.split_once(RUNS_MARKER) {
        Some((header, runs)) => (header.to_owned(), runs.trim_start().to_owned()),
        None if old.trim().is_empty() => (BENCHMARKS_HEADER.to_owned(), String::new()),
        None => (BENCHMARKS_HEADER.to_owned(), format!("### Earlier content\n\n{old}")),
    };
    let mut text = format!("{header}{RUNS_MARKER}\n\n{}\n", run.trim_end());
    if !earlier.is_empty() {
        text.push('\n');
        text.push_str(&earlier);
    }
    if !text.ends_with('\n') {
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&v, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&v[..1], 99.0), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
    }

    #[test]
    fn counts_signed_jwts_only() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#);
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let v = serde_json::json!({
            "access_token": format!("{header}.e30.c2ln"),
            "id_token": format!("{header}.e30.c2ln"),
            "refresh_token": "Chl6.not.ajwt",
            "unsigned": format!("{none}.e30.x"),
            "token_type": "bearer",
            "expires_in": 86399,
        });
        assert_eq!(count_jwts(&v), 2);
    }

    #[test]
    fn ceilings_use_the_mean_of_the_start_and_end_signing_rates() {
        let rate = |alg, one_thread, two_threads| SignRate { alg, one_thread, two_threads };
        let mut signing = Signing {
            start: vec![rate(SigningAlg::RS256, 4000.0, 8000.0), rate(SigningAlg::ES256, 50000.0, 100000.0)],
            end: None,
        };
        assert_eq!(signing.two_threads(SigningAlg::RS256), Some(8000.0));
        assert!(signing.drift().is_none());
        signing.end = Some(rate(SigningAlg::RS256, 3000.0, 6000.0));
        assert_eq!(signing.two_threads(SigningAlg::RS256), Some(7000.0));
        assert_eq!(signing.one_thread(SigningAlg::RS256), Some(3500.0));
        assert_eq!(signing.two_threads(SigningAlg::ES256), Some(100000.0), "measured once, used as is");
        let (_, _, drift) = signing.drift().unwrap();
        assert!((drift + 0.25).abs() < 1e-9, "{drift}");
    }

    #[test]
    fn budget_arithmetic() {
        // 0.6 ms of signing: 70% leaves 0.257 ms for the rest, and spending exactly that reaches 70%.
        let allowed = allowance(0.6);
        assert!((allowed - 0.2571).abs() < 1e-3, "{allowed}");
        assert!((share_of_ceiling(0.6, allowed) - 0.7).abs() < 1e-9);
        assert!((share_of_ceiling(0.6, 0.0) - 1.0).abs() < 1e-9);
        assert!(share_of_ceiling(0.6, 0.4) < 0.7);
    }

    #[test]
    fn options_parse_and_reject() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        let o = Options::parse(&args("--quick --duration 5 --concurrency 2,4 --storage sqlite --alg es256"))
            .unwrap();
        assert_eq!(o.duration, Duration::from_secs(5));
        assert_eq!(o.concurrency, vec![2, 4]);
        assert_eq!(o.storages, vec![StorageKind::Sqlite]);
        assert_eq!(o.alg, SigningAlg::ES256);
        assert!(o.rotation, "refresh rotation is on unless asked otherwise");
        assert!(!Options::parse(&args("--no-rotation")).unwrap().rotation);
        assert!(Options::parse(&args("--concurrency 0")).is_err());
        assert!(Options::parse(&args("--storage mysql")).is_err());
        assert!(Options::parse(&args("--duration")).is_err());
        assert!(Options::parse(&args("--bogus")).is_err());
    }

    #[test]
    fn benchmarks_file_keeps_earlier_runs_newest_first() {
        let dir = TempDir::new(None, "unit-test").unwrap();
        let path = dir.0.join("BENCHMARKS.md");
        write_benchmarks(&path, "### run 1\n").unwrap();
        // Hand-written text above the marker survives the next run.
        let edited =
            std::fs::read_to_string(&path).unwrap().replace("## Runs", "## Findings\n\nkept\n\n## Runs");
        std::fs::write(&path, edited).unwrap();
        write_benchmarks(&path, "### run 2\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("## Findings\n\nkept"), "{text}");
        assert_eq!(text.matches(RUNS_MARKER).count(), 1);
        assert_eq!(text.matches("# Benchmarks").count(), 1);
        let (r2, r1) = (text.find("### run 2").unwrap(), text.find("### run 1").unwrap());
        assert!(r2 < r1, "{text}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234.0), "1,234");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }
}
