//! Hardening soak (issue 11): a tenant serving a kv handler while another tenant runs the
//! worst it can, for minutes, over loopback.
//!
//! One PiCloud server in-process (tokio multi-thread runtime, embedded SQLite in a temp
//! dir) and a load generator on a thread of its own (like `wrk -t1`):
//! - the victim, app `victim`: a Rhai kv handler (`kv::increment` then `kv::get`),
//!   4 keep-alive connections;
//! - the attacker, app `mallory`, 16 connections cycling through: a Rhai script printing
//!   an 8 MiB string 1,000 times; a component logging 16 MiB per line in a loop; a
//!   component growing its memory past its limit; a Rhai `loop {}`; a docs query of 499
//!   substring searches with a deep skip and a JSON sort over 2,000 documents of 4 KB;
//!   plus 2 connections posting 10 MiB bodies and 64 connections sending their headers
//!   one byte at a time (slowloris).
//!
//! First the victim alone for [`ALONE`], then the soak for `PICLOUD_SOAK_SECS` seconds
//! (default 120); `PICLOUD_SOAK_ATTACKS` (e.g. `print,log,mem,spin,query,body,slow`, the
//! default: all) runs only some of the attacks. It prints the victim's requests/s, p50/p99 (and the ratio to alone),
//! its error count (goal 0, p99 ≤ 3× alone), the attacker's answers by status, and the
//! process RSS before the attack and through the soak (goal: flat once the attacker's
//! instances and caches are warm, i.e. the end no higher than a quarter in).
//!
//! Run with `cargo bench -p picloud --bench soak`.

mod support;

use support::{TOKEN, admin};

use picloud::server::ServeArgs;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// How long the victim runs alone first (its p99 is the reference).
const ALONE: Duration = Duration::from_secs(10);
/// Connections of the victim, of the attacker's functions, of its big bodies, of its
/// slow headers.
const VICTIM_CONNECTIONS: usize = 4;
const ATTACK_CONNECTIONS: usize = 16;
const BODY_CONNECTIONS: usize = 2;
const SLOW_CONNECTIONS: usize = 64;

const VICTIM: &str = r#"
let n = kv::increment("stats", "hits", 1);
let last = kv::get("stats", "hits");
`${n} ${last}`
"#;

const PRINT_FLOOD: &str = r#"
let s = "x";
while s.len() < 8388608 { s += s; }
for i in 0..1000 { print(s) }
"done"
"#;

const SPIN: &str = "let x = 0; loop { x += 1; }";

const SEED: &str = r#"
let text = "";
for i in 0..4000 { text += "abcdefghijklmnopqrstuvwxyz".sub_string(i % 26, 1); }
for i in 0..2000 { docs::insert("big", `d${i}`, #{ n: i, text: text, k: `${i * 7919}` }); }
"seeded"
"#;

const HEAVY_QUERY: &str = r#"
let any = [];
for i in 0..499 { any.push(#{ text: #{ "$contains": `zz${i}` } }); }
docs::find("big", #{ "$or": any }, #{ sort: ["-k"], skip: 1990, limit: 10 }).len()
"#;

/// The attacker's routes, cycled through by its connections (`PICLOUD_SOAK_ATTACKS`, a
/// comma-separated subset, picks fewer: to see which attack costs the victim what).
const ATTACKS: &[&str] = &["print", "log", "mem", "spin", "query"];

fn attacks() -> Vec<String> {
    match std::env::var("PICLOUD_SOAK_ATTACKS") {
        Ok(list) => list
            .split(',')
            .map(str::trim)
            .filter(|a| ATTACKS.contains(a) || *a == "body" || *a == "slow")
            .map(str::to_owned)
            .collect(),
        Err(_) => ATTACKS
            .iter()
            .map(|a| (*a).to_owned())
            .chain(["body".to_owned(), "slow".to_owned()])
            .collect(),
    }
}

/// Deploys `bytes` (of `kind`) as function `name` of `app` on `GET /name`.
async fn deploy(
    http: &reqwest::Client,
    base: &str,
    app: &str,
    name: &str,
    kind: &str,
    bytes: Vec<u8>,
) {
    use reqwest::Method;
    admin(
        http,
        base,
        Method::POST,
        &format!("/apps/{app}/functions/{name}/versions?kind={kind}"),
        bytes.into(),
        false,
    )
    .await;
    for method in ["GET", "POST"] {
        let route = json!({ "method": method, "path": format!("/{name}"), "function": name });
        admin(
            http,
            base,
            Method::POST,
            &format!("/apps/{app}/routes"),
            route.to_string().into(),
            true,
        )
        .await;
    }
}

async fn start(dir: &std::path::Path) -> String {
    use reqwest::Method;
    let base = support::start_server(ServeArgs {
        listen: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.into()),
        ..ServeArgs::with_data_dir(dir.to_owned())
    })
    .await;
    let http = reqwest::Client::new();
    for app in ["victim", "mallory"] {
        admin(
            &http,
            &base,
            Method::POST,
            "/apps",
            json!({ "name": app }).to_string().into(),
            true,
        )
        .await;
    }
    deploy(&http, &base, "victim", "kv", "rhai", VICTIM.into()).await;
    deploy(&http, &base, "mallory", "print", "rhai", PRINT_FLOOD.into()).await;
    let log_flood = picloud_example_artifacts::hostile_guest(
        r#"(import "picloud:sdk/log@0.1.0" "log" (func $log (param i32 i32 i32 i32 i32 i32)))"#,
        "(drop (memory.grow (i32.const 255)))
         (memory.fill (i32.const 0) (i32.const 97) (i32.const 16777216))
         (loop $flood
            (call $log (i32.const 2) (i32.const 0) (i32.const 16777216)
                       (i32.const 0) (i32.const 0) (i32.const 0))
            (br $flood))
         unreachable",
    );
    deploy(&http, &base, "mallory", "log", "component", log_flood).await;
    let memory_bomb = picloud_example_artifacts::hostile_guest(
        "",
        "(loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
         unreachable",
    );
    deploy(&http, &base, "mallory", "mem", "component", memory_bomb).await;
    deploy(&http, &base, "mallory", "spin", "rhai", SPIN.into()).await;
    deploy(&http, &base, "mallory", "seed", "rhai", SEED.into()).await;
    deploy(&http, &base, "mallory", "query", "rhai", HEAVY_QUERY.into()).await;
    let seeded = http
        .get(format!("{base}/fn/mallory/seed"))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.text().await.unwrap(), "seeded");
    let first = http
        .get(format!("{base}/fn/victim/kv"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    base
}

#[derive(Default)]
struct Victim {
    answered: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

impl Victim {
    fn percentile_ms(&mut self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        self.latencies_us.sort_unstable();
        let at = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        f64::from(self.latencies_us[at]) / 1000.0
    }
}

async fn victim(url: String, stop: Arc<AtomicBool>) -> Victim {
    let tasks: Vec<_> = (0..VICTIM_CONNECTIONS)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut load = Victim::default();
                while !stop.load(Ordering::Relaxed) {
                    let sent = Instant::now();
                    match http.get(&url).send().await {
                        Ok(response) if response.status() == 200 => {
                            let _ = response.bytes().await;
                            load.answered += 1;
                            load.latencies_us.push(
                                u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX),
                            );
                        }
                        _ => load.errors += 1,
                    }
                }
                load
            })
        })
        .collect();
    let mut total = Victim::default();
    for task in tasks {
        let load = task.await.expect("victim task");
        total.answered += load.answered;
        total.errors += load.errors;
        total.latencies_us.extend(load.latencies_us);
    }
    total
}

/// The attacker's connections: answers counted by status (0: no answer).
async fn attack(base: String, stop: Arc<AtomicBool>) -> BTreeMap<(String, u16), u64> {
    let chosen = attacks();
    let routes: Arc<Vec<String>> = Arc::new(
        chosen
            .iter()
            .filter(|a| ATTACKS.contains(&a.as_str()))
            .cloned()
            .collect(),
    );
    let mut tasks = Vec::new();
    let guests = if routes.is_empty() {
        0
    } else {
        ATTACK_CONNECTIONS
    };
    for connection in 0..guests {
        let (base, stop, routes) = (base.clone(), stop.clone(), routes.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut seen = BTreeMap::new();
            let mut turn = connection;
            while !stop.load(Ordering::Relaxed) {
                let route = &routes[turn % routes.len()];
                turn += 1;
                let status = match http.get(format!("{base}/fn/mallory/{route}")).send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let _ = response.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                *seen.entry((route.clone(), status)).or_insert(0) += 1;
            }
            seen
        }));
    }
    let bodies = if chosen.iter().any(|a| a == "body") {
        BODY_CONNECTIONS
    } else {
        0
    };
    for _ in 0..bodies {
        let (base, stop) = (base.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let body = vec![b'b'; 10 << 20];
            let mut seen = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let status = match http
                    .post(format!("{base}/fn/mallory/spin"))
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                };
                *seen.entry(("10 MiB body".to_owned(), status)).or_insert(0) += 1;
            }
            seen
        }));
    }
    let addr = base.trim_start_matches("http://").to_owned();
    let slow = if chosen.iter().any(|a| a == "slow") {
        SLOW_CONNECTIONS
    } else {
        0
    };
    for _ in 0..slow {
        let (addr, stop) = (addr.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = BTreeMap::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut socket) = tokio::net::TcpStream::connect(&addr).await else {
                    continue;
                };
                let request = b"GET /fn/victim/kv HTTP/1.1\r\nhost: x\r\nx-slow: ";
                let mut closed = false;
                for byte in request.iter().chain(std::iter::repeat(&b'a')) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if socket.write_all(&[*byte]).await.is_err() {
                        closed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                if closed {
                    *seen
                        .entry(("slow headers, cut off".to_owned(), 0))
                        .or_insert(0) += 1;
                }
            }
            seen
        }));
    }
    let mut all = BTreeMap::new();
    for task in tasks {
        for (key, n) in task.await.expect("attack task") {
            *all.entry(key).or_insert(0) += n;
        }
    }
    all
}

/// Resident set size of this process (server and load generator), MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Resident MiB of the guests' linear memories and of everything else. Contiguous
/// anonymous mappings are merged into regions (the kernel splits a region into several
/// mappings as pages are reset); each memory slot of the pooling allocator is a region
/// of at least 4 GiB (its reservation and guard), nothing else in the process is that
/// large (the allocator's arena is 1 GiB).
fn rss_split_mib() -> (f64, f64) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    // (start, end, anonymous, resident kB) of each region.
    let mut regions: Vec<(u64, u64, bool, u64)> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            let anonymous = fields.nth(4).is_none();
            match regions.last_mut() {
                Some(last) if last.1 == start && last.2 && anonymous => last.1 = end,
                _ => regions.push((start, end, anonymous, 0)),
            }
        } else if first == "Rss:"
            && let Some(last) = regions.last_mut()
        {
            last.3 += fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    let (mut memories, mut rest) = (0u64, 0u64);
    for (start, end, anonymous, kb) in regions {
        if anonymous && end - start >= 4 << 30 {
            memories += kb;
        } else {
            rest += kb;
        }
    }
    (memories as f64 / 1024.0, rest as f64 / 1024.0)
}

fn main() {
    let soak = Duration::from_secs(
        std::env::var("PICLOUD_SOAK_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    let server = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("server runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let base = server.block_on(start(dir.path()));
    let url = format!("{base}/fn/victim/kv");

    let load = |with_attack: bool, length: Duration| {
        let (base, url) = (base.clone(), url.clone());
        std::thread::spawn(move || {
            let client = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("client runtime");
            client.block_on(async move {
                let stop = Arc::new(AtomicBool::new(false));
                let victim = tokio::spawn(victim(url, stop.clone()));
                let attack = with_attack.then(|| tokio::spawn(attack(base, stop.clone())));
                tokio::time::sleep(length).await;
                stop.store(true, Ordering::Relaxed);
                let victim = victim.await.expect("victim");
                let attack = match attack {
                    Some(task) => task.await.expect("attack"),
                    None => BTreeMap::new(),
                };
                (victim, attack)
            })
        })
    };

    let (mut alone, _) = load(false, ALONE).join().expect("load thread");
    let alone_p99 = alone.percentile_ms(0.99);
    println!(
        "victim alone {:.0}s: {:.0} req/s, p50 {:.2} ms, p99 {alone_p99:.2} ms, errors {}",
        ALONE.as_secs_f64(),
        alone.answered as f64 / ALONE.as_secs_f64(),
        alone.percentile_ms(0.5),
        alone.errors
    );
    let rss_start = rss_mib();
    let split_start = rss_split_mib();
    let sampler = {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let thread = std::thread::spawn(move || {
            // (RSS, pool, rest) every 250 ms.
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let (pool, rest) = rss_split_mib();
                samples.push((rss_mib(), pool, rest));
                std::thread::sleep(Duration::from_millis(250));
            }
            samples
        });
        (done, thread)
    };
    let (mut soaked, attack) = load(true, soak).join().expect("load thread");
    sampler.0.store(true, Ordering::Relaxed);
    let samples = sampler.1.join().expect("sampler");
    let rss_peak = samples.iter().map(|s| s.0).fold(0.0, f64::max);
    let sample = |fraction: f64| samples[((samples.len() - 1) as f64 * fraction) as usize];
    let at = |fraction: f64| sample(fraction).0;
    let p99 = soaked.percentile_ms(0.99);
    println!(
        "victim beside the attacker {:.0}s: {:.0} req/s, p50 {:.2} ms, p99 {p99:.2} ms = {:.2}× alone (goal ≤ 3×), errors {} (goal 0)",
        soak.as_secs_f64(),
        soaked.answered as f64 / soak.as_secs_f64(),
        soaked.percentile_ms(0.5),
        p99 / alone_p99,
        soaked.errors
    );
    println!("attacker's answers (route, status: count; 0 = no answer):");
    for ((route, status), n) in &attack {
        println!("  {route:<24} {status:>3}: {n}");
    }
    println!(
        "RSS (MiB): {rss_start:.0} before the attack; {:.0} / {:.0} / {:.0} / {:.0} at 1/4, 1/2, 3/4 \
         and the end of the soak (flat once warm: end ≈ 1/4); peak {rss_peak:.0}",
        at(0.25),
        at(0.5),
        at(0.75),
        at(1.0)
    );
    let split_end = rss_split_mib();
    let split = |fraction: f64| {
        let (_, pool, rest) = sample(fraction);
        format!("{pool:.0} / {rest:.0}")
    };
    println!(
        "RSS (MiB) of the guests' linear memories / the rest: {:.0} / {:.0} before the attack; {} / {} / {} / {} \
         at 1/4, 1/2, 3/4, the end; {:.0} / {:.0} after the attacker stopped",
        split_start.0,
        split_start.1,
        split(0.25),
        split(0.5),
        split(0.75),
        split(1.0),
        split_end.0,
        split_end.1
    );
}
