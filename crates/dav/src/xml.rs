//! The XML of WebDAV answers (RFC 4918 `multistatus`, with RFC 6578's `sync-token`) read into
//! plain structs, and the request bodies crmsync sends. Only what the adapter asks for is
//! kept; anything else in an answer is skipped.

pub(crate) const DAV: &str = "DAV:";
pub(crate) const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub(crate) const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
pub(crate) const CALENDARSERVER: &str = "http://calendarserver.org/ns/";

/// One `multistatus` answer.
#[derive(Debug, Default)]
pub(crate) struct Multistatus {
    pub responses: Vec<Response>,
    /// The `sync-token` of a `sync-collection` answer.
    pub sync_token: Option<String>,
}

/// One `response`: a resource with its properties, or (for a member gone since a sync
/// token, or an href a multiget could not find) a status of its own.
#[derive(Debug, Default)]
pub(crate) struct Response {
    pub href: String,
    pub status: Option<u16>,
    pub props: Vec<Prop>,
}

/// One property as found in a `propstat`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Prop {
    pub namespace: String,
    pub name: String,
    /// The status of the `propstat` it came in (200 when found).
    pub status: u16,
    /// Its text (an etag, calendar data, a display name, a ctag).
    pub text: String,
    /// The `href`s inside it (a principal, a home set).
    pub hrefs: Vec<String>,
    /// The names of its child elements (`resourcetype`'s `collection`, `calendar`, ...).
    pub children: Vec<(String, String)>,
}

impl Response {
    /// A property found (status 200) by namespace and name.
    pub fn prop(&self, namespace: &str, name: &str) -> Option<&Prop> {
        self.props
            .iter()
            .find(|p| p.status == 200 && p.namespace == namespace && p.name == name)
    }

    /// The text of a found property, trimmed; `None` when absent or empty.
    pub fn text(&self, namespace: &str, name: &str) -> Option<String> {
        self.prop(namespace, name)
            .map(|p| p.text.trim().to_owned())
            .filter(|t| !t.is_empty())
    }

    /// Whether `resourcetype` names this child (`DAV: collection`, `caldav calendar`, ...).
    pub fn is_type(&self, namespace: &str, name: &str) -> bool {
        self.prop(DAV, "resourcetype").is_some_and(|p| {
            p.children
                .iter()
                .any(|(ns, n)| ns == namespace && n == name)
        })
    }
}

/// The number of an HTTP status line (`HTTP/1.1 404 Not Found` is 404).
fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

fn element<'a>(node: roxmltree::Node<'a, 'a>, namespace: &str, name: &str) -> bool {
    node.is_element()
        && node.tag_name().name() == name
        && node.tag_name().namespace() == Some(namespace)
}

fn children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
    namespace: &'static str,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children()
        .filter(move |child| element(*child, namespace, name))
}

fn text_of(node: roxmltree::Node<'_, '_>) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect()
}

/// Reads a `multistatus` answer; `what` names the request for the error message.
pub(crate) fn multistatus(body: &str, what: &str) -> Result<Multistatus, String> {
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    let document = roxmltree::Document::parse_with_options(body, options)
        .map_err(|e| format!("{what}: the server's answer is not XML: {e}"))?;
    let root = document.root_element();
    if !element(root, DAV, "multistatus") {
        return Err(format!(
            "{what}: the server's answer is not a multistatus but <{}>",
            root.tag_name().name()
        ));
    }
    let mut answer = Multistatus {
        sync_token: children(root, DAV, "sync-token")
            .next()
            .map(|n| text_of(n).trim().to_owned()),
        ..Multistatus::default()
    };
    for node in children(root, DAV, "response") {
        let mut response = Response {
            href: children(node, DAV, "href")
                .next()
                .map(|n| text_of(n).trim().to_owned())
                .unwrap_or_default(),
            status: children(node, DAV, "status")
                .next()
                .and_then(|n| status_code(&text_of(n))),
            props: Vec::new(),
        };
        for propstat in children(node, DAV, "propstat") {
            let status = children(propstat, DAV, "status")
                .next()
                .and_then(|n| status_code(&text_of(n)))
                .unwrap_or(200);
            for prop in children(propstat, DAV, "prop") {
                for value in prop.children().filter(|n| n.is_element()) {
                    response.props.push(Prop {
                        namespace: value.tag_name().namespace().unwrap_or("").to_owned(),
                        name: value.tag_name().name().to_owned(),
                        status,
                        text: text_of(value),
                        hrefs: value
                            .descendants()
                            .filter(|n| element(*n, DAV, "href"))
                            .map(|n| text_of(n).trim().to_owned())
                            .collect(),
                        children: value
                            .children()
                            .filter(|n| n.is_element())
                            .map(|n| {
                                (
                                    n.tag_name().namespace().unwrap_or("").to_owned(),
                                    n.tag_name().name().to_owned(),
                                )
                            })
                            .collect(),
                    });
                }
            }
        }
        answer.responses.push(response);
    }
    Ok(answer)
}

/// Escapes text for an XML element.
pub(crate) fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

const HEAD: &str = r#"<?xml version="1.0" encoding="utf-8"?>"#;

/// A PROPFIND for these properties (each `prefix:name` with the prefixes `d` (DAV:), `c`
/// (CalDAV), `card` (CardDAV) and `cs` (CalendarServer)).
pub(crate) fn propfind(props: &[&str]) -> String {
    let props: String = props.iter().map(|p| format!("<{p}/>")).collect();
    format!(
        r#"{HEAD}<d:propfind xmlns:d="DAV:" xmlns:c="{CALDAV}" xmlns:card="{CARDDAV}" xmlns:cs="{CALENDARSERVER}"><d:prop>{props}</d:prop></d:propfind>"#
    )
}

/// A `sync-collection` REPORT (RFC 6578) from `token` (empty: the first, which lists every
/// member), asking for etags.
pub(crate) fn sync_collection(token: &str) -> String {
    format!(
        r#"{HEAD}<d:sync-collection xmlns:d="DAV:"><d:sync-token>{}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#,
        escape(token)
    )
}

/// A `calendar-multiget` (RFC 4791) or `addressbook-multiget` (RFC 6352) of these hrefs
/// (URL paths, already percent-encoded).
pub(crate) fn multiget(calendar: bool, paths: &[String]) -> String {
    let hrefs: String = paths
        .iter()
        .map(|p| format!("<d:href>{}</d:href>", escape(p)))
        .collect();
    if calendar {
        format!(
            r#"{HEAD}<c:calendar-multiget xmlns:d="DAV:" xmlns:c="{CALDAV}"><d:prop><d:getetag/><c:calendar-data/></d:prop>{hrefs}</c:calendar-multiget>"#
        )
    } else {
        format!(
            r#"{HEAD}<card:addressbook-multiget xmlns:d="DAV:" xmlns:card="{CARDDAV}"><d:prop><d:getetag/><card:address-data/></d:prop>{hrefs}</card:addressbook-multiget>"#
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_collection_answer_is_read_with_its_token_and_gone_members() {
        let body = r#"<?xml version="1.0"?>
<multistatus xmlns="DAV:">
  <response><href>/alice/cal/a%20b.ics</href>
    <propstat><prop><getetag>"e1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
  </response>
  <response><href>/alice/cal/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response>
  <sync-token>http://example.com/sync/7</sync-token>
</multistatus>"#;
        let answer = multistatus(body, "test").unwrap();
        assert_eq!(
            answer.sync_token.as_deref(),
            Some("http://example.com/sync/7")
        );
        assert_eq!(answer.responses.len(), 2);
        assert_eq!(answer.responses[0].href, "/alice/cal/a%20b.ics");
        assert_eq!(
            answer.responses[0].text(DAV, "getetag").as_deref(),
            Some("\"e1\"")
        );
        assert_eq!(answer.responses[1].status, Some(404));
        assert!(answer.responses[1].props.is_empty());
    }

    #[test]
    fn properties_not_found_and_resource_types_are_told_apart() {
        let body = r#"<d:multistatus xmlns:d="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <d:response><d:href>/alice/cal/</d:href>
    <d:propstat><d:prop><d:resourcetype><d:collection/><C:calendar/></d:resourcetype>
      <d:current-user-principal><d:href>/alice/</d:href></d:current-user-principal></d:prop>
      <d:status>HTTP/1.1 200 OK</d:status></d:propstat>
    <d:propstat><d:prop><d:displayname/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
  </d:response></d:multistatus>"#;
        let answer = multistatus(body, "test").unwrap();
        let response = &answer.responses[0];
        assert!(response.is_type(CALDAV, "calendar"));
        assert!(!response.is_type(CARDDAV, "addressbook"));
        assert_eq!(response.text(DAV, "displayname"), None);
        assert_eq!(
            response.prop(DAV, "current-user-principal").unwrap().hrefs,
            vec!["/alice/".to_owned()]
        );
    }

    #[test]
    fn what_is_not_a_multistatus_is_an_error_naming_the_request() {
        let error = multistatus("<html>nope</html>", "PROPFIND /x").unwrap_err();
        assert!(
            error.contains("PROPFIND /x") && error.contains("html"),
            "{error}"
        );
        let error = multistatus("not xml at all", "REPORT").unwrap_err();
        assert!(
            error.starts_with("REPORT: the server's answer is not XML"),
            "{error}"
        );
        let doctype = r#"<!DOCTYPE d [<!ENTITY e "x">]><d:multistatus xmlns:d="DAV:"/>"#;
        assert!(multistatus(doctype, "REPORT").is_err());
    }

    #[test]
    fn request_bodies_escape_what_they_carry() {
        let body = multiget(true, &["/a/b&c.ics".to_owned()]);
        assert!(body.contains("<d:href>/a/b&amp;c.ics</d:href>"));
        assert!(body.contains("calendar-multiget"));
        assert!(sync_collection("t<1>").contains("<d:sync-token>t&lt;1&gt;</d:sync-token>"));
    }
}
