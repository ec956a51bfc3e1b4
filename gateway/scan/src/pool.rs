//! The threads that do a scan's CPU work (parsing, checks, rules, the content model), sized to
//! the machine's cores, so that no message is ever parsed or classified on the async threads
//! that run SMTP sessions. A full queue makes callers wait (asynchronously): backpressure.
//!
//! A thread cannot be taken back from work that runs too long, so budgeted work is told its
//! [`Deadline`] and checks it between steps, while its caller stops waiting when the deadline
//! passes: a hostile message costs its budget, and the answer comes on time either way.

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce() + Send>;

/// Jobs waiting for a free thread, per thread.
const QUEUE_PER_THREAD: usize = 64;

/// The moment by which budgeted work must be done; counted from when a thread took it up, so
/// that time spent waiting in the queue under load is not held against a message.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    at: Instant,
}

impl Deadline {
    /// `budget` from now.
    pub fn after(budget: Duration) -> Deadline {
        let now = Instant::now();
        Deadline {
            at: now
                .checked_add(budget)
                .unwrap_or(now + Duration::from_secs(86_400 * 365)),
        }
    }

    /// No limit in practice (a year): for tools that judge trusted files at their own pace.
    pub fn unlimited() -> Deadline {
        Deadline::after(Duration::from_secs(86_400 * 365))
    }

    /// Whether the budget is spent.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }
}

/// The budget ran out before the work finished; the work stops at its next check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverBudget;

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
        if !on_shared_runtime() {
            return work();
        }
        let result = self.submit(work).await;
        outcome(result.await)
    }

    /// Runs `work` like [`CpuPool::run`] within `budget`, counted from when a thread takes it
    /// up; `work` gets the [`Deadline`] to check between its steps. Returns what `work`
    /// returned and the time it took, or [`OverBudget`] as soon as the deadline passes without
    /// a result (the thread goes on until `work` checks its deadline). On a single-threaded
    /// runtime nobody else could answer meanwhile: `work` runs to its own checks, here.
    pub async fn run_within<T, F>(
        &self,
        budget: Duration,
        work: F,
    ) -> Result<(T, Duration), OverBudget>
    where
        T: Send + 'static,
        F: FnOnce(&Deadline) -> T + Send + 'static,
    {
        let timed = move |deadline: Deadline, started: Instant| {
            let value = work(&deadline);
            (value, started.elapsed())
        };
        if !on_shared_runtime() {
            return Ok(timed(Deadline::after(budget), Instant::now()));
        }
        let (began, taken_up) = oneshot::channel();
        let result = self
            .submit(move || {
                let started = Instant::now();
                let deadline = Deadline::after(budget);
                let _ = began.send(deadline);
                timed(deadline, started)
            })
            .await;
        let Ok(deadline) = taken_up.await else {
            // The job was dropped unrun; `outcome` says so.
            return Ok(outcome(result.await));
        };
        match tokio::time::timeout_at(deadline.at.into(), result).await {
            Ok(result) => Ok(outcome(result)),
            Err(_) => Err(OverBudget),
        }
    }

    /// Queues `work` for a pool thread; the receiver gets its result or its panic.
    async fn submit<T, F>(&self, work: F) -> oneshot::Receiver<std::thread::Result<T>>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(catch_unwind(AssertUnwindSafe(work)));
        });
        if let Err(mpsc::error::SendError(job)) = self.start().send(job).await {
            // No thread could be started: run here rather than lose the scan.
            job();
        }
        result
    }
}

/// Whether the caller runs on a multi-threaded runtime, whose threads serve SMTP sessions.
fn on_shared_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// A job's result, its panic resumed in the caller.
fn outcome<T>(result: Result<std::thread::Result<T>, oneshot::error::RecvError>) -> T {
    match result {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => resume_unwind(panic),
        Err(_) => panic!("scan job produced no result"),
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_caller_stops_waiting_when_the_budget_is_spent() {
        let pool = CpuPool::new(1);
        // One step that does not look at its deadline for half a second: the caller is
        // answered when the budget is spent, not when the step ends.
        let over = pool
            .run_within(Duration::from_millis(50), |deadline| {
                std::thread::sleep(Duration::from_millis(500));
                deadline.passed()
            })
            .await;
        assert_eq!(over, Err(OverBudget));
        // The next job waits for the thread, then has its whole budget.
        let (value, _) = pool
            .run_within(Duration::from_secs(5), |deadline| (7, deadline.passed()))
            .await
            .expect("a quick job finishes");
        assert_eq!(value, (7, false));
        // Time waiting for a thread does not count: a queued job gets its whole budget.
        let busy = pool.run(|| std::thread::sleep(Duration::from_millis(200)));
        let queued = pool.run_within(Duration::from_millis(100), |_| 1);
        let ((), waited) = tokio::join!(busy, queued);
        assert_eq!(waited.map(|(v, _)| v), Ok(1));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_single_threaded_caller_runs_the_work_itself() {
        let pool = CpuPool::new(2);
        let here = std::thread::current().id();
        assert_eq!(pool.run(move || std::thread::current().id()).await, here);
        assert!(pool.jobs.get().is_none(), "no thread started");
    }
}
