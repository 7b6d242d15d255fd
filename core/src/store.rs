//! The registry's embedded store: a redb database in the data dir holding what must survive a
//! restart — REST registrations (with their check and TTL), name claims of `keys` networks, and
//! the network policies.
//!
//! One writer thread owns the database. Writers queue operations and wait for their
//! acknowledgement; the thread takes every operation already queued into one transaction and
//! commits it durably (fsync) before acknowledging any of them. So a write is acknowledged only
//! once it is on disk, concurrent writers share one fsync (group commit), and operations reach
//! the disk in the order they were queued. Session registrations are not stored: they come back
//! when their nodes reconnect.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::model::{Instance, NetworkName, ServiceName};
use crate::security::{KeyGrant, NetworkConfig, Policy};

/// File name of the store inside the data dir.
pub const STORE_FILE: &str = "netget.redb";

/// The schema this build writes. A store with a higher version is refused; lower versions are
/// migrated on open (see `migrate`).
pub const SCHEMA_VERSION: u64 = 1;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REST: TableDefinition<&str, &[u8]> = TableDefinition::new("rest_registrations");
const CLAIMS: TableDefinition<&str, &str> = TableDefinition::new("name_claims");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");

/// Deletes after which the file is compacted, so heavy churn does not grow it without bound.
const COMPACT_EVERY_DELETES: u64 = 20_000;

/// A REST registration as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestRecord {
    /// The instance as registered.
    pub instance: Instance,
    /// Its TTL in milliseconds (`None`: lives by its health check).
    pub ttl_ms: Option<u64>,
    /// Digest of the token that registered it (ownership).
    pub token: Option<String>,
}

/// A network's policy as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "policy")]
enum StoredPolicy {
    Open,
    Token {
        tokens: Vec<String>,
    },
    Keys {
        keys: Vec<KeyGrant>,
        tokens: Vec<String>,
    },
}

/// Everything loaded at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// REST registrations.
    pub rest: Vec<RestRecord>,
    /// Name claims: (network, service) → public key.
    pub claims: Vec<(NetworkName, ServiceName, String)>,
    /// Stored network policies (empty when none were ever stored).
    pub networks: Vec<NetworkConfig>,
}

/// One change to the store.
#[derive(Debug)]
enum Op {
    PutRest(String, Vec<u8>),
    DeleteRest(String),
    PutClaim(String, String),
    SetNetworks(Vec<(String, Vec<u8>)>),
}

struct Batch {
    ops: Vec<Op>,
    done_tx: Option<oneshot::Sender<Result<()>>>,
}

/// A handle to the store's writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    ops_tx: mpsc::UnboundedSender<Batch>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} ops)", self.ops.len())
    }
}

fn rest_key(instance: &Instance) -> String {
    format!("{}/{}/{}", instance.network, instance.name, instance.id)
}

fn storage(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("store {}: {e}", path.display()))
}

impl Store {
    /// Opens (or creates) the store in `data_dir` and loads it. Refuses, with a message that
    /// says what to do, a store locked by another registry, a corrupt one, or one written by a
    /// newer netget — never starting empty in their place.
    pub fn open(data_dir: &Path) -> Result<(Store, Loaded)> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::Io(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join(STORE_FILE);
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => {
                Error::Io(format!(
                    "data dir {} is in use by another registry (its store {} is locked); give each registry its own --data",
                    data_dir.display(),
                    path.display()
                ))
            }
            redb::DatabaseError::UpgradeRequired(v) => Error::Io(format!(
                "store {} has redb file format {v}, which this build cannot read; upgrade it with the redb tool of that version",
                path.display()
            )),
            other => Error::Io(format!(
                "store {} cannot be opened: {other}. It may be corrupt; move it aside to start with an empty store (nothing was changed)",
                path.display()
            )),
        })?;
        let loaded = load(&db, &path)?;
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("netget-store".into())
            .spawn(move || writer(db, ops_rx, thread_path))
            .map_err(|e| Error::Io(format!("cannot start the store writer: {e}")))?;
        Ok((
            Store {
                ops_tx,
                path: Arc::new(path),
            },
            loaded,
        ))
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn queue(&self, ops: Vec<Op>, done_tx: Option<oneshot::Sender<Result<()>>>) -> Result<()> {
        self.ops_tx
            .send(Batch { ops, done_tx })
            .map_err(|_| Error::Closed("the store is closed".into()))
    }

    async fn durable(&self, ops: Vec<Op>) -> Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        self.queue(ops, Some(done_tx))?;
        done_rx
            .await
            .map_err(|_| Error::Internal("the store writer stopped".into()))?
    }

    /// Queues a REST registration now (keeping the order of directory changes) and resolves
    /// once it is on disk.
    pub fn put_rest(
        &self,
        instance: &Instance,
        ttl: Option<Duration>,
        token: Option<&str>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let record = RestRecord {
            instance: instance.clone(),
            ttl_ms: ttl.map(|t| t.as_millis() as u64),
            token: token.map(str::to_string),
        };
        let this = self.clone();
        let op = serde_json::to_vec(&record)
            .map(|bytes| Op::PutRest(rest_key(instance), bytes))
            .map_err(|e| Error::Internal(format!("encode: {e}")));
        let (done_tx, done_rx) = oneshot::channel();
        let queued = op.and_then(|op| this.queue(vec![op], Some(done_tx)));
        async move {
            queued?;
            done_rx
                .await
                .map_err(|_| Error::Internal("the store writer stopped".into()))?
        }
    }

    /// Queues the removal of a REST registration now; resolves once it is on disk.
    pub fn delete_rest(
        &self,
        instance: &Instance,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (done_tx, done_rx) = oneshot::channel();
        let queued = self.queue(vec![Op::DeleteRest(rest_key(instance))], Some(done_tx));
        async move {
            queued?;
            done_rx
                .await
                .map_err(|_| Error::Internal("the store writer stopped".into()))?
        }
    }

    /// Removes a REST registration without waiting (expiry, eviction).
    pub fn forget_rest(&self, instance: &Instance) {
        let _ = self.queue(vec![Op::DeleteRest(rest_key(instance))], None);
    }

    /// Records that `public_key` owns `service` in `network`; resolves once on disk.
    pub async fn put_claim(
        &self,
        network: &NetworkName,
        service: &ServiceName,
        public_key: &str,
    ) -> Result<()> {
        self.durable(vec![Op::PutClaim(
            format!("{network}/{service}"),
            public_key.to_string(),
        )])
        .await
    }

    /// Replaces the stored network policies.
    pub async fn set_networks(&self, networks: &[NetworkConfig]) -> Result<()> {
        let mut rows = Vec::new();
        for n in networks {
            let policy = match &n.policy {
                Policy::Open => StoredPolicy::Open,
                Policy::Token { tokens } => StoredPolicy::Token {
                    tokens: tokens.clone(),
                },
                Policy::Keys { keys, tokens } => StoredPolicy::Keys {
                    keys: keys.clone(),
                    tokens: tokens.clone(),
                },
            };
            let bytes =
                serde_json::to_vec(&policy).map_err(|e| Error::Internal(format!("encode: {e}")))?;
            rows.push((n.name.to_string(), bytes));
        }
        self.durable(vec![Op::SetNetworks(rows)]).await
    }
}

fn load(db: &Database, path: &Path) -> Result<Loaded> {
    migrate(db, path)?;
    let tx = db.begin_read().map_err(|e| storage(path, e))?;
    let mut loaded = Loaded::default();
    let rest = tx.open_table(REST).map_err(|e| storage(path, e))?;
    for row in rest.iter().map_err(|e| storage(path, e))? {
        let (k, v) = row.map_err(|e| storage(path, e))?;
        let record: RestRecord = serde_json::from_slice(v.value()).map_err(|e| {
            Error::Io(format!(
                "store {}: record {:?} is unreadable ({e}); the store is corrupt — move it aside to start empty",
                path.display(),
                k.value()
            ))
        })?;
        loaded.rest.push(record);
    }
    let claims = tx.open_table(CLAIMS).map_err(|e| storage(path, e))?;
    for row in claims.iter().map_err(|e| storage(path, e))? {
        let (k, v) = row.map_err(|e| storage(path, e))?;
        if let Some((net, svc)) = k.value().split_once('/') {
            if let (Ok(n), Ok(s)) = (NetworkName::new(net), ServiceName::new(svc)) {
                loaded.claims.push((n, s, v.value().to_string()));
            }
        }
    }
    let networks = tx.open_table(NETWORKS).map_err(|e| storage(path, e))?;
    for row in networks.iter().map_err(|e| storage(path, e))? {
        let (k, v) = row.map_err(|e| storage(path, e))?;
        let name = NetworkName::new(k.value())?;
        let policy: StoredPolicy = serde_json::from_slice(v.value()).map_err(|e| {
            Error::Io(format!(
                "store {}: network {name} is unreadable ({e})",
                path.display()
            ))
        })?;
        let policy = match policy {
            StoredPolicy::Open => Policy::Open,
            StoredPolicy::Token { tokens } => Policy::Token { tokens },
            StoredPolicy::Keys { keys, tokens } => Policy::Keys { keys, tokens },
        };
        loaded.networks.push(NetworkConfig { name, policy });
    }
    Ok(loaded)
}

/// Brings an older store to [`SCHEMA_VERSION`] and refuses a newer one. Version 1 is the first;
/// a future version 2 adds its step here (read v1 rows, write v2 rows, set the version) in the
/// same transaction, so a migration is all or nothing.
fn migrate(db: &Database, path: &Path) -> Result<()> {
    let tx = db.begin_write().map_err(|e| storage(path, e))?;
    {
        let mut meta = tx.open_table(META).map_err(|e| storage(path, e))?;
        let found = meta
            .get("schema_version")
            .map_err(|e| storage(path, e))?
            .map(|v| v.value());
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(Error::Io(format!(
                    "store {} has schema version {v}, newer than this netget understands ({SCHEMA_VERSION}); run a newer netget or move the store aside",
                    path.display()
                )))
            }
            Some(_) => {}
            None => {
                meta.insert("schema_version", SCHEMA_VERSION).map_err(|e| storage(path, e))?;
            }
        }
        // Create the tables so readers find them.
        tx.open_table(REST).map_err(|e| storage(path, e))?;
        tx.open_table(CLAIMS).map_err(|e| storage(path, e))?;
        tx.open_table(NETWORKS).map_err(|e| storage(path, e))?;
    }
    tx.commit().map_err(|e| storage(path, e))
}

fn apply(db: &Database, ops: &[Op], path: &Path) -> Result<u64> {
    let tx = db.begin_write().map_err(|e| storage(path, e))?;
    let mut deletes = 0;
    {
        let mut rest = tx.open_table(REST).map_err(|e| storage(path, e))?;
        let mut claims = tx.open_table(CLAIMS).map_err(|e| storage(path, e))?;
        let mut networks = tx.open_table(NETWORKS).map_err(|e| storage(path, e))?;
        for op in ops {
            match op {
                Op::PutRest(k, v) => {
                    rest.insert(k.as_str(), v.as_slice())
                        .map_err(|e| storage(path, e))?;
                }
                Op::DeleteRest(k) => {
                    rest.remove(k.as_str()).map_err(|e| storage(path, e))?;
                    deletes += 1;
                }
                Op::PutClaim(k, v) => {
                    claims
                        .insert(k.as_str(), v.as_str())
                        .map_err(|e| storage(path, e))?;
                }
                Op::SetNetworks(rows) => {
                    networks
                        .retain(|_, _| false)
                        .map_err(|e| storage(path, e))?;
                    for (k, v) in rows {
                        networks
                            .insert(k.as_str(), v.as_slice())
                            .map_err(|e| storage(path, e))?;
                    }
                }
            }
        }
    }
    // The default durability is immediate: commit returns after fsync.
    tx.commit().map_err(|e| storage(path, e))?;
    Ok(deletes)
}

/// The writer thread: group commit, then acknowledge.
fn writer(mut db: Database, mut ops_rx: mpsc::UnboundedReceiver<Batch>, path: PathBuf) {
    let mut deletes_since_compaction = 0u64;
    while let Some(first) = ops_rx.blocking_recv() {
        let mut batches = vec![first];
        while let Ok(more) = ops_rx.try_recv() {
            batches.push(more);
            if batches.len() >= 4096 {
                break;
            }
        }
        let ops: Vec<Op> = batches
            .iter_mut()
            .flat_map(|b| std::mem::take(&mut b.ops))
            .collect();
        let result = apply(&db, &ops, &path);
        if let Err(e) = &result {
            tracing::error!(error = %e, "store write failed");
        }
        if let Ok(d) = &result {
            deletes_since_compaction += d;
        }
        for b in batches {
            if let Some(done_tx) = b.done_tx {
                let _ = done_tx.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
            }
        }
        if deletes_since_compaction >= COMPACT_EVERY_DELETES {
            deletes_since_compaction = 0;
            match db.compact() {
                Ok(_) => tracing::debug!(file = %path.display(), "store compacted"),
                Err(e) => tracing::warn!(error = %e, "store compaction failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{InstanceId, Registration};

    fn inst(id: &str) -> Instance {
        Instance::from_registration(
            NetworkName::new("development").unwrap(),
            ServiceName::new("web").unwrap(),
            InstanceId::new(id).unwrap(),
            Registration {
                address: format!("http://127.0.0.1/{id}"),
                ..Default::default()
            },
            "r",
        )
    }

    #[tokio::test]
    async fn what_was_acknowledged_is_there_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, loaded) = Store::open(dir.path()).unwrap();
            assert!(loaded.rest.is_empty());
            store
                .put_rest(&inst("a"), Some(Duration::from_secs(30)), Some("tok"))
                .await
                .unwrap();
            store.put_rest(&inst("b"), None, None).await.unwrap();
            store.delete_rest(&inst("b")).await.unwrap();
            store
                .put_claim(
                    &NetworkName::new("secure").unwrap(),
                    &ServiceName::new("orders").unwrap(),
                    "KEY",
                )
                .await
                .unwrap();
            store
                .set_networks(&[NetworkConfig::open("development").unwrap()])
                .await
                .unwrap();
        }
        // The writer thread holds the database until its channel closes; give it a moment.
        let mut reopened = None;
        for _ in 0..100 {
            match Store::open(dir.path()) {
                Ok(s) => {
                    reopened = Some(s);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let (_store, loaded) = reopened.expect("store reopens");
        assert_eq!(loaded.rest.len(), 1);
        assert_eq!(loaded.rest[0].instance.id.as_str(), "a");
        assert_eq!(loaded.rest[0].ttl_ms, Some(30_000));
        assert_eq!(loaded.rest[0].token.as_deref(), Some("tok"));
        assert_eq!(loaded.claims.len(), 1);
        assert_eq!(loaded.networks.len(), 1);
    }

    #[test]
    fn a_store_from_a_newer_netget_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", SCHEMA_VERSION + 1)
                .unwrap();
            tx.commit().unwrap();
        }
        let e = Store::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }
}
