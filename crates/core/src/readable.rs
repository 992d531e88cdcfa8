//! Messages for administrators: whatever a server, a file or a library put into an error,
//! what reaches the log, the status file and the CLI is one line of readable text of bounded
//! length.

/// The longest message an administrator is shown, in characters.
pub const MAX_MESSAGE: usize = 400;

/// `text` as one line: control characters (line breaks among them) become spaces, runs of
/// spaces one, and a text longer than `max` characters is cut with `…` at a character
/// boundary.
pub fn one_line(text: &str, max: usize) -> String {
    let mut line = String::with_capacity(text.len().min(max + 4));
    let mut count = 0;
    let mut space = false;
    for c in text.trim().chars() {
        let c = if c.is_control() || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == max {
            let kept = line.trim_end().len();
            line.truncate(kept);
            line.push('…');
            return line;
        }
        line.push(c);
        count += 1;
    }
    line
}

/// A short quotation of bytes a program sent, for an error message: lossy UTF-8, one line, at
/// most `max` characters, in quotation marks.
pub fn quote(bytes: &[u8], max: usize) -> String {
    format!("“{}”", one_line(&String::from_utf8_lossy(bytes), max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_bounded_length() {
        assert_eq!(one_line("  a\r\n\tb  c \u{7}d ", 100), "a b c d");
        assert_eq!(one_line("abcdef", 3), "abc…");
        assert_eq!(one_line("ab   cdef", 3), "ab…");
        assert_eq!(one_line("ééééé", 2), "éé…");
        assert_eq!(one_line("", 3), "");
        assert_eq!(quote(b"\xffOK\r\n", 10), "“\u{fffd}OK”");
    }
}
