//! Templates, knowledge-base articles and sales literature.

use super::Backend;
use crate::sql::{Sql, optional, params, value};
use crate::{Article, LibraryStore, Literature, NewAttachment, Result, StoreError, Template};

/// `NotFound` for a missing row, `Conflict` for a name that exists.
fn exists(what: &str, name: &str) -> StoreError {
    StoreError::Conflict(format!("{what} {name:?} exists already"))
}

fn missing(what: &str, name: &str) -> StoreError {
    StoreError::NotFound(format!("{what} {name:?}"))
}

fn literature_files(
    conn: &mut dyn Sql,
    name: &str,
    with_content: bool,
) -> Result<Vec<NewAttachment>> {
    let files = conn
        .query(
            "SELECT name, content_type, CASE WHEN ?2 THEN content ELSE x'' END
         FROM literature_files WHERE literature = ?1 ORDER BY position",
            params![name, with_content],
        )?
        .iter()
        .map(|row| {
            Ok(NewAttachment {
                name: row.get(0)?,
                content_type: row.get(1)?,
                content: row.get(2)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(files)
}

impl<B: Backend> LibraryStore for B {
    fn add_template(&mut self, template: &Template) -> Result<()> {
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO templates (name, subject, body, html) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO NOTHING",
                params![
                    template.name,
                    template.subject,
                    template.body,
                    template.html
                ],
            )?;
            if inserted == 0 {
                return Err(exists("template", &template.name));
            }
            Ok(())
        })
    }

    fn templates(&self) -> Result<Vec<Template>> {
        self.read(|conn| {
            let rows = conn
                .query(
                    "SELECT name, subject, body, html FROM templates ORDER BY name",
                    &[],
                )?
                .iter()
                .map(|row| {
                    Ok(Template {
                        name: row.get(0)?,
                        subject: row.get(1)?,
                        body: row.get(2)?,
                        html: row.get(3)?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(rows)
        })
    }

    fn template(&self, name: &str) -> Result<Template> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT name, subject, body, html FROM templates WHERE name = ?1",
                params![name],
            )?
            .map(|row| -> Result<_> {
                Ok(Template {
                    name: row.get(0)?,
                    subject: row.get(1)?,
                    body: row.get(2)?,
                    html: row.get(3)?,
                })
            })
            .transpose()?
            .ok_or_else(|| missing("template", name))
        })
    }

    fn delete_template(&mut self, name: &str) -> Result<()> {
        self.write(|tx| {
            match tx.execute("DELETE FROM templates WHERE name = ?1", params![name])? {
                0 => Err(missing("template", name)),
                _ => Ok(()),
            }
        })
    }

    fn add_article(&mut self, title: &str, body: &str) -> Result<Article> {
        self.write(|tx| {
            let last: Option<i64> = value(
                tx,
                "SELECT max(CAST(substr(number, 4) AS INTEGER)) FROM articles",
                &[],
            )?;
            let number = format!("KB-{}", last.map_or(1001, |n| n.max(1000) + 1));
            tx.execute(
                "INSERT INTO articles (number, title, body) VALUES (?1, ?2, ?3)",
                params![number, title, body],
            )?;
            Ok(Article {
                number,
                title: title.to_owned(),
                body: body.to_owned(),
            })
        })
    }

    fn articles(&self) -> Result<Vec<Article>> {
        self.read(|conn| {
            let rows = conn
                .query(
                    "SELECT number, title, body FROM articles
                 ORDER BY CAST(substr(number, 4) AS INTEGER)",
                    &[],
                )?
                .iter()
                .map(|row| {
                    Ok(Article {
                        number: row.get(0)?,
                        title: row.get(1)?,
                        body: row.get(2)?,
                    })
                })
                .collect::<Result<_>>()?;
            Ok(rows)
        })
    }

    fn article(&self, number: &str) -> Result<Article> {
        self.read(|conn| {
            conn.query_opt(
                "SELECT number, title, body FROM articles WHERE lower(number) = lower(?1)",
                params![number],
            )?
            .map(|row| -> Result<_> {
                Ok(Article {
                    number: row.get(0)?,
                    title: row.get(1)?,
                    body: row.get(2)?,
                })
            })
            .transpose()?
            .ok_or_else(|| missing("article", number))
        })
    }

    fn add_literature(&mut self, literature: &Literature) -> Result<()> {
        self.write(|tx| {
            let inserted = tx.execute("INSERT INTO literature (name) VALUES (?1) ON CONFLICT (name) DO NOTHING", params![&literature.name])?;
            if inserted == 0 {
                return Err(exists("literature", &literature.name));
            }
            for (position, file) in literature.files.iter().enumerate() {
                tx.execute("INSERT INTO literature_files (literature, position, name, content_type, content)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        literature.name,
                        position as i64,
                        file.name,
                        file.content_type,
                        file.content
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn literature_list(&self) -> Result<Vec<Literature>> {
        self.read(|conn| {
            let names: Vec<String> = conn
                .query("SELECT name FROM literature ORDER BY name", &[])?
                .iter()
                .map(|row| row.get(0))
                .collect::<Result<_>>()?;
            names
                .into_iter()
                .map(|name| {
                    let files = literature_files(conn, &name, false)?;
                    Ok(Literature { name, files })
                })
                .collect()
        })
    }

    fn literature(&self, name: &str) -> Result<Literature> {
        self.read(|conn| {
            let found: Option<String> = optional(
                conn,
                "SELECT name FROM literature WHERE name = ?1",
                params![name],
            )?;
            let name = found.ok_or_else(|| missing("literature", name))?;
            let files = literature_files(conn, &name, true)?;
            Ok(Literature { name, files })
        })
    }

    fn delete_literature(&mut self, name: &str) -> Result<()> {
        self.write(|tx| {
            match tx.execute("DELETE FROM literature WHERE name = ?1", params![name])? {
                0 => Err(missing("literature", name)),
                _ => Ok(()),
            }
        })
    }
}
