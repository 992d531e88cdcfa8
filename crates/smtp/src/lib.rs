//! The SMTP adapter: one connection to a mailbox's submission server (TLS verified like
//! IMAP's: the system's roots and `ca_file`), driven one phase at a time so that the caller can
//! record, before the message's body goes out, that the server may from then on have it
//! (docs/outbound.md). Every step runs under a timeout. Nothing here logs: lettre's own
//! tracing (which writes every line, AUTH included) is not compiled in.

use std::time::Duration;

use crmsync_config::{Security, SmtpConfig};
use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, MailBodyParameter, MailParameter};

/// How long one step (connect, a command, the message) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a send did not get as far as the message body. Nothing reached the server's queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpError {
    /// Worth trying again later: the server unreachable or busy, a 4xx answer, a timeout.
    #[error("{0}")]
    Transient(String),
    /// Trying again will not help: a 5xx answer (a recipient refused, say), a failed login, a
    /// certificate that is not trusted, an address that is none.
    #[error("{0}")]
    Permanent(String),
}

/// How the message body's step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The server answered the final dot with 2xx: it has the message.
    Accepted,
    /// It answered with a refusal: it does not have the message.
    Refused(SmtpError),
    /// The connection failed or timed out after the body began to go out: the server may or
    /// may not have the message.
    Unknown(String),
}

/// An open, logged-in connection.
pub struct SmtpSession {
    connection: AsyncSmtpConnection,
}

/// Whether a TLS handshake failed on the certificate or the protocol (lettre reports those
/// as connection errors, with rustls's error inside an `io::Error`).
fn is_tls_failure(error: &lettre::transport::smtp::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        let tls = cause.is::<rustls::Error>()
            || cause
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>());
        if tls {
            return true;
        }
        source = cause.source();
    }
    false
}

fn classify(what: &str, error: &lettre::transport::smtp::Error) -> SmtpError {
    let message = format!("{what}: {error}");
    // A 5xx answer, an untrusted certificate, or what the client itself refuses (no login
    // mechanism in common, a message it cannot send) does not get better by retrying soon.
    if error.is_permanent() || error.is_tls() || error.is_client() || is_tls_failure(error) {
        SmtpError::Permanent(message)
    } else {
        SmtpError::Transient(message)
    }
}

async fn timed<T>(
    what: &str,
    step: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SmtpError> {
    match tokio::time::timeout(STEP_TIMEOUT, step).await {
        Ok(result) => result.map_err(|error| classify(what, &error)),
        Err(_) => Err(SmtpError::Transient(format!(
            "{what}: no answer within {} s",
            STEP_TIMEOUT.as_secs()
        ))),
    }
}

fn tls_parameters(config: &SmtpConfig) -> Result<TlsParameters, SmtpError> {
    let mut builder = TlsParameters::builder(config.host.clone())
        .certificate_store(CertificateStore::Default)
        .dangerous_accept_invalid_certs(!config.tls.verify_certificates);
    if let Some(ca_file) = &config.tls.ca_file {
        let shown = ca_file.display();
        let pem = std::fs::read(ca_file)
            .map_err(|e| SmtpError::Permanent(format!("cannot read ca_file {shown}: {e}")))?;
        let certificate = Certificate::from_pem(&pem)
            .map_err(|e| SmtpError::Permanent(format!("ca_file {shown}: {e}")))?;
        builder = builder.add_root_certificate(certificate);
    }
    builder
        .build_rustls()
        .map_err(|e| SmtpError::Permanent(format!("TLS setup: {e}")))
}

impl SmtpSession {
    /// Connects (TLS from the first byte, or STARTTLS before anything else is said) and logs
    /// in when the mailbox has a username.
    pub async fn connect(config: &SmtpConfig, password: Option<&str>) -> Result<Self, SmtpError> {
        let hello = ClientId::default();
        let implicit = match config.security {
            Security::Tls => Some(tls_parameters(config)?),
            Security::Starttls | Security::None => None,
        };
        let address = (config.host.as_str(), config.port);
        let mut connection = timed(
            &format!("connecting to {}:{}", config.host, config.port),
            AsyncSmtpConnection::connect_tokio1(
                address,
                Some(STEP_TIMEOUT),
                &hello,
                implicit,
                None,
            ),
        )
        .await?;
        if config.security == Security::Starttls {
            if !connection.can_starttls() {
                return Err(SmtpError::Permanent(format!(
                    "{} does not offer STARTTLS: not sending the password or any mail in clear",
                    config.host
                )));
            }
            let parameters = tls_parameters(config)?;
            timed("STARTTLS", connection.starttls(parameters, &hello)).await?;
        }
        if let (Some(username), Some(password)) = (&config.username, password) {
            let credentials = Credentials::new(username.clone(), password.to_owned());
            timed(
                &format!("login as {username}"),
                connection.auth(&[Mechanism::Plain, Mechanism::Login], &credentials),
            )
            .await?;
        }
        Ok(SmtpSession { connection })
    }

    /// MAIL FROM, RCPT TO for each recipient, DATA: everything up to the message body. A
    /// refusal of any recipient refuses the send (no one gets a message meant for several).
    pub async fn begin(
        &mut self,
        from: &str,
        recipients: &[String],
        body_is_ascii: bool,
    ) -> Result<(), SmtpError> {
        let address = |text: &str| {
            text.parse::<Address>()
                .map_err(|e| SmtpError::Permanent(format!("{text:?} is not an address: {e}")))
        };
        let mut parameters = Vec::new();
        if !body_is_ascii {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let from = address(from)?;
        let result = async {
            timed(
                "MAIL FROM",
                self.connection.command(Mail::new(Some(from), parameters)),
            )
            .await?;
            for recipient in recipients {
                let to = address(recipient)?;
                timed(
                    &format!("recipient {recipient}"),
                    self.connection.command(Rcpt::new(to, Vec::new())),
                )
                .await?;
            }
            timed("DATA", self.connection.command(Data))
                .await
                .map(|_| ())
        }
        .await;
        if result.is_err() {
            // lettre's abort says QUIT and waits for the answer: not for long.
            let _ = tokio::time::timeout(Duration::from_secs(5), self.connection.abort()).await;
        }
        result
    }

    /// The message body and its final dot, and the server's answer.
    pub async fn commit(&mut self, message: &[u8]) -> Committed {
        match tokio::time::timeout(STEP_TIMEOUT, self.connection.message(message)).await {
            Ok(Ok(_)) => Committed::Accepted,
            Ok(Err(error)) if error.is_permanent() || error.is_transient() => {
                Committed::Refused(classify("the message", &error))
            }
            Ok(Err(error)) => Committed::Unknown(format!("sending the message: {error}")),
            Err(_) => Committed::Unknown(format!(
                "sending the message: no answer within {} s",
                STEP_TIMEOUT.as_secs()
            )),
        }
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.connection.quit()).await;
    }
}

/// A message to compose: the email activity as it goes out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub from: String,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    /// In the envelope only, never in a header.
    pub bcc: Vec<String>,
    pub subject: String,
    pub text: String,
    /// An HTML alternative of `text`.
    pub html: Option<String>,
    /// Files attached: name, MIME type, content.
    pub attachments: Vec<(String, String, Vec<u8>)>,
    /// Without angle brackets.
    pub message_id: String,
    pub date: std::time::SystemTime,
    /// Threading of a reply (Message-IDs with their angle brackets, as the header holds them).
    pub in_reply_to: Option<String>,
    pub references: Option<String>,
    /// A draft keeps its Bcc header; a message that goes out never has one.
    pub keep_bcc: bool,
    /// Further header fields (name, value), such as crmsync's own on a rewritten draft.
    pub headers: Vec<(String, String)>,
}

impl Outgoing {
    /// Every recipient of the envelope.
    pub fn recipients(&self) -> Vec<String> {
        self.to
            .iter()
            .chain(&self.cc)
            .chain(&self.bcc)
            .cloned()
            .collect()
    }
}

/// The message as RFC 5322 bytes (CRLF line ends): a plain-text body, or text and HTML as
/// alternatives, with the attachments after them.
pub fn compose(mail: &Outgoing) -> Result<Vec<u8>, SmtpError> {
    use lettre::message::header::ContentType;
    use lettre::message::{Attachment, Mailbox, Message, MultiPart, SinglePart};
    let mailbox = |address: &str, name: Option<&String>| -> Result<Mailbox, SmtpError> {
        let parsed = address
            .parse::<Address>()
            .map_err(|e| SmtpError::Permanent(format!("{address:?} is not an address: {e}")))?;
        Ok(Mailbox::new(name.cloned(), parsed))
    };
    let mut builder = Message::builder()
        .message_id(Some(format!("<{}>", mail.message_id)))
        .date(mail.date)
        .from(mailbox(&mail.from, mail.from_name.as_ref())?)
        .subject(mail.subject.clone());
    for to in &mail.to {
        builder = builder.to(mailbox(to, None)?);
    }
    for cc in &mail.cc {
        builder = builder.cc(mailbox(cc, None)?);
    }
    for bcc in &mail.bcc {
        builder = builder.bcc(mailbox(bcc, None)?);
    }
    if mail.keep_bcc {
        builder = builder.keep_bcc();
    }
    if let Some(parent) = &mail.in_reply_to {
        builder = builder.in_reply_to(parent.clone());
    }
    if let Some(references) = &mail.references {
        builder = builder.references(references.clone());
    }
    for (name, value) in &mail.headers {
        let name = lettre::message::header::HeaderName::new_from_ascii(name.clone())
            .map_err(|e| SmtpError::Permanent(format!("header {name:?}: {e}")))?;
        builder = builder.raw_header(lettre::message::header::HeaderValue::new(
            name,
            value.clone(),
        ));
    }
    let refused = |e: lettre::error::Error| {
        SmtpError::Permanent(format!("the message cannot be composed: {e}"))
    };
    let message = match (&mail.html, mail.attachments.is_empty()) {
        (None, true) => builder
            .header(ContentType::TEXT_PLAIN)
            .body(mail.text.clone())
            .map_err(refused)?,
        (Some(html), true) => builder
            .multipart(MultiPart::alternative_plain_html(
                mail.text.clone(),
                html.clone(),
            ))
            .map_err(refused)?,
        (html, false) => {
            let mut parts = match html {
                Some(html) => MultiPart::mixed().multipart(MultiPart::alternative_plain_html(
                    mail.text.clone(),
                    html.clone(),
                )),
                None => MultiPart::mixed().singlepart(SinglePart::plain(mail.text.clone())),
            };
            for (name, content_type, content) in &mail.attachments {
                let content_type = ContentType::parse(content_type)
                    .unwrap_or(ContentType::parse("application/octet-stream").expect("valid"));
                parts = parts
                    .singlepart(Attachment::new(name.clone()).body(content.clone(), content_type));
            }
            builder.multipart(parts).map_err(refused)?
        }
    };
    Ok(message.formatted())
}
