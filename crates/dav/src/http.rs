//! The HTTP side: one reqwest client per collection (HTTP/1.1, crmsync's rustls config,
//! connections kept alive between passes), basic authentication sent only to the configured
//! server, redirects followed by hand for reads (never for writes, never to another server),
//! answers read up to a size limit, and every failure turned into a [`CollectionError`] that
//! says what was asked of whom.

use std::time::Duration;

use crmsync_config::{DavConfig, Secret};
use crmsync_vdir::collection::CollectionError;
use reqwest::{Method, StatusCode, Url};

/// The largest answer read: a first listing of 100,000 items is well under this.
const MAX_ANSWER_BYTES: usize = 256 * 1024 * 1024;
/// How many redirects a read follows (RFC 6764's `/.well-known/caldav` is one).
const MAX_REDIRECTS: usize = 5;
/// How long an answer may stay silent: a server builds a first listing of tens of thousands
/// of items before it sends a byte (Radicale: 23 s for 8,000 items on a cold cache).
const READ_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) struct Http {
    client: reqwest::Client,
    username: String,
    password: Secret,
    /// Credentials go to this origin only.
    origin: reqwest::Url,
}

/// An answer: its status, the headers crmsync reads, its body.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub etag: Option<String>,
    pub body: String,
    /// The URL that answered (after redirects).
    pub url: Url,
}

impl Http {
    pub fn new(config: &DavConfig, url: &Url) -> Result<Http, CollectionError> {
        let password = config
            .password
            .read()
            .map_err(|e| CollectionError::Denied(e.to_string()))?;
        let tls = crmsync_imap::tls_client_config(&config.tls)
            .map_err(|e| CollectionError::Other(e.to_string()))?;
        if !config.tls.verify_certificates {
            tracing::warn!(
                url = %url,
                "certificate verification is off for this server (verify_certificates = false)"
            );
        }
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .read_timeout(READ_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("crmsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CollectionError::Other(format!("HTTP client: {}", chain(&e))))?;
        Ok(Http {
            client,
            username: config.username.clone(),
            password,
            origin: url.clone(),
        })
    }

    fn same_origin(&self, url: &Url) -> bool {
        url.scheme() == self.origin.scheme()
            && url.host_str() == self.origin.host_str()
            && url.port_or_known_default() == self.origin.port_or_known_default()
    }

    /// Sends one request. Reads (`GET`, `PROPFIND`, `REPORT`) follow redirects on the same
    /// server; writes do not. `401`/`403` are [`CollectionError::Denied`], `5xx` and network
    /// failures [`CollectionError::Unavailable`]; other statuses are the caller's to judge.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        depth: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, CollectionError> {
        let follows = matches!(method.as_str(), "GET" | "PROPFIND" | "REPORT");
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            if !self.same_origin(&url) {
                return Err(CollectionError::Other(format!(
                    "{url} is on another server than the one configured: not followed with the credentials"
                )));
            }
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .basic_auth(&self.username, Some(self.password.expose()));
            if let Some(depth) = depth {
                request = request.header("Depth", depth);
            }
            if let Some(body) = body {
                // A body is WebDAV's XML unless the caller says otherwise (an item's PUT).
                if !headers.iter().any(|(name, _)| *name == "Content-Type") {
                    request = request.header("Content-Type", "application/xml; charset=utf-8");
                }
                request = request.body(body.to_owned());
            }
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| network(&method, &url, &e))?;
            let status = response.status();
            if follows && status.is_redirection() {
                let location = response
                    .headers()
                    .get("Location")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l).ok());
                if let Some(next) = location {
                    tracing::debug!(from = %url, to = %next, "redirected");
                    url = next;
                    continue;
                }
            }
            let etag = response
                .headers()
                .get("ETag")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned());
            let body = read_body(response, &method, &url).await?;
            match status.as_u16() {
                401 => {
                    return Err(CollectionError::Denied(format!(
                        "{url}: the server refused the login of {} (HTTP 401): check username and the password",
                        self.username
                    )));
                }
                // A write refused (a read-only calendar, a precondition such as
                // no-uid-conflict) is that item's failure, not the collection's.
                403 if matches!(method.as_str(), "GET" | "PROPFIND") => {
                    return Err(CollectionError::Denied(format!(
                        "{method} {url}: the server refused access for {} (HTTP 403)",
                        self.username
                    )));
                }
                500..=599 => {
                    return Err(CollectionError::Unavailable(format!(
                        "{method} {url}: the server failed (HTTP {status})"
                    )));
                }
                _ => {}
            }
            return Ok(Answer {
                status,
                etag,
                body,
                url,
            });
        }
        Err(CollectionError::Other(format!(
            "{method} {url}: more than {MAX_REDIRECTS} redirects"
        )))
    }
}

async fn read_body(
    mut response: reqwest::Response,
    method: &Method,
    url: &Url,
) -> Result<String, CollectionError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| network(method, url, &e))?
    {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CollectionError::Other(format!(
                "{method} {url}: the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| CollectionError::Other(format!("{method} {url}: the answer is not UTF-8")))
}

/// A failure to reach the server or to read its answer, with its causes (a refused
/// connection, an untrusted certificate, a timeout).
fn network(method: &Method, url: &Url, error: &reqwest::Error) -> CollectionError {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    CollectionError::Unavailable(format!("{method} {url}: {what}: {}", chain(error)))
}

/// An error and its sources, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}
