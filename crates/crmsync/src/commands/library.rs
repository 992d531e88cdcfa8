//! `crmsync template`, `crmsync article` and `crmsync literature`: what a CRM user puts into
//! outgoing email.

use std::path::Path;

use anyhow::Context;
use crmsync_core::template;
use crmsync_store::{LibraryStore, Literature, NewAttachment, Template};
use serde_json::json;

use super::open_store;
use crate::cli::{ArticleCommand, LiteratureCommand, TemplateCommand};
use crate::output::{print_json, print_table};
use crate::usage;

/// The largest file sales literature takes.
const MAX_FILE: u64 = 25 * 1024 * 1024;

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{what} {}", path.display()))
}

fn template_json(t: &Template) -> serde_json::Value {
    json!({"name": t.name, "subject": t.subject, "body": t.body, "html": t.html})
}

pub fn template(config: &Path, command: TemplateCommand) -> anyhow::Result<()> {
    match command {
        TemplateCommand::Add {
            name,
            subject,
            body_file,
            html_file,
        } => {
            let body = body_file
                .map(|f| read_text(&f, "--body-file"))
                .transpose()?;
            let html = html_file
                .map(|f| read_text(&f, "--html-file"))
                .transpose()?;
            for (what, text) in [
                ("the subject", Some(&subject)),
                ("the body", body.as_ref()),
                ("the HTML body", html.as_ref()),
            ] {
                if let Some(text) = text {
                    template::check(text).map_err(|e| usage(format!("{what}: {e}")))?;
                }
            }
            let mut store = open_store(config)?;
            store.add_template(&Template {
                name: name.clone(),
                subject,
                body,
                html,
            })?;
            println!("added template {name:?}");
        }
        TemplateCommand::List(output) => {
            let templates = open_store(config)?.templates()?;
            if output.json {
                print_json(&json!(
                    templates.iter().map(template_json).collect::<Vec<_>>()
                ));
            } else {
                let rows: Vec<Vec<String>> = templates
                    .iter()
                    .map(|t| {
                        let kind = match (&t.body, &t.html) {
                            (Some(_), Some(_)) => "text+html",
                            (None, Some(_)) => "html",
                            _ => "text",
                        };
                        vec![t.name.clone(), kind.to_owned(), t.subject.clone()]
                    })
                    .collect();
                print_table(&["NAME", "BODY", "SUBJECT"], &rows);
            }
        }
        TemplateCommand::Show { name, output } => {
            let t = open_store(config)?.template(&name)?;
            if output.json {
                print_json(&template_json(&t));
            } else {
                println!("template {:?}\nsubject: {}", t.name, t.subject);
                if let Some(body) = &t.body {
                    println!("--- text\n{body}");
                }
                if let Some(html) = &t.html {
                    println!("--- html\n{html}");
                }
            }
        }
        TemplateCommand::Delete { name } => {
            open_store(config)?.delete_template(&name)?;
            println!("deleted template {name:?}");
        }
    }
    Ok(())
}

pub fn article(config: &Path, command: ArticleCommand) -> anyhow::Result<()> {
    let article_json =
        |a: &crmsync_store::Article| json!({"number": a.number, "title": a.title, "body": a.body});
    match command {
        ArticleCommand::Add {
            title,
            body,
            body_file,
            output,
        } => {
            let body = match (body, body_file) {
                (Some(body), _) => body,
                (None, Some(file)) => read_text(&file, "--body-file")?,
                (None, None) => return Err(usage("give --body or --body-file")),
            };
            let added = open_store(config)?.add_article(&title, &body)?;
            if output.json {
                print_json(&article_json(&added));
            } else {
                println!("added article {} {:?}", added.number, added.title);
            }
        }
        ArticleCommand::List(output) => {
            let articles = open_store(config)?.articles()?;
            if output.json {
                print_json(&json!(
                    articles.iter().map(article_json).collect::<Vec<_>>()
                ));
            } else {
                let rows: Vec<Vec<String>> = articles
                    .iter()
                    .map(|a| vec![a.number.clone(), a.title.clone()])
                    .collect();
                print_table(&["NUMBER", "TITLE"], &rows);
            }
        }
        ArticleCommand::Show { number, output } => {
            let a = open_store(config)?.article(&number)?;
            if output.json {
                print_json(&article_json(&a));
            } else {
                println!("{} {}\n\n{}", a.number, a.title, a.body);
            }
        }
    }
    Ok(())
}

/// A file's MIME type, from its extension.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match extension.as_str() {
        "pdf" => "application/pdf",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "ppt" => "application/vnd.ms-powerpoint",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "odt" => "application/vnd.oasis.opendocument.text",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "svg" => "image/svg+xml",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

pub fn literature(config: &Path, command: LiteratureCommand) -> anyhow::Result<()> {
    match command {
        LiteratureCommand::Add { name, files } => {
            let mut read = Vec::new();
            for path in &files {
                let size = std::fs::metadata(path)
                    .with_context(|| format!("--file {}", path.display()))?
                    .len();
                if size > MAX_FILE {
                    return Err(usage(format!(
                        "--file {}: {} MB is more than the 25 MB a file may have",
                        path.display(),
                        size / (1024 * 1024)
                    )));
                }
                let content =
                    std::fs::read(path).with_context(|| format!("--file {}", path.display()))?;
                let file_name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "attachment".into());
                read.push(NewAttachment {
                    name: file_name,
                    content_type: content_type(path).to_owned(),
                    content,
                });
            }
            let count = read.len();
            open_store(config)?.add_literature(&Literature {
                name: name.clone(),
                files: read,
            })?;
            println!("added literature {name:?} with {count} files");
        }
        LiteratureCommand::List(output) => {
            let all = open_store(config)?.literature_list()?;
            if output.json {
                print_json(&json!(
                    all.iter()
                        .map(|l| json!({
                            "name": l.name,
                            "files": l.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                        }))
                        .collect::<Vec<_>>()
                ));
            } else {
                let rows: Vec<Vec<String>> = all
                    .iter()
                    .map(|l| {
                        let names: Vec<&str> = l.files.iter().map(|f| f.name.as_str()).collect();
                        vec![l.name.clone(), names.join(", ")]
                    })
                    .collect();
                print_table(&["NAME", "FILES"], &rows);
            }
        }
        LiteratureCommand::Show { name, output } => {
            let l = open_store(config)?.literature(&name)?;
            if output.json {
                print_json(&json!({
                    "name": l.name,
                    "files": l.files.iter().map(|f| json!({
                        "name": f.name,
                        "content_type": f.content_type,
                        "size": f.content.len(),
                    })).collect::<Vec<_>>(),
                }));
            } else {
                let rows: Vec<Vec<String>> = l
                    .files
                    .iter()
                    .map(|f| {
                        vec![
                            f.name.clone(),
                            f.content_type.clone(),
                            f.content.len().to_string(),
                        ]
                    })
                    .collect();
                println!("literature {:?}", l.name);
                print_table(&["FILE", "TYPE", "BYTES"], &rows);
            }
        }
        LiteratureCommand::Delete { name } => {
            open_store(config)?.delete_literature(&name)?;
            println!("deleted literature {name:?}");
        }
    }
    Ok(())
}
