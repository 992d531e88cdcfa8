//! Where a collection pass reads and writes: a vdir directory or a collection on a
//! CalDAV/CardDAV server, both through [`Collection`]; or the reason the server could not be
//! reached, which every operation then answers with.

use std::path::Path;

use crmsync_config::{CollectionConfig, Place};
use crmsync_dav::{DavCollection, Kind};
use crmsync_vdir::collection::{Changes, Collection, CollectionError, Entry, Item, Listing};
use crmsync_vdir::vdir::Vdir;

use super::Which;

pub enum Source {
    Directory(Vdir),
    Server(Box<DavCollection>),
    /// Connecting (reading the password, discovery) failed.
    Unreachable(CollectionError),
}

impl Which {
    /// The collection's directory, when it is one.
    pub fn directory(self, config: &CollectionConfig) -> Option<Vdir> {
        config.path().map(|path| self.vdir(path))
    }

    /// This collection as a vdir at `path` (`.ics` or `.vcf` files).
    fn vdir(self, path: &Path) -> Vdir {
        match self {
            Which::Calendar => Vdir::calendar(path),
            Which::Contacts => Vdir::contacts(path),
        }
    }

    pub fn dav_kind(self) -> Kind {
        match self {
            Which::Calendar => Kind::Calendar,
            Which::Contacts => Kind::Contacts,
        }
    }
}

impl Source {
    /// The source of a collection: its directory, the server connection kept from the last
    /// pass, or a new connection (with discovery).
    pub async fn open(
        which: Which,
        config: &CollectionConfig,
        kept: Option<Box<DavCollection>>,
    ) -> Source {
        match &config.place {
            Place::Directory(path) => Source::Directory(which.vdir(path)),
            Place::Server(server) => match kept {
                Some(kept) => Source::Server(kept),
                None => match DavCollection::connect(server, which.dav_kind()).await {
                    Ok(collection) => Source::Server(Box::new(collection)),
                    Err(error) => Source::Unreachable(error),
                },
            },
        }
    }

    /// A collection on a server, reached or not.
    pub fn is_server(&self) -> bool {
        !matches!(self, Source::Directory(_))
    }

    /// The server connection, to keep for the next pass.
    pub fn into_server(self) -> Option<Box<DavCollection>> {
        match self {
            Source::Server(collection) => Some(collection),
            _ => None,
        }
    }

    /// The listing as of the last look at a server collection, without asking the server
    /// (when there was a look); a directory is listed.
    pub async fn kept_listing(&self, clean: bool) -> Result<Listing, CollectionError> {
        match self {
            Source::Server(collection) => match collection.kept() {
                Some(listing) => Ok(listing),
                None => collection.list(clean).await,
            },
            other => other.list(clean).await,
        }
    }

    /// One item as the kept listing of a server collection has it. Only its "there, at this
    /// etag" is taken without asking: an item the listing lacks may have been linked since
    /// (by crmsync in another process), so the server is asked about it rather than taking it
    /// for deleted. A directory's file as it is now.
    pub async fn kept_entry(&self, href: &str) -> Result<Option<Entry>, CollectionError> {
        if let Source::Server(collection) = self
            && let Some(Some(etag)) = collection.kept_etag(href)
        {
            return Ok(Some(Entry {
                href: href.to_owned(),
                etag,
            }));
        }
        self.entry(href).await
    }

    /// Whether the collection changed since the last look (a server's token); a directory
    /// always says yes (its watcher names what changed).
    pub async fn changed(&self) -> Result<bool, CollectionError> {
        match self {
            Source::Directory(_) => Ok(true),
            Source::Server(collection) => collection.refresh().await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }
}

impl Collection for Source {
    fn location(&self) -> String {
        match self {
            Source::Directory(vdir) => Collection::location(vdir),
            Source::Server(collection) => collection.location(),
            Source::Unreachable(_) => String::new(),
        }
    }

    async fn list(&self, clean: bool) -> Result<Listing, CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::list(vdir, clean).await,
            Source::Server(collection) => collection.list(clean).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }

    async fn changes(&self, token: &str) -> Result<Option<Changes>, CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::changes(vdir, token).await,
            Source::Server(collection) => collection.changes(token).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }

    async fn entry(&self, href: &str) -> Result<Option<Entry>, CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::entry(vdir, href).await,
            Source::Server(collection) => collection.entry(href).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }

    async fn read(&self, href: &str) -> Result<Item, CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::read(vdir, href).await,
            Source::Server(collection) => collection.read(href).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }

    async fn read_many(
        &self,
        hrefs: &[String],
    ) -> Result<Vec<(String, Result<Item, CollectionError>)>, CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::read_many(vdir, hrefs).await,
            Source::Server(collection) => collection.read_many(hrefs).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }

    async fn create(&self, href: &str, content: &str) -> Result<String, CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::create(vdir, href, content).await,
            Source::Server(collection) => collection.create(href, content).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }

    async fn update(
        &self,
        href: &str,
        content: &str,
        etag: &str,
    ) -> Result<String, CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::update(vdir, href, content, etag).await,
            Source::Server(collection) => collection.update(href, content, etag).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }

    async fn delete(&self, href: &str, etag: &str) -> Result<(), CollectionError> {
        match self {
            Source::Directory(vdir) => Collection::delete(vdir, href, etag).await,
            Source::Server(collection) => collection.delete(href, etag).await,
            Source::Unreachable(error) => Err(error.clone()),
        }
    }
}
