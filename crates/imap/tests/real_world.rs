//! Messages as real clients write them (issue 12), read by the message layer.

use crmsync_imap::message;

fn crlf(text: &str) -> Vec<u8> {
    text.replace("\r\n", "\n")
        .replace('\n', "\r\n")
        .into_bytes()
}

/// A forwarded message whose inner multipart is never closed: the attachments after it
/// (in the outer message) are still attachments, as Dovecot and Python see them.
#[test]
fn attachments_after_an_unclosed_inner_multipart_are_kept() {
    let raw = crlf(include_str!("data/unclosed_inner_multipart.eml"));
    let parsed = message::parse(&raw).unwrap();
    let names: Vec<&str> = parsed.attachments.iter().map(|a| a.name.as_str()).collect();
    assert!(
        names.contains(&"two.pdf") && names.contains(&"three.pdf"),
        "{names:?}"
    );
    assert_eq!(parsed.attachments.len(), 3, "{names:?}");
}
