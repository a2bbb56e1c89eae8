//! The storage work of a refresh rotation, measured alone, in this process: what a
//! `refresh_token` grant asks of storage (read the token, then the one-statement
//! compare-and-swap that stores the rotation, durably) with no HTTP, no gRPC and no signing, so
//! that the CPU it costs can be set against what the throughput goal leaves for it.
//!
//! It calls the same `oxidex_core` storage code as the server (`get_refresh`, then
//! `update_refresh_seen`), on the same backend and with the same pool settings, on a runtime of
//! two workers like the server's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use oxidex_core::storage::{Claims, DurableStorage, RefreshToken};
use oxidex_core::token::refresh::hash_secret;

use super::{clock_ticks, cpu_seconds, machine_cores, machine_ticks};

/// What one measurement found.
#[derive(Debug, Clone)]
pub(super) struct Rotation {
    pub(super) workers: usize,
    pub(super) per_second: f64,
    /// Cores this process used during the window (the storage code and its driver threads).
    pub(super) process_cpu: Option<f64>,
    /// Cores busy on the whole machine during the window (includes Postgres).
    pub(super) machine_cpu: Option<f64>,
}

impl Rotation {
    /// Milliseconds of CPU one rotation costs this process.
    pub(super) fn process_ms(&self) -> Option<f64> {
        self.process_cpu.filter(|_| self.per_second > 0.0).map(|c| 1000.0 * c / self.per_second)
    }

    /// Milliseconds of CPU one rotation costs the whole machine (this process plus the database
    /// and whatever else runs).
    pub(super) fn machine_ms(&self) -> Option<f64> {
        self.machine_cpu.filter(|_| self.per_second > 0.0).map(|c| 1000.0 * c / self.per_second)
    }
}

/// A token like the ones the bench's logins create (the `mockCallback` user).
fn token(id: &str) -> RefreshToken {
    let now = chrono::Utc::now();
    RefreshToken {
        id: id.to_owned(),
        token: hash_secret(&format!("{id}-0")),
        obsolete_token: String::new(),
        created_at: now,
        last_used: now,
        client_id: super::CLIENT_ID.to_owned(),
        connector_id: "mock".to_owned(),
        connector_data: Vec::new(),
        claims: Claims {
            user_id: "0-385-28089-0".to_owned(),
            username: "Kilgore Trout".to_owned(),
            preferred_username: "kilgore".to_owned(),
            email: "kilgore@kilgore.trout".to_owned(),
            email_verified: true,
            groups: vec!["authors".to_owned()],
        },
        scopes: ["openid", "email", "profile", "groups", "offline_access"].map(str::to_owned).to_vec(),
        nonce: "bench-nonce".to_owned(),
        rotation_key: vec![7; 32],
    }
}

/// Runs `workers` loops of rotations, each on its own token, for `warmup` then `duration`.
pub(super) async fn measure(
    storage: Arc<dyn DurableStorage>,
    workers: usize,
    warmup: Duration,
    duration: Duration,
) -> Result<Rotation> {
    let run = format!("rotation-{}-{}", std::process::id(), chrono::Utc::now().timestamp_micros());
    let ids: Vec<String> = (0..workers).map(|i| format!("{run}-{i}")).collect();
    for id in &ids {
        storage.create_refresh(token(id)).await.context("creating the tokens to rotate")?;
    }
    let t0 = Instant::now();
    let (measure, end) = (t0 + warmup, t0 + warmup + duration);
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = ids
        .iter()
        .cloned()
        .map(|id| {
            let (storage, done) = (Arc::clone(&storage), Arc::clone(&done));
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    let seen = storage.get_refresh(&id).await?;
                    n += 1;
                    let next = hash_secret(&format!("{id}-{n}"));
                    let now = chrono::Utc::now();
                    storage
                        .update_refresh_seen(&seen, &|mut r: RefreshToken| {
                            r.obsolete_token = std::mem::take(&mut r.token);
                            r.token.clone_from(&next);
                            r.last_used = now;
                            Ok(r)
                        })
                        .await?;
                    let finished = Instant::now();
                    if finished >= measure && finished < end {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, oxidex_core::storage::StorageError>(())
            })
        })
        .collect();

    let ticks = clock_ticks();
    tokio::time::sleep_until(measure.into()).await;
    let (cpu_start, machine_start, wall_start) =
        (cpu_seconds("self", ticks), machine_ticks(), Instant::now());
    tokio::time::sleep_until(end.into()).await;
    let (cpu_end, machine_end, wall_end) = (cpu_seconds("self", ticks), machine_ticks(), Instant::now());
    for h in handles {
        h.await.context("a rotation worker panicked")?.context("a rotation failed")?;
    }
    for id in &ids {
        let _ = storage.delete_refresh(id).await;
    }
    let wall = (wall_end - wall_start).as_secs_f64();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    Ok(Rotation {
        workers,
        per_second: done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64(),
        process_cpu: cpu_start.zip(cpu_end).map(|(a, b)| (b - a) / wall),
        machine_cpu: machine_cores(machine_start, machine_end, cpus).map(|m| m.0),
    })
}
