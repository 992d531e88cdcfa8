//! One stream type for plain and TLS connections, so a session's type does not depend on the
//! mailbox's `security`; and a guard on what the server sends.
//!
//! The guard frames the server's bytes into lines and literals (RFC 3501 section 4.3) before
//! the IMAP library sees them, and hands the library only whole responses, except that a
//! large literal (a message body, [`STREAMED_LITERAL`] bytes or more) is handed on as it
//! comes, after the part of its response before it. The library parses what it has again
//! from its start after every read, so a response that never ends (a line without end, or an
//! endless run of small literals) would cost it a full core until the operation timeout: the
//! guard holds such a response back, which costs a linear scan, and ends the connection with a
//! clear error once more than [`Limits::line`] bytes of it (outside large literals) are held.
//! A literal larger than [`Limits::literal`] is refused when it is announced, before it is
//! read. (A long response that does end, such as a `UID SEARCH` answer for a large folder, is
//! still parsed by the library once per read of it.)

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The longest response taken from a server, outside its large literals: a `UID SEARCH`
/// answer for about a million messages.
pub const MAX_LINE: usize = 8 << 20;

/// A literal of this size or more is handed to the library as it comes (the library reads a
/// literal it knows the size of without parsing it again); smaller ones wait for the end of
/// their response.
pub const STREAMED_LITERAL: u64 = 64 * 1024;

/// What the guard lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest line, in bytes, CRLF included.
    pub line: usize,
    /// The largest literal, in bytes.
    pub literal: u64,
}

#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

#[derive(Debug)]
pub struct MailStream {
    io: Io,
    frame: Framing,
}

impl MailStream {
    pub fn plain(tcp: TcpStream, limits: Limits) -> MailStream {
        MailStream {
            io: Io::Plain(tcp),
            frame: Framing::new(limits),
        }
    }

    pub fn tls(stream: TlsStream<TcpStream>, limits: Limits) -> MailStream {
        MailStream {
            io: Io::Tls(Box::new(stream)),
            frame: Framing::new(limits),
        }
    }

    /// The TCP connection under a plain stream, for STARTTLS. Bytes that came after the answer
    /// to STARTTLS must never be taken as if they had come over TLS (the command injection of
    /// CVE-2011-0411): those the library read with the answer are dropped with its buffer, and
    /// any the guard still holds make this refuse.
    pub fn into_plain(self) -> Result<TcpStream, String> {
        match self.io {
            Io::Plain(tcp) if self.frame.is_empty() => Ok(tcp),
            Io::Plain(_) => Err("the server sent data after its answer to STARTTLS".into()),
            Io::Tls(_) => Err("the connection is TLS already".into()),
        }
    }
}

/// The framing of the server's bytes: `pending[start..ready]` may be handed out,
/// `pending[ready..scanned]` is the unfinished response examined so far, and its text since the
/// last literal starts at `text`.
#[derive(Debug)]
struct Framing {
    limits: Limits,
    pending: Vec<u8>,
    start: usize,
    ready: usize,
    scanned: usize,
    text: usize,
    /// Bytes of the literal being read that have not arrived yet.
    literal_left: u64,
    /// Whether the literal being read is handed on as it comes.
    streaming: bool,
    /// Set once a limit was passed: the connection is of no further use.
    failed: Option<String>,
}

impl Framing {
    fn new(limits: Limits) -> Framing {
        Framing {
            limits,
            pending: Vec::new(),
            start: 0,
            ready: 0,
            scanned: 0,
            text: 0,
            literal_left: 0,
            streaming: false,
            failed: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.start == self.pending.len()
    }

    fn take(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.scan();
    }

    /// Moves `ready` over every whole response and every byte of a streamed literal that
    /// arrived.
    fn scan(&mut self) {
        while self.failed.is_none() && self.scanned < self.pending.len() {
            if self.literal_left > 0 {
                let available = (self.pending.len() - self.scanned) as u64;
                let taken = available.min(self.literal_left);
                self.literal_left -= taken;
                self.scanned += taken as usize;
                self.text = self.scanned;
                if self.streaming {
                    self.ready = self.scanned;
                }
                continue;
            }
            let Some(newline) = self.pending[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
            else {
                self.scanned = self.pending.len();
                if self.scanned - self.ready > self.limits.line {
                    self.fail_line();
                }
                return;
            };
            let end = self.scanned + newline + 1;
            if end - self.ready > self.limits.line {
                self.fail_line();
                return;
            }
            self.scanned = end;
            match announced_literal(&self.pending[self.text..end]) {
                Some(size) if size > self.limits.literal => {
                    self.failed = Some(format!(
                        "the server announced {} of data in one piece, more than the limit of {} (max_message_size)",
                        crmsync_config::size_words(size),
                        crmsync_config::size_words(self.limits.literal)
                    ));
                    return;
                }
                Some(size) => {
                    self.literal_left = size;
                    self.streaming = size >= STREAMED_LITERAL;
                    if self.streaming {
                        self.ready = end;
                    }
                }
                // The response is whole.
                None => {
                    self.ready = end;
                    self.streaming = false;
                }
            }
            self.text = end;
        }
    }

    fn fail_line(&mut self) {
        self.failed = Some(format!(
            "the server sent a response longer than {} without its end",
            crmsync_config::size_words(self.limits.line as u64)
        ));
    }

    /// Hands out what is ready; `false` when nothing is.
    fn hand_out(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let available = self.ready - self.start;
        if available == 0 {
            return false;
        }
        let n = available.min(buf.remaining());
        buf.put_slice(&self.pending[self.start..self.start + n]);
        self.start += n;
        if self.start == self.pending.len() {
            self.pending.clear();
            (self.start, self.ready, self.scanned, self.text) = (0, 0, 0, 0);
        } else if self.start > 64 * 1024 && self.start * 2 > self.pending.len() {
            self.pending.drain(..self.start);
            self.ready -= self.start;
            self.scanned -= self.start;
            self.text -= self.start;
            self.start = 0;
        }
        true
    }

    /// At the end of the stream everything left goes to the library, which reports the cut.
    fn release_all(&mut self) {
        self.ready = self.pending.len();
        self.scanned = self.ready;
        self.text = self.ready;
        self.literal_left = 0;
    }
}

/// The size of the literal a line announces at its end (`{123}` before CRLF, also `~{123}`
/// and `{123+}`).
fn announced_literal(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    let digits = &line[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // More digits than a u64 holds is more than any limit.
    Some(
        std::str::from_utf8(digits)
            .ok()?
            .parse()
            .unwrap_or(u64::MAX),
    )
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if let Some(error) = &this.frame.failed {
                return Poll::Ready(Err(io::Error::other(error.clone())));
            }
            if this.frame.hand_out(buf) {
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut read = ReadBuf::new(&mut chunk);
            match &mut this.io {
                Io::Plain(stream) => ready!(Pin::new(stream).poll_read(cx, &mut read))?,
                Io::Tls(stream) => ready!(Pin::new(stream.as_mut()).poll_read(cx, &mut read))?,
            }
            if read.filled().is_empty() {
                if this.frame.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                this.frame.release_all();
                continue;
            }
            this.frame.take(read.filled());
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Io::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(line: usize, literal: u64) -> Framing {
        Framing::new(Limits { line, literal })
    }

    fn ready(frame: &Framing) -> &[u8] {
        &frame.pending[frame.start..frame.ready]
    }

    #[test]
    fn small_literals_wait_for_their_response_and_large_ones_stream() {
        let mut frame = framing(1000, 1 << 20);
        // A small literal (a header) waits for the end of its response; a CRLF inside it ends
        // nothing.
        frame.take(b"* 1 FETCH (UID 5 BODY[HEADER] {10}\r\n0123");
        assert_eq!(ready(&frame), b"");
        frame.take(b"4\r\n789)");
        assert_eq!(ready(&frame), b"");
        frame.take(b"\r\na1 OK");
        assert_eq!(
            ready(&frame),
            b"* 1 FETCH (UID 5 BODY[HEADER] {10}\r\n01234\r\n789)\r\n"
        );
        frame.hand_out(&mut ReadBuf::new(&mut [0u8; 4096]));
        // A large literal (a body) is handed on as it comes, after what came before it.
        frame.take(b" done\r\n* 2 FETCH (UID 6 BODY[] {70000}\r\n");
        assert_eq!(
            ready(&frame),
            b"a1 OK done\r\n* 2 FETCH (UID 6 BODY[] {70000}\r\n"
        );
        frame.take(&[b'x'; 1000]);
        assert_eq!(ready(&frame).len(), 45 + 1000);
        frame.take(&[b'x'; 69_000]);
        frame.take(b")");
        assert_eq!(ready(&frame).len(), 45 + 70_000, "the line after it waits");
        frame.take(b"\r\n");
        assert_eq!(ready(&frame).len(), 45 + 70_003);
        assert!(frame.failed.is_none());
    }

    #[test]
    fn a_response_without_end_and_an_oversized_literal_are_refused() {
        let mut frame = framing(64, 1000);
        for _ in 0..10 {
            frame.take(b"* OK aaaaaaaaaaaa");
        }
        assert!(frame.failed.as_deref().unwrap().contains("longer than"));
        assert_eq!(ready(&frame), b"");

        // An endless run of small literals is one response without end too.
        let mut frame = framing(64, 1000);
        frame.take(b"* 1 FETCH (");
        for _ in 0..10 {
            frame.take(b"BODY[] {1}\r\nx ");
        }
        assert!(frame.failed.as_deref().unwrap().contains("longer than"));
        assert_eq!(ready(&frame), b"");

        let mut frame = framing(64, 1000);
        frame.take(b"* 1 FETCH (BODY[] {1001}\r\n");
        assert!(
            frame
                .failed
                .as_deref()
                .unwrap()
                .contains("max_message_size")
        );
        let mut frame = framing(64, 1000);
        frame.take(b"* 1 FETCH (BODY[] {99999999999999999999999999}\r\n");
        assert!(frame.failed.is_some());
    }

    #[test]
    fn a_literal_announcement_is_read_from_the_text_after_the_last_literal() {
        // A body that ends in "{" followed by the server's "12}" is no announcement.
        let mut frame = framing(1000, 1000);
        frame.take(b"* 1 FETCH (BODY[] {2}\r\nx{12}\r\n");
        assert_eq!(ready(&frame), b"* 1 FETCH (BODY[] {2}\r\nx{12}\r\n");
    }

    #[test]
    fn literal_announcements_are_read_only_at_a_line_end() {
        assert_eq!(announced_literal(b"* 1 FETCH (BODY[] {12}\r\n"), Some(12));
        assert_eq!(announced_literal(b"+ {3+}\r\n"), Some(3));
        assert_eq!(announced_literal(b"~{7}\n"), Some(7));
        assert_eq!(announced_literal(b"* OK {12} is text\r\n"), None);
        assert_eq!(announced_literal(b"* OK {}\r\n"), None);
        assert_eq!(announced_literal(b"* OK {1a}\r\n"), None);
    }
}
