//! `picloud usage`: an app's invocations, errors (and by code), fuel and wall time per
//! UTC day.

use super::{Client, print};

pub(super) async fn run(client: &Client, json: bool, app: String, days: u32) -> anyhow::Result<()> {
    let usage = client
        .send(
            reqwest::Method::GET,
            &format!("/apps/{app}/usage?days={days}"),
            None,
        )
        .await?;
    print(json, &usage, || {
        let mut lines = vec![format!(
            "{:<10} {:>11} {:>7} {:>16} {:>12}  {}",
            "day", "invocations", "errors", "fuel", "wall ms", "errors by code"
        )];
        for day in usage.as_array().into_iter().flatten() {
            let by_code: Vec<String> = day["errors_by_code"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            lines.push(format!(
                "{:<10} {:>11} {:>7} {:>16} {:>12}  {}",
                day["day"].as_str().unwrap_or(""),
                day["invocations"],
                day["errors"],
                day["fuel_used"],
                day["duration_us"].as_i64().unwrap_or(0) / 1000,
                by_code.join(", ")
            ));
        }
        if lines.len() == 1 {
            format!("no invocations of {app} in the last {days} days")
        } else {
            lines.join("\n")
        }
    });
    Ok(())
}
