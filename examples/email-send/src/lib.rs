//! Sends the email a request describes, for the outbound email tests:
//! `POST /` with `{"to": ["a@example.com"], "cc": [], "bcc": [], "subject": "Hi",
//! "text": "Hello", "html": "<b>Hello</b>", "reply_to": "r@example.com"}` (`html` and
//! `reply_to` optional) answers `{"message_id": "<…>"}`, or `{"error": "invalid: …"}`.

use picloud_sdk::email::{self, Message};
use picloud_sdk::{Request, Response, Result};
use serde_json::{Value, json};

picloud_sdk::handler!(handle);

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn handle(request: Request) -> Result<Response> {
    let input: Value = request.json()?;
    let text = |name: &str| input[name].as_str().map(str::to_owned);
    let message = Message {
        to: strings(&input["to"]),
        cc: strings(&input["cc"]),
        bcc: strings(&input["bcc"]),
        subject: text("subject").unwrap_or_default(),
        text: text("text").unwrap_or_default(),
        html: text("html"),
        reply_to: text("reply_to"),
    };
    match email::send(&message) {
        Ok(id) => Response::json(&json!({ "message_id": id })),
        Err(e) => Response::json(&json!({ "error": e.text() })),
    }
}
