//! One invocation: a fresh `Store` with fuel, an epoch deadline and a memory limiter,
//! instantiated from a cached instance-pre, calling the guest's `handler.handle`.

use crate::bindings::picloud::sdk::log as wit_log;
use crate::bindings::picloud::sdk::runtime::InvocationInfo;
use crate::bindings::picloud::sdk::types::{Request, Response};
use crate::warm::{Warm, WarmPool};
use crate::{Compiled, Limits, RunError, Runtime, Sdk};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::StoreContextMut;
use wasmtime::component::{ResourceTable, WasmStr};
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// At most this many log lines are kept per invocation; further lines are counted and
/// reported in one closing line, so a chatty guest cannot fill the database.
pub const MAX_LOG_LINES: usize = 1000;
/// At most this many bytes of one log message are kept; the rest is cut, and the kept
/// line says how much was.
pub const MAX_LOG_MESSAGE_BYTES: usize = 8 * 1024;
/// At most this many bytes of one line's structured fields are kept. Fields are kept
/// whole or not at all (a cut JSON object is no longer JSON); 4 KiB is ample for the
/// context of one line.
pub const MAX_LOG_FIELDS_BYTES: usize = 4 * 1024;
/// At most this many bytes of log text — messages, fields and captured stdout/stderr of
/// all lines together — are kept per invocation. Without it 1,000 lines of 8 KiB would
/// make every invocation record up to 8 MiB, held in host memory until it is written.
/// 256 KiB is far more than a handler logs (the ~30 lines of 8 KiB it allows are a
/// debugging session's worth).
pub const MAX_LOG_BYTES: usize = 256 * 1024;
/// Fuel charged per byte of a log message or fields that the host reads from guest
/// memory (it reads all of them to validate the UTF-8, and keeps a prefix). Reading a
/// byte costs the host about what a wasm instruction costs the guest, so it is priced
/// like one: logging is not a way to make the host work for free, and a log flood ends
/// in `fuel_exhausted` (with the default budget, after about 1 GB of log text).
pub const LOG_FUEL_PER_BYTE: u64 = 1;
/// Room kept at the end of a cut line for the host's note saying what was not kept
/// (" … [cut: N more bytes]" and " [fields dropped: …]" together stay below it).
const LOG_NOTE_RESERVE: usize = 128;
/// At most this many bytes of a guest's stdout and of its stderr are kept.
pub const MAX_CAPTURED_OUTPUT_BYTES: usize = 64 * 1024;

/// Who is running, for the guest's `runtime.info` and for the records the host keeps.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// App (tenant) name.
    pub app: String,
    /// Function name.
    pub function: String,
    /// Deployed version of the function.
    pub version: u32,
    /// Unique id of this invocation.
    pub invocation_id: String,
    /// What triggered it: `http`, `invoke`, `cron`, …
    pub trigger: String,
    /// The trigger event (JSON) for non-HTTP invocations.
    pub event: Option<String>,
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub level: String,
    /// The message (cut at [`MAX_LOG_MESSAGE_BYTES`]).
    pub message: String,
    /// Structured fields, a JSON object, when the guest gave some.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// What an invocation produced, successful or not, with what it cost.
#[derive(Debug)]
pub struct Outcome {
    /// The guest's response, or why there is none.
    pub result: Result<Response, RunError>,
    /// Fuel consumed: budget minus what was left.
    pub fuel_used: u64,
    /// Wall time from store creation to the end of the call.
    pub wall_time: Duration,
    /// Largest linear memory (bytes, all memories together) the instance held.
    pub peak_memory: u64,
    /// Log lines the guest wrote, then its captured stdout/stderr.
    pub logs: Vec<LogLine>,
}

/// Per-invocation store data.
pub struct State<S> {
    pub(crate) sdk: S,
    pub(crate) logs: LogSink,
    info: Invocation,
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    /// When this invocation's wall-clock limit runs out (checked at every epoch tick).
    deadline: Instant,
}

impl<S: Send> WasiView for State<S> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl<S> State<S> {
    /// Bytes of linear memory the instance holds now.
    pub(crate) fn memory_total(&self) -> u64 {
        self.limiter.total
    }

    /// Whether nothing about this store forbids running another invocation in it.
    pub(crate) fn reusable(&self) -> bool {
        !self.limiter.exceeded
    }

    pub(crate) fn info(&self) -> InvocationInfo {
        InvocationInfo {
            app: self.info.app.clone(),
            function: self.info.function.clone(),
            version: self.info.version,
            invocation_id: self.info.invocation_id.clone(),
            trigger: self.info.trigger.clone(),
            event: self.info.event.clone(),
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Collects log lines with the caps above. It copies only what it keeps.
#[derive(Debug, Default)]
pub(crate) struct LogSink {
    lines: Vec<LogLine>,
    /// Bytes of message and fields text kept so far (notes included).
    kept_bytes: usize,
    /// Lines dropped whole (past [`MAX_LOG_LINES`] or [`MAX_LOG_BYTES`]).
    dropped_lines: usize,
    /// Bytes the guest logged that were not kept: cut messages, dropped fields and
    /// dropped lines.
    dropped_bytes: usize,
}

/// What one log line leaves in a [`LogSink`]: computed from a borrowed line, so only
/// what is kept gets copied.
struct Entry {
    /// The line as kept, or `None` when it is dropped whole.
    line: Option<LogLine>,
    /// Bytes of message and fields text it adds to the log (notes included).
    kept_bytes: usize,
    /// Bytes of the guest's line that are not kept.
    dropped_bytes: usize,
}

impl LogSink {
    /// Keeps what fits of one line (see [`LogSink::entry`]).
    fn push(&mut self, level: &str, message: &str, fields: Option<&str>) {
        let entry = self.entry(level, message, fields);
        self.keep(entry);
    }

    /// What fits of one line: the message up to [`MAX_LOG_MESSAGE_BYTES`] and the room
    /// left in [`MAX_LOG_BYTES`], the fields when they are a JSON object of at most
    /// [`MAX_LOG_FIELDS_BYTES`] that fits. A line that lost anything ends with a note
    /// saying what.
    fn entry(&self, level: &str, message: &str, fields: Option<&str>) -> Entry {
        let offered = message.len() + fields.map_or(0, str::len);
        let room = MAX_LOG_BYTES.saturating_sub(self.kept_bytes);
        if self.lines.len() >= MAX_LOG_LINES || room < LOG_NOTE_RESERVE {
            return Entry {
                line: None,
                kept_bytes: 0,
                dropped_bytes: offered,
            };
        }
        let (fields, fields_note) = match fields {
            None => (None, None),
            Some(f) if f.len() > MAX_LOG_FIELDS_BYTES => (
                None,
                Some(format!(
                    " [fields dropped: {} bytes, over the limit of {MAX_LOG_FIELDS_BYTES}]",
                    f.len()
                )),
            ),
            Some(f) if !is_json_object(f) => (
                None,
                Some(" [fields dropped: not a JSON object]".to_owned()),
            ),
            Some(f) if f.len() + LOG_NOTE_RESERVE > room => (
                None,
                Some(" [fields dropped: the invocation's log is full]".to_owned()),
            ),
            Some(f) => (Some(f.to_owned()), None),
        };
        let fields_len = fields.as_ref().map_or(0, String::len);
        let limit = MAX_LOG_MESSAGE_BYTES.min(room - fields_len);
        let (kept, message_note) = if message.len() <= limit && fields_note.is_none() {
            (message, None)
        } else {
            let kept = utf8_prefix(message, limit - LOG_NOTE_RESERVE);
            let cut = message.len() - kept.len();
            (
                kept,
                (cut > 0).then(|| format!(" … [cut: {cut} more bytes]")),
            )
        };
        let mut text = kept.to_owned();
        text.extend(message_note.iter().chain(&fields_note).map(String::as_str));
        Entry {
            kept_bytes: text.len() + fields_len,
            dropped_bytes: offered - kept.len() - fields_len,
            line: Some(LogLine {
                level: level.to_owned(),
                message: text,
                fields,
                at_ms: now_ms(),
            }),
        }
    }

    fn keep(&mut self, entry: Entry) {
        self.kept_bytes += entry.kept_bytes;
        self.dropped_bytes += entry.dropped_bytes;
        match entry.line {
            Some(line) => self.lines.push(line),
            None => self.dropped_lines += 1,
        }
    }

    fn push_output(&mut self, level: &str, output: &[u8]) {
        let text = String::from_utf8_lossy(output);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            self.push(level, line, None);
        }
    }

    fn finish(mut self) -> Vec<LogLine> {
        if self.dropped_lines > 0 || self.dropped_bytes > 0 {
            let message = format!(
                "log output past the limits was not kept: {} further log lines were dropped, \
                 {} bytes in all (limits per invocation: {MAX_LOG_LINES} lines, \
                 {MAX_LOG_BYTES} bytes; {MAX_LOG_MESSAGE_BYTES} bytes per message, \
                 {MAX_LOG_FIELDS_BYTES} per fields object)",
                self.dropped_lines, self.dropped_bytes
            );
            self.lines.push(LogLine {
                level: "warn".into(),
                message,
                fields: None,
                at_ms: now_ms(),
            });
        }
        self.lines
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn utf8_prefix(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `text` is one JSON object (what the WIT `fields` must be).
fn is_json_object(text: &str) -> bool {
    text.trim_start().starts_with('{')
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// The `picloud:sdk/log` import's `log`. The message and fields arrive as [`WasmStr`]s,
/// views of guest memory, and only the prefix kept is copied into the host (lifting them
/// as `String`s, as generated bindings do, copies whole multi-megabyte strings first).
/// The host still reads all of them (UTF-8 validation), which the guest pays for at
/// [`LOG_FUEL_PER_BYTE`]; a line it cannot pay for ends it with `fuel_exhausted` and is
/// not kept.
pub(crate) fn log_from_guest<S: 'static>(
    mut store: StoreContextMut<'_, State<S>>,
    level: wit_log::Level,
    message: &WasmStr,
    fields: Option<&WasmStr>,
) -> wasmtime::Result<()> {
    let level = match level {
        wit_log::Level::Trace => "trace",
        wit_log::Level::Debug => "debug",
        wit_log::Level::Info => "info",
        wit_log::Level::Warn => "warn",
        wit_log::Level::Error => "error",
    };
    let (entry, read) = {
        let message = message.to_str(&store)?;
        let fields = fields.map(|f| f.to_str(&store)).transpose()?;
        let fields = fields.as_deref();
        let read = message.len() + fields.map_or(0, str::len);
        (store.data().logs.entry(level, &message, fields), read)
    };
    let cost = (read as u64).saturating_mul(LOG_FUEL_PER_BYTE);
    let left = store.get_fuel()?;
    if cost > left {
        store.set_fuel(0)?;
        return Err(Trap::OutOfFuel.into());
    }
    store.set_fuel(left - cost)?;
    store.data_mut().logs.keep(entry);
    Ok(())
}

/// A guest's captured stdout and stderr.
#[derive(Default)]
pub(crate) struct Output {
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl Output {
    /// Moves what the guest printed into `logs`: stdout as info, stderr as error lines.
    pub(crate) fn drain_into(&self, logs: &mut LogSink) {
        logs.push_output("info", &self.stdout.take());
        logs.push_output("error", &self.stderr.take());
    }

    /// What the guest wrote to stderr so far, as text.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.take()).into_owned()
    }
}

/// Tracks linear memory of the instance and refuses growth past the limit.
#[derive(Debug)]
struct MemoryLimiter {
    limit: u64,
    total: u64,
    peak: u64,
    exceeded: bool,
}

impl MemoryLimiter {
    /// A kept instance's memory stays; the new invocation's peak starts from it.
    fn rearm(&mut self, limit: u64) {
        self.limit = limit;
        self.peak = self.total;
        self.exceeded = false;
    }
}

/// Upper bound on table elements; tables are not a way around the memory limit.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .total
            .saturating_sub(current as u64)
            .saturating_add(desired as u64);
        if total > self.limit {
            self.exceeded = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.limit);
        }
        self.total = total;
        self.peak = self.peak.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// A guest's stdout or stderr, kept in memory up to [`MAX_CAPTURED_OUTPUT_BYTES`];
/// what goes past the cap is dropped rather than failing the guest.
#[derive(Clone, Default)]
struct CapturedOutput(Arc<Mutex<Vec<u8>>>);

impl CapturedOutput {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = MAX_CAPTURED_OUTPUT_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&buf[..buf.len().min(room)]);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl<S: Sdk> Runtime<S> {
    /// Runs `request` through `function` under `limits`, with `sdk` serving the guest's
    /// SDK calls, in a fresh instance. Never panics on guest behaviour: every failure is
    /// a [`RunError`] in the outcome, and the store (with all guest memory) is dropped
    /// before returning.
    pub async fn invoke(
        &self,
        function: &Compiled<S>,
        invocation: Invocation,
        request: Request,
        limits: Limits,
        sdk: S,
    ) -> Outcome {
        self.invoke_warm(function, None, invocation, request, limits, sdk)
            .await
    }

    /// As [`Runtime::invoke`], but with a `pool`: in an idle instance of it when there
    /// is one, and keeping the instance in it afterwards when it may be reused (see
    /// [`crate::warm`]). Only for guests that keep no state between invocations; with
    /// `None` this is [`Runtime::invoke`].
    pub async fn invoke_warm(
        &self,
        function: &Compiled<S>,
        pool: Option<&WarmPool<S>>,
        invocation: Invocation,
        request: Request,
        limits: Limits,
        sdk: S,
    ) -> Outcome {
        let started = Instant::now();
        let warm = pool.and_then(|pool| pool.take(&limits));
        let prepared = match warm {
            Some(warm) => {
                let Warm {
                    mut store,
                    function: instance,
                    output,
                    uses,
                    ..
                } = warm;
                self.rearm(&mut store, sdk, invocation, &limits)
                    .map(|()| (store, output, Some(instance), uses))
            }
            None => self
                .store(sdk, invocation, &limits)
                .map(|(store, output)| (store, output, None, 0)),
        };
        let (mut store, output, instance, uses) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                return Outcome {
                    result: Err(RunError::Internal(format!("store setup: {e}"))),
                    fuel_used: 0,
                    wall_time: started.elapsed(),
                    peak_memory: 0,
                    logs: Vec::new(),
                };
            }
        };

        let call = async {
            let instance = match instance {
                Some(instance) => instance,
                None => function.pre.instantiate_async(&mut store).await?,
            };
            let answer = instance
                .picloud_sdk_handler()
                .call_handle(&mut store, &request)
                .await?;
            Ok::<_, wasmtime::Error>((instance, answer))
        };
        // The epoch deadline stops guest code; this also bounds time spent inside host
        // calls, which the epoch cannot interrupt.
        let backstop = limits.timeout() + 4 * self.epoch_tick;
        // The instance survives only a call that returned.
        let mut returned = None;
        let result = match tokio::time::timeout(backstop, call).await {
            Ok(Ok((instance, Ok(response)))) => {
                returned = Some(instance);
                Ok(response)
            }
            Ok(Ok((instance, Err(guest_error)))) => {
                returned = Some(instance);
                Err(RunError::Failed(format!(
                    "the function returned an error: {}",
                    crate::describe_error(&guest_error)
                )))
            }
            Ok(Err(trap)) => Err(classify(&trap, store.data(), &limits)),
            Err(_elapsed) => Err(RunError::Timeout {
                limit_ms: limits.timeout_ms,
            }),
        };
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data_mut();
        let mut logs = std::mem::take(&mut state.logs);
        output.drain_into(&mut logs);
        let peak_memory = state.limiter.peak;
        if let (Some(pool), Some(instance)) = (pool, returned) {
            pool.put(Warm::new(store, instance, output, uses + 1, limits));
        }
        Outcome {
            result,
            fuel_used,
            wall_time: started.elapsed(),
            peak_memory,
            logs: logs.finish(),
        }
    }

    /// Gets a kept store ready for a new invocation: its SDK handle, identity and the
    /// limits of a fresh store (its log was emptied when the last invocation ended).
    fn rearm(
        &self,
        store: &mut Store<State<S>>,
        sdk: S,
        invocation: Invocation,
        limits: &Limits,
    ) -> wasmtime::Result<()> {
        let state = store.data_mut();
        state.sdk = sdk;
        state.info = invocation;
        state.limiter.rearm(limits.memory_bytes);
        self.arm(store, limits)
    }

    /// Fuel, the async yield interval and the epoch deadline of one invocation.
    fn arm(&self, store: &mut Store<State<S>>, limits: &Limits) -> wasmtime::Result<()> {
        store.set_fuel(limits.fuel)?;
        store.data_mut().deadline = Instant::now() + limits.timeout();
        // The next tick ends the first slice (the ticker is not aligned with this start,
        // so the first slice is up to a tick long); see `on_tick`.
        store.set_epoch_deadline(1);
        Ok(())
    }

    /// A fresh store for one run: WASI without network, captured stdio, fuel, the
    /// epoch deadline and the memory limiter.
    pub(crate) fn store(
        &self,
        sdk: S,
        invocation: Invocation,
        limits: &Limits,
    ) -> wasmtime::Result<(Store<State<S>>, Output)> {
        let output = Output::default();
        let wasi = WasiCtx::builder()
            .stdout(output.stdout.clone())
            .stderr(output.stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = State {
            sdk,
            logs: LogSink::default(),
            info: invocation,
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter {
                limit: limits.memory_bytes,
                total: 0,
                peak: 0,
                exceeded: false,
            },
            deadline: Instant::now() + limits.timeout(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.epoch_deadline_callback(on_tick);
        self.arm(&mut store, limits)?;
        Ok((store, output))
    }
}

/// At every epoch tick while guest code runs: past the wall-clock limit the guest stops
/// (`Trap::Interrupt`, a timeout); otherwise its slice ends and it yields to the
/// executor, to go on at the next poll for another tick.
///
/// So a CPU-bound guest yields at every tick (see [`crate::DEFAULT_EPOCH_TICK`], 1 ms):
/// its slices are short in time whatever its code, and a busy tenant holds a CPU slot
/// (`picloud::fair`) for at most a tick before the scheduler may hand it to someone
/// else. Yielding on fuel instead made slices as long as the code was dense: 10⁷ fuel
/// was 1.6 ms of Rhai but 9 ms of a tight wasm loop. Each yield costs ~14 µs (tokio
/// reschedules the task, often on another worker), about 1.4 % of a long runner's time
/// at this grain; short handlers never reach a tick.
fn on_tick<S>(store: StoreContextMut<'_, State<S>>) -> wasmtime::Result<UpdateDeadline> {
    if Instant::now() >= store.data().deadline {
        Ok(UpdateDeadline::Interrupt)
    } else {
        Ok(UpdateDeadline::Yield(1))
    }
}

fn classify<S>(error: &wasmtime::Error, state: &State<S>, limits: &Limits) -> RunError {
    if state.limiter.exceeded {
        return RunError::MemoryExhausted {
            limit_bytes: limits.memory_bytes,
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RunError::FuelExhausted {
            budget: limits.fuel,
        },
        Some(Trap::Interrupt) => RunError::Timeout {
            limit_ms: limits.timeout_ms,
        },
        Some(Trap::StackOverflow) => RunError::Failed("the function overflowed its stack".into()),
        Some(trap) => RunError::Failed(format!("the function trapped: {trap}")),
        None => RunError::Failed(format!("{error:#}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary_and_says_so() {
        let mut sink = LogSink::default();
        let message = "é".repeat(MAX_LOG_MESSAGE_BYTES);
        sink.push("info", &message, None);
        let lines = sink.finish();
        let kept = lines[0].message.find(" … [cut: ").unwrap();
        assert!(lines[0].message[..kept].chars().all(|c| c == 'é'));
        let cut = message.len() - kept;
        assert_eq!(
            lines[0].message[kept..],
            format!(" … [cut: {cut} more bytes]")
        );
        assert!(lines[1].message.contains(&format!(
            "0 further log lines were dropped, {cut} bytes in all"
        )));
    }

    #[test]
    fn lines_past_the_byte_budget_are_dropped_and_counted() {
        let mut sink = LogSink::default();
        let line = "x".repeat(1000);
        for _ in 0..MAX_LOG_LINES {
            sink.push("info", &line, None);
        }
        let lines = sink.finish();
        // 262 whole lines fill 262,000 of the 262,144 bytes; the 263rd keeps 16 bytes
        // and its note (144 bytes of room less the note's reserve); the other 737 go.
        assert_eq!(lines.len(), 263 + 1);
        assert!(lines[..262].iter().all(|l| l.message == line));
        assert_eq!(
            lines[262].message,
            format!("{} … [cut: 984 more bytes]", "x".repeat(16))
        );
        let kept: usize = lines[..263].iter().map(|l| l.message.len()).sum();
        assert!(kept <= MAX_LOG_BYTES, "{kept}");
        assert!(
            lines[263].message.contains(&format!(
                "737 further log lines were dropped, {} bytes in all",
                984 + 737 * 1000
            )),
            "{}",
            lines[263].message
        );
    }
}
