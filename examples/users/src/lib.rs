//! End-user calls a request describes, for the users tests and bench. Speaks the same
//! protocol as the tests' Rhai script: the body is `{"op": …, …arguments}` and the
//! answer `{"ok": value}` or `{"error": "kind: message"}`. `login` answers the session
//! token, `verify` the user or `null` (like Rhai's `users::verify`).
//!
//! For the bench, `"repeat": N` makes the call N times (the answer is the last one's),
//! and op `kv-get` reads key `key` of kv collection `bench`: the baseline a
//! `users::verify` is compared with.

use picloud_sdk::users::{self, User, UserUpdate};
use picloud_sdk::{Request, Response, Result, kv};
use serde_json::{Value, json};

picloud_sdk::handler!(handle);

fn handle(request: Request) -> Result<Response> {
    let call: Value = request.json()?;
    let repeat = call["repeat"].as_u64().unwrap_or(1).max(1);
    let mut answer = json!(null);
    for _ in 0..repeat {
        answer = match run(&call) {
            Ok(value) => json!({ "ok": value }),
            Err(e) => json!({ "error": e.text() }),
        };
    }
    Response::json(&answer)
}

fn str_of<'a>(call: &'a Value, field: &str) -> &'a str {
    call[field].as_str().unwrap_or_default()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn user(u: &User) -> Value {
    json!({
        "id": u.id,
        "email": u.email,
        "email_verified": u.email_verified,
        "roles": u.roles,
        "data": serde_json::from_str::<Value>(&u.data).unwrap_or(Value::Null),
        "created": u.created,
    })
}

fn run(call: &Value) -> Result<Value> {
    Ok(match str_of(call, "op") {
        "create" => {
            let u = &call["user"];
            let roles = strings(&u["roles"]);
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            let data = u.get("data");
            user(&users::create(
                str_of(u, "email"),
                str_of(u, "password"),
                &roles,
                data,
            )?)
        }
        "get" => users::get(str_of(call, "id"))?
            .as_ref()
            .map_or(Value::Null, user),
        "find_by_email" => users::find_by_email(str_of(call, "email"))?
            .as_ref()
            .map_or(Value::Null, user),
        "update" => {
            let u = &call["update"];
            let update = UserUpdate {
                email: u["email"].as_str().map(str::to_owned),
                password: u["password"].as_str().map(str::to_owned),
                roles: u.get("roles").map(strings),
                data: u.get("data").map(ToString::to_string),
            };
            user(&users::update(str_of(call, "id"), &update)?)
        }
        "delete" => json!(users::delete(str_of(call, "id"))?),
        "list" => {
            let page = users::list(
                call["cursor"].as_str(),
                call["limit"].as_u64().and_then(|l| u32::try_from(l).ok()),
            )?;
            json!({ "users": page.users.iter().map(user).collect::<Vec<_>>(), "cursor": page.cursor })
        }
        "login" => json!(users::login(str_of(call, "email"), str_of(call, "password"))?.token),
        "verify" => users::verify(str_of(call, "token"))?
            .as_ref()
            .map_or(Value::Null, user),
        "logout" => {
            users::logout(str_of(call, "token"))?;
            Value::Null
        }
        "request_password_reset" => {
            users::request_password_reset(str_of(call, "email"))?;
            Value::Null
        }
        "reset_password" => {
            users::reset_password(str_of(call, "token"), str_of(call, "password"))?;
            Value::Null
        }
        "request_verification" => {
            users::request_verification(str_of(call, "id"))?;
            Value::Null
        }
        "verify_email" => user(&users::verify_email(str_of(call, "token"))?),
        "invite" => {
            let roles = strings(&call["roles"]);
            let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
            users::invite(str_of(call, "email"), &roles)?;
            Value::Null
        }
        "accept_invite" => user(&users::accept_invite(
            str_of(call, "token"),
            str_of(call, "password"),
        )?),
        "add_role" => user(&users::add_role(str_of(call, "id"), str_of(call, "role"))?),
        "remove_role" => user(&users::remove_role(
            str_of(call, "id"),
            str_of(call, "role"),
        )?),
        "kv-get" => kv::get::<Value>("bench", str_of(call, "key"))?.unwrap_or(Value::Null),
        other => json!(format!("unknown op {other}")),
    })
}
