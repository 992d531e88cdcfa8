//! The CalDAV/CardDAV adapter of crmsync: a calendar or address book on a server as a
//! [`Collection`], the same trait a vdir directory implements, so the engine's collection
//! pass and the core are the same for both.
//!
//! - Discovery ([`discover`]) as clients do it: the configured URL when it is a collection of
//!   the right kind; else its `current-user-principal` (or RFC 6764's
//!   `/.well-known/caldav` / `carddav`), the principal's `calendar-home-set` /
//!   `addressbook-home-set`, and the collections in the home.
//! - Listing with `sync-collection` (RFC 6578): the first listing is the REPORT with an empty
//!   token, and [`Collection::changes`] asks only for what changed since a token (a no-change
//!   poll is one small REPORT). A server without it is listed by `PROPFIND` (Depth 1,
//!   `getetag`), its `getctag` standing for the token.
//! - Bodies fetched by `calendar-multiget` / `addressbook-multiget`, [`MULTIGET_BATCH`] hrefs
//!   a request.
//! - Writes with `If-None-Match: *` (create) and `If-Match` (update, delete): `412` is
//!   [`CollectionError::Exists`] or [`CollectionError::Changed`], so an edit the person made
//!   meanwhile is read again and merged, never overwritten.
//!
//! Why reqwest with this small layer rather than libdav: the pass needs exactly seven
//! requests, each with a precise reading of its statuses (412 on a create is not 412 on an
//! update; 403 on a REPORT is an expired token, not a refused login), the rustls
//! configuration IMAP already uses (`ca_file`, pinned self-signed certificates), credentials
//! never sent to another server on a redirect, and a cap on answer sizes. reqwest gives
//! HTTP/1.1 keep-alive and TLS; roxmltree reads the XML.
#![forbid(unsafe_code)]

mod http;
mod xml;

use std::collections::{BTreeMap, HashMap};

use crmsync_config::DavConfig;
use crmsync_vdir::collection::{Changes, Collection, CollectionError, Entry, Item, Listing};
use percent_encoding::percent_decode_str;
use reqwest::{Method, StatusCode, Url};

use http::{Answer, Http};
use xml::{CALDAV, CALENDARSERVER, CARDDAV, DAV};

/// How many items one multiget asks for.
pub const MULTIGET_BATCH: usize = 500;

/// A calendar (events and tasks) or an address book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Calendar,
    Contacts,
}

impl Kind {
    fn resource_type(self) -> (&'static str, &'static str) {
        match self {
            Kind::Calendar => (CALDAV, "calendar"),
            Kind::Contacts => (CARDDAV, "addressbook"),
        }
    }

    fn well_known(self) -> &'static str {
        match self {
            Kind::Calendar => "/.well-known/caldav",
            Kind::Contacts => "/.well-known/carddav",
        }
    }

    fn home_set(self) -> (&'static str, &'static str) {
        match self {
            Kind::Calendar => (CALDAV, "calendar-home-set"),
            Kind::Contacts => (CARDDAV, "addressbook-home-set"),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Kind::Calendar => "text/calendar; charset=utf-8",
            Kind::Contacts => "text/vcard; charset=utf-8",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Kind::Calendar => "calendar",
            Kind::Contacts => "address book",
        }
    }
}

/// A collection found on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub url: String,
    pub name: Option<String>,
}

/// What discovery found: the collections of the kind, and the one the config means (the URL
/// itself when it is one, else the only one found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    pub collections: Vec<Found>,
    pub chosen: Option<String>,
}

/// A calendar or address book on a server, as a [`Collection`]. Cheap to keep between passes:
/// its connections stay open.
pub struct DavCollection {
    http: Http,
    url: Url,
    kind: Kind,
    /// The listing as of the last token, kept so that the next listing asks only for what
    /// changed since.
    known: std::sync::Mutex<Option<Known>>,
}

/// A listing and the token it is as of, with what changed in it since it was last saved.
struct Known {
    token: String,
    entries: BTreeMap<String, String>,
    /// Whether the last save is of another token.
    unsaved: bool,
    /// The listing was made afresh since the last save: save it whole.
    whole: bool,
    /// What changed since the last save (an href and its etag, or `None` when it went).
    changes: Vec<(String, Option<String>)>,
}

/// A listing to save, as of its token ([`DavCollection::unsaved`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsaved {
    pub token: String,
    /// Replace the saved listing, rather than apply `changes` to it.
    pub whole: bool,
    pub changes: Vec<(String, Option<String>)>,
}

/// Finds the collections of `kind` from the configured URL.
pub async fn discover(config: &DavConfig, kind: Kind) -> Result<Discovery, CollectionError> {
    let start = parse_url(&config.url)?;
    let http = Http::new(config, &start)?;
    discover_with(&http, &start, kind).await
}

async fn discover_with(http: &Http, start: &Url, kind: Kind) -> Result<Discovery, CollectionError> {
    let (namespace, name) = kind.resource_type();
    let (home_ns, home_name) = kind.home_set();
    let props = [
        "d:resourcetype",
        "d:displayname",
        "d:current-user-principal",
        match kind {
            Kind::Calendar => "c:calendar-home-set",
            Kind::Contacts => "card:addressbook-home-set",
        },
    ];
    let here = propfind(http, start, "0", &props).await?;
    if let Some(response) = here.as_ref().and_then(|ms| ms.responses.first())
        && response.is_type(namespace, name)
    {
        let url = directory(start).to_string();
        return Ok(Discovery {
            collections: vec![Found {
                url: url.clone(),
                name: response.text(DAV, "displayname"),
            }],
            chosen: Some(url),
        });
    }
    // The home: named here (a principal URL), or on the principal named here, or found from
    // the well-known address.
    let mut homes = here
        .as_ref()
        .and_then(|ms| ms.responses.first())
        .and_then(|r| r.prop(home_ns, home_name))
        .map(|p| p.hrefs.clone())
        .unwrap_or_default();
    if homes.is_empty() {
        let mut principal = here
            .as_ref()
            .and_then(|ms| ms.responses.first())
            .and_then(|r| r.prop(DAV, "current-user-principal"))
            .and_then(|p| p.hrefs.first().cloned());
        if principal.is_none() {
            let well_known = start.join(kind.well_known()).map_err(bad_url)?;
            let answer = propfind(http, &well_known, "0", &["d:current-user-principal"]).await?;
            principal = answer
                .and_then(|ms| ms.responses.into_iter().next())
                .and_then(|r| r.prop(DAV, "current-user-principal").cloned())
                .and_then(|p| p.hrefs.into_iter().next());
        }
        let Some(principal) = principal else {
            return Err(CollectionError::Other(format!(
                "{start}: neither a {} nor a server that names the user's principal (current-user-principal)",
                kind.noun()
            )));
        };
        let principal = start.join(&principal).map_err(bad_url)?;
        let answer = propfind(http, &principal, "0", &[props[3]]).await?;
        homes = answer
            .and_then(|ms| ms.responses.into_iter().next())
            .and_then(|r| r.prop(home_ns, home_name).cloned())
            .map(|p| p.hrefs)
            .unwrap_or_default();
        if homes.is_empty() {
            return Err(CollectionError::Other(format!(
                "{principal}: the principal names no {home_name}"
            )));
        }
    }
    let mut collections = Vec::new();
    for home in homes {
        let home = start.join(&home).map_err(bad_url)?;
        let Some(listing) =
            propfind(http, &home, "1", &["d:resourcetype", "d:displayname"]).await?
        else {
            continue;
        };
        for response in listing.responses {
            if response.is_type(namespace, name) {
                let url = home.join(&response.href).map_err(bad_url)?;
                collections.push(Found {
                    url: directory(&url).to_string(),
                    name: response.text(DAV, "displayname"),
                });
            }
        }
    }
    collections.sort_by(|a, b| a.url.cmp(&b.url));
    collections.dedup();
    let chosen = match collections.as_slice() {
        [only] => Some(only.url.clone()),
        _ => None,
    };
    Ok(Discovery {
        collections,
        chosen,
    })
}

/// A PROPFIND; `None` when the resource does not exist (404) or does not do WebDAV (405).
async fn propfind(
    http: &Http,
    url: &Url,
    depth: &str,
    props: &[&str],
) -> Result<Option<xml::Multistatus>, CollectionError> {
    let body = xml::propfind(props);
    let answer = http
        .send(method("PROPFIND"), url, Some(depth), Some(&body), &[])
        .await?;
    match answer.status.as_u16() {
        207 => xml::multistatus(&answer.body, &format!("PROPFIND {}", answer.url))
            .map(Some)
            .map_err(CollectionError::Other),
        404 | 405 => Ok(None),
        status => Err(CollectionError::Other(format!(
            "PROPFIND {url}: unexpected HTTP {status}"
        ))),
    }
}

fn method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).unwrap_or(Method::GET)
}

fn parse_url(text: &str) -> Result<Url, CollectionError> {
    Url::parse(text).map_err(|e| CollectionError::Other(format!("{text:?} is not a URL: {e}")))
}

fn bad_url(error: impl std::fmt::Display) -> CollectionError {
    CollectionError::Other(format!("the server named an href that is no URL: {error}"))
}

/// The URL as a collection (ending with `/`), so members join onto it.
fn directory(url: &Url) -> Url {
    let mut url = url.clone();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url
}

impl std::fmt::Debug for DavCollection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DavCollection")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl DavCollection {
    /// Connects: reads the password, builds the client and finds the collection (the
    /// configured URL when it is one; else by discovery, which must find exactly one).
    pub async fn connect(config: &DavConfig, kind: Kind) -> Result<DavCollection, CollectionError> {
        let start = parse_url(&config.url)?;
        let http = Http::new(config, &start)?;
        let discovery = discover_with(&http, &start, kind).await?;
        let Some(chosen) = discovery.chosen else {
            let found: Vec<String> = discovery
                .collections
                .iter()
                .map(|c| c.url.clone())
                .collect();
            return Err(CollectionError::Other(if found.is_empty() {
                format!("no {} found from {start}", kind.noun())
            } else {
                format!(
                    "{} {}s found from {start}: set url to one of them ({})",
                    found.len(),
                    kind.noun(),
                    found.join(", ")
                )
            }));
        };
        Ok(DavCollection {
            http,
            url: parse_url(&chosen)?,
            kind,
            known: std::sync::Mutex::new(None),
        })
    }

    /// The collection's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Brings the kept listing up to date: with what changed since its token (one small
    /// REPORT, or a PROPFIND of the ctag), or whole when there is no token or the server no
    /// longer knows it. Returns whether anything changed (always `true` the first time).
    pub async fn refresh(&self) -> Result<bool, CollectionError> {
        let token = self.known().as_ref().map(|k| k.token.clone());
        // Listed by PROPFIND so far: a sync token now, with a whole listing.
        if token.as_deref().is_some_and(|t| t.starts_with("first:")) {
            match self.first_sync().await {
                Ok(Some(listing)) => return Ok(self.replace(listing)),
                Ok(None) => {}
                // The first token cannot be had (a server too slow to build it, say): the
                // ctag serves this connection; a new one tries again.
                Err(error) => tracing::warn!(
                    url = %self.url,
                    "no sync token, the collection is followed by its ctag: {error}"
                ),
            }
            // No sync-collection: the ctag stands for the token from now on.
            if let Some(kept) = self.known().as_mut() {
                kept.token = kept.token.replacen("first:", "ctag:", 1);
                kept.unsaved = true;
            }
        }
        let token = self.known().as_ref().map(|k| k.token.clone());
        let changes = match &token {
            Some(token) => self.changes(token).await?,
            None => None,
        };
        if let Some(changes) = changes {
            let mut known = self.known();
            if let Some(kept) = known.as_mut() {
                let changed = !changes.changed.is_empty() || !changes.gone.is_empty();
                for gone in changes.gone {
                    kept.entries.remove(&gone);
                    kept.changes.push((gone, None));
                }
                for entry in changes.changed {
                    kept.entries.insert(entry.href.clone(), entry.etag.clone());
                    kept.changes.push((entry.href, Some(entry.etag)));
                }
                kept.unsaved |= kept.token != changes.token;
                kept.token = changes.token;
                return Ok(changed);
            }
        }
        let listing = self.list_whole().await?;
        Ok(self.replace(listing))
    }

    /// A whole listing in place of the kept one; whether it differs.
    fn replace(&self, listing: Listing) -> bool {
        let entries: BTreeMap<String, String> = listing
            .entries
            .into_iter()
            .map(|e| (e.href, e.etag))
            .collect();
        let mut known = self.known();
        let changed = known.as_ref().is_none_or(|kept| kept.entries != entries);
        *known = listing.token.map(|token| Known {
            token,
            changes: entries
                .iter()
                .map(|(href, etag)| (href.clone(), Some(etag.clone())))
                .collect(),
            entries,
            unsaved: true,
            whole: true,
        });
        changed
    }

    /// The kept listing as of its token, without asking the server; `None` before the first.
    pub fn kept(&self) -> Option<Listing> {
        self.known().as_ref().map(|kept| Listing {
            entries: kept
                .entries
                .iter()
                .map(|(href, etag)| Entry {
                    href: href.clone(),
                    etag: etag.clone(),
                })
                .collect(),
            removed: Vec::new(),
            token: Some(kept.token.clone()),
        })
    }

    /// One item's etag in the kept listing: `None` before the first listing, `Some(None)`
    /// when the listing has no such item.
    pub fn kept_etag(&self, href: &str) -> Option<Option<String>> {
        self.known()
            .as_ref()
            .map(|kept| kept.entries.get(href).cloned())
    }

    /// What a write of crmsync's own did, into the kept listing (and what is to be saved):
    /// the item with its new etag, or gone. The listing stays as of its token plus these; the
    /// next changes since the token report them again, which changes nothing.
    fn wrote(&self, href: &str, etag: Option<&str>) {
        if let Some(kept) = self.known().as_mut() {
            match etag {
                Some(etag) => {
                    kept.entries.insert(href.to_owned(), etag.to_owned());
                }
                None => {
                    kept.entries.remove(href);
                }
            }
            kept.changes
                .push((href.to_owned(), etag.map(str::to_owned)));
            kept.unsaved = true;
        }
    }

    /// Starts from a listing saved earlier as of `token`: the next listing asks the server
    /// only for what changed since.
    pub fn resume(&self, token: String, entries: Vec<(String, String)>) {
        *self.known() = Some(Known {
            token,
            entries: entries.into_iter().collect(),
            unsaved: false,
            whole: false,
            changes: Vec::new(),
        });
    }

    /// The listing's changes since it was last saved, when its token moved on.
    pub fn unsaved(&self) -> Option<Unsaved> {
        let known = self.known();
        let kept = known.as_ref().filter(|k| k.unsaved)?;
        Some(Unsaved {
            token: kept.token.clone(),
            whole: kept.whole,
            changes: kept.changes.clone(),
        })
    }

    /// The listing as of `token` is saved.
    pub fn saved(&self, token: &str) {
        if let Some(kept) = self.known().as_mut().filter(|k| k.token == token) {
            kept.unsaved = false;
            kept.whole = false;
            kept.changes.clear();
        }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, Option<Known>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The whole listing, by PROPFIND (Depth 1, `getetag`), with the collection's `getctag`
    /// in a `first:` token. Not by `sync-collection` from no token: a server may build its
    /// change history of every item on that first REPORT (Radicale takes seconds per
    /// thousand items), which a first import need not wait for. The next refresh asks for a
    /// sync token ([`DavCollection::refresh`]).
    async fn list_whole(&self) -> Result<Listing, CollectionError> {
        let mut listing = self.propfind_listing().await?;
        let ctag = listing
            .token
            .as_deref()
            .and_then(|t| t.strip_prefix("ctag:"))
            .unwrap_or_default()
            .to_owned();
        listing.token = Some(format!("first:{ctag}"));
        Ok(listing)
    }

    /// The first sync token, with the whole listing it is as of (`sync-collection` from no
    /// token); `None` when the server has no such report.
    async fn first_sync(&self) -> Result<Option<Listing>, CollectionError> {
        // `sync` gives each href once; `replace` keeps the listing sorted.
        Ok(self.sync("").await?.map(|changes| Listing {
            entries: changes.changed,
            removed: Vec::new(),
            token: Some(format!("sync:{}", changes.token)),
        }))
    }

    /// The URL of one member.
    fn member(&self, href: &str) -> Result<Url, CollectionError> {
        if href.is_empty() || href.contains('/') || href == "." || href == ".." {
            return Err(CollectionError::Other(format!(
                "{href:?} is not a valid item name"
            )));
        }
        let mut url = self.url.clone();
        url.path_segments_mut()
            .map_err(|()| CollectionError::Other(format!("{} has no path", self.url)))?
            .pop_if_empty()
            .push(href);
        Ok(url)
    }

    /// The member name of an href the server gave (the decoded last segment), when it names
    /// a member of this collection and not the collection itself.
    fn member_name(&self, href: &str) -> Option<String> {
        let url = self.url.join(href).ok()?;
        // Compared decoded: a server may spell the path with other escapes than the config.
        let decode = |path: &str| Some(percent_decode_str(path).decode_utf8().ok()?.into_owned());
        let path = decode(url.path())?;
        let base = decode(self.url.path())?;
        let rest = path.strip_prefix(&base)?;
        // A name with a slash (an escaped `%2F`) cannot be addressed back as one segment: not
        // an item crmsync can write, so not listed.
        if rest.is_empty() || rest.contains('/') {
            return None;
        }
        Some(rest.to_owned())
    }

    /// The REPORT `sync-collection` from `token`, following a truncated answer (507) to its
    /// end. `Ok(None)`: the server has no such report, or the token is no longer valid.
    async fn sync(&self, token: &str) -> Result<Option<Changes>, CollectionError> {
        // Each href's last word (a truncated answer continues on the next page, where the
        // same href may come again): its etag, or `None` when it went.
        let mut last: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut token = token.to_owned();
        for _ in 0..1000 {
            let body = xml::sync_collection(&token);
            let answer = self
                .http
                .send(method("REPORT"), &self.url, Some("0"), Some(&body), &[])
                .await?;
            match answer.status.as_u16() {
                207 => {}
                400 | 403 | 404 | 405 | 409 | 412 | 415 | 501 => {
                    tracing::debug!(url = %self.url, status = answer.status.as_u16(), "sync-collection refused");
                    return Ok(None);
                }
                status => {
                    return Err(CollectionError::Other(format!(
                        "REPORT sync-collection {}: unexpected HTTP {status}",
                        self.url
                    )));
                }
            }
            let answer = xml::multistatus(&answer.body, &format!("REPORT {}", self.url))
                .map_err(CollectionError::Other)?;
            let mut truncated = false;
            for response in answer.responses {
                let Some(name) = self.member_name(&response.href) else {
                    truncated |= response.status == Some(507);
                    continue;
                };
                let word = match (response.status, response.text(DAV, "getetag")) {
                    (Some(404), _) => None,
                    (_, Some(etag)) => Some(normal_etag(&etag)),
                    // A member without an etag (a subcollection): not an item.
                    (_, None) => continue,
                };
                last.insert(name, word);
            }
            let Some(next) = answer.sync_token else {
                return Err(CollectionError::Other(format!(
                    "REPORT sync-collection {}: the answer has no sync-token",
                    self.url
                )));
            };
            token = next;
            if !truncated {
                let mut changes = Changes {
                    token,
                    ..Changes::default()
                };
                for (href, etag) in last {
                    match etag {
                        Some(etag) => changes.changed.push(Entry { href, etag }),
                        None => changes.gone.push(href),
                    }
                }
                return Ok(Some(changes));
            }
        }
        Err(CollectionError::Other(format!(
            "REPORT sync-collection {}: the server kept truncating its answer",
            self.url
        )))
    }

    /// The listing without `sync-collection`: PROPFIND Depth 1, with the collection's
    /// `getctag` as the token.
    async fn propfind_listing(&self) -> Result<Listing, CollectionError> {
        let answer = propfind(
            &self.http,
            &self.url,
            "1",
            &["d:resourcetype", "d:getetag", "cs:getctag"],
        )
        .await?
        .ok_or_else(|| self.gone())?;
        let mut listing = Listing::default();
        for response in answer.responses {
            match self.member_name(&response.href) {
                Some(_) if response.is_type(DAV, "collection") => {}
                Some(name) => match response.text(DAV, "getetag") {
                    Some(etag) if response.status.is_none_or(|s| s / 100 == 2) => {
                        listing.entries.push(Entry {
                            href: name,
                            etag: normal_etag(&etag),
                        });
                    }
                    // A listing that cannot say what an item is must not pass for one
                    // without it: a linked item missing from it would look deleted.
                    _ => {
                        return Err(CollectionError::Other(format!(
                            "PROPFIND {}: the server lists {name} without an etag",
                            self.url
                        )));
                    }
                },
                None if self.url.join(&response.href).ok().as_ref() == Some(&self.url) => {
                    if response.status == Some(507) {
                        return Err(CollectionError::Other(format!(
                            "PROPFIND {}: the server cut its listing short (507)",
                            self.url
                        )));
                    }
                    listing.token = response
                        .text(CALENDARSERVER, "getctag")
                        .map(|ctag| format!("ctag:{ctag}"));
                }
                None => {}
            }
        }
        listing.entries.sort_by(|a, b| a.href.cmp(&b.href));
        listing.entries.dedup_by(|a, b| a.href == b.href);
        Ok(listing)
    }

    fn gone(&self) -> CollectionError {
        CollectionError::Other(format!(
            "the {} {} does not exist on the server",
            self.kind.noun(),
            self.url
        ))
    }

    /// The etag of one member (`None`: no such member), by PROPFIND Depth 0.
    async fn etag(&self, href: &str) -> Result<Option<String>, CollectionError> {
        let url = self.member(href)?;
        let answer = propfind(&self.http, &url, "0", &["d:getetag"]).await?;
        Ok(answer
            .and_then(|ms| ms.responses.into_iter().next())
            .and_then(|r| r.text(DAV, "getetag"))
            .map(|etag| normal_etag(&etag)))
    }

    /// The etag a write left: from its answer, else asked for.
    async fn written_etag(&self, href: &str, answer: Answer) -> Result<String, CollectionError> {
        if let Some(etag) = answer.etag {
            return Ok(normal_etag(&etag));
        }
        self.etag(href).await?.ok_or_else(|| {
            CollectionError::Other(format!("{href}: written, then not found on the server"))
        })
    }

    async fn put(
        &self,
        href: &str,
        content: &str,
        condition: (&str, &str),
    ) -> Result<Answer, CollectionError> {
        let url = self.member(href)?;
        self.http
            .send(
                Method::PUT,
                &url,
                None,
                Some(content),
                &[("Content-Type", self.kind.content_type()), condition],
            )
            .await
    }

    async fn multiget(
        &self,
        hrefs: &[String],
    ) -> Result<Vec<(String, Result<Item, CollectionError>)>, CollectionError> {
        let mut paths = Vec::with_capacity(hrefs.len());
        for href in hrefs {
            paths.push(self.member(href)?.path().to_owned());
        }
        let body = xml::multiget(self.kind == Kind::Calendar, &paths);
        let answer = self
            .http
            .send(method("REPORT"), &self.url, Some("1"), Some(&body), &[])
            .await?;
        if answer.status.as_u16() != 207 {
            return Err(CollectionError::Other(format!(
                "REPORT multiget {}: unexpected HTTP {}",
                self.url, answer.status
            )));
        }
        let answer = xml::multistatus(&answer.body, &format!("REPORT multiget {}", self.url))
            .map_err(CollectionError::Other)?;
        let data = match self.kind {
            Kind::Calendar => (CALDAV, "calendar-data"),
            Kind::Contacts => (CARDDAV, "address-data"),
        };
        let mut found = HashMap::new();
        for response in answer.responses {
            let Some(name) = self.member_name(&response.href) else {
                continue;
            };
            let result = match (
                response.status,
                response.text(DAV, "getetag"),
                response.prop(data.0, data.1),
            ) {
                (Some(404), _, _) => Err(CollectionError::Missing(name.clone())),
                (_, Some(etag), Some(text)) => Ok((text.text.clone(), normal_etag(&etag))),
                _ => Err(CollectionError::Other(format!(
                    "{name}: the server's multiget answer holds no data or etag for it"
                ))),
            };
            found.insert(name, result);
        }
        Ok(hrefs
            .iter()
            .map(|href| {
                let result = found.remove(href).unwrap_or_else(|| {
                    // Not answered: a server that leaves out what it does not have.
                    Err(CollectionError::Missing(href.clone()))
                });
                (href.clone(), result)
            })
            .collect())
    }
}

/// An etag as crmsync keeps it: trimmed, and quoted as HTTP has it (some servers give
/// `getetag` without the quotes their `ETag` header has), so that the two compare equal.
fn normal_etag(etag: &str) -> String {
    let etag = etag.trim();
    if etag.starts_with('"') || etag.starts_with("W/") {
        etag.to_owned()
    } else {
        format!("\"{etag}\"")
    }
}

fn unexpected(what: &str, href: &str, status: StatusCode) -> CollectionError {
    CollectionError::Other(format!("{what} {href}: unexpected HTTP {status}"))
}

impl Collection for DavCollection {
    fn location(&self) -> String {
        self.url.to_string()
    }

    /// The kept listing brought up to date ([`DavCollection::refresh`]); a server without a
    /// token of any kind is listed whole each time.
    async fn list(&self, _clean: bool) -> Result<Listing, CollectionError> {
        self.refresh().await?;
        // A refresh always leaves a listing; asked again only if that ever changes.
        match self.kept() {
            Some(listing) => Ok(listing),
            None => self.list_whole().await,
        }
    }

    async fn changes(&self, token: &str) -> Result<Option<Changes>, CollectionError> {
        if let Some(token) = token.strip_prefix("sync:") {
            return Ok(self.sync(token).await?.map(|mut changes| {
                changes.token = format!("sync:{}", changes.token);
                changes
            }));
        }
        if let Some(ctag) = token
            .strip_prefix("ctag:")
            .or_else(|| token.strip_prefix("first:"))
            .filter(|ctag| !ctag.is_empty())
        {
            let answer = propfind(&self.http, &self.url, "0", &["cs:getctag"])
                .await?
                .ok_or_else(|| self.gone())?;
            let now = answer
                .responses
                .into_iter()
                .next()
                .and_then(|r| r.text(CALENDARSERVER, "getctag"));
            if now.as_deref() == Some(ctag) {
                return Ok(Some(Changes {
                    token: token.to_owned(),
                    ..Changes::default()
                }));
            }
        }
        Ok(None)
    }

    async fn entry(&self, href: &str) -> Result<Option<Entry>, CollectionError> {
        Ok(self.etag(href).await?.map(|etag| Entry {
            href: href.to_owned(),
            etag,
        }))
    }

    async fn read(&self, href: &str) -> Result<Item, CollectionError> {
        let url = self.member(href)?;
        let answer = self.http.send(Method::GET, &url, None, None, &[]).await?;
        match answer.status.as_u16() {
            200 => {}
            404 | 410 => return Err(CollectionError::Missing(href.to_owned())),
            _ => return Err(unexpected("GET", href, answer.status)),
        }
        let etag = match answer.etag {
            Some(etag) => normal_etag(&etag),
            None => self
                .etag(href)
                .await?
                .ok_or_else(|| CollectionError::Missing(href.to_owned()))?,
        };
        Ok((answer.body, etag))
    }

    async fn read_many(
        &self,
        hrefs: &[String],
    ) -> Result<Vec<(String, Result<Item, CollectionError>)>, CollectionError> {
        let mut read = Vec::with_capacity(hrefs.len());
        for batch in hrefs.chunks(MULTIGET_BATCH) {
            read.extend(self.multiget(batch).await?);
        }
        Ok(read)
    }

    async fn create(&self, href: &str, content: &str) -> Result<String, CollectionError> {
        let answer = self.put(href, content, ("If-None-Match", "*")).await?;
        let etag = match answer.status.as_u16() {
            200 | 201 | 204 => self.written_etag(href, answer).await?,
            412 => return Err(CollectionError::Exists(href.to_owned())),
            _ => return Err(unexpected("PUT", href, answer.status)),
        };
        self.wrote(href, Some(&etag));
        Ok(etag)
    }

    async fn update(
        &self,
        href: &str,
        content: &str,
        etag: &str,
    ) -> Result<String, CollectionError> {
        let answer = self.put(href, content, ("If-Match", etag)).await?;
        let etag = match answer.status.as_u16() {
            200 | 201 | 204 => self.written_etag(href, answer).await?,
            412 => {
                return Err(CollectionError::Changed {
                    href: href.to_owned(),
                });
            }
            404 | 410 => return Err(CollectionError::Missing(href.to_owned())),
            _ => return Err(unexpected("PUT", href, answer.status)),
        };
        self.wrote(href, Some(&etag));
        Ok(etag)
    }

    async fn delete(&self, href: &str, etag: &str) -> Result<(), CollectionError> {
        let url = self.member(href)?;
        let answer = self
            .http
            .send(Method::DELETE, &url, None, None, &[("If-Match", etag)])
            .await?;
        match answer.status.as_u16() {
            200 | 202 | 204 => {
                self.wrote(href, None);
                Ok(())
            }
            412 => Err(CollectionError::Changed {
                href: href.to_owned(),
            }),
            404 | 410 => {
                self.wrote(href, None);
                Err(CollectionError::Missing(href.to_owned()))
            }
            _ => Err(unexpected("DELETE", href, answer.status)),
        }
    }
}
