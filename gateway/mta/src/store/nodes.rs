//! The register of a cluster's gateway nodes: each one records itself when it starts and beats
//! while it runs, so the console can show every node, which are alive, and what version each
//! runs (an upgrade rolls through the nodes one at a time).

use sqlx::Row;

use super::SharedDb;

/// How often a running node beats.
pub const HEARTBEAT_SECS: i64 = 10;

/// A node whose last beat is older than this many beats is shown as gone.
const MISSED_BEATS: i64 = 3;

/// A node as the register holds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Node {
    /// Its name (`store.node_name`, or its machine's host name).
    pub name: String,
    /// Where its console answers (`host:port`), or its host name without a console.
    pub address: String,
    /// The Jianmen version it runs.
    pub version: String,
    /// When it started (Unix time).
    pub started: i64,
    /// Its last beat (Unix time).
    pub heartbeat: i64,
    /// Whether it beat recently.
    pub alive: bool,
}

/// One node's entry in the register.
#[derive(Clone)]
pub struct Registration {
    db: SharedDb,
    name: String,
}

impl Registration {
    /// Records `name` as started now (a node restarted under the same name takes its entry
    /// over).
    pub async fn join(
        db: &SharedDb,
        name: &str,
        address: &str,
        version: &str,
        now: i64,
    ) -> Result<Registration, sqlx::Error> {
        sqlx::query(
            "INSERT INTO nodes (name, address, version, started, heartbeat) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (name) DO UPDATE SET address = $2, version = $3, started = $4, \
             heartbeat = $4",
        )
        .bind(name)
        .bind(address)
        .bind(version)
        .bind(now)
        .execute(db.pool())
        .await?;
        Ok(Registration {
            db: db.clone(),
            name: name.to_owned(),
        })
    }

    /// Records that the node is still running at `now`.
    pub async fn beat(&self, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE nodes SET heartbeat = $1 WHERE name = $2")
            .bind(now)
            .bind(&self.name)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Beats every [`HEARTBEAT_SECS`] for as long as the gateway runs; a failed beat is logged
    /// and the next one tried (the node is shown as gone meanwhile, which it is, to the others).
    pub async fn keep_beating(self) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(
            HEARTBEAT_SECS.unsigned_abs(),
        ));
        loop {
            every.tick().await;
            if let Err(e) = self.beat(crate::queue::manager::unix_now()).await {
                tracing::warn!(node = %self.name, "cluster heartbeat not recorded: {e}");
            }
        }
    }
}

/// Every node of the cluster, by name, as of `now`.
pub async fn list(db: &SharedDb, now: i64) -> Result<Vec<Node>, sqlx::Error> {
    let rows =
        sqlx::query("SELECT name, address, version, started, heartbeat FROM nodes ORDER BY name")
            .fetch_all(db.pool())
            .await?;
    rows.iter()
        .map(|r| {
            let heartbeat: i64 = r.try_get(4)?;
            Ok(Node {
                name: r.try_get(0)?,
                address: r.try_get(1)?,
                version: r.try_get(2)?,
                started: r.try_get(3)?,
                heartbeat,
                alive: now.saturating_sub(heartbeat) <= HEARTBEAT_SECS * MISSED_BEATS,
            })
        })
        .collect()
}
