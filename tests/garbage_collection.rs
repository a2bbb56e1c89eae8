//! The garbage-collection task of `oxidex serve` is wired: expired auth requests left in storage
//! by an abandoned login are removed by the next server on the same database (the task runs at
//! start, then every few minutes), and the storage afterwards holds none of them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::browser::{Browser, Stop};
use common::rp::{CLIENT_ID, REDIRECT, static_setup};
use common::{Ports, Server, config, sqlite_storage};
use oxidex_core::storage::{Storage, StorageConfig};

fn start(db_dir: &std::path::Path) -> Server {
    let storage = sqlite_storage(db_dir);
    Server::start(Ports::new(), move |_, ports| {
        config(ports, &storage, &format!("expiry:\n  authRequests: 1s\n{}", static_setup()))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_auth_requests_are_collected_by_the_server() {
    let db_dir = tempfile::tempdir().unwrap();
    let first = start(db_dir.path());
    // Two abandoned logins: each stops at the password form, leaving an auth request behind.
    for state in ["abandoned-1", "abandoned-2"] {
        let mut u = url::Url::parse(&format!("{}/auth/local", first.issuer)).unwrap();
        u.query_pairs_mut()
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid")
            .append_pair("state", state);
        let Stop::Page(page) = Browser::new(&first.issuer).open(u.as_str()).await else {
            panic!("expected the password form")
        };
        assert!(page.is_password_form(), "{}", page.html);
    }
    drop(first);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let second = start(db_dir.path());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !second.log_text().contains("garbage collection removed expired objects") {
        assert!(Instant::now() < deadline, "no garbage collection in the log:\n{}", second.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = strip_ansi(&second.log_text());
    assert!(log.contains("auth_requests=2"), "both expired auth requests are removed:\n{log}");

    // Nothing expired is left: a collection now finds nothing to remove.
    let file = db_dir.path().join("oxidex.db").display().to_string();
    let storage = Storage::open(&StorageConfig::Sqlite { file }).await.unwrap();
    let left = storage.flow.garbage_collect(chrono::Utc::now()).await.unwrap();
    assert_eq!(left.total(), 0, "{left:?}");
}

/// The log without terminal colour codes (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
