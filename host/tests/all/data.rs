//! The data SDK on SQLite and PostgreSQL alike: docs (CRUD, the query DSL, indexes the
//! planner uses), files (both blob stores, caps, paths, the orphan sweeper), the
//! change-event outbox, concurrency and isolation between apps. Every test runs once per
//! backend through the same services the guests call.

use crate::support::{Backend, TestDb};
use picloud::services::HostSdk;
use picloud::storage::Db;
use picloud::storage::changes::ChangeEvent;
use picloud::storage::files::{BlobStore, FilesConfig};
use picloud_runtime::docs::{FindOptions, Host as _};
use picloud_runtime::files::Host as _;
use picloud_runtime::kv::Host as _;
use picloud_runtime::{Answer, GuestError, LimitOverrides, Sdk as _};
use serde_json::{Value, json};
use std::path::PathBuf;

on_both_backends!(
    docs_crud_round_trips_and_records_one_event_per_write,
    docs_queries_follow_the_dsl,
    docs_sort_orders_by_type_then_value_then_id,
    invalid_queries_are_refused_naming_the_operator_or_path,
    a_declared_index_is_used_by_the_planner,
    concurrent_writers_on_one_document_lose_nothing,
    files_round_trip_in_both_blob_stores,
    file_paths_are_normalised_and_escapes_refused,
    file_caps_refuse_the_write_and_keep_the_old_content,
    large_values_near_the_caps,
    apps_never_reach_each_others_data,
    refused_or_failed_writes_record_no_event,
    the_sweeper_removes_orphan_blobs_only,
);

struct Fixture {
    _test_db: TestDb,
    db: Db,
    apps: Vec<String>,
    _files_dir: tempfile::TempDir,
}

impl Fixture {
    /// A database with apps `a` and `b`; files on disk for SQLite and in the database
    /// for PostgreSQL, as `picloud serve` does by default.
    async fn new(backend: Backend) -> Option<Self> {
        let test_db = TestDb::new(backend).await?;
        let files_dir = tempfile::tempdir().unwrap();
        let blobs = match backend {
            Backend::Sqlite => BlobStore::Disk(files_dir.path().to_owned()),
            Backend::Postgres => BlobStore::Database,
        };
        let db = test_db.open().await.with_files(FilesConfig {
            blobs,
            ..FilesConfig::default()
        });
        let mut apps = Vec::new();
        for name in ["a", "b"] {
            apps.push(
                db.create_app(name, &LimitOverrides::default())
                    .await
                    .unwrap()
                    .id,
            );
        }
        Some(Self {
            _test_db: test_db,
            db,
            apps,
            _files_dir: files_dir,
        })
    }

    fn sdk(&self, app: usize) -> HostSdk {
        HostSdk::new(&self.db, &self.apps[app])
    }

    fn files_dir(&self) -> PathBuf {
        self._files_dir.path().to_owned()
    }

    async fn events(&self, app: usize) -> Vec<ChangeEvent> {
        self.db
            .change_events(&self.apps[app], 0, 1000)
            .await
            .unwrap()
    }
}

/// Unwraps a service answer that must succeed.
fn ok<T>(answer: Answer<T>) -> T {
    answer.expect("no trap").expect("the call succeeds")
}

/// The guest error of a service answer that must fail.
fn err<T: std::fmt::Debug>(answer: Answer<T>) -> GuestError {
    answer.expect("no trap").expect_err("the call fails")
}

fn invalid_message(e: GuestError) -> String {
    match e {
        GuestError::Invalid(m) => m,
        other => panic!("expected invalid, got {other:?}"),
    }
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn options(sort: &[&str], limit: Option<u32>, skip: Option<u32>) -> FindOptions {
    FindOptions {
        sort: sort.iter().map(|s| (*s).to_owned()).collect(),
        limit,
        skip,
    }
}

async fn find_ids(sdk: &mut HostSdk, query: Value, sort: &[&str]) -> Vec<String> {
    ok(sdk
        .docs()
        .find(
            "c".into(),
            query.to_string(),
            options(sort, Some(1000), None),
        )
        .await)
    .into_iter()
    .map(|d| d.id)
    .collect()
}

async fn docs_crud_round_trips_and_records_one_event_per_write(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    let docs = sdk.docs();
    let generated = ok(docs
        .insert(
            "orders".into(),
            None,
            r#"{"total": 12, "status": "open"}"#.into(),
        )
        .await);
    assert_eq!(generated.len(), 36, "a uuid: {generated}");
    ok(docs
        .insert(
            "orders".into(),
            Some("o-7".into()),
            r#"{"total": 3.5, "note": "ключ 🔑"}"#.into(),
        )
        .await);
    let taken = err(docs
        .insert("orders".into(), Some("o-7".into()), "{}".into())
        .await);
    assert!(invalid_message(taken).contains("already exists"));

    let got = ok(docs.get("orders".into(), "o-7".into()).await).unwrap();
    assert_eq!(json_of(&got), json!({"total": 3.5, "note": "ключ 🔑"}));
    assert!(ok(docs.get("orders".into(), "nope".into()).await).is_none());
    assert!(ok(docs.get("other".into(), "o-7".into()).await).is_none());

    ok(docs
        .replace(
            "orders".into(),
            "o-7".into(),
            r#"{"total": 4, "tags": ["a"]}"#.into(),
        )
        .await);
    let merged = ok(docs
        .patch(
            "orders".into(),
            "o-7".into(),
            r#"{"tags": null, "status": "paid", "address": {"city": "Oslo"}}"#.into(),
        )
        .await);
    let expected = json!({"total": 4, "status": "paid", "address": {"city": "Oslo"}});
    assert_eq!(json_of(&merged), expected);
    assert_eq!(
        json_of(&ok(docs.get("orders".into(), "o-7".into()).await).unwrap()),
        expected
    );
    assert!(matches!(
        err(docs
            .patch("orders".into(), "nope".into(), "{}".into())
            .await),
        GuestError::NotFound
    ));
    assert!(matches!(
        err(docs
            .replace("orders".into(), "nope".into(), "{}".into())
            .await),
        GuestError::NotFound
    ));
    assert!(ok(docs.delete("orders".into(), "o-7".into()).await));
    assert!(!ok(docs.delete("orders".into(), "o-7".into()).await));

    let events = f.events(0).await;
    let summary: Vec<(&str, &str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e.source.as_str(),
                e.op.as_str(),
                e.collection.as_str(),
                e.key.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("docs", "insert", "orders", generated.as_str()),
            ("docs", "insert", "orders", "o-7"),
            ("docs", "replace", "orders", "o-7"),
            ("docs", "patch", "orders", "o-7"),
            ("docs", "delete", "orders", "o-7"),
        ]
    );
    assert_eq!(json_of(events[3].value.as_deref().unwrap()), expected);
    assert_eq!(events[4].value, None);
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
}

/// Documents with one field in every JSON type, and nested fields.
async fn seed_query_docs(sdk: &mut HostSdk) {
    let seed = [
        (
            "n1",
            json!({"v": 1, "tags": ["red", "big"], "who": {"name": "ada", "age": 36}}),
        ),
        (
            "n2",
            json!({"v": 2.5, "tags": ["blue"], "who": {"name": "bob", "age": 20}}),
        ),
        ("n3", json!({"v": 10, "tags": [], "who": {"name": "cy"}})),
        (
            "s1",
            json!({"v": "10", "tags": ["red"], "who": {"name": "dee"}}),
        ),
        ("s2", json!({"v": "apple pie", "who": null})),
        ("s3", json!({"v": "Äpfel"})),
        ("t", json!({"v": true, "tags": [1, 2, "red-ish"]})),
        ("f", json!({"v": false})),
        ("z", json!({"v": null})),
        ("m", json!({"other": 1})),
        ("a", json!({"v": [1, 2]})),
    ];
    for (id, body) in seed {
        ok(sdk
            .docs()
            .insert("c".into(), Some(id.into()), body.to_string())
            .await);
    }
}

async fn docs_queries_follow_the_dsl(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    seed_query_docs(&mut sdk).await;
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({}),
            &["a", "f", "m", "n1", "n2", "n3", "s1", "s2", "s3", "t", "z"],
        ),
        // Equality is typed: the number 10 is not the string "10".
        (json!({"v": 10}), &["n3"]),
        (json!({"v": 10.0}), &["n3"]),
        (json!({"v": "10"}), &["s1"]),
        (json!({"v": true}), &["t"]),
        (json!({"v": false}), &["f"]),
        (json!({"v": [1, 2]}), &["a"]),
        // null matches null and missing fields.
        (json!({"v": null}), &["m", "z"]),
        // Comparisons only match values of the operand's type.
        (json!({"v": {"$gt": 2}}), &["n2", "n3"]),
        (json!({"v": {"$gte": 2.5, "$lte": 10}}), &["n2", "n3"]),
        (json!({"v": {"$lt": 2}}), &["n1"]),
        // Strings compare as strings: "10" < "A" < "apple pie".
        (json!({"v": {"$gt": "A"}}), &["s2", "s3"]),
        // Byte order: "Ä" (0xC3 0x84) sorts after every ASCII letter.
        (json!({"v": {"$gt": "b"}}), &["s3"]),
        (
            json!({"v": {"$ne": 10}}),
            &["a", "f", "m", "n1", "n2", "s1", "s2", "s3", "t", "z"],
        ),
        (json!({"v": {"$in": [1, "10", false]}}), &["f", "n1", "s1"]),
        (json!({"v": {"$in": []}}), &[]),
        (
            json!({"v": {"$nin": [1, 2.5, 10]}}),
            &["a", "f", "m", "s1", "s2", "s3", "t", "z"],
        ),
        (json!({"v": {"$exists": false}}), &["m"]),
        (
            json!({"who": {"$exists": true}}),
            &["n1", "n2", "n3", "s1", "s2"],
        ),
        (json!({"tags": {"$contains": "red"}}), &["n1", "s1"]),
        (json!({"tags": {"$contains": 2}}), &["t"]),
        (json!({"v": {"$contains": "pie"}}), &["s2"]),
        (json!({"who.name": "ada"}), &["n1"]),
        (json!({"who.age": {"$gte": 18}}), &["n1", "n2"]),
        (
            json!({"who.age": {"$exists": false}, "who.name": {"$exists": true}}),
            &["n3", "s1"],
        ),
        (
            json!({"$or": [{"v": 1}, {"who.name": "dee"}]}),
            &["n1", "s1"],
        ),
        (
            json!({"$and": [{"tags": {"$contains": "red"}}, {"$or": [{"v": {"$lt": 5}}, {"v": "10"}]}]}),
            &["n1", "s1"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            find_ids(&mut sdk, query.clone(), &[]).await,
            expected,
            "query {query}"
        );
        let count = ok(sdk.docs().count("c".into(), query.to_string()).await);
        assert_eq!(count, expected.len() as u64, "count {query}");
    }
    // limit and skip page through a sorted result.
    let page = ok(sdk
        .docs()
        .find("c".into(), "{}".into(), options(&[], Some(3), Some(2)))
        .await);
    let ids: Vec<_> = page.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["m", "n1", "n2"]);
    assert_eq!(json_of(&page[1].body)["who"]["name"], "ada");
}

async fn docs_sort_orders_by_type_then_value_then_id(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    seed_query_docs(&mut sdk).await;
    let numbers_and_strings = json!({"v": {"$exists": true}, "$or": [
        {"v": {"$gt": -1000}}, {"v": {"$gt": ""}}, {"v": null}, {"v": true}, {"v": false}
    ]});
    // missing/null, numbers, strings (byte order), booleans; ties by id.
    assert_eq!(
        find_ids(&mut sdk, numbers_and_strings.clone(), &["v"]).await,
        ["z", "n1", "n2", "n3", "s1", "s2", "s3", "f", "t"]
    );
    assert_eq!(
        find_ids(&mut sdk, numbers_and_strings, &["-v"]).await,
        ["t", "f", "s3", "s2", "s1", "n3", "n2", "n1", "z"]
    );
    // Several fields: nested age descending (missing last), then v.
    assert_eq!(
        find_ids(
            &mut sdk,
            json!({"who.name": {"$exists": true}}),
            &["-who.age", "v"]
        )
        .await,
        ["n1", "n2", "n3", "s1"]
    );
}

async fn invalid_queries_are_refused_naming_the_operator_or_path(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    let cases = [
        (json!({"v": {"$regex": "^a"}}), "$regex"),
        (json!({"$where": "1"}), "$where"),
        (json!({"v": {"$gt": [1]}}), "v: $gt"),
        (json!({"v": {"$in": "x"}}), "v: $in"),
        (json!({"v": {"$exists": "yes"}}), "v: $exists"),
        (json!({"v": {"x": 1}}), "dotted paths"),
        (json!({"a b": 1}), "a b"),
        (json!({"$or": []}), "$or"),
        (json!("text"), "JSON object"),
    ];
    for (query, needle) in cases {
        let e = err(sdk
            .docs()
            .find("c".into(), query.to_string(), options(&[], None, None))
            .await);
        let message = invalid_message(e);
        assert!(message.contains(needle), "{query}: {message}");
        let e = err(sdk.docs().count("c".into(), query.to_string()).await);
        assert!(invalid_message(e).contains(needle), "count {query}");
    }
    let e = err(sdk
        .docs()
        .find("c".into(), "{}".into(), options(&["bad field"], None, None))
        .await);
    assert!(invalid_message(e).contains("sort"));
    let e = err(sdk
        .docs()
        .find("c".into(), "{}".into(), options(&[], Some(1001), None))
        .await);
    assert!(invalid_message(e).contains("limit"));
    let e = err(sdk
        .docs()
        .find("c".into(), "{oops".into(), options(&[], None, None))
        .await);
    assert!(invalid_message(e).contains("not valid JSON"));
    let e = err(sdk.docs().insert("c".into(), None, "[1]".into()).await);
    assert!(invalid_message(e).contains("JSON object"));
    let e = err(sdk
        .docs()
        .insert("bad/name".into(), None, "{}".into())
        .await);
    assert!(invalid_message(e).contains("collection"));
}

async fn a_declared_index_is_used_by_the_planner(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let (db, app) = (&f.db, &f.apps[0]);
    let docs: Vec<(String, String)> = (0..3000)
        .map(|i| {
            let status = if i % 1000 == 0 { "rare" } else { "common" };
            (
                format!("d{i:05}"),
                json!({"status": status, "n": i, "who": {"age": i % 90}}).to_string(),
            )
        })
        .collect();
    db.docs_import(app, "orders", &docs).await.unwrap();
    let query = json!({"status": "rare"});
    let uses_index = |plan: &[String]| plan.iter().any(|line| line.contains("docs_ix_"));

    let before = db.docs_explain(app, "orders", &query, &[]).await.unwrap();
    assert!(!uses_index(&before), "no index yet: {before:?}");

    assert!(db.docs_create_index(app, "orders", "status").await.unwrap());
    assert!(
        !db.docs_create_index(app, "orders", "status").await.unwrap(),
        "idempotent"
    );
    assert!(
        db.docs_create_index(app, "orders", "who.age")
            .await
            .unwrap()
    );
    let plan = db.docs_explain(app, "orders", &query, &[]).await.unwrap();
    assert!(uses_index(&plan), "equality uses the index: {plan:?}");
    let range = json!({"who.age": {"$gt": 88}});
    let plan = db.docs_explain(app, "orders", &range, &[]).await.unwrap();
    assert!(uses_index(&plan), "a range uses the index: {plan:?}");
    // And the answers are the same as without it.
    let found = db
        .docs_find(app, "orders", &query, &[], 100, 0)
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["d00000", "d01000", "d02000"]
    );
    assert_eq!(db.docs_count(app, "orders", &range).await.unwrap(), 33);

    // Another app's identical query does not use app a's partial index.
    let other = db
        .docs_explain(&f.apps[1], "orders", &query, &[])
        .await
        .unwrap();
    assert!(!uses_index(&other), "{other:?}");

    let listed = db.docs_indexes(app).await.unwrap();
    let fields: Vec<_> = listed.iter().map(|i| i.field.as_str()).collect();
    assert_eq!(fields, ["status", "who.age"]);
    assert!(db.docs_drop_index(app, "orders", "status").await.unwrap());
    assert!(!db.docs_drop_index(app, "orders", "status").await.unwrap());
    let plan = db.docs_explain(app, "orders", &query, &[]).await.unwrap();
    assert!(!uses_index(&plan), "dropped: {plan:?}");
    // Deleting the app drops its physical indexes too.
    db.delete_app("a").await.unwrap();
    let range_plan = db.docs_explain(app, "orders", &range, &[]).await.unwrap();
    assert!(!uses_index(&range_plan), "{range_plan:?}");
}

async fn concurrent_writers_on_one_document_lose_nothing(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    ok(sdk
        .docs()
        .insert("c".into(), Some("doc".into()), "{}".into())
        .await);
    // Two writers patch different fields of the same document 20 times each.
    let writers = (0..2).map(|w| {
        let mut sdk = f.sdk(0);
        tokio::spawn(async move {
            for i in 0..20 {
                let patch = json!({ format!("w{w}_{i}"): i });
                ok(sdk
                    .docs()
                    .patch("c".into(), "doc".into(), patch.to_string())
                    .await);
            }
        })
    });
    for writer in writers.collect::<Vec<_>>() {
        writer.await.unwrap();
    }
    let doc = json_of(&ok(sdk.docs().get("c".into(), "doc".into()).await).unwrap());
    assert_eq!(doc.as_object().unwrap().len(), 40, "{doc}");

    // Two writers insert the same id: exactly one wins.
    let racers = (0..2).map(|w| {
        let mut sdk = f.sdk(0);
        tokio::spawn(async move {
            sdk.docs()
                .insert("c".into(), Some("race".into()), json!({"w": w}).to_string())
                .await
                .unwrap()
                .is_ok()
        })
    });
    let mut wins = 0;
    for racer in racers.collect::<Vec<_>>() {
        wins += usize::from(racer.await.unwrap());
    }
    assert_eq!(wins, 1);

    // Two writers put the same file: the file is one of the two, whole.
    let putters = (0..2u8).map(|w| {
        let mut sdk = f.sdk(0);
        tokio::spawn(async move {
            for _ in 0..10 {
                ok(sdk
                    .files()
                    .put("same".into(), vec![w; 4096], "x/y".into())
                    .await);
            }
        })
    });
    let reader = {
        let mut sdk = f.sdk(0);
        tokio::spawn(async move {
            for _ in 0..20 {
                if let Some((stat, bytes)) = ok(sdk.files().get("same".into()).await) {
                    assert_eq!(bytes.len(), 4096);
                    assert!(bytes.iter().all(|b| *b == bytes[0]), "never a mix");
                    assert_eq!(stat.size, 4096);
                }
            }
        })
    };
    for putter in putters.collect::<Vec<_>>() {
        putter.await.unwrap();
    }
    reader.await.unwrap();
    assert_eq!(f.db.files_usage(&f.apps[0]).await.unwrap(), 4096);
}

async fn files_round_trip_in_both_blob_stores(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let shared = tempfile::tempdir().unwrap();
    for blobs in [
        BlobStore::Database,
        BlobStore::Disk(shared.path().to_owned()),
    ] {
        let db = f.db.clone().with_files(FilesConfig {
            blobs: blobs.clone(),
            ..FilesConfig::default()
        });
        let mut sdk = HostSdk::new(&db, &f.apps[0]);
        let files = sdk.files();
        let dir = match &blobs {
            BlobStore::Disk(_) => "disk",
            BlobStore::Database => "db",
        };
        let stat = ok(files
            .put(
                format!("{dir}/hello.txt"),
                b"Hello!".to_vec(),
                "text/plain".into(),
            )
            .await);
        assert_eq!(stat.size, 6);
        assert_eq!(
            stat.sha256,
            "334d016f755cd6dc58c53a86e183882f8ec14f52fb05345887c8a5edd42c87b7"
        );
        let empty = ok(files
            .put(format!("{dir}/empty"), Vec::new(), "".into())
            .await);
        assert_eq!(
            (empty.size, empty.content_type.as_str()),
            (0, "application/octet-stream")
        );
        ok(files
            .put(
                format!("{dir}/ünï/ço∂e.bin"),
                vec![0, 255, 1],
                "application/x-bin".into(),
            )
            .await);

        let (got, bytes) = ok(files.get(format!("{dir}/hello.txt")).await).unwrap();
        assert_eq!(
            (got.path.as_str(), bytes.as_slice()),
            (format!("{dir}/hello.txt").as_str(), &b"Hello!"[..])
        );
        assert_eq!(got.content_type, "text/plain");
        let (_, bytes) = ok(files.get(format!("{dir}/empty")).await).unwrap();
        assert!(bytes.is_empty());
        let head = ok(files.head(format!("{dir}/hello.txt")).await).unwrap();
        assert_eq!((head.size, head.sha256), (got.size, got.sha256));
        assert!(ok(files.get(format!("{dir}/missing")).await).is_none());

        // Replacing keeps one file with the new content.
        ok(files
            .put(
                format!("{dir}/hello.txt"),
                b"Bye".to_vec(),
                "text/plain".into(),
            )
            .await);
        let (_, bytes) = ok(files.get(format!("{dir}/hello.txt")).await).unwrap();
        assert_eq!(bytes, b"Bye");

        // Listing pages in byte order.
        let first = ok(files.list(format!("{dir}/"), None, Some(2)).await);
        let paths: Vec<_> = first.files.iter().map(|s| s.path.clone()).collect();
        assert_eq!(paths, [format!("{dir}/empty"), format!("{dir}/hello.txt")]);
        let second = ok(files.list(format!("{dir}/"), first.cursor, Some(2)).await);
        let paths: Vec<_> = second.files.iter().map(|s| s.path.clone()).collect();
        assert_eq!(paths, [format!("{dir}/ünï/ço∂e.bin")]);
        assert_eq!(second.cursor, None);

        assert!(ok(files.delete(format!("{dir}/hello.txt")).await));
        assert!(!ok(files.delete(format!("{dir}/hello.txt")).await));
        assert!(ok(files.get(format!("{dir}/hello.txt")).await).is_none());
    }
    // Files written under one store stay readable after switching to the other (the
    // database blob is found first, else the directory).
    let mut sdk = f.sdk(0);
    let (_, bytes) = ok(sdk.files().get("db/empty".into()).await).unwrap();
    assert!(bytes.is_empty());

    let events = f.events(0).await;
    let puts = events.iter().filter(|e| e.op == "put").count();
    let deletes = events.iter().filter(|e| e.op == "delete").count();
    assert_eq!((puts, deletes), (8, 2));
    let first = &events[0];
    assert_eq!(
        (first.source.as_str(), first.key.as_str()),
        ("files", "db/hello.txt")
    );
    let meta = json_of(first.value.as_deref().unwrap());
    assert_eq!(meta["size"], 6);
    assert_eq!(meta["content_type"], "text/plain");
}

async fn file_paths_are_normalised_and_escapes_refused(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    let stat = ok(sdk
        .files()
        .put("./a//b/./c.txt/".into(), b"x".to_vec(), "text/plain".into())
        .await);
    assert_eq!(stat.path, "a/b/c.txt");
    assert!(ok(sdk.files().head("a/b/c.txt".into()).await).is_some());
    // NFC: a decomposed "é" names the same file as the composed one.
    ok(sdk
        .files()
        .put("cafe\u{301}".into(), b"1".to_vec(), "".into())
        .await);
    assert!(ok(sdk.files().head("caf\u{e9}".into()).await).is_some());

    for bad in [
        "../x",
        "a/../../b",
        "/etc/passwd",
        "",
        ".",
        "a\\b",
        "a\0b",
        "a\nb",
    ] {
        let e = err(sdk.files().put(bad.into(), b"x".to_vec(), "".into()).await);
        assert!(matches!(e, GuestError::Invalid(_)), "{bad:?}: {e:?}");
        let e = err(sdk.files().get(bad.into()).await);
        assert!(matches!(e, GuestError::Invalid(_)), "{bad:?}");
    }
    let e = err(sdk
        .files()
        .put("x".into(), b"x".to_vec(), "text/\u{7f}".into())
        .await);
    assert!(invalid_message(e).contains("content type"));
    if let Backend::Sqlite = backend {
        // Blobs on disk are named by id: nothing was written outside the app's directory.
        let mut names: Vec<String> = std::fs::read_dir(f.files_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut expected = vec![f.apps[0].clone(), "tmp".to_owned()];
        expected.sort();
        assert_eq!(names, expected);
    }
}

async fn file_caps_refuse_the_write_and_keep_the_old_content(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let db = f.db.clone().with_files(FilesConfig {
        max_file_bytes: 1000,
        max_app_bytes: 2500,
        ..f.db.files_config().clone()
    });
    let mut sdk = HostSdk::new(&db, &f.apps[0]);
    let files = sdk.files();
    ok(files.put("one".into(), vec![1; 1000], "".into()).await);
    let e = err(files.put("one".into(), vec![2; 1001], "".into()).await);
    assert!(
        matches!(&e, GuestError::Limit(m) if m.contains("1000")),
        "{e:?}"
    );
    let (_, bytes) = ok(files.get("one".into()).await).unwrap();
    assert_eq!(bytes, vec![1; 1000], "the old content stays");

    ok(files.put("two".into(), vec![2; 1000], "".into()).await);
    // 2000 used: 600 more would pass 2500.
    let e = err(files.put("three".into(), vec![3; 600], "".into()).await);
    assert!(
        matches!(&e, GuestError::Limit(m) if m.contains("2500")),
        "{e:?}"
    );
    assert!(ok(files.head("three".into()).await).is_none());
    // Replacing a file counts its new size, not both.
    ok(files.put("two".into(), vec![4; 1000], "".into()).await);
    ok(files.put("three".into(), vec![3; 500], "".into()).await);
    assert_eq!(db.files_usage(&f.apps[0]).await.unwrap(), 2500);
    // Other apps have their own budget.
    let mut other = HostSdk::new(&db, &f.apps[1]);
    ok(other
        .files()
        .put("one".into(), vec![1; 1000], "".into())
        .await);
}

async fn large_values_near_the_caps(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    let cap = picloud::services::docs::MAX_DOC_BYTES;
    let filler = |len: usize| json!({ "s": "x".repeat(len) }).to_string();
    let fits = filler(cap - 8);
    assert_eq!(fits.len(), cap);
    ok(sdk
        .docs()
        .insert("c".into(), Some("big".into()), fits.clone())
        .await);
    let got = ok(sdk.docs().get("c".into(), "big".into()).await).unwrap();
    assert_eq!(json_of(&got), json_of(&fits));
    let e = err(sdk.docs().insert("c".into(), None, filler(cap - 7)).await);
    assert!(invalid_message(e).contains("limit"));
    // A patch that would grow it past the cap is refused and changes nothing.
    let e = err(sdk
        .docs()
        .patch("c".into(), "big".into(), r#"{"more": "yy"}"#.into())
        .await);
    assert!(invalid_message(e).contains("would be"));
    let got = ok(sdk.docs().get("c".into(), "big".into()).await).unwrap();
    assert_eq!(json_of(&got), json_of(&fits));

    // A 10 MiB file (the default cap) round-trips byte for byte.
    let content: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    ok(sdk
        .files()
        .put("big.bin".into(), content.clone(), "".into())
        .await);
    let (stat, bytes) = ok(sdk.files().get("big.bin".into()).await).unwrap();
    assert_eq!(stat.size, content.len() as u64);
    assert!(bytes == content);

    // kv keys at their cap, with unicode.
    let key = "ключ".repeat(64);
    assert_eq!(key.len(), 512);
    ok(sdk
        .kv()
        .set("c".into(), key.clone(), "1".into(), None)
        .await);
    assert_eq!(
        ok(sdk.kv().get("c".into(), key).await).as_deref(),
        Some("1")
    );
}

async fn apps_never_reach_each_others_data(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut a = f.sdk(0);
    let mut b = f.sdk(1);
    ok(a.docs()
        .insert("c".into(), Some("secret".into()), r#"{"s": 1}"#.into())
        .await);
    ok(a.files()
        .put("private/key".into(), b"k".to_vec(), "".into())
        .await);
    ok(a.kv().set("c".into(), "k".into(), "1".into(), None).await);
    ok(a.docs()
        .insert("c".into(), Some("x".into()), r#"{"s": 2}"#.into())
        .await);

    assert!(ok(b.docs().get("c".into(), "secret".into()).await).is_none());
    assert!(find_ids(&mut b, json!({}), &[]).await.is_empty());
    assert_eq!(ok(b.docs().count("c".into(), "{}".into()).await), 0);
    assert!(matches!(
        err(b
            .docs()
            .patch("c".into(), "secret".into(), "{}".into())
            .await),
        GuestError::NotFound
    ));
    assert!(!ok(b.docs().delete("c".into(), "secret".into()).await));
    // b may use the same id in its own collection.
    ok(b.docs()
        .insert("c".into(), Some("secret".into()), r#"{"b": true}"#.into())
        .await);

    assert!(ok(b.files().get("private/key".into()).await).is_none());
    assert!(
        ok(b.files().list("".into(), None, None).await)
            .files
            .is_empty()
    );
    assert!(!ok(b.files().delete("private/key".into()).await));
    let crafted = format!("../{}/private/key", f.apps[0]);
    assert!(matches!(
        err(b.files().get(crafted).await),
        GuestError::Invalid(_)
    ));
    assert!(ok(b.kv().get("c".into(), "k".into()).await).is_none());
    assert!(
        ok(b.kv().list("c".into(), "".into(), None, None).await)
            .entries
            .is_empty()
    );

    // A query cannot escape the app either: it is a JSON value, never SQL.
    let sneaky = json!({"s' OR '1'='1": 1});
    assert!(matches!(
        err(b
            .docs()
            .find("c".into(), sneaky.to_string(), options(&[], None, None))
            .await),
        GuestError::Invalid(_)
    ));
    assert_eq!(
        find_ids(&mut a, json!({"s": {"$gte": 1}}), &[]).await,
        ["secret", "x"],
        "a's data is intact"
    );
    assert_eq!(f.events(1).await.len(), 1, "only b's own insert");
}

async fn refused_or_failed_writes_record_no_event(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let mut sdk = f.sdk(0);
    ok(sdk
        .docs()
        .insert("c".into(), Some("d".into()), "{}".into())
        .await);
    ok(sdk
        .kv()
        .set("c".into(), "k".into(), r#""v""#.into(), None)
        .await);
    ok(sdk.kv().increment("c".into(), "n".into(), 5).await);
    let before = f.events(0).await;
    assert_eq!(
        before.iter().map(|e| e.op.as_str()).collect::<Vec<_>>(),
        ["insert", "set", "increment"]
    );
    assert_eq!(before[2].value.as_deref(), Some("5"));

    // A conflicting insert, a replace of nothing, an increment of a string, deletes of
    // nothing and an oversized file: all refused, none recorded.
    err(sdk
        .docs()
        .insert("c".into(), Some("d".into()), "{}".into())
        .await);
    err(sdk
        .docs()
        .replace("c".into(), "nope".into(), "{}".into())
        .await);
    err(sdk.kv().increment("c".into(), "k".into(), 1).await);
    assert!(!ok(sdk.kv().delete("c".into(), "nope".into()).await));
    assert!(!ok(sdk.docs().delete("c".into(), "nope".into()).await));
    assert!(!ok(sdk.files().delete("nope".into()).await));
    let db = f.db.clone().with_files(FilesConfig {
        max_app_bytes: 10,
        ..f.db.files_config().clone()
    });
    let mut capped = HostSdk::new(&db, &f.apps[0]);
    err(capped.files().put("f".into(), vec![0; 11], "".into()).await);
    err(capped
        .files()
        .put("f".into(), vec![0; 100], "".into())
        .await);
    assert_eq!(f.events(0).await, before);
}

async fn the_sweeper_removes_orphan_blobs_only(backend: Backend) {
    let Some(f) = Fixture::new(backend).await else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let db = f.db.clone().with_files(FilesConfig {
        blobs: BlobStore::Disk(root.path().to_owned()),
        ..FilesConfig::default()
    });
    let mut sdk = HostSdk::new(&db, &f.apps[0]);
    ok(sdk
        .files()
        .put("kept".into(), b"keep me".to_vec(), "".into())
        .await);
    let app_dir = root.path().join(&f.apps[0]);
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let age = |path: &std::path::Path| {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    };
    // What a crash leaves: an unreferenced blob and a temp file, both old; and a fresh
    // unreferenced blob, which may belong to a put in flight.
    std::fs::write(app_dir.join("orphan-old"), b"x").unwrap();
    age(&app_dir.join("orphan-old"));
    std::fs::write(root.path().join("tmp/half.tmp"), b"x").unwrap();
    age(&root.path().join("tmp/half.tmp"));
    std::fs::write(app_dir.join("orphan-new"), b"x").unwrap();
    for entry in std::fs::read_dir(&app_dir).unwrap() {
        age(&entry.unwrap().path());
    }
    std::fs::write(app_dir.join("orphan-new"), b"x").unwrap();
    // The directory of a deleted app goes entirely.
    let gone = root.path().join("no-such-app");
    std::fs::create_dir_all(&gone).unwrap();
    std::fs::write(gone.join("blob"), b"x").unwrap();
    age(&gone.join("blob"));

    let removed = db
        .sweep_orphan_blobs(std::time::Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(removed, 3);
    assert!(!app_dir.join("orphan-old").exists());
    assert!(app_dir.join("orphan-new").exists());
    assert!(!root.path().join("tmp/half.tmp").exists());
    assert!(!gone.exists());
    let (_, bytes) = ok(sdk.files().get("kept".into()).await).unwrap();
    assert_eq!(bytes, b"keep me");
}

mod through_the_server {
    use crate::support::{Backend, TestDb, TestServer, assert_error};
    use reqwest::Method;
    use serde_json::{Value, json};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_notes_example_on_sqlite() {
        notes_example(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_notes_example_on_postgres() {
        notes_example(Backend::Postgres).await;
    }

    /// The Rust `example-notes` component uses docs queries and files through the real
    /// server; the operator sees the same data through the admin API.
    async fn notes_example(backend: Backend) {
        let Some(test_db) = TestDb::new(backend).await else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let url = (backend == Backend::Postgres).then(|| test_db.url.clone());
        let server = TestServer::start(dir.path(), url).await;
        server.create_app("notes").await;
        let wasm = std::fs::read(picloud_example_artifacts::NOTES).unwrap();
        server
            .deploy("notes", "notes", wasm, Some("POST /notes"))
            .await;
        for route in [
            ("GET", "/notes"),
            ("GET", "/notes/:id"),
            ("DELETE", "/notes/:id"),
            ("PUT", "/notes/:id/attachment"),
            ("GET", "/notes/:id/attachment"),
        ] {
            server
                .admin(
                    Method::POST,
                    "/apps/notes/routes",
                    Some(json!({"method": route.0, "path": route.1, "function": "notes"})),
                )
                .await;
        }
        let call = |method: Method, path: &str| {
            server
                .http
                .request(method, format!("{}/fn/notes{path}", server.url))
        };

        let mut ids = Vec::new();
        for (title, tags) in [
            ("groceries", json!(["home"])),
            ("standup", json!(["work", "daily"])),
            ("retro", json!(["work"])),
        ] {
            let response = call(Method::POST, "/notes")
                .json(&json!({"title": title, "tags": tags}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let body: Value = response.json().await.unwrap();
            ids.push(body["id"].as_str().unwrap().to_owned());
            tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        }
        let work: Value = call(Method::GET, "/notes?tag=work")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let titles: Vec<&str> = work["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["title"].as_str().unwrap())
            .collect();
        assert_eq!(titles, ["retro", "standup"], "newest first: {work}");
        assert_eq!(work["total"], 2);
        let bad = call(Method::POST, "/notes")
            .json(&json!({"title": " "}))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 400);

        let attachment = call(Method::PUT, &format!("/notes/{}/attachment", ids[1]))
            .header("content-type", "image/png")
            .body(vec![0x89, b'P', b'N', b'G', 0, 1, 2])
            .send()
            .await
            .unwrap();
        assert_eq!(attachment.status(), 200);
        let got = call(Method::GET, &format!("/notes/{}/attachment", ids[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(got.headers()["content-type"], "image/png");
        assert_eq!(
            got.bytes().await.unwrap().as_ref(),
            [0x89, b'P', b'N', b'G', 0, 1, 2]
        );

        // The operator's view: files, indexes with the planner using them, change events.
        let listed = server.admin(Method::GET, "/apps/notes/files", None).await;
        assert_eq!(
            listed["files"][0]["path"],
            format!("attachments/{}", ids[1])
        );
        assert_eq!(listed["files"][0]["size"], 7);
        let download = server
            .api(
                Method::GET,
                &format!("/apps/notes/files/attachments/{}", ids[1]),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(download.headers()["content-type"], "image/png");
        let uploaded = server
            .api(Method::PUT, "/apps/notes/files/docs/readme.txt")
            .header("content-type", "text/plain")
            .body("hi")
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status(), 201);
        let too_big = server
            .api(Method::PUT, "/apps/notes/files/big.bin")
            .body(vec![0u8; 10 * 1024 * 1024 + 1])
            .send()
            .await
            .unwrap();
        assert_error(too_big, 413, "payload_too_large").await;
        let escape = server
            .api(Method::PUT, "/apps/notes/files/a%2F..%2F..%2Fx")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_error(escape, 400, "bad_request").await;

        let created = server
            .api(Method::PUT, "/apps/notes/docs/notes/indexes/created")
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
        let again = server
            .api(Method::PUT, "/apps/notes/docs/notes/indexes/created")
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 200);
        let plan = server
            .admin(
                Method::POST,
                "/apps/notes/docs/notes/explain",
                Some(json!({"query": {"created": {"$gt": 0}}})),
            )
            .await;
        // Three documents are too few for a planner to prefer an index (see
        // `a_declared_index_is_used_by_the_planner` for that); the plan is the database's.
        assert!(!plan["plan"].as_array().unwrap().is_empty(), "{plan}");
        let indexes = server
            .admin(Method::GET, "/apps/notes/docs/indexes", None)
            .await;
        assert_eq!(indexes[0]["collection"], "notes");
        assert_eq!(indexes[0]["field"], "created");
        let bad_query = server
            .api(Method::POST, "/apps/notes/docs/notes/explain")
            .json(&json!({"query": {"created": {"$near": 1}}}))
            .send()
            .await
            .unwrap();
        let body = assert_error(bad_query, 400, "bad_request").await;
        assert!(body.to_string().contains("$near"));

        let deleted = call(Method::DELETE, &format!("/notes/{}", ids[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.status(), 204);
        let gone = call(Method::GET, &format!("/notes/{}", ids[1]))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);

        let changes = server.admin(Method::GET, "/apps/notes/changes", None).await;
        let ops: Vec<String> = changes
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}:{}",
                    c["source"].as_str().unwrap(),
                    c["op"].as_str().unwrap()
                )
            })
            .collect();
        assert_eq!(
            ops,
            [
                "docs:insert",
                "docs:insert",
                "docs:insert",
                "files:put",
                "files:put",
                "docs:delete",
                "files:delete"
            ]
        );
        server.stop().await;
    }
}
