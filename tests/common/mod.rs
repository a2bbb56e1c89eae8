//! Test harness: starts the real `oxidex` binary with a generated config and waits until it
//! answers. Every test gets its own server, ports and database file.

#![allow(dead_code)]

pub mod browser;
pub mod grpc_web;
pub mod http;
pub mod postgres;
pub mod rp;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `oxidex` binary built for this test run.
pub fn oxidex_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_oxidex"))
}

/// A free loopback port (the listener is closed again before use).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `oxidex serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub web: String,
    pub grpc: String,
    pub telemetry: String,
    pub issuer: String,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

/// Ports and paths a config template is filled with.
pub struct Ports {
    pub web: u16,
    pub grpc: u16,
    pub telemetry: u16,
}

impl Ports {
    /// Three distinct free ports: the listeners stay open together while the ports are picked,
    /// so the same port cannot come back twice.
    pub fn new() -> Self {
        let hold: Vec<TcpListener> = (0..3).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
        let port = |i: usize| hold[i].local_addr().unwrap().port();
        Self { web: port(0), grpc: port(1), telemetry: port(2) }
    }
}

/// A minimal config: the given storage block and extra YAML appended.
pub fn config(ports: &Ports, storage: &str, extra: &str) -> String {
    format!(
        "issuer: http://127.0.0.1:{web}/dex\n\
         storage:\n{storage}\n\
         web:\n  http: 127.0.0.1:{web}\n\
         grpc:\n  addr: 127.0.0.1:{grpc}\n  reflection: true\n\
         telemetry:\n  http: 127.0.0.1:{tel}\n\
         logger:\n  level: debug\n\
         {extra}\n",
        web = ports.web,
        grpc = ports.grpc,
        tel = ports.telemetry,
    )
}

/// SQLite storage in the given directory.
pub fn sqlite_storage(dir: &Path) -> String {
    format!("  type: sqlite3\n  config:\n    file: {}", dir.join("oxidex.db").display())
}

impl Server {
    /// Writes the config made by `config` (given the server's temp dir and ports) and starts it.
    pub fn start(ports: Ports, config: impl FnOnce(&Path, &Ports) -> String) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config(dir.path(), &ports)).unwrap();
        Self::start_with_file(ports, dir, &path)
    }

    pub fn start_with_file(ports: Ports, dir: tempfile::TempDir, config: &Path) -> Server {
        let log = dir.path().join("oxidex.log");
        let child = Command::new(oxidex_bin())
            .arg("serve")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            web: format!("http://127.0.0.1:{}", ports.web),
            grpc: format!("127.0.0.1:{}", ports.grpc),
            telemetry: format!("http://127.0.0.1:{}", ports.telemetry),
            issuer: format!("http://127.0.0.1:{}/dex", ports.web),
            dir,
            log,
        };
        server.wait_ready();
        server
    }

    /// Waits until `/keys` answers 200 (storage open, keys loaded), or fails with the log.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("{}/keys", self.issuer);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("oxidex exited early with {status}:\n{}", self.log_text());
            }
            if let Ok(Some(200)) = probe::blocking_get(&url) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("oxidex did not become ready within 60 s:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "oxidex did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A tonic client channel to the admin API.
    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

mod probe {
    //! A tiny blocking HTTP GET status probe on std only, so readiness polling needs no runtime.
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    pub fn blocking_get(url: &str) -> std::io::Result<Option<u16>> {
        let rest = url.strip_prefix("http://").unwrap_or(url);
        let (host, path) =
            rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
        let mut s = TcpStream::connect(host)?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")?;
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf)?;
        let head = String::from_utf8_lossy(&buf[..n]);
        Ok(head.split_whitespace().nth(1).and_then(|c| c.parse().ok()))
    }
}

/// The demo bcrypt hash of "password" (cost 10) used by Dex's examples.
pub const PASSWORD_HASH: &str = "$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W";
