//! Outbound email of the whole process (`picloud:sdk/email`): the operator's SMTP
//! settings, one lettre transport, and the checks that make a guest's message safe to
//! send.
//!
//! Lifecycle: built once at start from `--smtp-url` and `--email-from`
//! ([`MailerConfig`]); without `--smtp-url` there is no mailer and every send answers
//! `unavailable("email not configured")`. Each send opens one SMTP connection (lettre
//! without a pool: idle connections to a relay are not kept).
//!
//! A guest's message is checked before anything is built ([`Mailer::build`]): every
//! address parses as a mailbox (lettre's parser), subject, addresses and reply-to hold
//! no line break or other control character (so no header can be injected), at most
//! [`MAX_RECIPIENTS`] recipients, and the formatted message is at most the operator's
//! size cap. A message with html is sent as `multipart/alternative` (text, then html).

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use picloud_runtime::GuestError;
use picloud_runtime::email::Message;
use std::path::PathBuf;
use std::time::Duration;

/// Largest message (formatted, headers and encoded bodies) unless the operator says
/// otherwise: the 25 MB of PiCloud v1.1.x, which common relays accept.
pub const DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;
/// Messages one app may send per UTC day unless the operator says otherwise: plenty
/// for receipts and notifications, a bound on a script sending in a loop.
pub const DEFAULT_DAILY_LIMIT: u64 = 1000;
/// Longest a send may take (connecting, every SMTP command, the data); a send never
/// outlives its invocation either.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Recipients (to, cc and bcc together) of one message: a message is for a few people,
/// and the daily cap counts messages.
pub const MAX_RECIPIENTS: usize = 50;
/// Longest address, in bytes (RFC 5321's path limit, with room for a display name).
pub const MAX_ADDRESS_BYTES: usize = 512;
/// Longest subject, in bytes (RFC 5322's line limit).
pub const MAX_SUBJECT_BYTES: usize = 998;

/// The operator's email settings (`picloud serve --smtp-url … --email-from …`).
#[derive(Debug, Clone)]
pub struct MailerConfig {
    /// `smtp://host:port` (plain), `smtp://host?tls=required` (STARTTLS),
    /// `smtps://host` (TLS from the start); `user:password@` for AUTH.
    pub smtp_url: String,
    /// PEM certificates trusted, besides the public roots, to sign the relay's
    /// certificate (a relay with a private CA or a self-signed certificate).
    pub ca_file: Option<PathBuf>,
    /// The From address of apps without their own.
    pub from: String,
    /// Largest formatted message, in bytes.
    pub max_bytes: u64,
    /// Messages per app and UTC day.
    pub daily_limit: u64,
}

/// Outbound email of the process.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    max_bytes: u64,
    daily_limit: u64,
}

/// A message built and checked, ready to leave.
pub struct Outgoing {
    envelope: lettre::address::Envelope,
    formatted: Vec<u8>,
    /// The Message-ID header, `<uuid@domain of the sender>`.
    pub message_id: String,
    /// Envelope recipients (to, cc and bcc).
    pub recipients: usize,
}

impl Outgoing {
    /// Size of the formatted message, in bytes.
    pub fn bytes(&self) -> usize {
        self.formatted.len()
    }
}

impl Mailer {
    /// The mailer of `config`, or why the settings are wrong. Connects to nothing yet.
    pub fn new(config: &MailerConfig) -> anyhow::Result<Self> {
        let from = parse_from(&config.from)
            .map_err(|e| anyhow::anyhow!("--email-from {:?}: {e}", config.from))?;
        // lettre reads scheme, host, port, `tls=` and credentials from the URL; its
        // error text may quote the URL, which may hold a password: not repeated here.
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
            .map_err(|_| {
                anyhow::anyhow!(
                    "--smtp-url is not a valid SMTP URL: use smtp://host[:port] \
                     (add ?tls=required for STARTTLS), smtps://host[:port], with \
                     user:password@ for authentication"
                )
            })?;
        if let Some(ca_file) = &config.ca_file {
            builder = builder.tls(tls_trusting(&config.smtp_url, ca_file)?);
        }
        let transport = builder.timeout(Some(SEND_TIMEOUT)).build();
        Ok(Self {
            transport,
            from,
            max_bytes: config.max_bytes,
            daily_limit: config.daily_limit,
        })
    }

    /// Messages per app and UTC day.
    pub fn daily_limit(&self) -> u64 {
        self.daily_limit
    }

    /// The server's From address.
    pub fn default_from(&self) -> &Mailbox {
        &self.from
    }

    /// Checks `message` and builds it, sent from `from` (the app's address) or the
    /// server's.
    pub fn build(&self, message: &Message, from: Option<&str>) -> Result<Outgoing, GuestError> {
        let from = match from {
            Some(from) => parse_from(from).map_err(|e| {
                tracing::error!(error = %e, "an app's stored From address does not parse");
                GuestError::Internal("the app's From address is not valid".into())
            })?,
            None => self.from.clone(),
        };
        let recipients = message.to.len() + message.cc.len() + message.bcc.len();
        if message.to.is_empty() {
            return Err(GuestError::Invalid(
                "`to` needs at least one address".into(),
            ));
        }
        if recipients > MAX_RECIPIENTS {
            return Err(GuestError::Limit(format!(
                "a message has at most {MAX_RECIPIENTS} recipients (to, cc and bcc), got {recipients}"
            )));
        }
        let text_bytes = message.text.len() + message.html.as_ref().map_or(0, String::len);
        if text_bytes as u64 > self.max_bytes {
            return Err(too_large(text_bytes, self.max_bytes));
        }
        check_header("subject", &message.subject)?;
        if message.subject.len() > MAX_SUBJECT_BYTES {
            return Err(GuestError::Invalid(format!(
                "subject is at most {MAX_SUBJECT_BYTES} bytes, got {}",
                message.subject.len()
            )));
        }
        let message_id = format!("<{}@{}>", uuid::Uuid::now_v7(), from.email.domain());
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(message.subject.as_str())
            .message_id(Some(message_id.clone()))
            .user_agent(concat!("PiCloud/", env!("CARGO_PKG_VERSION")).to_owned());
        for address in &message.to {
            builder = builder.to(mailbox("to", address)?);
        }
        for address in &message.cc {
            builder = builder.cc(mailbox("cc", address)?);
        }
        for address in &message.bcc {
            builder = builder.bcc(mailbox("bcc", address)?);
        }
        if let Some(reply_to) = &message.reply_to {
            builder = builder.reply_to(mailbox("reply_to", reply_to)?);
        }
        let built = match &message.html {
            Some(html) => builder.multipart(MultiPart::alternative_plain_html(
                message.text.clone(),
                html.clone(),
            )),
            None => builder.singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(message.text.clone()),
            ),
        }
        .map_err(|e| GuestError::Invalid(format!("the message cannot be built: {e}")))?;
        let formatted = built.formatted();
        if formatted.len() as u64 > self.max_bytes {
            return Err(too_large(formatted.len(), self.max_bytes));
        }
        Ok(Outgoing {
            envelope: built.envelope().clone(),
            formatted,
            message_id,
            recipients,
        })
    }

    /// Sends `outgoing` through the relay, giving up at `deadline`.
    pub async fn send(
        &self,
        outgoing: &Outgoing,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<(), SendError> {
        let started = tokio::time::Instant::now();
        let mut ends = started + SEND_TIMEOUT;
        if let Some(deadline) = deadline {
            ends = ends.min(deadline);
        }
        let allowed = ends.saturating_duration_since(started);
        let sent = tokio::time::timeout_at(
            ends,
            self.transport
                .send_raw(&outgoing.envelope, &outgoing.formatted),
        )
        .await;
        match sent {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_timeout() => Err(SendError::Timeout(allowed)),
            Ok(Err(e)) => Err(SendError::Failed(e)),
            Err(_) => Err(SendError::Timeout(allowed)),
        }
    }
}

/// The TLS mode of `smtp_url` (lettre's reading of it: `smtps://` is TLS from the
/// start, `?tls=required` STARTTLS or nothing, `?tls=opportunistic` STARTTLS when
/// offered), with the relay's certificate checked against the public roots and the
/// certificates of `ca_file`. A URL without TLS and a file without a certificate are
/// refused: the operator asked for a trust that would not be used.
fn tls_trusting(smtp_url: &str, ca_file: &std::path::Path) -> anyhow::Result<Tls> {
    let shown = ca_file.display();
    let pem = std::fs::read(ca_file)
        .map_err(|e| anyhow::anyhow!("--smtp-ca-file {shown} cannot be read: {e}"))?;
    let no_certificate =
        || anyhow::anyhow!("--smtp-ca-file {shown} holds no PEM certificate (BEGIN CERTIFICATE)");
    if !pem
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(no_certificate());
    }
    let certificate = Certificate::from_pem(&pem).map_err(|_| no_certificate())?;
    // from_url parsed the same URL already: host and scheme are there.
    let url = url::Url::parse(smtp_url)?;
    let host = url.host_str().unwrap_or_default().to_owned();
    let tls = url
        .query_pairs()
        .find(|(k, _)| k == "tls")
        .map(|(_, v)| v.into_owned());
    let parameters = TlsParameters::builder(host)
        .add_root_certificate(certificate)
        .build()
        .map_err(|e| anyhow::anyhow!("--smtp-ca-file {shown}: {e}"))?;
    Ok(match (url.scheme(), tls.as_deref()) {
        ("smtps", _) => Tls::Wrapper(parameters),
        ("smtp", Some("required")) => Tls::Required(parameters),
        ("smtp", Some("opportunistic")) => Tls::Opportunistic(parameters),
        _ => anyhow::bail!(
            "--smtp-ca-file is for a relay reached over TLS, and --smtp-url uses none: use \
             smtps://host[:port] or smtp://host[:port]?tls=required"
        ),
    })
}

/// Why a send did not complete.
#[derive(Debug)]
pub enum SendError {
    /// It did not finish in time; the message may or may not have left.
    Timeout(Duration),
    /// The relay refused or could not be reached: the message did not leave.
    Failed(lettre::transport::smtp::Error),
}

impl SendError {
    /// The error the guest sees: the relay's status code, never its text (which may
    /// quote addresses or the relay's internals).
    pub fn guest_error(&self) -> GuestError {
        match self {
            Self::Timeout(allowed) => GuestError::Limit(format!(
                "sending did not finish within {} ms",
                allowed.as_millis()
            )),
            Self::Failed(e) => {
                tracing::debug!(error = %e, "an email send failed");
                // An operator's mistake (a relay with a private CA and no
                // --smtp-ca-file) rather than a guest's: said once, not per send.
                static TLS_WARNED: std::sync::Once = std::sync::Once::new();
                if e.is_tls() {
                    TLS_WARNED.call_once(|| {
                        tracing::warn!(
                            error = %e,
                            "TLS with the SMTP relay failed: is its certificate signed by a \
                             public CA, or by one given with --smtp-ca-file?"
                        );
                    });
                }
                let code = e.status().map(|c| c.to_string());
                match code {
                    Some(code) if e.is_permanent() => {
                        GuestError::Invalid(format!("the mail server refused the message ({code})"))
                    }
                    Some(code) => GuestError::Unavailable(format!(
                        "the mail server did not take the message ({code}); retry later"
                    )),
                    None => GuestError::Unavailable("the mail server cannot be reached".into()),
                }
            }
        }
    }
}

fn too_large(bytes: usize, max: u64) -> GuestError {
    GuestError::Limit(format!("the message is {bytes} bytes; the limit is {max}"))
}

/// Refuses a header value with a line break or another control character (tab
/// aside): such a value could end its header and start another.
fn check_header(what: &str, value: &str) -> Result<(), GuestError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(GuestError::Invalid(format!(
            "{what} must not contain line breaks (CR, LF) or other control characters"
        )));
    }
    Ok(())
}

/// `address` (`a@example.com` or `Name <a@example.com>`) of field `what`, checked.
fn mailbox(what: &str, address: &str) -> Result<Mailbox, GuestError> {
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(GuestError::Invalid(format!(
            "an address in {what} is at most {MAX_ADDRESS_BYTES} bytes, got {}",
            address.len()
        )));
    }
    check_header(what, address)?;
    address.parse().map_err(|_| {
        GuestError::Invalid(format!("{what}: {address:?} is not a valid email address"))
    })
}

/// A From address as an operator gives it: one valid mailbox without control
/// characters.
pub fn parse_from(address: &str) -> Result<Mailbox, String> {
    mailbox("from", address).map_err(|e| match e {
        GuestError::Invalid(m) => m,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailer() -> Mailer {
        Mailer::new(&MailerConfig {
            smtp_url: "smtp://127.0.0.1:2525".into(),
            ca_file: None,
            from: "PiCloud <noreply@picloud.test>".into(),
            max_bytes: 4096,
            daily_limit: 10,
        })
        .unwrap()
    }

    fn message(to: &str) -> Message {
        Message {
            to: vec![to.into()],
            cc: Vec::new(),
            bcc: Vec::new(),
            subject: "Hi".into(),
            text: "Hello".into(),
            html: None,
            reply_to: None,
        }
    }

    fn refused(m: &Message) -> String {
        match mailer().build(m, None) {
            Ok(_) => panic!("built"),
            Err(e) => format!("{e:?}"),
        }
    }

    fn config_error(smtp_url: &str, ca_file: &std::path::Path) -> String {
        match Mailer::new(&MailerConfig {
            smtp_url: smtp_url.into(),
            ca_file: Some(ca_file.to_owned()),
            from: "noreply@picloud.test".into(),
            max_bytes: 4096,
            daily_limit: 10,
        }) {
            Ok(_) => panic!("{smtp_url} with {ca_file:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_ca_file_needs_a_certificate_and_a_tls_url() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(config_error("smtps://relay.test", &missing).contains("cannot be read"));
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        assert!(config_error("smtps://relay.test", &junk).contains("holds no PEM certificate"));
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["relay.test".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(&ca, cert.pem()).unwrap();
        assert!(config_error("smtp://relay.test:25", &ca).contains("uses none"));
        for url in [
            "smtps://relay.test",
            "smtp://relay.test?tls=required",
            "smtp://relay.test?tls=opportunistic",
        ] {
            let config = MailerConfig {
                smtp_url: url.into(),
                ca_file: Some(ca.clone()),
                from: "noreply@picloud.test".into(),
                max_bytes: 4096,
                daily_limit: 10,
            };
            assert!(Mailer::new(&config).is_ok(), "{url}");
        }
    }

    #[test]
    fn line_breaks_in_any_header_value_are_refused() {
        let mut m = message("a@example.com");
        m.subject = "Hi\r\nBcc: victim@example.com".into();
        assert!(refused(&m).contains("subject must not contain line breaks"));
        let m = message("a@example.com\nBcc: victim@example.com");
        assert!(refused(&m).contains("to must not contain line breaks"));
        let mut m = message("a@example.com");
        m.reply_to = Some("r@example.com\r\nX-Evil: 1".into());
        assert!(refused(&m).contains("reply_to must not contain line breaks"));
        let mut m = message("a@example.com");
        m.bcc = vec!["b@example.com\rX: y".into()];
        assert!(refused(&m).contains("bcc must not contain"));
    }

    #[test]
    fn addresses_must_parse_and_recipients_are_capped() {
        assert!(refused(&message("not an address")).contains("is not a valid email address"));
        assert!(refused(&message("")).contains("is not a valid email address"));
        let mut m = message("a@example.com");
        m.to.clear();
        assert!(refused(&m).contains("at least one address"));
        let mut m = message("a@example.com");
        m.bcc = vec!["b@example.com".into(); MAX_RECIPIENTS];
        assert!(matches!(
            mailer().build(&m, None),
            Err(GuestError::Limit(_))
        ));
        assert!(
            mailer()
                .build(&message("Ada <ada@example.com>"), None)
                .is_ok()
        );
    }

    #[test]
    fn the_formatted_message_is_capped() {
        let mut m = message("a@example.com");
        m.text = "x".repeat(5000);
        assert!(refused(&m).contains("the limit is 4096"));
        // Small bodies, but encoding and headers past the cap.
        m.text = "é".repeat(1900);
        assert!(refused(&m).contains("the limit is 4096"));
    }

    #[test]
    fn bcc_is_in_the_envelope_and_not_in_the_message() {
        let mut m = message("a@example.com");
        m.bcc = vec!["hidden@example.com".into()];
        m.html = Some("<b>Hello</b>".into());
        let out = mailer().build(&m, Some("shop@example.org")).unwrap();
        let text = String::from_utf8(out.formatted.clone()).unwrap();
        assert!(!text.contains("hidden@example.com"), "{text}");
        assert!(text.contains("From: shop@example.org"), "{text}");
        assert!(text.contains("multipart/alternative"), "{text}");
        assert_eq!(out.recipients, 2);
        assert_eq!(out.envelope.to().len(), 2);
        assert!(out.message_id.ends_with("@example.org>"));
    }
}
