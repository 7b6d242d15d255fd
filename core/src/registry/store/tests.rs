//! Tests of the store: durability, restarts, migration, compaction, refusals.

use super::*;
use crate::model::{InstanceId, Registration};
use redb::TableHandle;

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

/// Opens the store again once the previous handle's writer thread has let go of the file
/// (it holds the database until its channel closes).
fn reopen(dir: &Path) -> (Store, Loaded) {
    for _ in 0..100 {
        match Store::open(dir) {
            Ok(s) => return s,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    Store::open(dir).expect("store reopens")
}

/// Waits for the writer of a dropped store to let go of the file, then opens it with redb.
fn raw(dir: &Path) -> Database {
    for _ in 0..100 {
        if let Ok(db) = Database::create(dir.join(STORE_FILE)) {
            return db;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Database::create(dir.join(STORE_FILE)).expect("store file opens")
}

/// The store's writer on a fresh file in `dir`, driven by hand (no thread, no channel).
fn writer_in(dir: &Path) -> Writer {
    let path = dir.join(STORE_FILE);
    let db = Database::create(&path).unwrap();
    migrate(&db, &path).unwrap();
    let (_, index, _) = load(&db, &path).unwrap();
    Writer {
        db: Some(db),
        path,
        index,
        undo: Vec::new(),
        deletes_since_compaction: 0,
        stats: StoreStats::default(),
    }
}

fn rest_rows(db: &Database) -> Vec<(u64, RestRecord)> {
    let tx = db.begin_read().unwrap();
    let table = tx.open_table(REST_LOG).unwrap();
    table
        .iter()
        .unwrap()
        .map(|row| {
            let (k, v) = row.unwrap();
            (k.value(), serde_json::from_slice(v.value()).unwrap())
        })
        .collect()
}

#[test]
fn a_commit_waits_for_more_writers_only_after_large_commits_and_never_long() {
    let mut c = Coalesce::default();
    assert_eq!(c.wait(1), None, "nothing seen yet: commit at once");
    c.committed(1, 0, Duration::from_micros(400));
    assert_eq!(c.wait(1), None, "a lone writer never waits");
    c.committed(2, 1, Duration::from_micros(400));
    assert_eq!(c.wait(1), None, "small commits never wait");
    // 30 committed while 34 came in: the next waits for 7/8 of the 64 writers, for at
    // most half the last commit's time.
    c.committed(30, 34, Duration::from_micros(400));
    assert_eq!(c.wait(34), Some((56, Duration::from_micros(200))));
    assert_eq!(c.wait(56), None, "already as large as worth waiting for");
    c.committed(56, 0, Duration::from_millis(30));
    assert_eq!(
        c.wait(3),
        Some((49, MAX_COALESCE_WAIT)),
        "a slow disk never makes a commit wait more than the cap"
    );
    c.committed(MAX_BATCH * 2, MAX_BATCH, Duration::from_micros(10));
    assert_eq!(c.wait(1).map(|(target, _)| target), Some(MAX_BATCH));
}

#[tokio::test]
async fn writers_with_one_write_in_flight_each_share_commits_and_all_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path()).unwrap();
    let (writers, each) = (32, 20);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..each {
                store
                    .put_rest(&inst(&format!("w{w}-{i}")), None, None)
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.writes.get(), (writers * each) as u64);
    let commits = stats.commits.get();
    assert!(
        commits * 2 <= stats.writes.get(),
        "{commits} commits for {} writes: writers in flight together must share fsyncs",
        stats.writes.get()
    );
    drop(store);
    let (_, loaded) = reopen(dir.path());
    assert_eq!(loaded.rest.len(), writers * each);
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
                &crate::security::Claim {
                    key: "KEY".into(),
                    at: 42,
                },
            )
            .await
            .unwrap();
        store
            .set_networks(&[NetworkConfig::open("development").unwrap()])
            .await
            .unwrap();
    }
    let (_store, loaded) = reopen(dir.path());
    assert_eq!(loaded.rest.len(), 1);
    assert_eq!(loaded.rest[0].instance.id.as_str(), "a");
    assert_eq!(loaded.rest[0].ttl_ms, Some(30_000));
    assert_eq!(loaded.rest[0].token.as_deref(), Some("tok"));
    assert_eq!(loaded.claims.len(), 1);
    assert_eq!(
        (&*loaded.claims[0].2.key, loaded.claims[0].2.at),
        ("KEY", 42),
        "a claim keeps its key and its time"
    );
    assert_eq!(loaded.networks.len(), 1);
}

#[tokio::test]
async fn a_re_registration_replaces_its_row_also_within_one_commit_and_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let with_address = |id: &str, address: &str| {
        let mut i = inst(id);
        i.address = address.into();
        i
    };
    {
        let (store, _) = Store::open(dir.path()).unwrap();
        // Queued together, so (most likely) one transaction: put, replace, delete, put again.
        type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>>>>;
        let pending: Vec<Pending> = vec![
            Box::pin(store.put_rest(&with_address("a", "http://a1"), None, None)),
            Box::pin(store.put_rest(&with_address("a", "http://a2"), None, None)),
            Box::pin(store.put_rest(&with_address("b", "http://b1"), None, None)),
            Box::pin(store.delete_rest(&inst("b"))),
            Box::pin(store.put_rest(&with_address("b", "http://b2"), None, None)),
            Box::pin(store.put_rest(&with_address("c", "http://c1"), None, None)),
        ];
        for p in pending {
            p.await.unwrap();
        }
        store.forget_rest(&inst("c"));
        store.delete_rest(&inst("never-stored")).await.unwrap();
    }
    {
        let (store, loaded) = reopen(dir.path());
        let mut got: Vec<_> = loaded
            .rest
            .iter()
            .map(|r| (r.instance.id.to_string(), r.instance.address.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("a".into(), "http://a2".into()),
                ("b".into(), "http://b2".into())
            ]
        );
        // The index was rebuilt from the records: a replacement after the restart removes
        // the row written before it.
        store
            .put_rest(&with_address("a", "http://a3"), None, None)
            .await
            .unwrap();
    }
    let db = raw(dir.path());
    let rows = rest_rows(&db);
    let addresses: Vec<_> = rows
        .iter()
        .map(|(_, r)| r.instance.address.as_str())
        .collect();
    assert_eq!(
        addresses,
        ["http://b2", "http://a3"],
        "one row per instance"
    );
    assert!(rows.windows(2).all(|w| w[0].0 < w[1].0));
}

#[tokio::test]
async fn a_version_1_store_is_migrated_and_loads_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let stored = |id: &str, ttl_ms| RestRecord {
        instance: inst(id),
        ttl_ms,
        token: Some(format!("digest-{id}")),
    };
    {
        // Version 1's layout, written as version 1 did.
        let db = Database::create(dir.path().join(STORE_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        {
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", 1)
                .unwrap();
            let mut rest = tx.open_table(REST_V1).unwrap();
            for r in [stored("z", Some(5_000)), stored("a", None)] {
                let key = rest_key(&r.instance);
                rest.insert(key.as_str(), serde_json::to_vec(&r).unwrap().as_slice())
                    .unwrap();
            }
            tx.open_table(CLAIMS)
                .unwrap()
                .insert("secure/orders", "KEY")
                .unwrap();
            tx.open_table(NETWORKS).unwrap();
        }
        tx.commit().unwrap();
    }
    {
        let (store, loaded) = Store::open(dir.path()).unwrap();
        let ids: Vec<_> = loaded.rest.iter().map(|r| r.instance.id.as_str()).collect();
        assert_eq!(ids, ["a", "z"], "in version 1's key order");
        assert_eq!(loaded.rest[1].ttl_ms, Some(5_000));
        assert_eq!(loaded.rest[1].token.as_deref(), Some("digest-z"));
        assert_eq!(loaded.claims.len(), 1);
        assert_eq!(
            (&*loaded.claims[0].2.key, loaded.claims[0].2.at),
            ("KEY", 0),
            "a claim stored without a time reads as the earliest"
        );
        // Migrated rows are indexed like any other: replacing one removes it.
        let mut moved = inst("z");
        moved.address = "http://moved".into();
        store.put_rest(&moved, None, None).await.unwrap();
        store.delete_rest(&inst("a")).await.unwrap();
    }
    let db = raw(dir.path());
    assert_eq!(
        schema_version(&db, dir.path()).unwrap(),
        Some(SCHEMA_VERSION)
    );
    {
        let tx = db.begin_read().unwrap();
        assert!(
            matches!(
                tx.open_table(REST_V1),
                Err(TableError::TableDoesNotExist(_))
            ),
            "the version 1 table is gone"
        );
    }
    let rows = rest_rows(&db);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].1.instance.address, "http://moved");
    assert!(rows[0].0 > 2, "after the migrated rows' numbers");
    drop(db);
    let (_store, loaded) = reopen(dir.path());
    assert_eq!(loaded.rest.len(), 1);
    assert_eq!(loaded.claims.len(), 1);
}

#[test]
fn a_failed_transaction_leaves_the_index_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = writer_in(dir.path());
    let put = |id: &str, address: &str| {
        let mut i = inst(id);
        i.address = address.into();
        let record = RestRecordRef {
            instance: &i,
            ttl_ms: None,
            token: None,
        };
        Op::PutRest(rest_key(&i), serde_json::to_vec(&record).unwrap())
    };
    let delete = |id: &str| Op::DeleteRest(rest_key(&inst(id)));
    writer
        .apply(&mut vec![put("a", "http://a1"), put("b", "http://b1")])
        .unwrap();
    let before = writer.index.seqs.clone();
    let e = writer.apply(&mut vec![
        put("a", "http://a2"),
        put("a", "http://a3"),
        delete("b"),
        put("b", "http://b2"),
        put("c", "http://c1"),
        put("d", "http://d1"),
        delete("d"),
        Op::Fail,
    ]);
    assert!(e.is_err());
    assert_eq!(writer.index.seqs, before);
    // And it still matches the rows: replacing and removing after the failure leaves one
    // row per instance.
    writer
        .apply(&mut vec![
            put("a", "http://a4"),
            delete("b"),
            put("c", "http://c2"),
        ])
        .unwrap();
    let rows = rest_rows(writer.db.as_ref().unwrap());
    let addresses: Vec<_> = rows
        .iter()
        .map(|(_, r)| r.instance.address.as_str())
        .collect();
    assert_eq!(addresses, ["http://a4", "http://c2"]);
}

#[test]
fn a_store_from_a_newer_netget_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(STORE_FILE);
    {
        let db = Database::create(&file).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", SCHEMA_VERSION + 1)
            .unwrap();
        tx.commit().unwrap();
    }
    let e = Store::open(dir.path()).unwrap_err();
    assert!(e.to_string().contains("newer"), "{e}");
    // Nothing was written (redb itself rewrites its header's bookkeeping on open and close,
    // so the bytes are not compared): no table was created, the version is as it was.
    let db = Database::create(&file).unwrap();
    let tx = db.begin_read().unwrap();
    let tables: Vec<String> = tx
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_string())
        .collect();
    assert_eq!(tables, ["meta"]);
    assert_eq!(
        schema_version(&db, &file).unwrap(),
        Some(SCHEMA_VERSION + 1)
    );
}

#[test]
fn a_record_is_encoded_by_reference_as_it_is_decoded() {
    let i = inst("a");
    let owned = RestRecord {
        instance: i.clone(),
        ttl_ms: Some(1),
        token: Some("t".into()),
    };
    let borrowed = RestRecordRef {
        instance: &i,
        ttl_ms: Some(1),
        token: Some("t"),
    };
    assert_eq!(
        serde_json::to_string(&owned).unwrap(),
        serde_json::to_string(&borrowed).unwrap()
    );
    assert_eq!(rest_key(&i), "development/web/a");
}

#[test]
fn compaction_after_heavy_churn_gives_the_file_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(STORE_FILE);
    let mut writer = writer_in(dir.path());
    let n = usize::try_from(COMPACT_EVERY_DELETES).unwrap();
    let pad = "x".repeat(400);
    let mut puts: Vec<Op> = (0..n)
        .map(|k| {
            let mut i = inst(&format!("i{k}"));
            i.address = format!("http://127.0.0.1/{pad}/{k}");
            let record = RestRecordRef {
                instance: &i,
                ttl_ms: None,
                token: None,
            };
            Op::PutRest(rest_key(&i), serde_json::to_vec(&record).unwrap())
        })
        .collect();
    writer.apply(&mut puts).unwrap();
    let full = std::fs::metadata(&path).unwrap().len();
    let mut deletes: Vec<Op> = (0..n)
        .map(|k| Op::DeleteRest(rest_key(&inst(&format!("i{k}")))))
        .collect();
    writer.deletes_since_compaction += writer.apply(&mut deletes).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        full,
        "redb keeps freed pages"
    );
    writer.compact_if_due();
    let compacted = std::fs::metadata(&path).unwrap().len();
    assert!(
        compacted * 4 < full,
        "{n} rows removed: the file went from {full} to {compacted} bytes"
    );
}
