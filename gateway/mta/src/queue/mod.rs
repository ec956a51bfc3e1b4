//! The durable queue: [`spool`] files plus [`store`] metadata, a group-commit writer that lets
//! many sessions share one database commit, the delivery [`manager`] and bounce generation
//! ([`dsn`]).
//!
//! Durability order for a new message: file written and fsync'd → its directory fsync'd → row
//! committed (group commit) → only then may the session answer 250.

pub mod dsn;
pub mod manager;
pub mod spool;
pub mod store;

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};

use spool::Spool;
pub use store::{
    Completion, MessageKind, MessageState, NewMessage, QueueStore, QueuedMessage, RcptOutcome,
    RcptStatus, SqliteStore,
};

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The disk (or database) is full: tell the client to try later (452 4.3.1).
    #[error("insufficient storage")]
    StorageFull,
    /// Any other I/O failure of the spool.
    #[error("spool: {0}")]
    Spool(std::io::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(store::StoreError),
    /// The queue is shutting down.
    #[error("queue is shutting down")]
    Closed,
}

impl From<std::io::Error> for QueueError {
    fn from(e: std::io::Error) -> Self {
        if crate::db::is_storage_full(&e) {
            QueueError::StorageFull
        } else {
            QueueError::Spool(e)
        }
    }
}

impl From<store::StoreError> for QueueError {
    fn from(e: store::StoreError) -> Self {
        if e.is_storage_full() {
            QueueError::StorageFull
        } else {
            QueueError::Store(e)
        }
    }
}

/// A request to a batching writer, answered when its batch is committed.
struct Batched<T> {
    item: T,
    done: oneshot::Sender<Result<(), QueueError>>,
}

type Commit = Batched<NewMessage>;

/// Largest number of messages committed together.
const MAX_GROUP: usize = 256;

/// The queue shared by the SMTP intake (writer) and the delivery manager (reader).
pub struct Queue {
    spool: Spool,
    store: Arc<dyn QueueStore>,
    commits: mpsc::Sender<Commit>,
    completions: mpsc::Sender<Batched<Completion>>,
    fresh: Arc<Fresh>,
    min_free_bytes: u64,
}

/// Newly committed messages, handed straight to the manager so that it need neither scan nor
/// read the store for them; `wake` is signalled whenever one is added.
#[derive(Default)]
struct Fresh {
    messages: std::sync::Mutex<Vec<QueuedMessage>>,
    wake: Notify,
}

impl Fresh {
    fn push(&self, messages: impl IntoIterator<Item = QueuedMessage>) {
        self.messages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(messages);
        self.wake.notify_one();
    }
}

impl Queue {
    /// Takes the spool with the given store, removes files left by transactions that never
    /// got their 250, and starts the group-commit writer.
    pub async fn open(
        spool: Spool,
        store: Arc<dyn QueueStore>,
        min_free_bytes: u64,
    ) -> Result<Arc<Self>, QueueError> {
        let known: std::collections::HashSet<String> = store.ids().await?.into_iter().collect();
        for id in spool.ids()? {
            if !known.contains(&id) {
                tracing::info!(queue_id = %id, "removing spool file of unacknowledged message");
                spool.remove(&id)?;
            }
        }
        let (tx, rx) = mpsc::channel(4 * MAX_GROUP);
        let fresh = Arc::new(Fresh::default());
        tokio::spawn(commit_loop(rx, spool.clone(), store.clone(), fresh.clone()));
        let (done_tx, done_rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(complete_loop(done_rx, store.clone(), fresh.clone()));
        Ok(Arc::new(Self {
            spool,
            store,
            commits: tx,
            completions: done_tx,
            fresh,
            min_free_bytes,
        }))
    }

    /// The metadata store.
    pub fn store(&self) -> &Arc<dyn QueueStore> {
        &self.store
    }

    /// The spool files.
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Waits until a new message is committed.
    pub async fn woken(&self) {
        self.fresh.wake.notified().await;
    }

    /// Takes the messages committed since the last call.
    pub fn take_fresh(&self) -> Vec<QueuedMessage> {
        std::mem::take(
            &mut *self
                .fresh
                .messages
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Removes a finished message from the store (its bounce, if any, is queued in the same
    /// transaction and handed to the manager); batched with other completions.
    pub async fn complete(&self, completion: Completion) -> Result<(), QueueError> {
        let (done, wait) = oneshot::channel();
        let request = Batched {
            item: completion,
            done,
        };
        if self.completions.send(request).await.is_err() {
            return Err(QueueError::Closed);
        }
        wait.await.map_err(|_| QueueError::Closed)?
    }

    /// Whether the spool filesystem has room for new mail.
    pub fn has_space(&self) -> bool {
        self.spool
            .free_bytes()
            .map(|free| free >= self.min_free_bytes)
            .unwrap_or(false)
    }

    /// Whether the spool has ten times the room mail needs: what is only kept for convenience
    /// (copies of refused mail) is stored only then, so it never takes mail's room.
    pub fn has_space_to_spare(&self) -> bool {
        self.spool
            .free_bytes()
            .map(|free| free >= self.min_free_bytes.saturating_mul(10))
            .unwrap_or(false)
    }

    /// Stores a message durably; returns once it is safe to answer 250. `parts` are
    /// concatenated into the spool file.
    pub async fn enqueue(
        &self,
        mut message: NewMessage,
        parts: Vec<Vec<u8>>,
    ) -> Result<(), QueueError> {
        message.size = parts.iter().map(|p| p.len() as u64).sum();
        let spool = self.spool.clone();
        let id = message.id.clone();
        tokio::task::spawn_blocking(move || {
            let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            spool.write(&id, &slices)
        })
        .await
        .map_err(|_| QueueError::Closed)??;
        let (done, wait) = oneshot::channel();
        let id = message.id.clone();
        let request = Commit {
            item: message,
            done,
        };
        if self.commits.send(request).await.is_err() {
            let _ = self.spool.remove(&id);
            return Err(QueueError::Closed);
        }
        wait.await.map_err(|_| QueueError::Closed)?
    }
}

/// The same error for every member of a failed batch.
fn shared(result: &Result<(), QueueError>) -> Result<(), QueueError> {
    match result {
        Ok(()) => Ok(()),
        Err(QueueError::StorageFull) => Err(QueueError::StorageFull),
        Err(e) => Err(QueueError::Spool(std::io::Error::other(e.to_string()))),
    }
}

/// Commits queued messages in groups: one transaction (one WAL fsync) per group.
async fn commit_loop(
    mut rx: mpsc::Receiver<Commit>,
    spool: Spool,
    store: Arc<dyn QueueStore>,
    fresh: Arc<Fresh>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let batch: Vec<NewMessage> = group.iter().map(|c| c.item.clone()).collect();
        let result = store.insert(&batch).await.map_err(QueueError::from);
        for commit in group.drain(..) {
            if result.is_err() {
                let _ = spool.remove(&commit.item.id);
            }
            let _ = commit.done.send(shared(&result));
        }
        if result.is_ok() {
            fresh.push(
                batch
                    .iter()
                    .filter(|m| m.held.is_none())
                    .map(NewMessage::queued),
            );
        }
    }
}

/// Removes finished messages in groups: one transaction per group.
async fn complete_loop(
    mut rx: mpsc::Receiver<Batched<Completion>>,
    store: Arc<dyn QueueStore>,
    fresh: Arc<Fresh>,
) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut group, MAX_GROUP).await > 0 {
        let batch: Vec<Completion> = group.iter().map(|c| c.item.clone()).collect();
        let result = store.complete(&batch).await.map_err(QueueError::from);
        for request in group.drain(..) {
            let _ = request.done.send(shared(&result));
        }
        if result.is_ok() {
            fresh.push(
                batch
                    .iter()
                    .filter_map(|c| c.bounce.as_ref())
                    .map(NewMessage::queued),
            );
        }
    }
}
