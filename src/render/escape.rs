//! Making untrusted text safe for a terminal: file contents, process names,
//! command lines and paths may carry control characters and escape sequences.

use std::fmt::Write;
use std::path::Path;

/// Text with every control character shown as an escape (`\n`, `\x1b`,
/// `\u{9b}`), so nothing reaches the terminal raw, and every backslash
/// doubled, so that a name holding `a\nb` does not look like one holding a
/// newline.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else {
            push_char(&mut out, c);
        }
    }
    out
}

/// A command to paste into a shell, built with shell quoting (whose `$'...'`
/// escapes hold no control characters): controls are escaped as in [`text`],
/// but backslashes stay, or the pasted command would name other bytes.
pub fn command(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        push_char(&mut out, c);
    }
    out
}

/// Bytes as text: UTF-8 where valid, `\xNN` where not, controls escaped.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(&text(chunk.valid()));
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// A path as text, with the same escaping; non-UTF-8 bytes show as `\xNN`.
pub fn path(p: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        bytes(p.as_os_str().as_bytes())
    }
    // A Windows name cannot hold a backslash: each one is a separator, and
    // is shown as it is, the names between them escaped.
    #[cfg(windows)]
    {
        let lossy = p.to_string_lossy();
        lossy.split('\\').map(text).collect::<Vec<_>>().join("\\")
    }
    #[cfg(not(any(unix, windows)))]
    {
        text(&p.to_string_lossy())
    }
}

fn push_char(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\t' => out.push_str("\\t"),
        '\r' => out.push_str("\\r"),
        c if (c as u32) < 0x80 && c.is_control() => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        // C1 controls, bidirectional overrides and other invisible format characters.
        c if crate::render::terminal_chars::is_unsafe(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_controls_and_invalid_bytes() {
        assert_eq!(text("plain /path ü"), "plain /path ü");
        assert_eq!(text("a\nb\tc\r"), "a\\nb\\tc\\r");
        assert_eq!(text("\x1b[31mred\x1b[0m"), "\\x1b[31mred\\x1b[0m");
        assert_eq!(text("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(text("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(text("back\\slash"), "back\\\\slash");
        assert_ne!(text("a\\nb"), text("a\nb"));
        assert_eq!(command("$'a\\x1b'"), "$'a\\x1b'");
        assert_eq!(command("x\x1by"), "x\\x1by");
        assert_eq!(bytes(b"\xff1\x00"), "\\xff1\\x00");
        assert_eq!(bytes(b"\x7f"), "\\x7f");
    }

    proptest! {
        #[test]
        fn output_has_no_control_characters(input in proptest::collection::vec(any::<u8>(), 0..128)) {
            let out = bytes(&input);
            prop_assert!(!out.chars().any(char::is_control), "{out:?}");
        }
    }
}
