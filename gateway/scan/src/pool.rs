//! The threads that do a scan's CPU work (parsing, checks, rules, the content model), sized to
//! the machine's cores, so that no message is ever parsed or classified on the async threads
//! that run SMTP sessions. A full queue makes callers wait (asynchronously): backpressure.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a free thread, per thread.
const QUEUE_PER_THREAD: usize = 64;

/// A fixed set of scanning threads, started on first use.
pub struct CpuPool {
    jobs: OnceLock<mpsc::Sender<Job>>,
    threads: usize,
}

impl CpuPool {
    /// A pool of `threads` threads (at least one).
    pub fn new(threads: usize) -> CpuPool {
        CpuPool {
            jobs: OnceLock::new(),
            threads: threads.max(1),
        }
    }

    /// A pool with one thread per core.
    pub fn per_core() -> CpuPool {
        CpuPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn start(&self) -> &mpsc::Sender<Job> {
        self.jobs.get_or_init(|| {
            let (jobs, queue) = mpsc::channel::<Job>(self.threads * QUEUE_PER_THREAD);
            let queue = Arc::new(Mutex::new(queue));
            for i in 0..self.threads {
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
            jobs
        })
    }

    /// Runs `work` on a pool thread when called from a multi-threaded runtime (the gateway's
    /// SMTP sessions), and returns its result; a panic in `work` resumes in the caller, as if
    /// it had run there. Callers on a single-threaded runtime own their thread (command-line
    /// tools with their own workers): `work` runs right there, without the hand-over's cost.
    pub async fn run<T, F>(&self, work: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let shared_runtime = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if !shared_runtime {
            return work();
        }
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        if let Err(mpsc::error::SendError(job)) = self.start().send(job).await {
            // No thread could be started: run here rather than lose the scan.
            job();
        }
        match result.await {
            Ok(Ok(value)) => value,
            Ok(Err(panic)) => resume_unwind(panic),
            Err(_) => panic!("scan job produced no result"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_on_pool_threads_and_panics_come_back() {
        let pool = Arc::new(CpuPool::new(2));
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await;
        assert!(name.is_some_and(|n| n.starts_with("jianmen-scan-")));
        let sums =
            futures_util::future::join_all((0..50u64).map(|i| pool.run(move || i * 2))).await;
        assert_eq!(sums.iter().sum::<u64>(), 2450);
        let p = Arc::clone(&pool);
        let caught = tokio::spawn(async move { p.run(|| -> u8 { panic!("boom") }).await }).await;
        assert!(caught.is_err_and(|e| e.is_panic()));
        assert_eq!(pool.run(|| 7).await, 7, "a panic does not cost a thread");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_single_threaded_caller_runs_the_work_itself() {
        let pool = CpuPool::new(2);
        let here = std::thread::current().id();
        assert_eq!(pool.run(move || std::thread::current().id()).await, here);
        assert!(pool.jobs.get().is_none(), "no thread started");
    }
}
