//! Email through the server's SMTP relay, from the app's address (set by an operator)
//! or the server's.
//!
//! `to`, `cc` and `bcc` take one address or many (`ada@example.com` or
//! `Ada <ada@example.com>`), 50 recipients at most; a message with html goes out as
//! `multipart/alternative` with the text as the plain part. A send answers the
//! message's `Message-ID`. Errors: `invalid` (an address that does not parse, a line
//! break in the subject, an address or reply-to, a refused message), `limit` (size,
//! recipients, the app's daily cap, time), `unavailable` (a server without SMTP answers
//! `unavailable("email not configured")`; the relay cannot be reached).
//!
//! ```no_run
//! let id = picloud_sdk::email::send_text(&["ada@example.com"], "Your receipt", "Thanks!")?;
//! picloud_sdk::email::send(&picloud_sdk::email::Message {
//!     to: vec!["ada@example.com".into()],
//!     cc: Vec::new(),
//!     bcc: vec!["archive@example.com".into()],
//!     subject: "Your receipt".into(),
//!     text: "Thanks!".into(),
//!     html: Some("<p>Thanks!</p>".into()),
//!     reply_to: Some("support@example.com".into()),
//! })?;
//! # Ok::<(), picloud_sdk::Error>(())
//! ```

use crate::Result;
use crate::wit::picloud::sdk::email as raw;

pub use raw::Message;

/// Sends `message`; answers its `Message-ID`.
pub fn send(message: &Message) -> Result<String> {
    raw::send(message)
}

/// Sends plain `text` to `to`.
pub fn send_text(to: &[&str], subject: &str, text: &str) -> Result<String> {
    send(&Message {
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        cc: Vec::new(),
        bcc: Vec::new(),
        subject: subject.into(),
        text: text.into(),
        html: None,
        reply_to: None,
    })
}

/// Sends `html` with `text` as its plain alternative to `to`.
pub fn send_html(to: &[&str], subject: &str, text: &str, html: &str) -> Result<String> {
    send(&Message {
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        cc: Vec::new(),
        bcc: Vec::new(),
        subject: subject.into(),
        text: text.into(),
        html: Some(html.into()),
        reply_to: None,
    })
}
