//! Commands a reader can paste: POSIX shell quoting for the arguments,
//! paths and unit names in suggested fixes and shown command lines.

use std::path::Path;

/// Quotes a string for a POSIX shell when it needs quoting, so that a
/// suggested command can be pasted as it is shown.
pub fn quote(s: &str) -> String {
    quote_bytes(s.as_bytes())
}

/// Quotes bytes for a shell: bare when safe, in single quotes when printable,
/// else as `$'...'` with escapes, so the result holds no control character
/// and names exactly these bytes (bash, zsh, ksh and busybox sh read `$'...'`).
pub fn quote_bytes(bytes: &[u8]) -> String {
    let plain = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(b));
    if plain {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(crate::render::terminal_chars::is_unsafe) => {
            format!("'{}'", text.replace('\'', r"'\''"))
        }
        _ => {
            let mut out = String::from("$'");
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        c if crate::render::terminal_chars::is_unsafe(c) => {
                            let mut buf = [0; 4];
                            for b in c.encode_utf8(&mut buf).bytes() {
                                out.push_str(&format!("\\x{b:02x}"));
                            }
                        }
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out.push('\'');
            out
        }
    }
}

/// A path, quoted for a shell.
pub fn quote_path(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        quote_bytes(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        quote(&path.to_string_lossy())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting() {
        assert_eq!(quote("/srv/ov/data"), "/srv/ov/data");
        assert_eq!(quote("/srv/it's here"), r"'/srv/it'\''s here'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("back\\slash"), "'back\\slash'");
        assert_eq!(quote("new\nline"), "$'new\\nline'");
        assert_eq!(quote("it's\x1b[0m"), "$'it\\'s\\x1b[0m'");
        assert_eq!(quote_bytes(b"/srv/\xff"), "$'/srv/\\xff'");
        assert_eq!(quote("/srv/x\u{202e}y"), "$'/srv/x\\xe2\\x80\\xaey'");
    }
}
