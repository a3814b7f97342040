//! `picloud users`: an app's end users (list, get, create, delete, invite) and the link
//! template of the emails they get (`settings`).

use super::{Client, print};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub(super) enum UsersCommand {
    /// List an app's users, oldest first.
    List {
        /// App name.
        app: String,
        /// Continue after this cursor (printed when more users follow).
        #[arg(long)]
        cursor: Option<String>,
        /// Users per page (1-1000, default 100).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show a user, by id or by email.
    Get {
        /// App name.
        app: String,
        /// The user's id, or an email address.
        user: String,
    },
    /// Create a user. The password is read from stdin (without echo on a terminal),
    /// never from the command line.
    Create {
        /// App name.
        app: String,
        /// The user's email address.
        email: String,
        /// A role (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
        /// App-defined profile data, a JSON object.
        #[arg(long)]
        data: Option<String>,
    },
    /// Delete a user (and end its sessions).
    Delete {
        /// App name.
        app: String,
        /// The user's id.
        id: String,
    },
    /// Email an invitation to create an account (the app's link URL and email must be
    /// set up).
    Invite {
        /// App name.
        app: String,
        /// Who is invited.
        email: String,
        /// A role the account gets (repeatable).
        #[arg(long = "role")]
        roles: Vec<String>,
    },
    /// Show or set the URL of the links in verification, reset and invitation emails:
    /// `{token}` is replaced by the token, `{action}` by verify-email, reset-password
    /// or accept-invite.
    Settings {
        /// App name.
        app: String,
        /// For example 'https://app.example/auth?action={action}&token={token}'.
        #[arg(long)]
        link_url: Option<String>,
    },
}

fn describe(user: &Value) -> String {
    let roles: Vec<&str> = user["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    format!(
        "{}  {:<32} {:<10} {}",
        user["id"].as_str().unwrap_or(""),
        user["email"].as_str().unwrap_or(""),
        if user["email_verified"] == true {
            "verified"
        } else {
            "unverified"
        },
        roles.join(",")
    )
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    let query = query.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

pub(super) async fn run(client: &Client, json: bool, command: UsersCommand) -> anyhow::Result<()> {
    use reqwest::Method;
    match command {
        UsersCommand::List { app, cursor, limit } => {
            let q = query(&[("cursor", cursor), ("limit", limit.map(|l| l.to_string()))]);
            let page = client
                .send(Method::GET, &format!("/apps/{app}/users{q}"), None)
                .await?;
            print(json, &page, || {
                let mut lines: Vec<String> = page["users"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(describe)
                    .collect();
                if lines.is_empty() {
                    lines.push(format!("app {app} has no users"));
                }
                if let Some(cursor) = page["cursor"].as_str() {
                    lines.push(format!("more: --cursor {cursor}"));
                }
                lines.join("\n")
            });
        }
        UsersCommand::Get { app, user } => {
            let found = if user.contains('@') {
                let q = query(&[("email", Some(user.clone()))]);
                let page = client
                    .send(Method::GET, &format!("/apps/{app}/users{q}"), None)
                    .await?;
                match page["users"].get(0) {
                    Some(found) => found.clone(),
                    None => anyhow::bail!("no user with email {user:?} in app {app}"),
                }
            } else {
                client
                    .send(Method::GET, &format!("/apps/{app}/users/{user}"), None)
                    .await?
            };
            print(json, &found, || describe(&found));
        }
        UsersCommand::Create {
            app,
            email,
            roles,
            data,
        } => {
            let password = super::secrets::read_value("the password")?;
            let data = data
                .map(|d| serde_json::from_str::<Value>(&d))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--data is not JSON: {e}"))?;
            let body =
                json!({ "email": email, "password": password, "roles": roles, "data": data });
            let user = client
                .send(Method::POST, &format!("/apps/{app}/users"), Some(body))
                .await?;
            print(json, &user, || format!("created user {}", describe(&user)));
        }
        UsersCommand::Delete { app, id } => {
            client
                .send(Method::DELETE, &format!("/apps/{app}/users/{id}"), None)
                .await?;
            print(json, &json!({ "deleted": id }), || {
                format!("deleted user {id}")
            });
        }
        UsersCommand::Invite { app, email, roles } => {
            client
                .send(
                    Method::POST,
                    &format!("/apps/{app}/users/invite"),
                    Some(json!({ "email": email, "roles": roles })),
                )
                .await?;
            print(json, &json!({ "invited": email }), || {
                format!("invited {email}")
            });
        }
        UsersCommand::Settings { app, link_url } => {
            let settings = match link_url {
                Some(url) => {
                    client
                        .send(
                            Method::PUT,
                            &format!("/apps/{app}/users/settings"),
                            Some(json!({ "link_url": url })),
                        )
                        .await?
                }
                None => {
                    client
                        .send(Method::GET, &format!("/apps/{app}/users/settings"), None)
                        .await?
                }
            };
            print(json, &settings, || match settings["link_url"].as_str() {
                Some(url) => format!("link URL: {url}"),
                None => "no link URL: verification, reset and invitation emails are off".into(),
            });
        }
    }
    Ok(())
}
