//! Three `oxidex serve` replicas on one Postgres database rotate signing keys every second for
//! about ten seconds. Runs when `OXIDEX_TEST_POSTGRES_URL` is set (CI sets it); otherwise it says
//! that it skipped.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::postgres::{fresh_database, url_or_skip};
use common::{Ports, Server};
use oxidex_core::storage::{Storage, StorageConfig};

async fn jwks_kids(http: &reqwest::Client, issuer: &str) -> Result<BTreeSet<String>, String> {
    let r = http.get(format!("{issuer}/keys")).send().await.map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("status {}", r.status()));
    }
    let v: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
    Ok(v["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_rotate_keys_once_per_period_and_publish_before_signing() {
    let Some(url) = url_or_skip("the three-replica rotation test") else { return };
    let db = fresh_database(&url, "rotation").await;
    let period = Duration::from_secs(1);
    let refresh = Duration::from_millis(100); // RotationSettings::refresh_interval for a 1 s period
    let storage_yaml = db.storage_yaml();

    // Start all three at once: migrations and the first key creation race too.
    let replicas: Vec<Server> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let storage_yaml = storage_yaml.clone();
                s.spawn(move || {
                    Server::start(Ports::new(), move |_, ports| {
                        format!(
                            "issuer: http://127.0.0.1:{web}/dex\nstorage:\n{storage_yaml}\nweb:\n  http: 127.0.0.1:{web}\n\
                             telemetry:\n  http: 127.0.0.1:{tel}\nexpiry:\n  idTokens: 3s\n\
                             signer:\n  type: local\n  config:\n    keysRotationPeriod: 1s\n",
                            web = ports.web,
                            tel = ports.telemetry
                        )
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let issuers: Vec<String> = replicas.iter().map(|r| r.issuer.clone()).collect();
    let observer = Storage::open(&StorageConfig::Postgres(db.cfg.clone())).await.unwrap();
    let http = Arc::new(reqwest::Client::new());

    let start = Instant::now();
    let mut signing_seen: Vec<(Duration, String, String, usize)> = Vec::new(); // (t, signing, next, retired)
    let mut first_published_everywhere: HashMap<String, Duration> = HashMap::new();
    let mut seen_on: HashMap<String, BTreeSet<usize>> = HashMap::new();
    let mut disagreement_since: Option<Duration> = None;
    let mut longest_disagreement = Duration::ZERO;
    let mut disagreements = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        let t = start.elapsed();
        let keys = observer.durable.get_keys().await.unwrap();
        if signing_seen.last().is_none_or(|(_, s, _, _)| *s != keys.signing_key.kid) {
            signing_seen.push((
                t,
                keys.signing_key.kid.clone(),
                keys.next_key.kid.clone(),
                keys.verification_keys.len(),
            ));
        }
        let sets = futures::future::join_all(issuers.iter().map(|i| jwks_kids(&http, i))).await;
        for (i, set) in sets.iter().enumerate() {
            let set = set.as_ref().unwrap_or_else(|e| panic!("replica {i} /keys failed at {t:?}: {e}"));
            assert!(!set.is_empty(), "replica {i} published an empty key set at {t:?}");
            for kid in set {
                let on = seen_on.entry(kid.clone()).or_default();
                on.insert(i);
                if on.len() == issuers.len() {
                    first_published_everywhere.entry(kid.clone()).or_insert(t);
                }
            }
        }
        let all_agree = sets.windows(2).all(|w| w[0] == w[1]);
        if !all_agree {
            disagreements.push(format!("{t:?}: {sets:?}"));
        }
        match (all_agree, disagreement_since) {
            (false, None) => disagreement_since = Some(t),
            (true, Some(since)) => {
                longest_disagreement = longest_disagreement.max(t - since);
                disagreement_since = None;
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let elapsed = start.elapsed();
    let final_keys = observer.durable.get_keys().await.unwrap();
    observer.durable.close().await;
    let logs: Vec<String> = replicas.iter().map(Server::log_text).collect();
    drop(replicas);
    db.drop().await;

    let rotations = signing_seen.len() - 1;
    let report = format!("signing keys seen: {signing_seen:#?}\nlogs:\n{}", logs.join("\n-----\n"));
    // One rotation per period: a rotation happens within one refresh interval after it is due.
    let min = (elapsed.as_secs_f64() / (period + refresh * 3).as_secs_f64()).floor() as usize - 1;
    let max = (elapsed.as_secs_f64() / period.as_secs_f64()).ceil() as usize + 1;
    assert!(
        (min..=max).contains(&rotations),
        "{rotations} rotations in {elapsed:?}, expected {min}..={max}\n{report}"
    );
    for (i, pair) in signing_seen.windows(2).enumerate() {
        let ((t0, _, next0, _), (t1, signing1, _, _)) = (&pair[0], &pair[1]);
        // No duplicate rotation: the key that signs is the one that was announced as next...
        assert_eq!(
            signing1, next0,
            "a rotation skipped the published next key (duplicate rotation)\n{report}"
        );
        // ...and each key signs for about a period, never a burst of rotations. (The first key seen
        // was already signing before observation began, so its tenure is unknown.)
        if i > 0 {
            assert!(*t1 - *t0 >= period.mul_f64(0.6), "two rotations {:?} apart\n{report}", *t1 - *t0);
        }
        // Published on every replica before it became the signing key.
        let published = first_published_everywhere.get(signing1).copied();
        assert!(
            published.is_some_and(|p| p < *t1),
            "key {signing1} became the signing key at {t1:?} but was on every replica's /keys only at {published:?}\n{report}"
        );
    }
    // Replicas converge within one refresh interval (plus the polling granularity).
    assert!(
        longest_disagreement <= refresh + Duration::from_millis(300),
        "replicas disagreed on the key set for {longest_disagreement:?}\n{disagreements:#?}\n{report}"
    );
    // Retired keys expire (idTokens 3 s): the key set does not grow without bound.
    assert!(
        final_keys.verification_keys.len() <= 5,
        "{} retired keys kept",
        final_keys.verification_keys.len()
    );
}
