//! Composing an email from the CRM's library: a template with its placeholders filled from
//! the recipient's record, the regarding record and the owner; a knowledge-base article; sales
//! literature as attachments. `crmsync activity add email --template --article --literature`
//! uses it.

use std::collections::BTreeMap;

use crmsync_core::model::{EmailAddress, RecordNumber};
use crmsync_core::resolve::{self, Resolution};
use crmsync_core::template;
use crmsync_store::{CrmStore, NewAttachment, RecordRef};

/// What the library adds to an email.
#[derive(Debug, Default, Clone)]
pub struct Library<'a> {
    pub template: Option<&'a str>,
    pub article: Option<&'a str>,
    pub literature: &'a [String],
}

/// The email's content, composed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<NewAttachment>,
}

/// Text as HTML text.
pub(crate) fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The record an address resolves to (SPEC section 4), when exactly one does.
fn record_of<S: CrmStore>(store: &S, address: &EmailAddress) -> Result<Option<RecordRef>, String> {
    let candidates = store
        .records_with_email(address)
        .map_err(|e| format!("CRM store: {e}"))?;
    let Resolution::Resolved(id) = resolve::resolve(&candidates) else {
        return Ok(None);
    };
    let records = store.records(None).map_err(|e| format!("CRM store: {e}"))?;
    Ok(records
        .into_iter()
        .map(|row| row.record)
        .find(|record| record.id == id))
}

/// The values of the placeholders for an email from `owner` to `to` about `regarding`.
fn values<S: CrmStore>(
    store: &S,
    owner: &EmailAddress,
    to: Option<&EmailAddress>,
    regarding: Option<&RecordNumber>,
) -> Result<BTreeMap<&'static str, String>, String> {
    let mut values = BTreeMap::new();
    if let Some(to) = to {
        values.insert("recipient.email", to.as_str().to_owned());
        match record_of(store, to)? {
            Some(record) => {
                values.insert("recipient.name", record.name.clone());
                values.insert("recipient.number", record.number.to_string());
                values.insert("recipient.entity", record.entity.to_string());
            }
            None => {
                values.insert("recipient.name", to.as_str().to_owned());
            }
        }
    }
    if let Some(number) = regarding {
        let record = store
            .record(number)
            .map_err(|e| format!("regarding {number}: {e}"))?
            .record;
        values.insert("regarding.name", record.name.clone());
        values.insert("regarding.number", record.number.to_string());
        values.insert("regarding.entity", record.entity.to_string());
    }
    let user = store
        .user(owner)
        .map_err(|e| format!("owner {owner}: {e}"))?;
    values.insert("owner.name", user.record.name);
    values.insert("owner.email", owner.as_str().to_owned());
    values.insert("date", chrono::Utc::now().format("%Y-%m-%d").to_string());
    Ok(values)
}

/// Composes the content of an email: the person's own subject and text first, then the
/// template (rendered), then the article; the literature's files attached. An unknown template,
/// article or literature, or a template whose placeholders cannot be filled, is an error that
/// names it.
pub fn compose<S: CrmStore>(
    store: &S,
    owner: &EmailAddress,
    to: Option<&EmailAddress>,
    regarding: Option<&RecordNumber>,
    own: (Option<&str>, Option<&str>),
    library: &Library<'_>,
) -> Result<Composed, String> {
    let (own_subject, own_text) = own;
    let values = values(store, owner, to, regarding)?;
    let mut subject = own_subject.map(str::to_owned);
    let mut text: Vec<String> = own_text.map(str::to_owned).into_iter().collect();
    let mut html: Vec<String> = Vec::new();
    if let Some(name) = library.template {
        let found = store
            .template(name)
            .map_err(|e| format!("template {name:?}: {e}"))?;
        let render = |part: &str, what: &str| {
            template::render(part, &values).map_err(|e| format!("template {name:?}, {what}: {e}"))
        };
        if subject.is_none() {
            subject = Some(render(&found.subject, "subject")?);
        }
        if let Some(body) = &found.body {
            text.push(render(body, "body")?);
        }
        if let Some(body) = &found.html {
            html.push(render(body, "HTML body")?);
        }
    }
    if let Some(number) = library.article {
        let article = store
            .article(number)
            .map_err(|e| format!("article {number}: {e}"))?;
        text.push(format!("{}\n\n{}", article.title, article.body));
        html.push(format!(
            "<h2>{}</h2>\n<p>{}</p>",
            escape_html(&article.title),
            escape_html(&article.body).replace('\n', "<br>\n")
        ));
    }
    let mut attachments = Vec::new();
    for name in library.literature {
        let literature = store
            .literature(name)
            .map_err(|e| format!("literature {name:?}: {e}"))?;
        attachments.extend(literature.files);
    }
    let subject = subject.ok_or("give --subject, or a --template whose subject is used")?;
    // An HTML body leads with the person's own text, as the text body does.
    let html = (!html.is_empty()).then(|| {
        let own = own_text
            .map(|t| format!("<p>{}</p>\n", escape_html(t).replace('\n', "<br>\n")))
            .unwrap_or_default();
        format!("{own}{}", html.join("\n"))
    });
    Ok(Composed {
        subject,
        text: (!text.is_empty()).then(|| text.join("\n\n")),
        html,
        attachments,
    })
}
