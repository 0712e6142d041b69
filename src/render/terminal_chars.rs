//! Which characters a terminal would hide or act on: the controls (C0, DEL,
//! C1), and the invisible and bidirectional formatting characters, which
//! make shown text differ from the bytes a paste would give. Written once
//! for the escaping of text and JSON and for shell quoting.

/// Whether `c` must never reach a terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_invisible_formatting_are_unsafe() {
        for c in [
            '\0', '\n', '\x1b', '\x7f', '\u{9b}', '\u{200b}', '\u{202e}', '\u{2066}',
        ] {
            assert!(is_unsafe(c), "{c:?}");
        }
        for c in ['a', ' ', '/', '\\', 'ü', '€', '\u{2070}'] {
            assert!(!is_unsafe(c), "{c:?}");
        }
    }
}
