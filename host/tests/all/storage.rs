//! One storage suite, run against SQLite and PostgreSQL alike: the kv table, apps,
//! functions, routes, invocation records, and the kv service's validation.

use crate::support::{Backend, TestDb};
use picloud::services::kv::{KvService, MAX_VALUE_BYTES};
use picloud::storage::kv::IncrementError;
use picloud::storage::{Db, InvocationFilter, InvocationRecord, StorageError};
use picloud_runtime::kv::Host as _;
use picloud_runtime::{GuestError, LimitOverrides};

// Each listed test, once per backend.
on_both_backends!(
    kv_values_round_trip_with_their_json_type,
    kv_list_pages_by_prefix_in_key_order,
    kv_entries_past_their_ttl_are_invisible_and_swept,
    kv_increment_counts_from_zero_and_refuses_non_integers,
    concurrent_increments_lose_no_update,
    apps_never_see_each_others_kv,
    deleting_an_app_deletes_what_it_owns,
    deploys_make_numbered_versions_and_share_artifacts,
    routes_are_unique_per_app_method_and_path,
    invocation_records_list_newest_first_with_filters,
    the_recorder_stores_every_record_after_a_linger_or_at_once_on_flush,
    the_kv_service_refuses_bad_input_with_invalid_errors,
    a_jobs_lease_is_held_by_one_node_until_it_expires_or_is_given_up,
    a_topics_durable_messages_become_visible_in_the_order_of_their_ids,
);

// Background jobs a cluster needs done once (retention, the kv sweep) run on the node
// holding their lease; two `Db`s on one database are two nodes.
async fn a_jobs_lease_is_held_by_one_node_until_it_expires_or_is_given_up(backend: Backend) {
    let Some(test_db) = TestDb::new(backend).await else {
        return;
    };
    let (a, b) = (test_db.open().await, test_db.open().await);
    // Whether `node` of `db` holds the retention lease after claiming it at `at` ms.
    async fn claim(db: &Db, node: &str, at: i64) -> bool {
        db.claim_lease("retention", node, at, 3000).await.unwrap()
    }
    let t = 1_000_000;
    assert!(claim(&a, "node-a", t).await);
    assert!(!claim(&b, "node-b", t + 1).await);
    assert!(claim(&a, "node-a", t + 1000).await, "the holder renews");
    assert!(
        !claim(&b, "node-b", t + 3500).await,
        "the renewal moved the expiry"
    );
    assert!(
        b.claim_lease("kv-sweep", "node-b", t, 3000).await.unwrap(),
        "a lease per job"
    );
    b.release_lease("retention", "node-b").await.unwrap();
    assert!(
        !claim(&b, "node-b", t + 3600).await,
        "only the holder gives a lease up"
    );
    assert!(
        claim(&b, "node-b", t + 4000).await,
        "expired: another node takes it over"
    );
    assert!(!claim(&a, "node-a", t + 4001).await);
    b.release_lease("retention", "node-b").await.unwrap();
    assert!(
        claim(&a, "node-a", t + 4002).await,
        "given up: taken at once"
    );
}

async fn db_with_apps(backend: Backend, apps: &[&str]) -> Option<(TestDb, Db, Vec<String>)> {
    let test_db = TestDb::new(backend).await?;
    let db = test_db.open().await;
    let mut ids = Vec::new();
    for app in apps {
        ids.push(
            db.create_app(app, &LimitOverrides::default())
                .await
                .unwrap()
                .id,
        );
    }
    Some((test_db, db, ids))
}

async fn kv_values_round_trip_with_their_json_type(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let a = &ids[0];
    for (key, value) in [
        ("string", r#""1""#),
        ("number", "1"),
        ("float", "1.5"),
        ("null", "null"),
        ("object", r#"{"nested":{"list":[1,"two",null,true]}}"#),
        ("ключ🔑", r#""unicode ✓""#),
    ] {
        db.kv_set(a, "c", key, value, None).await.unwrap();
        assert_eq!(
            db.kv_get(a, "c", key).await.unwrap().as_deref(),
            Some(value),
            "{key}"
        );
    }
    db.kv_set(a, "c", "number", "2", None).await.unwrap();
    assert_eq!(
        db.kv_get(a, "c", "number").await.unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(db.kv_get(a, "other", "number").await.unwrap(), None);
    assert!(db.kv_delete(a, "c", "number").await.unwrap());
    assert!(!db.kv_delete(a, "c", "number").await.unwrap());
    assert_eq!(db.kv_get(a, "c", "number").await.unwrap(), None);
}

async fn kv_list_pages_by_prefix_in_key_order(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let a = &ids[0];
    for key in [
        "user:b", "user:a", "user:c", "user;", "admin", "user:ä", "user:Z",
    ] {
        db.kv_set(a, "c", key, &format!("\"{key}\""), None)
            .await
            .unwrap();
    }
    let keys = |page: Vec<(String, String)>| page.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    // Byte order on both backends: 'Z' < 'a' < 'ä'.
    assert_eq!(
        keys(db.kv_list(a, "c", "user:", None, 10).await.unwrap()),
        ["user:Z", "user:a", "user:b", "user:c", "user:ä"]
    );
    assert_eq!(
        keys(db.kv_list(a, "c", "user:", None, 2).await.unwrap()),
        ["user:Z", "user:a"]
    );
    assert_eq!(
        keys(
            db.kv_list(a, "c", "user:", Some("user:a"), 2)
                .await
                .unwrap()
        ),
        ["user:b", "user:c"]
    );
    assert_eq!(
        keys(db.kv_list(a, "c", "", None, 100).await.unwrap()).len(),
        7
    );
    assert!(
        db.kv_list(a, "c", "nothing", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn kv_entries_past_their_ttl_are_invisible_and_swept(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let a = &ids[0];
    let now = picloud::storage::now_ms();
    db.kv_set(a, "c", "gone", "1", Some(now - 1)).await.unwrap();
    db.kv_set(a, "c", "live", "2", Some(now + 60_000))
        .await
        .unwrap();
    assert_eq!(db.kv_get(a, "c", "gone").await.unwrap(), None);
    assert_eq!(
        db.kv_get(a, "c", "live").await.unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        db.kv_list(a, "c", "", None, 10).await.unwrap(),
        vec![("live".to_owned(), "2".to_owned())]
    );
    assert!(
        !db.kv_delete(a, "c", "gone").await.unwrap(),
        "deleting an expired entry reports nothing deleted"
    );
    db.kv_set(a, "c", "gone2", "1", Some(now - 1))
        .await
        .unwrap();
    assert_eq!(
        db.kv_increment(a, "c", "gone2", 5).await.unwrap(),
        5,
        "an expired counter starts again from 0"
    );
    db.kv_set(a, "c", "gone3", "1", Some(now - 1))
        .await
        .unwrap();
    assert_eq!(db.sweep_expired_kv().await.unwrap(), 1);
    // The sweep records what it removed, as `expire` change events.
    let events = db.change_events(a, 0, 100).await.unwrap();
    let expired: Vec<_> = events
        .iter()
        .filter(|e| e.op == "expire")
        .map(|e| (e.source.as_str(), e.collection.as_str(), e.key.as_str()))
        .collect();
    assert_eq!(expired, [("kv", "c", "gone3")]);
    assert_eq!(db.sweep_expired_kv().await.unwrap(), 0);
}

async fn kv_increment_counts_from_zero_and_refuses_non_integers(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let a = &ids[0];
    assert_eq!(db.kv_increment(a, "c", "n", 3).await.unwrap(), 3);
    assert_eq!(db.kv_increment(a, "c", "n", -5).await.unwrap(), -2);
    assert_eq!(db.kv_get(a, "c", "n").await.unwrap().as_deref(), Some("-2"));
    db.kv_set(a, "c", "s", r#""text""#, None).await.unwrap();
    assert!(matches!(
        db.kv_increment(a, "c", "s", 1).await,
        Err(IncrementError::NotInteger)
    ));
    db.kv_set(a, "c", "max", &i64::MAX.to_string(), None)
        .await
        .unwrap();
    assert!(matches!(
        db.kv_increment(a, "c", "max", 1).await,
        Err(IncrementError::Overflow)
    ));
}

async fn concurrent_increments_lose_no_update(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let a = ids[0].clone();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (db, a) = (db.clone(), a.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    db.kv_increment(&a, "c", "hits", 1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        db.kv_get(&a, "c", "hits").await.unwrap().as_deref(),
        Some("80")
    );
}

async fn apps_never_see_each_others_kv(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a", "b"]).await else {
        return;
    };
    let (a, b) = (&ids[0], &ids[1]);
    db.kv_set(a, "c", "secret", r#""a's""#, None).await.unwrap();
    assert_eq!(db.kv_get(b, "c", "secret").await.unwrap(), None);
    assert!(db.kv_list(b, "c", "", None, 100).await.unwrap().is_empty());
    assert!(!db.kv_delete(b, "c", "secret").await.unwrap());
    assert_eq!(
        db.kv_increment(b, "c", "secret", 1).await.unwrap(),
        1,
        "b's own key of the same name"
    );
    assert_eq!(
        db.kv_get(a, "c", "secret").await.unwrap().as_deref(),
        Some(r#""a's""#)
    );
}

async fn deleting_an_app_deletes_what_it_owns(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    assert!(matches!(
        db.create_app("a", &LimitOverrides::default()).await,
        Err(StorageError::Conflict)
    ));
    db.kv_set(&ids[0], "c", "k", "1", None).await.unwrap();
    db.deploy_function(&ids[0], "f", "component", "sha", b"bytes")
        .await
        .unwrap();
    assert!(db.delete_app("a").await.unwrap());
    assert!(!db.delete_app("a").await.unwrap());
    assert!(db.get_app("a").await.unwrap().is_none());
    let again = db
        .create_app("a", &LimitOverrides::default())
        .await
        .unwrap();
    assert_eq!(db.kv_get(&again.id, "c", "k").await.unwrap(), None);
    assert_eq!(
        db.kv_get(&ids[0], "c", "k").await.unwrap(),
        None,
        "the old app's rows are gone"
    );
    assert!(db.list_functions(&again.id).await.unwrap().is_empty());
}

async fn deploys_make_numbered_versions_and_share_artifacts(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let a = &ids[0];
    assert_eq!(
        db.deploy_function(a, "f", "component", "sha-1", b"one")
            .await
            .unwrap()
            .version,
        1
    );
    assert_eq!(
        db.deploy_function(a, "f", "component", "sha-2", b"two")
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(
        db.deploy_function(a, "g", "component", "sha-1", b"one")
            .await
            .unwrap()
            .version,
        1
    );
    let f = db.get_function(a, "f").await.unwrap().unwrap();
    assert_eq!((f.active_version, f.sha256.as_str()), (2, "sha-2"));
    let versions: Vec<i64> = db
        .list_versions(&f.id)
        .await
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, [2, 1]);
    assert!(db.activate_version(&f.id, 1).await.unwrap());
    assert!(!db.activate_version(&f.id, 7).await.unwrap());
    assert_eq!(
        db.get_function(a, "f").await.unwrap().unwrap().sha256,
        "sha-1"
    );
    assert_eq!(
        db.artifact("sha-1").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    let names: Vec<String> = db
        .list_functions(a)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(names, ["f", "g"]);
}

async fn routes_are_unique_per_app_method_and_path(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let a = &ids[0];
    db.deploy_function(a, "f", "component", "sha", b"x")
        .await
        .unwrap();
    let f = db.get_function(a, "f").await.unwrap().unwrap();
    let route = db
        .create_route(a, "GET", "/x/:id", &f.id, "f", "sync")
        .await
        .unwrap();
    assert!(matches!(
        db.create_route(a, "GET", "/x/:id", &f.id, "f", "sync")
            .await,
        Err(StorageError::Conflict)
    ));
    db.create_route(a, "POST", "/x/:id", &f.id, "f", "sync")
        .await
        .unwrap();
    assert_eq!(db.list_routes(a).await.unwrap().len(), 2);
    assert!(db.delete_route(a, &route.id).await.unwrap());
    assert!(db.delete_function(a, "f").await.unwrap());
    assert!(
        db.list_routes(a).await.unwrap().is_empty(),
        "routes go with their function"
    );
}

async fn invocation_records_list_newest_first_with_filters(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let record = |n: u32, function: &str, status: &str| InvocationRecord {
        id: format!("0000-{n:04}"),
        app: "a".into(),
        function: function.into(),
        version: 1,
        trigger: "http".into(),
        status: status.into(),
        http_status: if status == "ok" { 200 } else { 507 },
        error_code: (status != "ok").then(|| "fuel_exhausted".into()),
        error_message: None,
        fuel_used: 10,
        duration_us: 5,
        peak_memory: 65536,
        started_at: i64::from(n),
        logs: vec![picloud_runtime::LogLine {
            level: "info".into(),
            message: format!("line {n}"),
            fields: None,
            at_ms: 1,
        }],
    };
    let batch: Vec<_> = [
        record(1, "f", "ok"),
        record(2, "g", "error"),
        record(3, "f", "error"),
    ]
    .into_iter()
    .map(|r| (ids[0].clone(), r))
    .collect();
    db.insert_invocations(&batch).await.unwrap();
    let list = |f: InvocationFilter| {
        let db = db.clone();
        let id = ids[0].clone();
        async move {
            db.list_invocations(&id, "a", &f)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(InvocationFilter::default()).await,
        ["0000-0003", "0000-0002", "0000-0001"]
    );
    assert_eq!(
        list(InvocationFilter {
            function: Some("f".into()),
            ..Default::default()
        })
        .await,
        ["0000-0003", "0000-0001"]
    );
    assert_eq!(
        list(InvocationFilter {
            status: Some("error".into()),
            limit: Some(1),
            ..Default::default()
        })
        .await,
        ["0000-0003"]
    );
    assert_eq!(
        list(InvocationFilter {
            before: Some("0000-0003".into()),
            ..Default::default()
        })
        .await,
        ["0000-0002", "0000-0001"]
    );
    let first = db
        .list_invocations(&ids[0], "a", &InvocationFilter::default())
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(first.logs[0].message, "line 1");
    // A batch larger than one multi-row statement, with a record already stored: every
    // new record lands once.
    let big: Vec<_> = (1..=150)
        .map(|n| (ids[0].clone(), record(n, "h", "ok")))
        .collect();
    db.insert_invocations(&big).await.unwrap();
    let all = list(InvocationFilter {
        limit: Some(1000),
        ..Default::default()
    })
    .await;
    assert_eq!(all.len(), 150);
    assert_eq!(all.first().map(String::as_str), Some("0000-0150"));
}

async fn the_kv_service_refuses_bad_input_with_invalid_errors(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let mut kv = KvService::new(db.clone(), ids[0].as_str().into());
    let invalid = |r: Result<(), GuestError>| match r {
        Err(GuestError::Invalid(m)) => m,
        other => panic!("expected invalid, got {other:?}"),
    };
    let m = invalid(
        kv.set("bad name!".into(), "k".into(), "1".into(), None)
            .await
            .unwrap(),
    );
    assert!(m.contains("collection name"), "{m}");
    let m = invalid(
        kv.set("c".into(), String::new(), "1".into(), None)
            .await
            .unwrap(),
    );
    assert!(m.contains("key must be"), "{m}");
    let m = invalid(
        kv.set("c".into(), "k".into(), "{not json".into(), None)
            .await
            .unwrap(),
    );
    assert!(m.contains("not valid JSON"), "{m}");
    let big = format!("\"{}\"", "x".repeat(MAX_VALUE_BYTES));
    let m = invalid(kv.set("c".into(), "k".into(), big, None).await.unwrap());
    assert!(m.contains("limit"), "{m}");
    let m = invalid(
        kv.set("c".into(), "k".into(), "1".into(), Some(0))
            .await
            .unwrap(),
    );
    assert!(m.contains("ttl"), "{m}");
    let m = invalid(
        kv.list("c".into(), String::new(), None, Some(1001))
            .await
            .unwrap()
            .map(|_| ()),
    );
    assert!(m.contains("limit must be 1-1000"), "{m}");
    kv.set("c".into(), "s".into(), "\"x\"".into(), None)
        .await
        .unwrap()
        .unwrap();
    let m = invalid(
        kv.increment("c".into(), "s".into(), 1)
            .await
            .unwrap()
            .map(|_| ()),
    );
    assert!(m.contains("not an integer"), "{m}");
    // A value just under the cap is accepted and reads back whole.
    let near = format!("\"{}\"", "y".repeat(MAX_VALUE_BYTES - 2));
    kv.set("c".into(), "big".into(), near.clone(), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        kv.get("c".into(), "big".into())
            .await
            .unwrap()
            .unwrap()
            .as_deref(),
        Some(near.as_str())
    );
    // Paging through the service: default limit 100 and a cursor to continue.
    for i in 0..150 {
        kv.set("p".into(), format!("k{i:03}"), i.to_string(), None)
            .await
            .unwrap()
            .unwrap();
    }
    let page = kv
        .list("p".into(), "k".into(), None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (page.entries.len(), page.cursor.as_deref()),
        (100, Some("k099"))
    );
    let rest = kv
        .list("p".into(), "k".into(), page.cursor, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((rest.entries.len(), rest.cursor), (50, None));
    assert_eq!(rest.entries[0], ("k100".to_owned(), "100".to_owned()));
}

async fn the_recorder_stores_every_record_after_a_linger_or_at_once_on_flush(backend: Backend) {
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    let record = |n: usize| InvocationRecord {
        id: format!("0000-{n:04}"),
        app: "a".into(),
        function: "f".into(),
        version: 1,
        trigger: "http".into(),
        status: "ok".into(),
        http_status: 200,
        error_code: None,
        error_message: None,
        fuel_used: 10,
        duration_us: 5,
        peak_memory: 65536,
        started_at: n as i64,
        logs: Vec::new(),
    };
    let stored = || {
        let (db, id) = (db.clone(), ids[0].clone());
        async move {
            let filter = InvocationFilter {
                limit: Some(1000),
                ..Default::default()
            };
            db.list_invocations(&id, "a", &filter).await.unwrap().len()
        }
    };
    let recorder = picloud::recorder::Recorder::start(db.clone(), None);

    // More than a full batch (500): the first batch is written without waiting for the
    // linger, the rest on the flush; nothing is lost.
    for n in 0..700 {
        recorder.record(ids[0].clone(), record(n));
    }
    recorder.flush().await;
    assert_eq!(stored().await, 700);

    // A lone record, never flushed, is stored once its batch's linger is over.
    recorder.record(ids[0].clone(), record(700));
    let waited = std::time::Instant::now();
    while stored().await < 701 {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(10),
            "a record queued without a flush was never stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

// A realtime subscriber resumes after the last id it saw (`Last-Event-ID`): that is only
// safe if a topic's messages become visible in id order, never a lower id after a
// higher one (two nodes publishing at once on PostgreSQL could otherwise commit 11
// before 10). Publishers race while a reader keeps reading: every read must hold all
// of the final ids below the highest it saw.
async fn a_topics_durable_messages_become_visible_in_the_order_of_their_ids(backend: Backend) {
    /// The ids of topic `t`'s durable messages visible now.
    async fn visible_ids(db: &Db, app: &str) -> Vec<i64> {
        let messages = db.messages_since(app, "t", 0, 10_000).await.unwrap();
        messages.iter().map(|m| m.seq).collect()
    }
    let Some((_t, db, ids)) = db_with_apps(backend, &["a"]).await else {
        return;
    };
    const PUBLISHERS: usize = 8;
    const EACH: usize = 40;
    let app = ids[0].clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (db, app, done) = (db.clone(), app.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                reads.push(visible_ids(&db, &app).await);
            }
            reads
        })
    };
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (db, app) = (db.clone(), app.clone());
            tokio::spawn(async move {
                for i in 0..EACH {
                    db.publish_durable(&app, "t", &format!("{{\"p\":{p},\"i\":{i}}}"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.await.unwrap();
    let all = visible_ids(&db, &app).await;
    assert_eq!(all.len(), PUBLISHERS * EACH);
    assert!(reads.len() > 1, "the reader read while they published");
    for seen in &reads {
        let Some(&highest) = seen.last() else {
            continue;
        };
        let expected: Vec<i64> = all.iter().copied().filter(|&id| id <= highest).collect();
        assert_eq!(
            seen, &expected,
            "a read up to id {highest} missed a lower id that became visible later"
        );
    }
}
