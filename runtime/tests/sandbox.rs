//! The sandbox against real guests: the example components and hostile guests written
//! inline in WAT. Every limit ends the invocation with its typed error, and the runtime
//! keeps serving afterwards.

use picloud_example_artifacts::{HELLO, KV_COUNTER, hostile_guest, with_extra_core_instances};
use picloud_runtime::{
    CompileError, Invocation, Limits, MAX_CORE_INSTANCES_PER_COMPONENT, Request, RunError, Runtime,
    RuntimeConfig, Unavailable,
};

fn runtime() -> Runtime<Unavailable> {
    Runtime::new(&RuntimeConfig::default()).expect("runtime builds")
}

fn get(path: &str, query: &str) -> Request {
    Request {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        headers: vec![],
        params: vec![],
        body: vec![],
        event: None,
    }
}

fn invocation() -> Invocation {
    Invocation {
        app: "test".into(),
        function: "f".into(),
        version: 1,
        invocation_id: "inv-1".into(),
        trigger: "http".into(),
        event: None,
    }
}

async fn call(rt: &Runtime<Unavailable>, bytes: &[u8], limits: Limits) -> picloud_runtime::Outcome {
    let compiled = rt.compile(bytes).expect("compiles");
    rt.invoke(&compiled, invocation(), get("/", ""), limits, Unavailable)
        .await
}

fn hello_bytes() -> Vec<u8> {
    std::fs::read(HELLO).expect("example-hello is built")
}

#[tokio::test]
async fn hello_answers_with_the_name_from_the_query() {
    let rt = runtime();
    let compiled = rt.compile(&hello_bytes()).unwrap();
    let outcome = rt
        .invoke(
            &compiled,
            invocation(),
            get("/", "name=Ada%20L"),
            Limits::default(),
            Unavailable,
        )
        .await;
    let response = outcome.result.expect("hello succeeds");
    assert_eq!(response.status, 200);
    assert_eq!(String::from_utf8(response.body).unwrap(), "Hello, Ada L!");
    assert!(outcome.fuel_used > 0 && outcome.fuel_used < Limits::default().fuel);
    assert!(outcome.peak_memory > 0);

    let outcome = rt
        .invoke(
            &compiled,
            invocation(),
            get("/", ""),
            Limits::default(),
            Unavailable,
        )
        .await;
    assert_eq!(outcome.result.unwrap().body, b"Hello, world!");
}

#[tokio::test]
async fn an_interface_the_host_does_not_offer_answers_unavailable_to_the_guest() {
    let rt = runtime();
    let outcome = call(&rt, &std::fs::read(KV_COUNTER).unwrap(), Limits::default()).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::Failed(
            "the function returned an error: unavailable: kv is not available yet".into()
        )
    );
}

#[tokio::test]
async fn an_infinite_loop_is_stopped_by_fuel() {
    let rt = runtime();
    let limits = Limits {
        fuel: 50_000_000,
        ..Limits::default()
    };
    let outcome = call(
        &rt,
        &hostile_guest("", "(loop $spin (br $spin)) unreachable"),
        limits,
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::FuelExhausted { budget: 50_000_000 }
    );
    assert_eq!(outcome.fuel_used, 50_000_000);
}

#[tokio::test]
async fn a_loop_of_cheap_host_calls_is_stopped_by_the_wall_clock() {
    let rt = runtime();
    let limits = Limits {
        fuel: u64::MAX / 2,
        timeout_ms: 200,
        ..Limits::default()
    };
    let guest = hostile_guest(
        r#"(import "picloud:sdk/runtime@0.1.0" "now" (func $now (result i64)))"#,
        "(loop $spin (drop (call $now)) (br $spin)) unreachable",
    );
    let outcome = call(&rt, &guest, limits).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::Timeout { limit_ms: 200 }
    );
    assert!(
        outcome.wall_time.as_millis() >= 200,
        "{:?}",
        outcome.wall_time
    );
}

#[tokio::test]
async fn growing_memory_past_the_limit_is_memory_exhausted() {
    let rt = runtime();
    // 16384 pages of 64 KiB = 1 GiB.
    let outcome = call(
        &rt,
        &hostile_guest("", "(drop (memory.grow (i32.const 16384))) (i32.const 0)"),
        Limits::default(),
    )
    .await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::MemoryExhausted {
            limit_bytes: Limits::default().memory_bytes
        }
    );
}

#[tokio::test]
async fn unbounded_recursion_and_unreachable_are_function_failures() {
    let rt = runtime();
    let recursion = hostile_guest(
        "",
        "(call $handle (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))",
    );
    let outcome = call(&rt, &recursion, Limits::default()).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::Failed("the function overflowed its stack".into())
    );

    let outcome = call(&rt, &hostile_guest("", "unreachable"), Limits::default()).await;
    let RunError::Failed(message) = outcome.result.unwrap_err() else {
        panic!("not a failure")
    };
    assert!(message.contains("unreachable"), "{message}");
}

#[tokio::test]
async fn the_runtime_keeps_serving_after_every_kind_of_limit_breach() {
    let rt = runtime();
    let hostile = [
        hostile_guest("", "(loop $spin (br $spin)) unreachable"),
        hostile_guest("", "(drop (memory.grow (i32.const 16384))) (i32.const 0)"),
        hostile_guest("", "unreachable"),
    ];
    let hello = rt.compile(&hello_bytes()).unwrap();
    for guest in &hostile {
        let outcome = call(
            &rt,
            guest,
            Limits {
                fuel: 10_000_000,
                ..Limits::default()
            },
        )
        .await;
        assert!(outcome.result.is_err());
        let next = rt
            .invoke(
                &hello,
                invocation(),
                get("/", "name=again"),
                Limits::default(),
                Unavailable,
            )
            .await;
        assert_eq!(next.result.unwrap().body, b"Hello, again!");
    }
}

#[test]
fn what_is_not_a_component_is_refused_naming_what_it_is() {
    let rt = runtime();
    let empty = rt.compile(b"").err().unwrap();
    assert!(
        matches!(&empty, CompileError::NotWasm(m) if m.contains("empty")),
        "{empty}"
    );

    let random = rt.compile(b"\x7fELF\x02\x01\x01\x00garbage").err().unwrap();
    assert!(
        matches!(&random, CompileError::NotWasm(m) if m.contains("7f 45 4c 46")),
        "{random}"
    );

    let core = rt
        .compile(&wat::parse_str("(module)").unwrap())
        .err()
        .unwrap();
    assert!(
        matches!(&core, CompileError::Unsupported(m) if m.contains("core WebAssembly module")),
        "{core}"
    );

    let other_world = rt
        .compile(&wat::parse_str("(component)").unwrap())
        .err()
        .unwrap();
    assert!(
        matches!(&other_world, CompileError::Unsupported(m) if m.contains("exports nothing")),
        "{other_world}"
    );

    let truncated = hello_bytes();
    let broken = rt.compile(&truncated[..truncated.len() / 2]).err().unwrap();
    assert!(matches!(broken, CompileError::Invalid(_)), "{broken}");
}

#[test]
fn a_second_runtime_on_the_same_cache_dir_loads_compiled_code_instead_of_compiling() {
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_owned()),
        ..RuntimeConfig::default()
    };
    let first: Runtime<Unavailable> = Runtime::new(&config).unwrap();
    first.compile(&hello_bytes()).unwrap();
    first.compile(&hello_bytes()).unwrap();
    let stats = first.cache_stats();
    assert_eq!(
        (stats.compiled, stats.disk_hits, stats.memory_hits),
        (1, 0, 1)
    );
    drop(first);

    let second: Runtime<Unavailable> = Runtime::new(&config).unwrap();
    second.compile(&hello_bytes()).unwrap();
    let stats = second.cache_stats();
    assert_eq!((stats.compiled, stats.disk_hits), (0, 1));
}

/// A guest that counts its calls in a global and answers the count as the status; its
/// third call spins until the fuel runs out.
fn counting_guest() -> Vec<u8> {
    hostile_guest(
        "(global $calls (mut i32) (i32.const 0))",
        "(global.set $calls (i32.add (global.get $calls) (i32.const 1)))
         (if (i32.eq (global.get $calls) (i32.const 3)) (then (loop $spin (br $spin))))
         (i32.store16 (i32.const 4) (global.get $calls))
         (i32.const 0)",
    )
}

#[tokio::test]
async fn a_warm_instance_serves_the_next_call_until_a_trap_or_too_much_memory() {
    let rt = runtime();
    let limits = Limits {
        fuel: 10_000_000,
        ..Limits::default()
    };
    let counting = rt.compile(&counting_guest()).unwrap();
    let status = |outcome: picloud_runtime::Outcome| outcome.result.map(|r| r.status);
    let warm = |pool| {
        let (rt, counting) = (&rt, &counting);
        async move {
            rt.invoke_warm(
                counting,
                Some(pool),
                invocation(),
                get("/", ""),
                limits,
                Unavailable,
            )
            .await
        }
    };

    // Without a pool every call is a fresh instance.
    for _ in 0..2 {
        let outcome = rt
            .invoke(&counting, invocation(), get("/", ""), limits, Unavailable)
            .await;
        assert_eq!(status(outcome), Ok(1));
    }

    // With one, the second call runs in the first call's instance: its global shows it
    // (which is why only guests that keep no state between calls get a pool).
    let pool = rt.warm_pool().expect("warm reuse is on by default");
    assert_eq!(status(warm(&pool).await), Ok(1));
    assert_eq!(pool.idle(), 1);
    let outcome = warm(&pool).await;
    assert!(outcome.fuel_used > 0 && outcome.peak_memory > 0);
    assert_eq!(status(outcome), Ok(2));
    let stats = rt.cache_stats();
    assert_eq!((stats.warm_reuses, stats.warm_idle), (1, 1));

    // The third call traps: its instance is dropped and the next call starts afresh.
    assert_eq!(
        status(warm(&pool).await),
        Err(RunError::FuelExhausted { budget: 10_000_000 })
    );
    assert_eq!((pool.idle(), rt.cache_stats().warm_idle), (0, 0));
    assert_eq!(status(warm(&pool).await), Ok(1));
    assert_eq!(pool.idle(), 1);

    // An instance that grew past the warm memory bound is not kept.
    let grower = rt
        .compile(&hostile_guest(
            "",
            "(drop (memory.grow (i32.const 1100))) (i32.const 0)",
        ))
        .unwrap();
    let grower_pool = rt.warm_pool().unwrap();
    let outcome = rt
        .invoke_warm(
            &grower,
            Some(&grower_pool),
            invocation(),
            get("/", ""),
            limits,
            Unavailable,
        )
        .await;
    assert!(outcome.peak_memory > picloud_runtime::warm::WARM_MAX_MEMORY);
    assert_eq!(status(outcome), Ok(0));
    assert_eq!(grower_pool.idle(), 0);

    // Idle instances go when trimmed, or with their pool.
    assert_eq!(pool.trim(std::time::Duration::from_secs(3600)), 0);
    assert_eq!(pool.trim(std::time::Duration::ZERO), 1);
    assert_eq!(status(warm(&pool).await), Ok(1));
    assert_eq!(rt.cache_stats().warm_idle, 1);
    drop(pool);
    assert_eq!(rt.cache_stats().warm_idle, 0);
}

#[tokio::test]
async fn warm_reuse_is_off_with_no_warm_instances() {
    let rt: Runtime<Unavailable> = Runtime::new(&RuntimeConfig {
        max_warm_instances: 0,
        ..RuntimeConfig::default()
    })
    .unwrap();
    assert!(rt.warm_pool().is_none());
}

/// The core import of `picloud:sdk/log.log`: level, message (pointer, length), fields
/// (option tag, pointer, length).
const LOG_IMPORT: &str =
    r#"(import "picloud:sdk/log@0.1.0" "log" (func $log (param i32 i32 i32 i32 i32 i32)))"#;
/// `info` in the WIT `level` enum.
const INFO: i32 = 2;

/// Bytes of message and fields text in `lines`.
fn log_bytes(lines: &[picloud_runtime::LogLine]) -> usize {
    lines
        .iter()
        .map(|l| l.message.len() + l.fields.as_ref().map_or(0, String::len))
        .sum()
}

#[tokio::test]
async fn a_log_message_of_32_mib_is_cut_to_its_limit_and_paid_for_in_fuel() {
    let rt = runtime();
    // 512 pages of 64 KiB = 32 MiB of zero bytes (valid UTF-8), logged as one message.
    let length = 32 * 1024 * 1024;
    let guest = hostile_guest(
        LOG_IMPORT,
        &format!(
            "(drop (memory.grow (i32.const 511)))
             (call $log (i32.const {INFO}) (i32.const 0) (i32.const {length})
                        (i32.const 0) (i32.const 0) (i32.const 0))
             (i32.const 0)"
        ),
    );
    let outcome = call(&rt, &guest, Limits::default()).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    assert_eq!(outcome.logs.len(), 2, "{:?}", outcome.logs.last());
    let line = &outcome.logs[0];
    assert_eq!(line.level, "info");
    let kept = line
        .message
        .find(" … [cut: ")
        .expect("a note on the cut line");
    assert!(kept <= picloud_runtime::MAX_LOG_MESSAGE_BYTES, "{kept}");
    assert_eq!(
        line.message[kept..],
        format!(" … [cut: {} more bytes]", length - kept)
    );
    let closing = &outcome.logs[1];
    assert_eq!(closing.level, "warn");
    assert!(
        closing.message.contains(&format!(
            "0 further log lines were dropped, {} bytes in all",
            length - kept
        )),
        "{}",
        closing.message
    );
    // The host read every byte to validate it; the guest paid for that.
    assert!(
        outcome.fuel_used >= length as u64 * picloud_runtime::LOG_FUEL_PER_BYTE,
        "{}",
        outcome.fuel_used
    );
}

#[tokio::test]
async fn a_flood_of_1_mib_log_lines_ends_in_fuel_exhausted_with_a_bounded_log() {
    let rt = runtime();
    // Logs its first MiB of memory (zeros) forever: ~1,000 lines for a fuel budget of
    // 10⁹, each read whole by the host.
    let guest = hostile_guest(
        LOG_IMPORT,
        &format!(
            "(drop (memory.grow (i32.const 16)))
             (loop $flood
                (call $log (i32.const {INFO}) (i32.const 0) (i32.const 1048576)
                           (i32.const 0) (i32.const 0) (i32.const 0))
                (br $flood))
             unreachable"
        ),
    );
    let limits = Limits {
        timeout_ms: 10_000,
        ..Limits::default()
    };
    let outcome = call(&rt, &guest, limits).await;
    assert_eq!(
        outcome.result.unwrap_err(),
        RunError::FuelExhausted {
            budget: limits.fuel
        }
    );
    let (closing, kept) = outcome.logs.split_last().unwrap();
    assert!(
        log_bytes(kept) <= picloud_runtime::MAX_LOG_BYTES,
        "{}",
        log_bytes(kept)
    );
    assert!(kept.iter().all(|l| l.message.contains(" … [cut: ")));
    assert!(
        closing.message.contains("further log lines were dropped"),
        "{}",
        closing.message
    );
}

#[tokio::test]
async fn log_fields_are_kept_only_as_a_json_object_within_their_limit() {
    let rt = runtime();
    let big = format!(
        "{{\"a\":\"{}\"}}",
        "x".repeat(picloud_runtime::MAX_LOG_FIELDS_BYTES)
    );
    let cases = [r#"{"a":1}"#, "[1,2]", "not json", big.as_str()];
    // The strings from offset 16 KiB on, above what the host allocates for the request;
    // each call logs "m" with one of them as fields.
    let mut data = String::new();
    let mut calls = String::new();
    let mut at = 16 * 1024;
    for fields in cases {
        let escaped: String = fields.bytes().map(|b| format!("\\{b:02x}")).collect();
        data.push_str(&format!("(data (i32.const {at}) \"{escaped}\")"));
        calls.push_str(&format!(
            "(call $log (i32.const {INFO}) (i32.const 32) (i32.const 1)
                        (i32.const 1) (i32.const {at}) (i32.const {}))",
            fields.len()
        ));
        at += fields.len();
    }
    let guest = hostile_guest(
        &format!("{LOG_IMPORT} (data (i32.const 32) \"m\") {data}"),
        &format!("{calls} (i32.const 0)"),
    );
    let outcome = call(&rt, &guest, Limits::default()).await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    let lines: Vec<(&str, Option<&str>)> = outcome
        .logs
        .iter()
        .map(|l| (l.message.as_str(), l.fields.as_deref()))
        .collect();
    let too_big = format!(
        "m [fields dropped: {} bytes, over the limit of {}]",
        big.len(),
        picloud_runtime::MAX_LOG_FIELDS_BYTES
    );
    assert_eq!(
        lines[..4],
        [
            ("m", Some(r#"{"a":1}"#)),
            ("m [fields dropped: not a JSON object]", None),
            ("m [fields dropped: not a JSON object]", None),
            (too_big.as_str(), None),
        ]
    );
    let dropped = "[1,2]".len() + "not json".len() + big.len();
    assert!(
        lines[4].0.contains(&format!(
            "0 further log lines were dropped, {dropped} bytes in all"
        )),
        "{}",
        lines[4].0
    );
}

#[tokio::test]
async fn a_component_with_more_core_instances_than_the_pool_gives_one_is_refused() {
    let rt = runtime();
    // Answers status 200: the result record at offset 0, its status at offset 4.
    let answering = hostile_guest(
        "",
        "(i32.store16 (i32.const 4) (i32.const 200)) (i32.const 0)",
    );
    let fits = with_extra_core_instances(&answering, 2);
    let outcome = call(&rt, &fits, Limits::default()).await;
    assert_eq!(outcome.result.unwrap().status, 200);

    // The shape that could take the pool: ~40 core instances per invocation.
    let hoarding = with_extra_core_instances(&answering, 40);
    let refused = rt.compile(&hoarding).err().unwrap();
    let expected =
        format!("which exceeds the configured maximum of {MAX_CORE_INSTANCES_PER_COMPONENT}");
    assert!(
        matches!(&refused, CompileError::Invalid(m) if m.contains("core module instances") && m.contains(&expected)),
        "{refused}"
    );
}
