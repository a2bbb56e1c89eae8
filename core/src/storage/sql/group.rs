//! Group commit for SQLite: single-statement writes that arrive while the write connection is
//! busy are committed together, in one transaction, with one `fsync`.
//!
//! SQLite has one writer at a time, and with `synchronous = FULL` (the default, kept: a write
//! the caller was told about survives a power cut) every commit waits for the disk. One commit
//! per write made the disk flush the limit of every grant that writes (a refresh rotation).
//! Here one task owns the writing: it takes the first queued write, then every write queued
//! behind it (up to [`MAX_BATCH`]), runs them in order in one `BEGIN IMMEDIATE ... COMMIT`, and
//! answers each caller only after the commit. A single write runs on its own, as before.
//!
//! Each write keeps its meaning: the statements run in queue order, and every one of them is a
//! statement that is atomic on its own (an insert, a delete, a conditional update). If any
//! statement of a batch fails, or the commit does, the transaction is rolled back and every
//! write of the batch runs again on its own, so each caller gets exactly its own outcome. A
//! statement that failed inside the batch stops the batch at once, so nothing ever runs outside
//! the transaction (SQLite rolls a transaction back by itself after some errors).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Pool;
use tokio::sync::{mpsc, oneshot};

use super::dialect::{Dialect, Val};

/// The most writes committed together.
const MAX_BATCH: usize = 64;

/// What a write returns.
pub(super) enum Out<D: Dialect> {
    /// The rows of a statement with `RETURNING`.
    Rows(Vec<D::Row>),
    /// The number of rows a statement changed.
    Changed(u64),
}

/// One single-statement write.
pub(super) struct Write {
    pub(super) sql: String,
    pub(super) args: Vec<Val>,
    /// Whether the statement returns rows (`RETURNING`) rather than a count.
    pub(super) fetch: bool,
}

struct Job<D: Dialect> {
    write: Write,
    reply: oneshot::Sender<sqlx::Result<Out<D>>>,
}

/// The queue of writes in front of the writing task.
pub(super) struct Queue<D: Dialect> {
    jobs: mpsc::UnboundedSender<Job<D>>,
    stats: Arc<Stats>,
}

/// Counters, for tests and diagnostics.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Writes queued so far.
    pub(super) queued: AtomicU64,
    /// Batches of more than one write committed together.
    pub(super) batches: AtomicU64,
}

impl<D: Dialect> Queue<D> {
    /// Starts the writing task on the current Tokio runtime. It ends when the queue is dropped.
    pub(super) fn start(pool: Pool<D>) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        tokio::spawn(writer(pool, rx, stats.clone()));
        Self { jobs, stats }
    }

    #[cfg(test)]
    pub(super) fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Queues `write` and waits for its outcome. `None` when the writing task is gone (its
    /// runtime shut down): the caller then writes by itself.
    pub(super) async fn run(&self, write: Write) -> Option<sqlx::Result<Out<D>>> {
        let (reply, outcome) = oneshot::channel();
        self.jobs.send(Job { write, reply }).ok()?;
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        outcome.await.ok()
    }
}

async fn writer<D: Dialect>(pool: Pool<D>, mut rx: mpsc::UnboundedReceiver<Job<D>>, stats: Arc<Stats>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        if jobs.len() > 1
            && let Some(outcomes) = together(&pool, &jobs).await
        {
            stats.batches.fetch_add(1, Ordering::Relaxed);
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                // The caller may have gone away (a cancelled request); the write stands.
                let _ = job.reply.send(Ok(outcome));
            }
            continue;
        }
        for job in jobs {
            let outcome = alone(&pool, &job.write).await;
            let _ = job.reply.send(outcome);
        }
    }
}

/// Runs every write in one transaction. `None` (and nothing written) if any statement or the
/// commit failed.
async fn together<D: Dialect>(pool: &Pool<D>, jobs: &[Job<D>]) -> Option<Vec<Out<D>>> {
    let mut tx = pool.begin_with(D::BEGIN_WRITE).await.ok()?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        match statement(&mut *tx, &job.write).await {
            Ok(out) => outcomes.push(out),
            Err(_) => {
                // Dropping `tx` rolls back (if SQLite has not already).
                let _ = tx.rollback().await;
                return None;
            }
        }
    }
    tx.commit().await.ok()?;
    Some(outcomes)
}

async fn alone<D: Dialect>(pool: &Pool<D>, write: &Write) -> sqlx::Result<Out<D>> {
    let mut conn = pool.acquire().await?;
    statement(&mut *conn, write).await
}

async fn statement<D: Dialect>(conn: &mut D::Connection, write: &Write) -> sqlx::Result<Out<D>> {
    if write.fetch {
        Ok(Out::Rows(D::fetch_all(conn, &write.sql, write.args.clone()).await?))
    } else {
        Ok(Out::Changed(D::execute(conn, &write.sql, write.args.clone()).await?))
    }
}
