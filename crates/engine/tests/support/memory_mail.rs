//! A mailbox in memory behind the engine's `MailStore` trait: folders of messages with
//! keywords and CONDSTORE mod-sequences, so the real email pass runs against it as it runs
//! against Dovecot. Each STORE is a write that the crash switch may stop.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use crmsync_core::email::Presence;
use crmsync_engine::mail::MailStore;
use crmsync_imap::{
    Counters, FetchedHeader, FetchedMessage, FolderMarkers, FolderScan, ImapError, Wanted,
};

use super::CrashSwitch;

#[derive(Debug, Clone)]
pub struct Message {
    pub raw: String,
    pub keywords: BTreeSet<String>,
    pub modseq: u64,
}

#[derive(Debug, Clone)]
pub struct Folder {
    pub uid_validity: u32,
    pub next_uid: u32,
    pub messages: BTreeMap<u32, Message>,
    /// Expunged UIDs with the mod-sequence of their expunge, for QRESYNC's VANISHED.
    pub expunged: Vec<(u32, u64)>,
}

#[derive(Debug, Clone)]
pub struct MemoryMail {
    pub folders: BTreeMap<String, Folder>,
    /// The mailbox's HIGHESTMODSEQ: every change takes the next one.
    pub modseq: u64,
    /// Whether scans report what vanished since their markers (QRESYNC) instead of every
    /// UID: the engine's two ways of seeing expunges.
    pub qresync: bool,
    /// Whether the server has CONDSTORE: without it, every scan is a full one.
    pub condstore: bool,
    /// Whether full scans give only the headers asked for (as the IMAP session does), or
    /// every message's (as it did before: the two must come to the same result).
    pub withhold: bool,
    /// The headers scans and header fetches gave, in all.
    pub headers_read: usize,
    pub switch: CrashSwitch,
}

impl MemoryMail {
    pub fn new(folders: &[&str], switch: CrashSwitch) -> MemoryMail {
        MemoryMail {
            folders: folders
                .iter()
                .map(|name| {
                    let folder = Folder {
                        uid_validity: 7,
                        next_uid: 1,
                        messages: BTreeMap::new(),
                        expunged: Vec::new(),
                    };
                    ((*name).to_owned(), folder)
                })
                .collect(),
            modseq: 1,
            qresync: true,
            condstore: true,
            withhold: true,
            headers_read: 0,
            switch,
        }
    }

    fn next_modseq(&mut self) -> u64 {
        self.modseq += 1;
        self.modseq
    }

    /// Delivers a message; returns its UID.
    pub fn deliver(&mut self, folder: &str, raw: &str, keywords: &[&str]) -> u32 {
        let modseq = self.next_modseq();
        let folder = self.folders.get_mut(folder).expect("a folder of the test");
        let uid = folder.next_uid;
        folder.next_uid += 1;
        folder.messages.insert(
            uid,
            Message {
                raw: raw.to_owned(),
                keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
                modseq,
            },
        );
        uid
    }

    /// Changes a message's keywords as a mail client would.
    pub fn edit(&mut self, folder: &str, uid: u32, change: impl FnOnce(&mut BTreeSet<String>)) {
        let modseq = self.next_modseq();
        if let Some(message) = self
            .folders
            .get_mut(folder)
            .and_then(|f| f.messages.get_mut(&uid))
        {
            change(&mut message.keywords);
            message.modseq = modseq;
        }
    }

    pub fn expunge(&mut self, folder: &str, uid: u32) -> Option<Message> {
        let modseq = self.next_modseq();
        let folder = self.folders.get_mut(folder)?;
        let message = folder.messages.remove(&uid)?;
        folder.expunged.push((uid, modseq));
        Some(message)
    }

    /// Moves a message (MOVE keeps its keywords); returns its new UID.
    pub fn move_message(&mut self, from: &str, uid: u32, to: &str) -> Option<u32> {
        let message = self.expunge(from, uid)?;
        let keywords: Vec<&str> = message.keywords.iter().map(String::as_str).collect();
        Some(self.deliver(to, &message.raw.clone(), &keywords))
    }

    pub fn message(&self, folder: &str, uid: u32) -> Option<&Message> {
        self.folders.get(folder)?.messages.get(&uid)
    }

    fn header_of(uid: u32, message: &Message, size: bool) -> FetchedHeader {
        FetchedHeader {
            uid,
            keywords: message.keywords.iter().cloned().collect(),
            header: header(&message.raw).into_bytes(),
            // As the IMAP session does: a full scan leaves the size out.
            size: size
                .then(|| u32::try_from(message.raw.len()).ok())
                .flatten(),
            modseq: Some(message.modseq),
            summary: None,
        }
    }

    fn scan(
        &mut self,
        name: &str,
        saved: Option<FolderMarkers>,
        wanted: Wanted<'_>,
    ) -> Result<FolderScan, ImapError> {
        let folder = self
            .folders
            .get(name)
            .ok_or_else(|| ImapError::FolderMissing(name.to_owned()))?;
        let since = saved
            .filter(|saved| saved.uid_validity == folder.uid_validity && self.condstore)
            .and_then(|saved| saved.highest_modseq);
        let mut withheld = Vec::new();
        let mut changed = Vec::new();
        for (uid, message) in &folder.messages {
            if since.is_some_and(|since| message.modseq <= since) {
                continue;
            }
            let keywords: Vec<String> = message.keywords.iter().cloned().collect();
            match wanted {
                Wanted::Some(wants)
                    if since.is_none()
                        && self.withhold
                        && !wants(folder.uid_validity, *uid, &keywords) =>
                {
                    withheld.push(*uid);
                }
                _ => changed.push(MemoryMail::header_of(*uid, message, since.is_some())),
            }
        }
        self.headers_read += changed.len();
        // As a connection that holds the folder selected answers with QRESYNC: the highest
        // MODSEQ among the changes, below the server's when the last change was an expunge
        // (which the next scan then reports again).
        let highest_modseq = match since {
            Some(since) if self.qresync => changed
                .iter()
                .filter_map(|m: &FetchedHeader| m.modseq)
                .fold(since, u64::max),
            _ => self.modseq,
        };
        Ok(FolderScan {
            folder: name.to_owned(),
            uid_validity: folder.uid_validity,
            highest_modseq: self.condstore.then_some(highest_modseq),
            uid_next: Some(folder.next_uid),
            present: match since {
                Some(since) if self.qresync => Presence::Vanished {
                    vanished: folder
                        .expunged
                        .iter()
                        .filter(|(_, modseq)| *modseq > since)
                        .map(|(uid, _)| *uid)
                        .collect(),
                    exists: folder.messages.len() as u32,
                },
                _ => Presence::Listed(folder.messages.keys().copied().collect()),
            },
            changed,
            full: since.is_none(),
            withheld,
        })
    }

    fn store(
        &mut self,
        folder: &str,
        uid: u32,
        keywords: &[String],
        add: bool,
    ) -> Result<(), ImapError> {
        if keywords.is_empty() {
            return Ok(());
        }
        if !self.switch.spend() {
            return Err(ImapError::Protocol("the process was killed".into()));
        }
        self.edit(folder, uid, |set| {
            for keyword in keywords {
                if add {
                    set.insert(keyword.clone());
                } else {
                    set.remove(keyword);
                }
            }
        });
        Ok(())
    }
}

fn header(raw: &str) -> String {
    match raw.find("\n\n") {
        Some(end) => raw[..end + 2].to_owned(),
        None => raw.to_owned(),
    }
}

impl MailStore for MemoryMail {
    fn scan_folder(
        &mut self,
        folder: &str,
        saved: Option<FolderMarkers>,
        wanted: Wanted<'_>,
    ) -> impl Future<Output = Result<FolderScan, ImapError>> + Send {
        std::future::ready(self.scan(folder, saved, wanted))
    }

    fn fetch_headers_of(
        &mut self,
        folder: &str,
        uid_validity: u32,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<FetchedHeader>, ImapError>> + Send {
        let renumbered = self
            .folders
            .get(folder)
            .is_none_or(|f| f.uid_validity != uid_validity);
        if renumbered {
            let error = ImapError::Protocol(format!("{folder}: UIDVALIDITY changed"));
            return std::future::ready(Err(error));
        }
        let found: Vec<FetchedHeader> = uids
            .iter()
            .filter_map(|uid| {
                Some(MemoryMail::header_of(
                    *uid,
                    self.message(folder, *uid)?,
                    false,
                ))
            })
            .collect();
        self.headers_read += found.len();
        std::future::ready(Ok(found))
    }

    fn fetch_messages(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> impl Future<Output = Result<Vec<(u32, FetchedMessage)>, ImapError>> + Send {
        let found = uids
            .iter()
            .filter_map(|uid| {
                let message = self.message(folder, *uid)?;
                Some((
                    *uid,
                    FetchedMessage::whole(message.raw.clone().into_bytes()),
                ))
            })
            .collect();
        std::future::ready(Ok(found))
    }

    fn fetch_sizes(
        &mut self,
        folder: &str,
        uids: &[u32],
    ) -> impl Future<Output = Result<BTreeMap<u32, u32>, ImapError>> + Send {
        let sizes = uids
            .iter()
            .filter_map(|uid| {
                let message = self.message(folder, *uid)?;
                Some((*uid, u32::try_from(message.raw.len()).ok()?))
            })
            .collect();
        std::future::ready(Ok(sizes))
    }

    fn store_keywords(
        &mut self,
        folder: &str,
        uids: &[u32],
        add: &[String],
        remove: &[String],
    ) -> impl Future<Output = Result<(), ImapError>> + Send {
        let result = uids.iter().try_for_each(|uid| {
            self.store(folder, *uid, add, true)
                .and_then(|()| self.store(folder, *uid, remove, false))
        });
        std::future::ready(result)
    }

    fn is_alive(&mut self) -> impl Future<Output = bool> + Send {
        std::future::ready(!self.switch.crashed())
    }

    fn counters(&self) -> Counters {
        Counters::default()
    }
}
