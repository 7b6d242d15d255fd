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
//!
//! Layout (schema version 2):
//!
//! - `meta`: `schema_version` → 2.
//! - `rest_log`: sequence number (u64) → the registration as JSON ([`RestRecord`]). Every put
//!   takes the next number, so the rows of one group commit are appended at the right edge of
//!   the B-tree: a commit writes the leaves its new rows fill plus a fixed handful of pages (the
//!   tree's right edge, the table and free-page records, the header), about 1.5 KB per
//!   registration under load. Keyed by `network/service/id` (version 1's `rest_registrations`
//!   table), the rows of one commit landed in unrelated leaves of the copy-on-write tree and
//!   each cost about two rewritten 4 KiB pages. The writer thread keeps `network/service/id` →
//!   sequence number in memory (built while loading, from the records themselves): re-registering
//!   an instance removes its old row and appends a new one, deregistering removes its row.
//! - `name_claims`: `network/service` → `AT KEY`: the claiming public key and when it claimed
//!   (ms since the Unix epoch; a bare key, as stored before claims had times, counts as 0).
//! - `networks`: network name → its policy, as JSON.
//!
//! Version 1 stores are migrated on open in one transaction (their rows move to `rest_log` in
//! key order and the old table is dropped); a store of a newer version is refused before
//! anything is written. After many removals the file is compacted, so churn does not grow it
//! without bound.
//!
//! Each commit costs one `fdatasync`: redb's default durability (`Immediate`) with its
//! checksummed one-phase commit; two-phase commit and quick-repair, which would add a second
//! sync per commit, stay off.
//!
//! Group commit alone settles into a ping-pong when many writers each keep one write in flight
//! (a REST client with 64 connections): the writers acknowledged by one commit send their next
//! write while the following commit, holding everybody else's, is already syncing, so each
//! fsync carries half the writers. After a large commit, the writer thread therefore waits a
//! little before the next one, until its batch holds most of the writers just acknowledged plus
//! those that came in while the commit synced (`Coalesce`): at most half as long as the last
//! commit took, and never more than [`MAX_COALESCE_WAIT`]. A lone writer (batches of one or a
//! few) never waits. The same idea as
//! PostgreSQL's `commit_delay` and MySQL's `binlog_group_commit_sync_delay`, sized from what
//! the store just saw instead of a setting.
//!
//! The writer counts its commits, the operations they carried and how long each took
//! ([`StoreStats`], exported on `/metrics`).

use std::collections::hash_map::{Entry, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::model::{Instance, NetworkName, ServiceName};
use crate::security::{Claim, NetworkConfig, Policy};

/// File name of the store inside the data dir.
pub const STORE_FILE: &str = "netget.redb";

/// The schema this build writes. A store with a higher version is refused; lower versions are
/// migrated on open (see `migrate`).
pub const SCHEMA_VERSION: u64 = 2;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Version 1's REST registrations, keyed by `network/service/id`; read only by the migration.
const REST_V1: TableDefinition<&str, &[u8]> = TableDefinition::new("rest_registrations");
/// REST registrations by sequence number (see the module doc).
const REST_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("rest_log");
const CLAIMS: TableDefinition<&str, &str> = TableDefinition::new("name_claims");
const NETWORKS: TableDefinition<&str, &[u8]> = TableDefinition::new("networks");

/// Deletes after which the file is compacted, so heavy churn does not grow it without bound.
const COMPACT_EVERY_DELETES: u64 = 20_000;

/// Most queued operations taken into one transaction.
const MAX_BATCH: usize = 4096;

/// Recent commits smaller than this never make the writer wait for more (see [`Coalesce`]).
const COALESCE_MIN: usize = 4;

/// The longest a commit waits for more writers to join it.
pub const MAX_COALESCE_WAIT: Duration = Duration::from_millis(1);

/// What the store's writer did, for `/metrics`. Cheap to clone; the counts are shared.
#[derive(Clone, Debug)]
pub struct StoreStats {
    /// Transactions committed (each one fsync).
    pub commits: Counter,
    /// Operations those transactions carried.
    pub writes: Counter,
    /// How long each commit took, fsync included.
    pub commit_seconds: Histogram,
}

impl Default for StoreStats {
    fn default() -> Self {
        StoreStats {
            commits: Counter::default(),
            writes: Counter::default(),
            // 50 µs .. ~1.6 s
            commit_seconds: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
        }
    }
}

/// How long the next commit waits for more writers. Writers that each keep one write in flight
/// come back within a round trip of their acknowledgement, which is short next to an fsync; so
/// the next commit waits until it holds most of the writers of the last one plus those that
/// came in while it synced, for at most half the last commit's time (capped). One wait then
/// turns two half-full commits into one full one. Small commits never wait.
#[derive(Debug, Default)]
struct Coalesce {
    target: usize,
    last_commit: Duration,
}

impl Coalesce {
    /// The batch size worth waiting for, and for how long at most; `None`: commit at once.
    fn wait(&self, batch: usize) -> Option<(usize, Duration)> {
        (self.target >= COALESCE_MIN && batch < self.target)
            .then(|| (self.target, (self.last_commit / 2).min(MAX_COALESCE_WAIT)))
    }

    /// After a commit of `batch` operations that took `took`, while `queued` more came in.
    fn committed(&mut self, batch: usize, queued: usize, took: Duration) {
        // Seven in eight: the last stragglers join the commit after.
        self.target = ((batch + queued) * 7 / 8).min(MAX_BATCH);
        self.last_commit = took;
    }
}

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

/// [`RestRecord`] by reference, to encode one without cloning the instance. Same JSON.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RestRecordRef<'a> {
    instance: &'a Instance,
    ttl_ms: Option<u64>,
    token: Option<&'a str>,
}

/// Everything loaded at start-up.
#[derive(Debug, Default)]
pub struct Loaded {
    /// REST registrations.
    pub rest: Vec<RestRecord>,
    /// Name claims: (network, service) → the claim.
    pub claims: Vec<(NetworkName, ServiceName, Claim)>,
    /// Stored network policies (empty when none were ever stored).
    pub networks: Vec<NetworkConfig>,
}

/// One change to the store.
#[derive(Debug)]
enum Op {
    /// `network/service/id` and the encoded [`RestRecord`].
    PutRest(String, Vec<u8>),
    DeleteRest(String),
    PutClaim(String, String),
    SetNetworks(Vec<(String, Vec<u8>)>),
    /// Fails the transaction it is in.
    #[cfg(test)]
    Fail,
}

/// One queued operation and who waits for it (nobody for `forget_rest`).
#[derive(Debug)]
struct Request {
    op: Op,
    done_tx: Option<oneshot::Sender<Result<()>>>,
}

/// A handle to the store's writer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    ops_tx: mpsc::Sender<Request>,
    stats: StoreStats,
    /// Closed once the writer has ended and let go of the file (every handle dropped).
    closed: tokio::sync::watch::Receiver<()>,
}

fn rest_key(instance: &Instance) -> String {
    let (network, name, id) = (
        instance.network.as_str(),
        instance.name.as_str(),
        instance.id.as_str(),
    );
    let mut key = String::with_capacity(network.len() + name.len() + id.len() + 2);
    key.push_str(network);
    key.push('/');
    key.push_str(name);
    key.push('/');
    key.push_str(id);
    key
}

fn storage(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("store {}: {e}", path.display()))
}

/// Where each stored REST registration is: `network/service/id` → its row in [`REST_LOG`].
#[derive(Debug)]
struct RestIndex {
    seqs: HashMap<String, u64>,
    /// The number the next put takes: above every row's.
    next: u64,
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
        migrate(&db, &path)?;
        let (loaded, index, superseded) = load(&db, &path)?;
        if !superseded.is_empty() {
            let tx = db.begin_write().map_err(|e| storage(&path, e))?;
            {
                let mut rest = tx.open_table(REST_LOG).map_err(|e| storage(&path, e))?;
                for seq in superseded {
                    rest.remove(seq).map_err(|e| storage(&path, e))?;
                }
            }
            tx.commit().map_err(|e| storage(&path, e))?;
        }
        let (ops_tx, ops_rx) = mpsc::channel();
        let stats = StoreStats::default();
        let writer = Writer {
            stats: stats.clone(),
            db: Some(db),
            path,
            index,
            undo: Vec::new(),
            deletes_since_compaction: 0,
        };
        let (closed_tx, closed) = tokio::sync::watch::channel(());
        std::thread::Builder::new()
            .name("netget-store".into())
            .spawn(move || {
                // The database (and its lock) goes with the writer, before `closed` closes.
                writer.run(ops_rx);
                drop(closed_tx);
            })
            .map_err(|e| Error::Io(format!("cannot start the store writer: {e}")))?;
        Ok((
            Store {
                ops_tx,
                stats,
                closed,
            },
            loaded,
        ))
    }

    /// Resolves once the store's file is let go of: after every handle is dropped and the
    /// writer has written what was queued.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.clone();
        async move { while closed.changed().await.is_ok() {} }
    }

    /// What the writer did so far.
    pub fn stats(&self) -> &StoreStats {
        &self.stats
    }

    fn queue(&self, op: Op, done_tx: Option<oneshot::Sender<Result<()>>>) -> Result<()> {
        self.ops_tx
            .send(Request { op, done_tx })
            .map_err(|_| Error::Closed("the store is closed".into()))
    }

    /// Queues `op` now (so it keeps its place among the directory's changes); the future
    /// resolves once it is on disk.
    fn durable(
        &self,
        op: Result<Op>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (done_tx, done_rx) = oneshot::channel();
        let queued = op.and_then(|op| self.queue(op, Some(done_tx)));
        async move {
            queued?;
            done_rx
                .await
                .map_err(|_| Error::Internal("the store writer stopped".into()))?
        }
    }

    /// Queues a REST registration now (keeping the order of directory changes) and resolves
    /// once it is on disk.
    pub fn put_rest(
        &self,
        instance: &Instance,
        ttl: Option<Duration>,
        token: Option<&str>,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let op =
            encode_record(instance, ttl, token).map(|bytes| Op::PutRest(rest_key(instance), bytes));
        self.durable(op)
    }

    /// Queues the removal of a REST registration now; resolves once it is on disk.
    pub fn delete_rest(
        &self,
        instance: &Instance,
    ) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        self.durable(Ok(Op::DeleteRest(rest_key(instance))))
    }

    /// Removes a REST registration without waiting (expiry, eviction).
    pub fn forget_rest(&self, instance: &Instance) {
        let _ = self.queue(Op::DeleteRest(rest_key(instance)), None);
    }

    /// Records that `claim.key` owns `service` in `network`; resolves once on disk.
    pub async fn put_claim(
        &self,
        network: &NetworkName,
        service: &ServiceName,
        claim: &Claim,
    ) -> Result<()> {
        self.durable(Ok(Op::PutClaim(
            format!("{network}/{service}"),
            format!("{} {}", claim.at, claim.key),
        )))
        .await
    }

    /// Replaces the stored network policies.
    pub async fn set_networks(&self, networks: &[NetworkConfig]) -> Result<()> {
        let mut rows = Vec::new();
        for n in networks {
            let bytes = serde_json::to_vec(&n.policy)
                .map_err(|e| Error::Internal(format!("encode: {e}")))?;
            rows.push((n.name.to_string(), bytes));
        }
        self.durable(Ok(Op::SetNetworks(rows))).await
    }
}

/// A REST registration's row, as the writer stores it.
pub(crate) fn encode_record(
    instance: &Instance,
    ttl: Option<Duration>,
    token: Option<&str>,
) -> Result<Vec<u8>> {
    let record = RestRecordRef {
        instance,
        ttl_ms: ttl.map(|t| t.as_millis() as u64),
        token,
    };
    let mut bytes = Vec::with_capacity(512);
    serde_json::to_writer(&mut bytes, &record)
        .map_err(|e| Error::Internal(format!("encode: {e}")))?;
    Ok(bytes)
}

/// Reads back the row `seq` of the store at `path`: a row that is not a record is the store's
/// corruption, said as such (and never a panic: the fuzz target `store_record` holds it to that).
pub(crate) fn decode_record(seq: u64, bytes: &[u8], path: &Path) -> Result<RestRecord> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Io(format!(
            "store {}: record {seq} is unreadable ({e}); the store is corrupt — move it aside to start empty",
            path.display(),
        ))
    })
}

/// Reads everything back, and builds the writer's index of REST rows. Also returns the rows of
/// REST registrations superseded by a later row (none, unless a bug left them).
fn load(db: &Database, path: &Path) -> Result<(Loaded, RestIndex, Vec<u64>)> {
    let tx = db.begin_read().map_err(|e| storage(path, e))?;
    let mut loaded = Loaded::default();
    let mut index = RestIndex {
        seqs: HashMap::new(),
        next: 1,
    };
    let rest = tx.open_table(REST_LOG).map_err(|e| storage(path, e))?;
    let mut superseded = Vec::new();
    let mut rows = Vec::new();
    for row in rest.iter().map_err(|e| storage(path, e))? {
        let (k, v) = row.map_err(|e| storage(path, e))?;
        let seq = k.value();
        let record = decode_record(seq, v.value(), path)?;
        // This writer never leaves two rows for one instance; were there two, the later wins
        // (and the earlier is removed on open).
        if let Some(earlier) = index.seqs.insert(rest_key(&record.instance), seq) {
            superseded.push(earlier);
        }
        index.next = seq + 1;
        rows.push((seq, record));
    }
    let dropped: std::collections::HashSet<u64> = superseded.iter().copied().collect();
    loaded.rest = rows
        .into_iter()
        .filter(|(seq, _)| !dropped.contains(seq))
        .map(|(_, record)| record)
        .collect();
    let claims = tx.open_table(CLAIMS).map_err(|e| storage(path, e))?;
    for row in claims.iter().map_err(|e| storage(path, e))? {
        let (k, v) = row.map_err(|e| storage(path, e))?;
        if let Some((net, svc)) = k.value().split_once('/') {
            if let (Ok(n), Ok(s)) = (NetworkName::new(net), ServiceName::new(svc)) {
                // `AT KEY`; a bare key is a claim stored before claims had times (the earliest).
                let (at, key) = match v.value().split_once(' ') {
                    Some((at, key)) => (at.parse().unwrap_or(0), key),
                    None => (0, v.value()),
                };
                let claim = Claim {
                    key: std::sync::Arc::from(key),
                    at,
                };
                loaded.claims.push((n, s, claim));
            }
        }
    }
    let networks = tx.open_table(NETWORKS).map_err(|e| storage(path, e))?;
    for row in networks.iter().map_err(|e| storage(path, e))? {
        let (k, v) = row.map_err(|e| storage(path, e))?;
        let name = NetworkName::new(k.value())?;
        let policy: Policy = serde_json::from_slice(v.value()).map_err(|e| {
            Error::Io(format!(
                "store {}: network {name} is unreadable ({e})",
                path.display()
            ))
        })?;
        loaded.networks.push(NetworkConfig { name, policy });
    }
    Ok((loaded, index, superseded))
}

/// The schema version a store says it has; `None` for a new (empty) store.
fn schema_version(db: &Database, path: &Path) -> Result<Option<u64>> {
    let tx = db.begin_read().map_err(|e| storage(path, e))?;
    match tx.open_table(META) {
        Ok(meta) => Ok(meta
            .get("schema_version")
            .map_err(|e| storage(path, e))?
            .map(|v| v.value())),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(storage(path, e)),
    }
}

/// Brings an older store to [`SCHEMA_VERSION`] and refuses a newer one, before writing anything.
/// Each step reads the old rows and writes the new ones in the transaction that sets the new
/// version, so a migration is all or nothing:
///
/// - 1 → 2: the rows of `rest_registrations` (keyed by `network/service/id`) move, in key
///   order, to `rest_log` under sequence numbers 1, 2, …, and the old table is dropped.
fn migrate(db: &Database, path: &Path) -> Result<()> {
    let found = schema_version(db, path)?;
    match found {
        Some(SCHEMA_VERSION) => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => {
            return Err(Error::Io(format!(
                "store {} has schema version {v}, newer than this netget understands ({SCHEMA_VERSION}); run a newer netget or move the store aside",
                path.display()
            )))
        }
        Some(1) | None => {}
        Some(v) => {
            return Err(Error::Io(format!(
                "store {} has schema version {v}, which no netget wrote; it may be corrupt — move it aside to start empty",
                path.display()
            )))
        }
    }
    let tx = db.begin_write().map_err(|e| storage(path, e))?;
    {
        // Create the tables so readers find them.
        let mut log = tx.open_table(REST_LOG).map_err(|e| storage(path, e))?;
        tx.open_table(CLAIMS).map_err(|e| storage(path, e))?;
        tx.open_table(NETWORKS).map_err(|e| storage(path, e))?;
        if found == Some(1) {
            let old = tx.open_table(REST_V1).map_err(|e| storage(path, e))?;
            for (row, seq) in old.iter().map_err(|e| storage(path, e))?.zip(1u64..) {
                let (_, v) = row.map_err(|e| storage(path, e))?;
                log.insert(seq, v.value()).map_err(|e| storage(path, e))?;
            }
        }
        tx.open_table(META)
            .map_err(|e| storage(path, e))?
            .insert("schema_version", SCHEMA_VERSION)
            .map_err(|e| storage(path, e))?;
    }
    if found == Some(1) {
        tx.delete_table(REST_V1).map_err(|e| storage(path, e))?;
    }
    tx.commit().map_err(|e| storage(path, e))?;
    if let Some(v) = found {
        tracing::info!(file = %path.display(), from = v, to = SCHEMA_VERSION, "store migrated");
    }
    Ok(())
}

/// Takes `first` and whatever else is queued (up to [`MAX_BATCH`]) into the next transaction.
fn take(
    ops_rx: &mpsc::Receiver<Request>,
    first: Option<Request>,
    ops: &mut Vec<Op>,
    waiting: &mut Vec<oneshot::Sender<Result<()>>>,
) {
    let mut next = first.or_else(|| ops_rx.try_recv().ok());
    while let Some(Request { op, done_tx }) = next {
        ops.push(op);
        waiting.extend(done_tx);
        next = if ops.len() < MAX_BATCH {
            ops_rx.try_recv().ok()
        } else {
            None
        };
    }
}

/// The writer thread's state.
struct Writer {
    /// `None` after a write failed on I/O: redb refuses every later transaction of a database
    /// that saw one ("close and re-open"), so the next write reopens it first.
    db: Option<Database>,
    path: PathBuf,
    index: RestIndex,
    /// The rows of the keys the current transaction moved or removed, to put the index back
    /// if it fails. Reused by every transaction.
    undo: Vec<(String, u64)>,
    deletes_since_compaction: u64,
    stats: StoreStats,
}

impl Writer {
    /// Group commit, then acknowledge; until every handle is dropped.
    fn run(mut self, ops_rx: mpsc::Receiver<Request>) {
        let mut ops = Vec::new();
        let mut waiting = Vec::new();
        let mut coalesce = Coalesce::default();
        loop {
            if ops.is_empty() {
                match ops_rx.recv() {
                    Ok(first) => take(&ops_rx, Some(first), &mut ops, &mut waiting),
                    Err(_) => return,
                }
            }
            if let Some((target, wait)) = coalesce.wait(ops.len()) {
                let until = Instant::now() + wait;
                while ops.len() < target {
                    match ops_rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                        Ok(request) => take(&ops_rx, Some(request), &mut ops, &mut waiting),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            let batch = ops.len();
            let started = Instant::now();
            let result = self.apply(&mut ops);
            let took = started.elapsed();
            self.stats.commits.inc();
            self.stats.writes.inc_by(batch as u64);
            self.stats.commit_seconds.observe(took.as_secs_f64());
            // What came in while this commit synced goes to the next one; counted before the
            // acknowledgements bring this commit's writers back.
            let acks = std::mem::take(&mut waiting);
            take(&ops_rx, None, &mut ops, &mut waiting);
            coalesce.committed(batch, ops.len(), took);
            match &result {
                Ok(deletes) => self.deletes_since_compaction += deletes,
                Err(e) => tracing::error!(error = %e, "store write failed"),
            }
            for done_tx in acks {
                let _ = done_tx.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
            }
            self.compact_if_due();
        }
    }

    /// Compacts the file once enough rows were removed since the last time: redb reuses the
    /// pages it frees but never gives them back, so without this the file only grows.
    fn compact_if_due(&mut self) {
        if self.deletes_since_compaction < COMPACT_EVERY_DELETES {
            return;
        }
        self.deletes_since_compaction = 0;
        let Some(db) = self.db.as_mut() else {
            return;
        };
        match db.compact() {
            Ok(_) => tracing::debug!(file = %self.path.display(), "store compacted"),
            Err(e) => tracing::warn!(error = %e, "store compaction failed"),
        }
    }

    /// Writes `ops` (emptying it) in one durable transaction; returns the rows it removed. On
    /// failure nothing of it is stored, and the index is put back as it was.
    fn apply(&mut self, ops: &mut Vec<Op>) -> Result<u64> {
        self.undo.clear();
        let first = self.index.next;
        let result = self.write(ops);
        ops.clear();
        if let Err(Error::Io(_)) = &result {
            // Dropped now, so its lock is let go of before the reopen.
            self.db = None;
        }
        if result.is_err() {
            let seqs = &mut self.index.seqs;
            for (key, seq) in self.undo.drain(..).rev() {
                seqs.insert(key, seq);
            }
            // What is left at one of this transaction's rows was not indexed before it.
            seqs.retain(|_, seq| *seq < first);
        }
        result
    }

    /// The database, reopened (and the index read back from it) after a failed write: a full
    /// or read-only disk refuses writes while it lasts, and they go through again once space
    /// or write access is back, with no restart.
    fn reopened(&mut self) -> Result<&Database> {
        if self.db.is_none() {
            let db = Database::create(&self.path).map_err(|e| {
                Error::Io(format!(
                    "store {} cannot be reopened after a failed write: {e}; writes are refused until it can",
                    self.path.display()
                ))
            })?;
            let (_, index, _) = load(&db, &self.path)?;
            self.index = index;
            tracing::info!(file = %self.path.display(), "store reopened after a failed write");
            self.db = Some(db);
        }
        self.db
            .as_ref()
            .ok_or_else(|| Error::Internal("the store is not open".into()))
    }

    fn write(&mut self, ops: &mut Vec<Op>) -> Result<u64> {
        self.reopened()?;
        let Some(db) = self.db.as_ref() else {
            return Err(Error::Internal("the store is not open".into()));
        };
        let path = &self.path;
        let index = &mut self.index;
        let undo = &mut self.undo;
        let tx = db.begin_write().map_err(|e| storage(path, e))?;
        let mut deletes = 0;
        {
            let mut rest = tx.open_table(REST_LOG).map_err(|e| storage(path, e))?;
            let mut claims = None;
            let mut networks = None;
            for op in ops.drain(..) {
                match op {
                    Op::PutRest(key, value) => {
                        let seq = index.next;
                        index.next += 1;
                        match index.seqs.entry(key) {
                            Entry::Occupied(mut at) => {
                                let old = at.insert(seq);
                                undo.push((at.key().clone(), old));
                                rest.remove(old).map_err(|e| storage(path, e))?;
                                deletes += 1;
                            }
                            Entry::Vacant(at) => {
                                at.insert(seq);
                            }
                        }
                        rest.insert(seq, value.as_slice())
                            .map_err(|e| storage(path, e))?;
                    }
                    Op::DeleteRest(key) => {
                        if let Some(old) = index.seqs.remove(key.as_str()) {
                            undo.push((key, old));
                            rest.remove(old).map_err(|e| storage(path, e))?;
                            deletes += 1;
                        }
                    }
                    Op::PutClaim(k, v) => {
                        if claims.is_none() {
                            claims = Some(tx.open_table(CLAIMS).map_err(|e| storage(path, e))?);
                        }
                        if let Some(claims) = &mut claims {
                            claims
                                .insert(k.as_str(), v.as_str())
                                .map_err(|e| storage(path, e))?;
                        }
                    }
                    #[cfg(test)]
                    Op::Fail => return Err(Error::Io("failure injected".into())),
                    Op::SetNetworks(rows) => {
                        if networks.is_none() {
                            networks = Some(tx.open_table(NETWORKS).map_err(|e| storage(path, e))?);
                        }
                        if let Some(networks) = &mut networks {
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
        }
        // The default durability is immediate: commit returns after fsync (one per commit,
        // redb's checksummed one-phase commit).
        tx.commit().map_err(|e| storage(path, e))?;
        Ok(deletes)
    }
}

#[cfg(test)]
mod tests;
