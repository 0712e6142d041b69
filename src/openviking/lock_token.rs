//! The content of a path-lock file (`.path.ovlock`, `.exact.ovlock.*`): the
//! token `owner_id:time_ns:K` that OpenViking 0.4.12 and later write, read
//! the way its 0.5.2 engine reads it (measured, case by case, on the engine).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a path-lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Zero bytes: OpenViking truncates before it writes, so a reader may
    /// catch a token being written (0.4.18 and later treat it as held).
    Empty,
    /// Begins with `OVE1`: an encrypted token of OpenViking 0.4.11 or
    /// older, which 0.4.12 and later delete when they meet it.
    Legacy,
    Lease(Lease),
    /// Anything else: OpenViking fails every operation it meets it in.
    Invalid(BadToken),
}

/// A lease, as its token records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Everything before the first `:`: a UUID per lease, not per process.
    /// Bytes that are not UTF-8 are U+FFFD, as the engine reads them.
    pub owner: String,
    /// The wall clock, in nanoseconds since the epoch, of the last write or
    /// refresh (not an expiry). The engine accepts any `u128`.
    pub time_ns: u128,
    /// `time_ns` as a time, when the system clock can represent it.
    pub refreshed_at: Option<SystemTime>,
    pub kind: LeaseKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseKind {
    /// `E`: a lock on one path.
    Exact,
    /// `T`: a lock on a directory and everything below it.
    Tree,
}

/// Why a token is invalid, in the engine's own categories, in the order it
/// checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadToken {
    /// No `:` at all (also a file of whitespace only).
    MissingColon,
    /// One `:`, as in `abc-123:1700`.
    MissingSecondColon,
    /// The time is not an unsigned decimal number (an optional `+` and
    /// ASCII digits) that fits 128 bits.
    InvalidTime,
    EmptyKind,
    /// More than one character after the second `:` (extra fields too).
    InvalidKind,
    /// One character other than `E` or `T`; `P` and `S` were the lock
    /// types of OpenViking before 0.4.12.
    UnknownKind(char),
}

impl std::fmt::Display for BadToken {
    /// The words of the engine's own error, so that a log line matches.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadToken::MissingColon => f.write_str("missing ':'"),
            BadToken::MissingSecondColon => f.write_str("missing second ':'"),
            BadToken::InvalidTime => f.write_str("invalid time_ns"),
            BadToken::EmptyKind => f.write_str("empty lock type"),
            BadToken::InvalidKind => f.write_str("invalid lock type"),
            BadToken::UnknownKind(c) => write!(f, "unknown lock type '{c}'"),
        }
    }
}

/// Decodes a whole path-lock file. The engine reads its bytes as UTF-8
/// with U+FFFD for what is not, trims Unicode whitespace from both ends,
/// then splits at the first two `:`; `OVE1` and emptiness are told from
/// the raw bytes, so ` OVE1` and whitespace alone are invalid tokens.
pub fn decode(content: &[u8]) -> Token {
    if content.is_empty() {
        return Token::Empty;
    }
    if content.starts_with(b"OVE1") {
        return Token::Legacy;
    }
    let text = String::from_utf8_lossy(content);
    match parse(text.trim()) {
        Ok(lease) => Token::Lease(lease),
        Err(bad) => Token::Invalid(bad),
    }
}

fn parse(text: &str) -> Result<Lease, BadToken> {
    let (owner, rest) = text.split_once(':').ok_or(BadToken::MissingColon)?;
    let (time, kind) = rest.split_once(':').ok_or(BadToken::MissingSecondColon)?;
    let time_ns = parse_time(time).ok_or(BadToken::InvalidTime)?;
    let mut chars = kind.chars();
    let kind = match (chars.next(), chars.next()) {
        (None, _) => return Err(BadToken::EmptyKind),
        (Some('E'), None) => LeaseKind::Exact,
        (Some('T'), None) => LeaseKind::Tree,
        (Some(other), None) => return Err(BadToken::UnknownKind(other)),
        (Some(_), Some(_)) => return Err(BadToken::InvalidKind),
    };
    Ok(Lease {
        owner: owner.to_string(),
        time_ns,
        refreshed_at: as_time(time_ns),
        kind,
    })
}

fn as_time(time_ns: u128) -> Option<SystemTime> {
    let nanos = u64::try_from(time_ns).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_nanos(nanos))
}

/// An unsigned decimal as Rust's `u128::from_str` takes it: an optional
/// `+`, then at least one ASCII digit, leading zeros allowed.
fn parse_time(text: &str) -> Option<u128> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() {
        return None;
    }
    digits.bytes().try_fold(0u128, |value, b| {
        let digit = b.is_ascii_digit().then(|| u128::from(b - b'0'))?;
        value.checked_mul(10)?.checked_add(digit)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lease(owner: &str, time_ns: u128, kind: LeaseKind) -> Token {
        Token::Lease(Lease {
            owner: owner.into(),
            time_ns,
            refreshed_at: as_time(time_ns),
            kind,
        })
    }

    #[test]
    fn reads_what_the_engine_reads() {
        use BadToken::*;
        use LeaseKind::*;
        let u128_max = u128::MAX.to_string();
        let too_big = format!("abc:{u128_max}0:T");
        let biggest = format!("abc:{u128_max}:T");
        // Each case was written into a `.path.ovlock` above a path the 0.5.2
        // engine then locked: a valid token let it through or blocked it, an
        // invalid one failed it with the words of the expected error.
        let cases: Vec<(&[u8], Token)> = vec![
            (
                b"dd0d5c0c-9d45-4ed7-a741-7a7d9e7dbf64:1796173763185979065:T",
                lease(
                    "dd0d5c0c-9d45-4ed7-a741-7a7d9e7dbf64",
                    1796173763185979065,
                    Tree,
                ),
            ),
            (b"abc:1700:E", lease("abc", 1700, Exact)),
            (b"abc:+1700:T", lease("abc", 1700, Tree)),
            (b"abc:01700:T", lease("abc", 1700, Tree)),
            (b"abc:0:T", lease("abc", 0, Tree)),
            (b"abc:1700:T\n", lease("abc", 1700, Tree)),
            (b"abc:1700:E\r\n\n", lease("abc", 1700, Exact)),
            (b" \tabc:1700:T \x0b\x0c", lease("abc", 1700, Tree)),
            ("abc:1700:T\u{3000}".as_bytes(), lease("abc", 1700, Tree)),
            (
                "\u{85}abc:1700:T\u{a0}".as_bytes(),
                lease("abc", 1700, Tree),
            ),
            (
                "\u{feff}abc:1700:T".as_bytes(),
                lease("\u{feff}abc", 1700, Tree),
            ),
            (b":1700:T", lease("", 1700, Tree)),
            (b"a b:1700:T", lease("a b", 1700, Tree)),
            (b"abc\n:1700:T", lease("abc\n", 1700, Tree)),
            (b"a\x1b[31m:1700:T", lease("a\x1b[31m", 1700, Tree)),
            (b"\xff\xfe:1700:T", lease("\u{fffd}\u{fffd}", 1700, Tree)),
            (biggest.as_bytes(), lease("abc", u128::MAX, Tree)),
            (b"", Token::Empty),
            (b"OVE1", Token::Legacy),
            (b"OVE1xxxx", Token::Legacy),
            (b" OVE1xx", Token::Invalid(MissingColon)),
            (b"\xffOVE1", Token::Invalid(MissingColon)),
            (b"OVE", Token::Invalid(MissingColon)),
            (b"   ", Token::Invalid(MissingColon)),
            (b"\n\n", Token::Invalid(MissingColon)),
            (b"abc", Token::Invalid(MissingColon)),
            (b"abc-123:1700", Token::Invalid(MissingSecondColon)),
            (b"abc::T", Token::Invalid(InvalidTime)),
            (b"abc:-1:T", Token::Invalid(InvalidTime)),
            (b"abc:+:T", Token::Invalid(InvalidTime)),
            (b"abc:0x10:T", Token::Invalid(InvalidTime)),
            (b"abc:1_700:T", Token::Invalid(InvalidTime)),
            (b"abc:1700.5:T", Token::Invalid(InvalidTime)),
            (b"abc: 1700:T", Token::Invalid(InvalidTime)),
            (b"abc:1700 :T", Token::Invalid(InvalidTime)),
            (b"abc:1700\n:T", Token::Invalid(InvalidTime)),
            ("abc:\u{661}:T".as_bytes(), Token::Invalid(InvalidTime)),
            ("abc:\u{ff11}:T".as_bytes(), Token::Invalid(InvalidTime)),
            (b"a:b:c:1700:T", Token::Invalid(InvalidTime)),
            (too_big.as_bytes(), Token::Invalid(InvalidTime)),
            (b"abc:1700:", Token::Invalid(EmptyKind)),
            (b"abc:1700:T:x", Token::Invalid(InvalidKind)),
            (b"abc:1700:TT", Token::Invalid(InvalidKind)),
            (b"abc:1700: T", Token::Invalid(InvalidKind)),
            (b"abc:1700:T\0", Token::Invalid(InvalidKind)),
            (b"abc:1700:T\x1c", Token::Invalid(InvalidKind)),
            (b"abc:1700:T\x1f", Token::Invalid(InvalidKind)),
            (b"abc:1700:T\xff", Token::Invalid(InvalidKind)),
            ("abc:1700:T\u{200b}".as_bytes(), Token::Invalid(InvalidKind)),
            (b"abc:1700:t", Token::Invalid(UnknownKind('t'))),
            (b"abc:1700:P", Token::Invalid(UnknownKind('P'))),
            (b"abc:1700:S", Token::Invalid(UnknownKind('S'))),
            (
                "abc:1700:\u{e9}".as_bytes(),
                Token::Invalid(UnknownKind('\u{e9}')),
            ),
        ];
        for (content, want) in cases {
            assert_eq!(
                decode(content),
                want,
                "content {:?}",
                String::from_utf8_lossy(content)
            );
        }
    }

    #[test]
    fn says_why_in_the_engines_words() {
        assert_eq!(
            BadToken::MissingSecondColon.to_string(),
            "missing second ':'"
        );
        assert_eq!(
            BadToken::UnknownKind('P').to_string(),
            "unknown lock type 'P'"
        );
    }

    #[test]
    fn a_time_beyond_the_clock_is_no_time() {
        let at = |token: &str| match decode(token.as_bytes()) {
            Token::Lease(lease) => lease.refreshed_at,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            at("x:1700000000123456789:T"),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789))
        );
        assert_eq!(at(&format!("x:{}:T", u128::from(u64::MAX) + 1)), None);
    }

    proptest! {
        #[test]
        fn never_panics(content in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = decode(&content);
        }

        #[test]
        fn round_trips_what_openviking_writes(
            owner in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            time_ns in any::<u64>(),
            tree in any::<bool>(),
        ) {
            let (k, kind) = if tree { ('T', LeaseKind::Tree) } else { ('E', LeaseKind::Exact) };
            let token = format!("{owner}:{time_ns}:{k}");
            prop_assert_eq!(
                decode(token.as_bytes()),
                Token::Lease(Lease {
                    owner,
                    time_ns: u128::from(time_ns),
                    refreshed_at: Some(UNIX_EPOCH + Duration::from_nanos(time_ns)),
                    kind,
                })
            );
        }

        #[test]
        fn an_owner_is_anything_before_the_first_colon(
            owner in "[^:]{0,20}",
            time_ns in any::<u64>(),
        ) {
            let token = format!("{owner}:{time_ns}:E");
            let decoded = decode(token.as_bytes());
            match decoded {
                Token::Lease(lease) => {
                    prop_assert_eq!(lease.owner, owner.trim_start());
                    prop_assert_eq!(lease.time_ns, u128::from(time_ns));
                }
                // Only an owner that begins like a legacy token is not one.
                other => prop_assert!(
                    token.starts_with("OVE1") || token.is_empty(),
                    "{:?} gave {:?}", token, other
                ),
            }
        }
    }
}
