//! `picloud logs [--follow]`: an app's invocations and their log lines.

use super::{Client, print};
use serde_json::Value;

/// Which invocations `picloud logs` shows.
pub(super) struct LogFilter {
    pub(super) app: String,
    pub(super) function: Option<String>,
    pub(super) status: Option<String>,
}

impl LogFilter {
    /// The newest `limit` invocations that pass, newest first.
    async fn fetch(&self, client: &Client, limit: u32) -> anyhow::Result<Value> {
        let mut query = vec![("limit".to_owned(), limit.to_string())];
        query.extend(self.function.clone().map(|f| ("function".to_owned(), f)));
        query.extend(self.status.clone().map(|s| ("status".to_owned(), s)));
        let qs: String = query
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        client
            .send(
                reqwest::Method::GET,
                &format!("/apps/{}/invocations?{qs}", self.app),
                None,
            )
            .await
    }
}

/// One invocation and its log lines, as `picloud logs` prints them.
pub(super) fn describe_invocation(inv: &Value) -> Vec<String> {
    let outcome = match inv["error_code"].as_str() {
        Some(code) => format!(
            "{} {code}: {}",
            inv["http_status"],
            inv["error_message"].as_str().unwrap_or("")
        ),
        None => format!("{}", inv["http_status"]),
    };
    let mut out = vec![format!(
        "{}  {} v{}  {}  {:.2} ms  fuel {}  [{}]",
        inv["id"].as_str().unwrap_or(""),
        inv["function"].as_str().unwrap_or(""),
        inv["version"],
        outcome,
        inv["duration_us"].as_f64().unwrap_or(0.0) / 1000.0,
        inv["fuel_used"],
        inv["trigger"].as_str().unwrap_or("")
    )];
    for line in inv["logs"].as_array().into_iter().flatten() {
        out.push(format!(
            "    {:<5} {}",
            line["level"].as_str().unwrap_or(""),
            line["message"].as_str().unwrap_or("")
        ));
    }
    out
}

pub(super) async fn logs(
    client: &Client,
    as_json: bool,
    filter: &LogFilter,
    limit: u32,
) -> anyhow::Result<()> {
    let invocations = filter.fetch(client, limit).await?;
    print(as_json, &invocations, || {
        let out: Vec<String> = invocations
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(describe_invocation)
            .collect();
        if out.is_empty() {
            format!("no invocations of {} yet", filter.app)
        } else {
            out.join("\n")
        }
    });
    Ok(())
}

/// How often `logs --follow` asks for new invocations, and how many at a time.
pub(super) const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
pub(super) const FOLLOW_PAGE: u32 = 200;
/// Ids `logs --follow` remembers having printed (records arrive in batches, not in id
/// order, so it remembers rather than comparing with the last id).
pub(super) const FOLLOW_REMEMBERED: usize = 10_000;

/// `picloud logs --follow`: the newest `limit` invocations, then each new one as it is
/// recorded, oldest first, until interrupted.
pub(super) async fn follow_logs(
    client: &Client,
    as_json: bool,
    filter: &LogFilter,
    limit: u32,
) -> anyhow::Result<()> {
    use std::collections::{HashSet, VecDeque};
    use std::io::Write as _;
    let mut seen: HashSet<String> = HashSet::new();
    let mut order: VecDeque<String> = VecDeque::new();
    let mut first = true;
    loop {
        let page = filter
            .fetch(client, if first { limit.max(1) } else { FOLLOW_PAGE })
            .await?;
        let mut fresh: Vec<&Value> = page
            .as_array()
            .into_iter()
            .flatten()
            .filter(|inv| inv["id"].as_str().is_some_and(|id| !seen.contains(id)))
            .collect();
        // Newest first from the API; printed oldest first, as a log reads.
        fresh.reverse();
        let mut stdout = std::io::stdout().lock();
        for inv in fresh {
            let id = inv["id"].as_str().unwrap_or_default().to_owned();
            if as_json {
                writeln!(stdout, "{inv}")?;
            } else {
                for line in describe_invocation(inv) {
                    writeln!(stdout, "{line}")?;
                }
            }
            seen.insert(id.clone());
            order.push_back(id);
            if order.len() > FOLLOW_REMEMBERED
                && let Some(old) = order.pop_front()
            {
                seen.remove(&old);
            }
        }
        stdout.flush()?;
        drop(stdout);
        first = false;
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
