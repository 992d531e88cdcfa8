//! A fault-injecting TCP proxy for IMAP: crmsync connects to the proxy, the proxy to the real
//! Dovecot, and the test decides what happens when the client sends a chosen command: the
//! connection is cut there (as a network drop or a server crash would), or the proxy stops
//! forwarding and holds the connection open (a server that stalls). Everything else passes
//! through untouched, byte for byte.
//!
//! Client commands are matched per line, case-insensitively, on a fragment such as
//! `"-FLAGS"` or `"UID FETCH"`; the matching line is never forwarded, so the server never sees
//! the command the fault falls on.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do when a client line contains the fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Close both sides of the connection instead of forwarding the line.
    CutAt(String),
    /// Stop forwarding in both directions from that line on, keeping the sockets open.
    StallAt(String),
    /// Stall at the `n`th matching line from when the fault is set (1 = the first).
    StallAtNth(String, u64),
    /// Answer the line with these bytes instead of the server (which never sees it), and go
    /// on: a server that sends garbage, or refuses.
    AnswerAt(String, Vec<u8>),
    /// Answer the line with a response line that never ends, sent as fast as the client reads.
    EndlessAt(String),
    /// Hold the line (and what the client sends after it) until the fault is changed, then
    /// forward it and go on: a command that reaches the server late.
    HoldAt(String),
}

impl Fault {
    fn fragment(&self) -> Option<&str> {
        match self {
            Fault::None => None,
            Fault::CutAt(fragment)
            | Fault::StallAt(fragment)
            | Fault::StallAtNth(fragment, _)
            | Fault::AnswerAt(fragment, _)
            | Fault::EndlessAt(fragment)
            | Fault::HoldAt(fragment) => Some(fragment),
        }
    }
}

struct Shared {
    fault: Mutex<Fault>,
    /// Lines that matched the fault's fragment since it was set.
    matches: AtomicU64,
    /// How many times a fault was injected.
    hits: AtomicU64,
    /// How many connections were accepted.
    connections: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::None),
            matches: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let accepting = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                accepting.connections.fetch_add(1, Ordering::SeqCst);
                relay(client, server, Arc::clone(&accepting));
            }
        });
        FaultProxy { port, shared }
    }

    /// The fault for commands sent from now on (connections already open included).
    pub fn set(&self, fault: Fault) {
        let mut current = self.shared.fault.lock().unwrap();
        self.shared.matches.store(0, Ordering::SeqCst);
        *current = fault;
    }

    /// How many times a fault has been injected so far.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// Two threads per connection: server to client copied as is; client to server read line by
/// line so that a fault can fall on a command.
fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (mut client_read, mut client_write) = (client.try_clone().unwrap(), client);
    let mut client_inject = client_read.try_clone().unwrap();
    let (mut server_read, mut server_write) = (server.try_clone().unwrap(), server);
    // Both directions stop forwarding once a stall fell on this connection.
    let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let downstream_stalled = Arc::clone(&stalled);
    std::thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let read = match server_read.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if downstream_stalled.load(Ordering::SeqCst) {
                continue;
            }
            if client_write.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = client_write.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let mut pending: Vec<u8> = Vec::new();
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let read = match client_read.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            if stalled.load(Ordering::SeqCst) {
                continue;
            }
            pending.extend_from_slice(&buffer[..read]);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let fault = shared.fault.lock().unwrap().clone();
                let matched = fault.fragment().is_some_and(|fragment| {
                    String::from_utf8_lossy(&line)
                        .to_ascii_lowercase()
                        .contains(&fragment.to_ascii_lowercase())
                });
                let hit = matched && {
                    let nth = shared.matches.fetch_add(1, Ordering::SeqCst) + 1;
                    !matches!(fault, Fault::StallAtNth(_, n) if n != nth)
                };
                if hit {
                    shared.hits.fetch_add(1, Ordering::SeqCst);
                    match fault {
                        Fault::CutAt(_) => {
                            let _ = client_read.shutdown(Shutdown::Both);
                            let _ = server_write.shutdown(Shutdown::Both);
                            return;
                        }
                        // The proxy answers in the server's place; the rest goes on.
                        Fault::AnswerAt(_, bytes) => {
                            // `{tag}` stands for the command's tag.
                            let tag = line.split(|&b| b == b' ').next().unwrap_or_default();
                            let text = String::from_utf8_lossy(&bytes);
                            let answer = if text.contains("{tag}") {
                                text.replace("{tag}", &String::from_utf8_lossy(tag))
                                    .into_bytes()
                            } else {
                                bytes.clone()
                            };
                            let _ = client_inject.write_all(&answer);
                            continue;
                        }
                        Fault::HoldAt(_) => {
                            while matches!(*shared.fault.lock().unwrap(), Fault::HoldAt(_)) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            if server_write.write_all(&line).is_err() {
                                return;
                            }
                            continue;
                        }
                        Fault::EndlessAt(_) => {
                            stalled.store(true, Ordering::SeqCst);
                            let _ = client_inject.write_all(b"* OK ");
                            let chunk = [b'a'; 64 * 1024];
                            while client_inject.write_all(&chunk).is_ok() {}
                        }
                        _ => stalled.store(true, Ordering::SeqCst),
                    }
                    pending.clear();
                    break;
                }
                if server_write.write_all(&line).is_err() {
                    return;
                }
            }
        }
        // The client went away (a kill closes its sockets): close the server side too, after
        // a moment, so Dovecot sees an ordinary disconnect.
        std::thread::sleep(Duration::from_millis(10));
        let _ = server_write.shutdown(Shutdown::Both);
    });
}
