//! [`Section`]: one TOML table being read, remembering which keys were asked for, so that
//! whatever is left when the section is finished is an unknown key; and [`Problems`], the one
//! list every problem goes to with its scope and dotted key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

use crate::ConfigError;

pub(crate) struct Problems<'a> {
    pub(crate) file: &'a Path,
    pub(crate) list: Vec<ConfigError>,
}

impl Problems<'_> {
    pub(crate) fn push(
        &mut self,
        scope: Option<&str>,
        key: Option<String>,
        message: impl Into<String>,
    ) {
        self.list.push(ConfigError {
            file: self.file.to_owned(),
            line: None,
            scope: scope.map(str::to_owned),
            key,
            message: message.into(),
        });
    }
}

/// One TOML table being read, with the keys taken from it so far.
pub(crate) struct Section<'t> {
    pub(crate) table: &'t Table,
    /// The dotted path of this table inside its scope, with a trailing dot (`imap.`), or "".
    pub(crate) prefix: String,
    pub(crate) scope: Option<String>,
    pub(crate) taken: BTreeSet<&'static str>,
}

impl<'t> Section<'t> {
    pub(crate) fn new(table: &'t Table, prefix: &str, scope: Option<String>) -> Section<'t> {
        Section {
            table,
            prefix: prefix.to_owned(),
            scope,
            taken: BTreeSet::new(),
        }
    }

    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    pub(crate) fn report(
        &self,
        problems: &mut Problems<'_>,
        key: &str,
        message: impl Into<String>,
    ) {
        problems.push(self.scope.as_deref(), Some(self.key(key)), message);
    }

    pub(crate) fn value(&mut self, key: &'static str) -> Option<&'t Value> {
        self.taken.insert(key);
        self.table.get(key)
    }

    /// A value converted by `convert`; a value of the wrong shape is reported with `expected`.
    pub(crate) fn typed<T>(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
        expected: &str,
        convert: impl FnOnce(&'t Value) -> Option<T>,
    ) -> Option<T> {
        let value = self.value(key)?;
        let converted = convert(value);
        if converted.is_none() {
            self.report(problems, key, format!("expected {expected}"));
        }
        converted
    }

    pub(crate) fn string(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
    ) -> Option<String> {
        self.typed(problems, key, "a string", |v| v.as_str().map(str::to_owned))
    }

    pub(crate) fn nonempty_string(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
    ) -> Option<String> {
        let text = self.string(problems, key)?;
        if text.trim().is_empty() {
            self.report(problems, key, "must not be empty");
            return None;
        }
        Some(text)
    }

    pub(crate) fn required_string(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
    ) -> Option<String> {
        if !self.table.contains_key(key) {
            self.taken.insert(key);
            self.report(problems, key, "missing (required)");
            return None;
        }
        self.nonempty_string(problems, key)
    }

    pub(crate) fn bool(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
        default: bool,
    ) -> bool {
        self.typed(problems, key, "true or false", Value::as_bool)
            .unwrap_or(default)
    }

    pub(crate) fn port(&mut self, problems: &mut Problems<'_>, key: &'static str) -> Option<u16> {
        self.typed(problems, key, "a number from 1 to 65535", |v| {
            v.as_integer()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n > 0)
        })
    }

    pub(crate) fn integer(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        let expected = format!("a number from {} to {}", range.start(), range.end());
        self.typed(problems, key, &expected, |v| {
            v.as_integer().filter(|n| range.contains(n))
        })
    }

    /// A size in bytes: a number of bytes, or a string with a unit (`"25 MB"`, `"512 KiB"`;
    /// kB, MB and GB are powers of 1000, KiB, MiB and GiB of 1024), within `range`.
    pub(crate) fn size(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
        range: std::ops::RangeInclusive<u64>,
    ) -> Option<u64> {
        let expected = format!(
            "a size from {} to {} (bytes, or a string such as \"25 MB\")",
            crate::parse::size_words(*range.start()),
            crate::parse::size_words(*range.end())
        );
        self.typed(problems, key, &expected, |v| {
            let bytes = match v {
                Value::Integer(n) => u64::try_from(*n).ok(),
                Value::String(text) => crate::parse::size(text),
                _ => None,
            };
            bytes.filter(|n| range.contains(n))
        })
    }

    pub(crate) fn strings(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
    ) -> Option<Vec<String>> {
        self.typed(problems, key, "a list of strings", |v| {
            v.as_array()?
                .iter()
                .map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
    }

    /// A path; relative paths are taken relative to the config file's directory.
    pub(crate) fn path(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
        base: &Path,
    ) -> Option<PathBuf> {
        let text = self.nonempty_string(problems, key)?;
        let path = PathBuf::from(text);
        Some(if path.is_absolute() {
            path
        } else {
            base.join(path)
        })
    }

    /// One of a fixed set of words.
    pub(crate) fn word<T: Copy>(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
        choices: &[(&str, T)],
        default: T,
    ) -> T {
        let Some(text) = self.string(problems, key) else {
            return default;
        };
        match choices.iter().find(|(word, _)| *word == text) {
            Some((_, value)) => *value,
            None => {
                let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
                self.report(
                    problems,
                    key,
                    format!(
                        "unknown value {text:?}: expected one of {}",
                        words.join(", ")
                    ),
                );
                default
            }
        }
    }

    pub(crate) fn table(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
    ) -> Option<&'t Table> {
        self.typed(problems, key, "a table", Value::as_table)
    }

    pub(crate) fn sub(
        &mut self,
        problems: &mut Problems<'_>,
        key: &'static str,
    ) -> Option<Section<'t>> {
        let table = self.table(problems, key)?;
        Some(Section::new(
            table,
            &format!("{}{key}.", self.prefix),
            self.scope.clone(),
        ))
    }

    /// Reports every key that nothing asked for.
    pub(crate) fn finish(self, problems: &mut Problems<'_>) {
        for key in self.table.keys() {
            if !self.taken.contains(key.as_str()) {
                let known: Vec<&str> = self.taken.iter().copied().collect();
                problems.push(
                    self.scope.as_deref(),
                    Some(self.key(key)),
                    format!("unknown key (known keys here: {})", known.join(", ")),
                );
            }
        }
    }
}
