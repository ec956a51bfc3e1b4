//! The threads that do a scan's CPU work (parsing, checks, rules, the content model), sized to
//! the machine's cores, so that no message is ever parsed or classified on the async threads
//! that run SMTP sessions. A full queue makes callers wait (asynchronously): backpressure.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a free thread, per thread.
const QUEUE_PER_THREAD: usize = 64;

/// A fixed set of scanning threads.
pub struct CpuPool {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

impl CpuPool {
    /// Starts `threads` threads (at least one).
    pub fn new(threads: usize) -> CpuPool {
        let threads = threads.max(1);
        let (jobs, queue) = mpsc::channel::<Job>(threads * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("jianmen-scan-{i}"))
                .spawn(move || {
                    loop {
                        // One thread waits on the queue, the others on the lock.
                        let job = match queue.lock() {
                            Ok(mut q) => q.blocking_recv(),
                            Err(_) => None,
                        };
                        match job {
                            Some(job) => job(),
                            None => return, // the pool was dropped
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a scanning thread");
            }
        }
        CpuPool { jobs, threads }
    }

    /// A pool with one thread per core.
    pub fn per_core() -> CpuPool {
        CpuPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on a pool thread and returns its result. A panic in `work` resumes in the
    /// caller, as if it had run there. Falls back to running inline if the pool has no thread.
    pub async fn run<T, F>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        match self.jobs.send(job).await {
            Ok(()) => match result.await {
                Ok(Ok(value)) => value,
                Ok(Err(panic)) => resume_unwind(panic),
                Err(_) => panic!("scanning thread lost a job"),
            },
            // No receiver: every thread failed to start. Run here rather than lose the scan.
            Err(mpsc::error::SendError(job)) => {
                job();
                match result.await {
                    Ok(Ok(value)) => value,
                    Ok(Err(panic)) => resume_unwind(panic),
                    Err(_) => panic!("scan job produced no result"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_on_pool_threads_and_panics_come_back() {
        let pool = CpuPool::new(2);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await;
        assert!(name.is_some_and(|n| n.starts_with("jianmen-scan-")));
        let sums =
            futures_util::future::join_all((0..50u64).map(|i| pool.run(move || i * 2))).await;
        assert_eq!(sums.iter().sum::<u64>(), 2450);
        let caught = tokio::spawn(async move { pool.run(|| -> u8 { panic!("boom") }).await }).await;
        assert!(caught.is_err_and(|e| e.is_panic()));
    }
}
