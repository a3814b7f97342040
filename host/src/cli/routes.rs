//! `picloud routes` (list, add, delete) and `picloud execution`.

use super::{Client, print};
use anyhow::anyhow;
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum RoutesCommand {
    /// List an app's routes.
    List {
        /// App name.
        app: String,
    },
    /// Bind 'METHOD /path' of an app to a function.
    Add {
        /// App name.
        app: String,
        /// Like 'GET /orders/:id'.
        route: String,
        /// Function name.
        function: String,
        /// Answer 202 at once and run the function from the queue (read its answer
        /// with `picloud execution APP ID`).
        #[arg(long = "async")]
        is_async: bool,
    },
    /// Delete a route by id.
    Delete {
        /// App name.
        app: String,
        /// Route id (see `routes list`).
        id: String,
    },
}

pub(super) async fn run(client: &Client, json: bool, command: RoutesCommand) -> anyhow::Result<()> {
    match command {
        RoutesCommand::List { app } => {
            let routes = client
                .send(reqwest::Method::GET, &format!("/apps/{app}/routes"), None)
                .await?;
            print(json, &routes, || {
                let lines: Vec<String> = routes
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        format!(
                            "{:<7} {:<30} → {}  ({})",
                            r["method"].as_str().unwrap_or(""),
                            r["path"].as_str().unwrap_or(""),
                            r["function"].as_str().unwrap_or(""),
                            r["id"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    format!("app {app} has no routes")
                } else {
                    lines.join("\n")
                }
            });
        }
        RoutesCommand::Add {
            app,
            route,
            function,
            is_async,
        } => {
            let created = add_route(client, &app, &route, &function, is_async).await?;
            print(json, &created, || {
                let how = if is_async {
                    " (async: 202, then `picloud execution`)"
                } else {
                    ""
                };
                format!("bound {route} → {function}{how}")
            });
        }
        RoutesCommand::Delete { app, id } => {
            client
                .send(
                    reqwest::Method::DELETE,
                    &format!("/apps/{app}/routes/{id}"),
                    None,
                )
                .await?;
            print(json, &json!({ "deleted": id }), || {
                format!("deleted route {id}")
            });
        }
    }
    Ok(())
}

/// `picloud execution APP ID`: the status and answer of a request to an async route.
pub(super) async fn execution(
    client: &Client,
    json: bool,
    app: String,
    id: String,
) -> anyhow::Result<()> {
    let execution = client
        .send(
            reqwest::Method::GET,
            &format!("/apps/{app}/executions/{id}"),
            None,
        )
        .await?;
    print(json, &execution, || {
        let mut text = format!(
            "execution {id} of {}: {}",
            execution["function"].as_str().unwrap_or(""),
            execution["status"].as_str().unwrap_or("")
        );
        if let Some(status) = execution["result"]["status"].as_u64() {
            text.push_str(&format!(", answered {status}"));
        }
        if let Some(error) = execution["error"].as_str() {
            text.push_str(&format!(": {error}"));
        }
        text
    });
    Ok(())
}

pub(super) async fn add_route(
    client: &Client,
    app: &str,
    route: &str,
    function: &str,
    is_async: bool,
) -> anyhow::Result<Value> {
    let (method, path) = crate::routing::parse_route_spec(route).map_err(|e| anyhow!(e))?;
    let dispatch = if is_async { "async" } else { "sync" };
    client
        .send(
            reqwest::Method::POST,
            &format!("/apps/{app}/routes"),
            Some(json!({ "method": method, "path": path, "function": function, "dispatch": dispatch })),
        )
        .await
}
