//! `email`: outbound email. Servers without SMTP answer every send with
//! `unavailable: email not configured`.
//!
//! `to`, `cc` and `bcc` are a string or an array of strings; `send` answers the message id.
//!
//! ```rhai
//! email::send(#{ to: "ada@example.com", subject: "Hi", text: "Hello!" });
//! email::send(#{ to: ["a@example.com", "b@example.com"], cc: "c@example.com",
//!                bcc: [], subject: "Hi", text: "Hello!", reply_to: "support@example.com" });
//! email::send_html(#{ to: "ada@example.com", subject: "Hi", text: "Hello!", html: "<b>Hello!</b>" });
//! ```
//!
//! `send` sends text only (an `html` field is ignored); `send_html` requires `html` and
//! sends it with `text` as the plain alternative.

use super::{Fields, add_fn, sdk_error};
use crate::host::{EmailMessage, Host};
use crate::sdk::RhaiResultOf;
use rhai::{Dynamic, Module};
use std::rc::Rc;

pub(super) fn register(module: &mut Module, host: &Rc<dyn Host>) {
    let h = host.clone();
    add_fn(module, "send", move |message: Dynamic| {
        let message = message_of("email::send", &message, false)?;
        h.email_send(&message)
            .map_err(|e| sdk_error("email::send", e))
    });

    let h = host.clone();
    add_fn(module, "send_html", move |message: Dynamic| {
        let message = message_of("email::send_html", &message, true)?;
        h.email_send(&message)
            .map_err(|e| sdk_error("email::send_html", e))
    });
}

fn message_of(function: &str, message: &Dynamic, html: bool) -> RhaiResultOf<EmailMessage> {
    let fields = Fields::of(function, message)?;
    let to = fields.strings("to")?;
    if to.is_empty() {
        return Err(super::error(format!("{function}: `to` is required")));
    }
    Ok(EmailMessage {
        to,
        cc: fields.strings("cc")?,
        bcc: fields.strings("bcc")?,
        subject: fields.required_string("subject")?,
        text: fields.string("text")?.unwrap_or_default(),
        html: if html {
            Some(fields.required_string("html")?)
        } else {
            None
        },
        reply_to: fields.string("reply_to")?,
    })
}
