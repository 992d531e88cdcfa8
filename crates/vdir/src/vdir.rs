//! A vdir: a directory with one item per file (`.ics` for calendars and task lists, `.vcf` for
//! address books), as vdirsyncer, khal, khard and todoman share it.
//!
//! An item's *href* is its file name; its *etag* is made of the file's modification time (to the
//! nanosecond), size and inode, as vdirsyncer does with the modification time: listing a
//! collection of 10,000 items is one `stat` each, no read. A file replaced by a rename (every
//! vdir writer) gets a new inode, so a rewrite within one clock tick is still seen. Writes follow the vdir rules: the content goes to
//! a temporary file in the same directory (a name starting with `.`, which readers skip) and is
//! renamed over the target, so a reader sees the old item or the new one, never half of one.
//! Updates and deletes take the etag the caller last saw and refuse when the file changed since,
//! so an edit made by the person in between is never overwritten unseen.
//!
//! The directory is shared with the person (and their sync tools), so nothing in it is trusted:
//! symbolic links are never followed (an item that is a link is not listed, not read and not
//! written through), temporary files get unpredictable names and are created exclusively, and
//! an item larger than [`MAX_ITEM_BYTES`] is refused.

use std::io::Write;
use std::path::{Path, PathBuf};

use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use crate::collection::{Changes, Collection, CollectionError, Item, Listing};

#[derive(Debug, thiserror::Error)]
pub enum VdirError {
    #[error("collection {path}: {message}")]
    Io { path: String, message: String },
    #[error("{href} changed since it was read (etag {expected} is now {found})")]
    Changed {
        href: String,
        expected: String,
        found: String,
    },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} does not exist")]
    Missing(String),
    #[error("{0:?} is not a valid item file name")]
    BadHref(String),
    #[error("{0} is not a regular file (a symbolic link, say): not followed")]
    NotAFile(String),
    #[error("{href} is {size} bytes, more than the {MAX_ITEM_BYTES} an item may have")]
    TooLarge { href: String, size: u64 },
}

/// The largest item file crmsync reads (attachments inlined in an event can be large; a file
/// beyond this is not a calendar item anyone meant).
pub const MAX_ITEM_BYTES: u64 = 32 * 1024 * 1024;

/// Opens without following a symbolic link in the last component, and without blocking on a
/// FIFO or device put in place of an item (the caller then refuses what is not a file).
fn open_no_follow(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

fn io_error(path: &Path, error: std::io::Error) -> VdirError {
    VdirError::Io {
        path: path.display().to_string(),
        message: error.to_string(),
    }
}

/// One item as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub href: String,
    pub etag: String,
}

pub struct Vdir {
    path: PathBuf,
    extension: &'static str,
}

/// The etag of a file, from its metadata.
pub fn etag(metadata: &std::fs::Metadata) -> String {
    let nanos = metadata.mtime() as i128 * 1_000_000_000 + metadata.mtime_nsec() as i128;
    format!("{nanos:x}-{:x}-{:x}", metadata.size(), metadata.ino())
}

impl Vdir {
    /// A calendar or task list (`.ics` files).
    pub fn calendar(path: &Path) -> Vdir {
        Vdir {
            path: path.to_owned(),
            extension: "ics",
        }
    }

    /// An address book (`.vcf` files).
    pub fn contacts(path: &Path) -> Vdir {
        Vdir {
            path: path.to_owned(),
            extension: "vcf",
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn item_path(&self, href: &str) -> Result<PathBuf, VdirError> {
        let valid = !href.is_empty()
            && !href.starts_with('.')
            && !href.contains(['/', '\0'])
            && href.ends_with(&format!(".{}", self.extension));
        if !valid {
            return Err(VdirError::BadHref(href.to_owned()));
        }
        Ok(self.path.join(href))
    }

    /// Every item, sorted by href. Hidden files (temporary files of writers) are skipped. A
    /// directory that cannot be read is an error, never an empty listing.
    pub fn list(&self) -> Result<Vec<Entry>, VdirError> {
        self.list_and_clean().map(|(entries, _)| entries)
    }

    /// [`Vdir::list`], and the temporary files crmsync's own writes left behind when the
    /// process was killed between writing one and renaming it (older than
    /// [`STALE_TEMPORARY`]: no write takes that long) are removed, in the same pass over the
    /// directory. Returns their names.
    pub fn list_and_clean(&self) -> Result<(Vec<Entry>, Vec<String>), VdirError> {
        let reader = std::fs::read_dir(&self.path).map_err(|e| io_error(&self.path, e))?;
        let mut entries = Vec::new();
        let mut removed = Vec::new();
        for item in reader {
            let item = item.map_err(|e| io_error(&self.path, e))?;
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if is_own_temporary(&name) && self.remove_if_stale(&name) {
                removed.push(name);
                continue;
            }
            if name.starts_with('.') || !name.ends_with(&format!(".{}", self.extension)) {
                continue;
            }
            let path = item.path();
            // A file removed between the listing and the stat is simply not listed. A symbolic
            // link is listed (so that a tracked item replaced by one is not taken for deleted)
            // but never read: `read` refuses it.
            match std::fs::symlink_metadata(&path) {
                Ok(metadata) if metadata.is_file() || metadata.file_type().is_symlink() => entries
                    .push(Entry {
                        href: name,
                        etag: etag(&metadata),
                    }),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(&path, e)),
            }
        }
        entries.sort_by(|a, b| a.href.cmp(&b.href));
        Ok((entries, removed))
    }

    /// Removes one of crmsync's temporary files when it is older than [`STALE_TEMPORARY`].
    fn remove_if_stale(&self, name: &str) -> bool {
        let path = self.path.join(name);
        let stale = std::fs::symlink_metadata(&path).is_ok_and(|m| {
            m.is_file()
                && m.modified()
                    .ok()
                    .and_then(|at| at.elapsed().ok())
                    .is_some_and(|age| age > STALE_TEMPORARY)
        });
        stale && std::fs::remove_file(&path).is_ok()
    }

    /// An item's content and etag.
    pub fn read(&self, href: &str) -> Result<(String, String), VdirError> {
        let path = self.item_path(href)?;
        let missing = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::NotFound => VdirError::Missing(href.to_owned()),
            _ => io_error(&path, e),
        };
        let file = match open_no_follow(&path) {
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(VdirError::NotAFile(href.to_owned()));
            }
            other => other.map_err(missing)?,
        };
        let metadata = file.metadata().map_err(missing)?;
        if !metadata.is_file() {
            return Err(VdirError::NotAFile(href.to_owned()));
        }
        if metadata.len() > MAX_ITEM_BYTES {
            return Err(VdirError::TooLarge {
                href: href.to_owned(),
                size: metadata.len(),
            });
        }
        let tag = etag(&metadata);
        let mut content = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_ITEM_BYTES + 1),
            &mut content,
        )
        .map_err(missing)?;
        let text = String::from_utf8(content).map_err(|_| VdirError::Io {
            path: path.display().to_string(),
            message: "not UTF-8".into(),
        })?;
        Ok((text, tag))
    }

    /// One name as [`Vdir::list`] would list it: `None` when no item file of that name is
    /// there (gone, a directory, a hidden file, another extension).
    pub fn entry(&self, href: &str) -> Result<Option<Entry>, VdirError> {
        let Ok(path) = self.item_path(href) else {
            return Ok(None);
        };
        match std::fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.is_file() || metadata.file_type().is_symlink() => {
                Ok(Some(Entry {
                    href: href.to_owned(),
                    etag: etag(&metadata),
                }))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    /// An item's etag, without reading it.
    pub fn etag_of(&self, href: &str) -> Result<String, VdirError> {
        let path = self.item_path(href)?;
        let metadata = std::fs::symlink_metadata(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => VdirError::Missing(href.to_owned()),
            _ => io_error(&path, e),
        })?;
        if !metadata.is_file() {
            return Err(VdirError::NotAFile(href.to_owned()));
        }
        Ok(etag(&metadata))
    }

    fn check_etag(&self, href: &str, expected: &str) -> Result<(), VdirError> {
        let found = self.etag_of(href)?;
        if found != expected {
            return Err(VdirError::Changed {
                href: href.to_owned(),
                expected: expected.to_owned(),
                found,
            });
        }
        Ok(())
    }

    /// Writes through a temporary file (see [`is_own_temporary`]) and a rename; returns the new etag. The temporary file
    /// has a random name and is created exclusively (never through an existing file or link),
    /// and the etag is taken from it before the rename (a rename keeps mtime and inode), so a
    /// write by someone else right after the rename is a different etag.
    fn replace(&self, target: &Path, content: &str) -> Result<String, VdirError> {
        // A replaced item keeps its permissions (the person's client must still read it).
        let mode = std::fs::symlink_metadata(target)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.mode() & 0o7777);
        let temporary = self.path.join(format!(
            ".{}.{}.tmp",
            target
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("item"),
            uuid::Uuid::new_v4().simple()
        ));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&temporary)
            .map_err(|e| io_error(&temporary, e))?;
        let permissions = match mode {
            Some(mode) => file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode)),
            None => Ok(()),
        };
        let written = permissions
            .and_then(|()| file.write_all(content.as_bytes()))
            .and_then(|()| file.sync_all())
            .and_then(|()| file.metadata());
        let metadata = match written {
            Ok(metadata) => metadata,
            Err(e) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(io_error(&temporary, e));
            }
        };
        drop(file);
        if let Err(e) = std::fs::rename(&temporary, target) {
            let _ = std::fs::remove_file(&temporary);
            return Err(io_error(target, e));
        }
        // The rename is made durable by syncing the directory.
        if let Ok(directory) = std::fs::File::open(&self.path) {
            let _ = directory.sync_all();
        }
        Ok(etag(&metadata))
    }

    /// Creates an item; refuses when the href exists.
    pub fn create(&self, href: &str, content: &str) -> Result<String, VdirError> {
        let path = self.item_path(href)?;
        if std::fs::symlink_metadata(&path).is_ok() {
            return Err(VdirError::Exists(href.to_owned()));
        }
        self.replace(&path, content)
    }

    /// Replaces an item whose etag is still `expected`.
    pub fn update(&self, href: &str, content: &str, expected: &str) -> Result<String, VdirError> {
        let path = self.item_path(href)?;
        self.check_etag(href, expected)?;
        self.replace(&path, content)
    }

    /// Deletes an item whose etag is still `expected`.
    pub fn delete(&self, href: &str, expected: &str) -> Result<(), VdirError> {
        let path = self.item_path(href)?;
        self.check_etag(href, expected)?;
        std::fs::remove_file(&path).map_err(|e| io_error(&path, e))
    }
}

impl From<VdirError> for CollectionError {
    fn from(error: VdirError) -> CollectionError {
        match error {
            VdirError::Changed { href, .. } => CollectionError::Changed { href },
            VdirError::Exists(href) => CollectionError::Exists(href),
            VdirError::Missing(href) => CollectionError::Missing(href),
            other => CollectionError::Other(other.to_string()),
        }
    }
}

/// A directory as a [`Collection`]: every call is the synchronous one above (a few system
/// calls; a directory has no change log, so [`Collection::changes`] is always `None` and the
/// daemon's file watcher names what changed instead).
impl Collection for Vdir {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    async fn list(&self, clean: bool) -> Result<Listing, CollectionError> {
        if !self.path.is_dir() {
            return Err(CollectionError::Other(format!(
                "the collection {} is not a directory",
                self.path.display()
            )));
        }
        let (entries, removed) = if clean {
            self.list_and_clean()?
        } else {
            (Vdir::list(self)?, Vec::new())
        };
        Ok(Listing {
            entries,
            removed,
            token: None,
        })
    }

    async fn changes(&self, _token: &str) -> Result<Option<Changes>, CollectionError> {
        Ok(None)
    }

    async fn entry(&self, href: &str) -> Result<Option<Entry>, CollectionError> {
        if !self.path.is_dir() {
            return Err(CollectionError::Other(format!(
                "the collection {} is not a directory",
                self.path.display()
            )));
        }
        Ok(Vdir::entry(self, href)?)
    }

    async fn read(&self, href: &str) -> Result<Item, CollectionError> {
        Ok(Vdir::read(self, href)?)
    }

    async fn read_many(
        &self,
        hrefs: &[String],
    ) -> Result<Vec<(String, Result<Item, CollectionError>)>, CollectionError> {
        Ok(hrefs
            .iter()
            .map(|href| (href.clone(), Vdir::read(self, href).map_err(Into::into)))
            .collect())
    }

    async fn create(&self, href: &str, content: &str) -> Result<String, CollectionError> {
        Ok(Vdir::create(self, href, content)?)
    }

    async fn update(
        &self,
        href: &str,
        content: &str,
        etag: &str,
    ) -> Result<String, CollectionError> {
        Ok(Vdir::update(self, href, content, etag)?)
    }

    async fn delete(&self, href: &str, etag: &str) -> Result<(), CollectionError> {
        Ok(Vdir::delete(self, href, etag)?)
    }
}

/// How old a temporary file of crmsync's must be before a listing removes it.
pub const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(600);

/// Whether a file name is one of crmsync's temporary files: `.NAME.HEX32.tmp`, hidden from
/// readers (whose temporary files are left alone).
fn is_own_temporary(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    rest.rsplit_once('.').is_some_and(|(item, random)| {
        !item.is_empty() && random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c1\r\nFN:Dana Smith\r\nEND:VCARD\r\n";

    #[test]
    fn create_list_read_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::contacts(dir.path());
        assert_eq!(vdir.list().unwrap(), []);
        let tag = vdir.create("c1.vcf", CARD).unwrap();
        // Files of other kinds and hidden files are not items.
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        std::fs::write(dir.path().join(".c2.vcf.tmp"), "x").unwrap();
        assert_eq!(
            vdir.list().unwrap(),
            [Entry {
                href: "c1.vcf".into(),
                etag: tag.clone()
            }]
        );
        assert_eq!(vdir.read("c1.vcf").unwrap(), (CARD.to_owned(), tag.clone()));
        // One name at a time, as the listing would have it.
        assert_eq!(
            vdir.entry("c1.vcf").unwrap(),
            Some(Entry {
                href: "c1.vcf".into(),
                etag: tag.clone()
            })
        );
        for not_listed in ["notes.txt", ".c2.vcf.tmp", "c9.vcf", "../c1.vcf"] {
            assert_eq!(vdir.entry(not_listed).unwrap(), None, "{not_listed}");
        }
        assert!(matches!(
            vdir.create("c1.vcf", CARD),
            Err(VdirError::Exists(_))
        ));

        let edited = CARD.replace("Dana Smith", "Dana Smith-Jones");
        let new_tag = vdir.update("c1.vcf", &edited, &tag).unwrap();
        assert_ne!(new_tag, tag);
        // A writer holding the old etag is refused: the person's edit is not overwritten.
        assert!(matches!(
            vdir.update("c1.vcf", CARD, &tag),
            Err(VdirError::Changed { .. })
        ));
        assert!(matches!(
            vdir.delete("c1.vcf", &tag),
            Err(VdirError::Changed { .. })
        ));
        vdir.delete("c1.vcf", &new_tag).unwrap();
        assert!(matches!(vdir.read("c1.vcf"), Err(VdirError::Missing(_))));
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp") && n != ".c2.vcf.tmp")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn stale_temporary_files_of_crmsync_are_removed_by_a_listing() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::contacts(dir.path());
        let ours = format!(".c1.vcf.{}.tmp", uuid::Uuid::new_v4().simple());
        let fresh = format!(".c2.vcf.{}.tmp", uuid::Uuid::new_v4().simple());
        let theirs = ".c3.vcf.tmp";
        for name in [ours.as_str(), fresh.as_str(), theirs] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let old = std::time::SystemTime::now() - STALE_TEMPORARY * 2;
        for name in [ours.as_str(), theirs] {
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(name))
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        let (entries, removed) = vdir.list_and_clean().unwrap();
        assert_eq!(entries, []);
        assert_eq!(removed, std::slice::from_ref(&ours));
        assert!(!dir.path().join(&ours).exists());
        // A write in progress and another program's temporary file are left alone.
        assert!(dir.path().join(&fresh).exists() && dir.path().join(theirs).exists());
        assert!(is_own_temporary(&ours) && !is_own_temporary(theirs));
        assert!(!is_own_temporary(".tmp") && !is_own_temporary("a.0123.tmp"));
    }

    #[test]
    fn symbolic_links_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret.txt");
        std::fs::write(&secret, "not yours").unwrap();
        let vdir = Vdir::contacts(dir.path());
        std::os::unix::fs::symlink(&secret, dir.path().join("link.vcf")).unwrap();
        assert_eq!(
            vdir.list().unwrap().len(),
            1,
            "listed, so not taken for deleted"
        );
        assert!(matches!(vdir.read("link.vcf"), Err(VdirError::NotAFile(_))));
        assert!(matches!(
            vdir.update("link.vcf", CARD, "x"),
            Err(VdirError::NotAFile(_))
        ));
        assert!(matches!(
            vdir.create("link.vcf", CARD),
            Err(VdirError::Exists(_))
        ));
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "not yours");
        // A FIFO in place of an item is refused at once, not waited on.
        let fifo = dir.path().join("pipe.vcf");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(vdir.read("pipe.vcf"), Err(VdirError::NotAFile(_))));
    }

    #[test]
    fn hrefs_cannot_leave_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::calendar(dir.path());
        for bad in ["../x.ics", "a/b.ics", ".hidden.ics", "x.vcf", ""] {
            assert!(
                matches!(vdir.create(bad, "x"), Err(VdirError::BadHref(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_unreadable_collection_is_an_error_not_an_empty_listing() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::calendar(&dir.path().join("gone"));
        assert!(matches!(vdir.list(), Err(VdirError::Io { .. })));
    }
}
