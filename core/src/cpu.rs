//! CPU-heavy work runs off the async runtime's threads, on two small pools of threads of their
//! own, one thread per CPU each, each fed from one queue:
//!
//! - [`run`]: short jobs, token signatures (about 0.3 ms each for RS256);
//! - [`run_slow`]: deliberately slow ones, bcrypt password checks (tens of milliseconds).
//!
//! Why off the runtime: a runtime thread busy signing cannot run the tasks queued behind it. One
//! of them may hold the only SQLite write connection and just have received its statement's
//! answer; until it runs and gives the connection back, every grant that writes waits. Measured
//! on the 2-core benchmark machine, signing on the runtime's threads held `refresh_token` grants
//! to about a third of what the CPUs could sign (see BENCHMARKS.md).
//!
//! Why fixed pools rather than Tokio's blocking threads: the thread count (and so the memory of
//! stacks and allocator arenas) stays at the number of CPUs, and a queued job starts the moment
//! a thread is free, without waiting for its caller's task to be polled. Under a flood of logins,
//! Tokio's blocking pool would grow to hundreds of bcrypt threads that starve everything else of
//! CPU; here logins queue behind each other while signatures, in their own pool, keep going.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

/// The pool lost a job without running it (its threads could not be started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

type Job = Box<dyn FnOnce() + Send>;

/// A pool: its threads start on first use. The queue is `None` when no thread could start.
struct Pool {
    name: &'static str,
    queue: OnceLock<Option<Sender<Job>>>,
}

static SHORT: Pool = Pool { name: "oxidex-cpu", queue: OnceLock::new() };
static SLOW: Pool = Pool { name: "oxidex-slow", queue: OnceLock::new() };

impl Pool {
    fn queue(&self) -> Option<&Sender<Job>> {
        self.queue
            .get_or_init(|| {
                let (tx, rx) = channel::<Job>();
                let rx = Arc::new(Mutex::new(rx));
                let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
                let mut started = 0;
                for i in 0..cpus {
                    let rx = rx.clone();
                    let spawned =
                        std::thread::Builder::new().name(format!("{}-{i}", self.name)).spawn(move || {
                            loop {
                                // One thread waits on the queue, the others on the lock; a job is
                                // taken by whichever thread is free first.
                                let job = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                                match job {
                                    Ok(job) => job(),
                                    Err(_) => return,
                                }
                            }
                        });
                    match spawned {
                        Ok(_) => started += 1,
                        Err(e) => {
                            tracing::error!(pool = self.name, error = %e, "could not start a worker thread")
                        }
                    }
                }
                (started > 0).then_some(tx)
            })
            .as_ref()
    }

    async fn run<T, F>(&self, work: F) -> Result<T, Lost>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Some(queue) = self.queue() else {
            return Ok(work());
        };
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone away (a cancelled request): then nobody wants the result.
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        if let Err(unsent) = queue.send(job) {
            // The threads are gone (never expected): run it here rather than fail.
            (unsent.0)();
        }
        match result.await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(Lost),
        }
    }
}

/// Runs a short CPU-heavy job (a signature) on its pool and waits (asynchronously) for its
/// result. Jobs run in the order they were queued. A panic in `work` is resumed in the caller.
pub async fn run<T, F>(work: F) -> Result<T, Lost>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    SHORT.run(work).await
}

/// Runs a deliberately slow job (a bcrypt check) on its own pool, as [`run`] does; it never
/// holds up the short jobs.
pub async fn run_slow<T, F>(work: F) -> Result<T, Lost>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    SLOW.run(work).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use super::*;

    /// With one runtime thread, a task queued behind CPU-heavy work still runs during it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn other_tasks_run_while_cpu_heavy_work_does() {
        // On the runtime's only thread (the test body itself runs outside it).
        let seen = tokio::spawn(async {
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let queued = tokio::spawn(async move { flag.store(true, Ordering::SeqCst) });
            let seen = run(move || {
                // Busy, like a signature: the queued task must run elsewhere meanwhile.
                let start = Instant::now();
                while !ran.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
                    std::hint::spin_loop();
                }
                ran.load(Ordering::SeqCst)
            })
            .await
            .unwrap();
            queued.await.unwrap();
            seen
        })
        .await
        .unwrap();
        assert!(seen, "the queued task did not run while the CPU-heavy work ran");
    }

    /// No more jobs run at once than there are CPUs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_one_job_per_cpu_runs_at_once() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let jobs = (0..cpus * 4).map(|_| {
            let (running, most) = (running.clone(), most.clone());
            tokio::spawn(run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            }))
        });
        for job in jobs.collect::<Vec<_>>() {
            job.await.unwrap().unwrap();
        }
        let most = most.load(Ordering::SeqCst);
        assert!((1..=cpus).contains(&most), "{most} jobs ran at once on {cpus} CPUs");
    }

    /// Slow jobs filling their pool do not hold up short ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_jobs_never_hold_up_short_ones() {
        let cpus = std::thread::available_parallelism().unwrap().get();
        let release = Arc::new(AtomicBool::new(false));
        let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let slow: Vec<_> = (0..cpus * 2)
            .map(|_| {
                let (release, finished, started) = (release.clone(), finished.clone(), started.clone());
                tokio::spawn(run_slow(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let start = Instant::now();
                    while !release.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(10) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    finished.fetch_add(1, Ordering::SeqCst);
                }))
            })
            .collect();
        // Every slow thread is busy (and more slow jobs wait); a short job still runs now, not
        // after the slow ones.
        while started.load(Ordering::SeqCst) < cpus {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        run(|| ()).await.unwrap();
        assert_eq!(finished.load(Ordering::SeqCst), 0, "the short job waited for slow ones");
        release.store(true, Ordering::SeqCst);
        for job in slow {
            job.await.unwrap().unwrap();
        }
        assert_eq!(finished.load(Ordering::SeqCst), cpus * 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn runs_on_a_single_threaded_runtime() {
        assert_eq!(run(|| 6 * 7).await, Ok(42));
    }

    #[test]
    fn runs_outside_a_runtime() {
        assert_eq!(futures::executor::block_on(run(|| 6 * 7)), Ok(42));
    }

    #[tokio::test]
    #[should_panic(expected = "signing bug")]
    async fn a_panic_reaches_the_caller() {
        let _ = run(|| -> u32 { panic!("signing bug") }).await;
    }
}
