//! CPU-heavy work (token signatures, about 0.3 ms each for RS256) runs off the async runtime's
//! threads, on a small pool of threads of its own: one per CPU, fed from one queue.
//!
//! Why: a runtime thread busy signing cannot run the tasks queued behind it. One of them may
//! hold the only SQLite write connection and just have received its statement's answer; until
//! it runs and gives the connection back, every grant that writes waits. Measured on the 2-core
//! benchmark machine, signing on the runtime's threads held `refresh_token` grants to about a
//! third of what the CPUs could sign (see BENCHMARKS.md). A fixed pool with a shared queue, rather
//! than Tokio's blocking threads, keeps the thread count (and the memory of stacks and allocator
//! arenas) at the number of CPUs, and a queued job starts the moment a thread is free, without
//! waiting for its caller's task to be polled.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

/// The pool lost a job without running it (its threads could not be started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lost;

type Job = Box<dyn FnOnce() + Send>;

/// The queue of the pool, started on first use. `None` when no thread could be started.
fn queue() -> Option<&'static Sender<Job>> {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            let cpus = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
            let mut started = 0;
            for i in 0..cpus {
                let rx = rx.clone();
                let spawned = std::thread::Builder::new().name(format!("oxidex-cpu-{i}")).spawn(move || {
                    loop {
                        // One thread waits on the queue, the others on the lock; a job is taken
                        // by whichever thread is free first.
                        let job = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
                match spawned {
                    Ok(_) => started += 1,
                    Err(e) => tracing::error!(error = %e, "could not start a CPU worker thread"),
                }
            }
            (started > 0).then_some(tx)
        })
        .as_ref()
}

/// Runs `work` on the pool and waits (asynchronously) for its result. Jobs run in the order
/// they were queued. A panic in `work` is resumed in the caller.
pub async fn run<T, F>(work: F) -> Result<T, Lost>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let Some(queue) = queue() else {
        return Ok(work());
    };
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        // The caller may have gone away (a cancelled request): then nobody wants the result.
        let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
    });
    let sent = queue.send(job);
    if let Err(unsent) = sent {
        // The threads are gone (never expected): run it here rather than fail.
        (unsent.0)();
    }
    match result.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => Err(Lost),
    }
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
