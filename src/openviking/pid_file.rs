//! The content of `.openviking.pid`: what OpenViking up to 0.4.20 writes and
//! how it reads it back (`int(text.strip())`).

/// Why the content names no process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPid {
    Empty,
    NotUtf8,
    NotANumber,
    /// Zero or negative: OpenViking treats these as "no owner".
    NotPositive,
    /// Larger than any PID a kernel hands out.
    TooLarge,
}

impl std::fmt::Display for BadPid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadPid::Empty => "it is empty",
            BadPid::NotUtf8 => "it is not text",
            BadPid::NotANumber => "it is not a number",
            BadPid::NotPositive => "it is not a positive number",
            BadPid::TooLarge => "the number is too large to be a PID",
        })
    }
}

/// The largest PID Linux can hand out (PID_MAX_LIMIT); other systems stay below it.
pub const PID_MAX_LIMIT: u64 = 4_194_304;

/// Parses the PID the way Python's `int(text.strip())` does for ASCII
/// input: surrounding whitespace, an optional sign, and digits that may be
/// grouped with single underscores.
pub fn parse(content: &[u8]) -> Result<u32, BadPid> {
    let text = std::str::from_utf8(content).map_err(|_| BadPid::NotUtf8)?;
    // Python's str.strip() also strips these separators, which ASCII whitespace does not cover.
    let text = text.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c));
    if text.is_empty() {
        return Err(BadPid::Empty);
    }
    let (negative, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(BadPid::NotANumber);
    }
    let digits = digits.trim_start_matches(['0', '_']);
    if negative || digits.is_empty() {
        return Err(BadPid::NotPositive);
    }
    let mut value: u64 = 0;
    for b in digits.bytes().filter(u8::is_ascii_digit) {
        value = value * 10 + u64::from(b - b'0');
        if value > PID_MAX_LIMIT {
            return Err(BadPid::TooLarge);
        }
    }
    Ok(value as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_what_openviking_reads() {
        let cases: &[(&[u8], Result<u32, BadPid>)] = &[
            (b"1234", Ok(1234)),
            (b" 1234\n", Ok(1234)),
            (b"\t+42 \r\n", Ok(42)),
            (b"1_000", Ok(1000)),
            (b"007", Ok(7)),
            (b"", Err(BadPid::Empty)),
            (b" \n\t", Err(BadPid::Empty)),
            (b"0", Err(BadPid::NotPositive)),
            (b"-5", Err(BadPid::NotPositive)),
            (b"-0", Err(BadPid::NotPositive)),
            (b"12 34", Err(BadPid::NotANumber)),
            (b"1__0", Err(BadPid::NotANumber)),
            (b"_10", Err(BadPid::NotANumber)),
            (b"10_", Err(BadPid::NotANumber)),
            (b"+", Err(BadPid::NotANumber)),
            (b"0x10", Err(BadPid::NotANumber)),
            (b"12\x1b[31m", Err(BadPid::NotANumber)),
            (b"\xff\xfe", Err(BadPid::NotUtf8)),
            (b"4194304", Ok(4_194_304)),
            (b"4194305", Err(BadPid::TooLarge)),
            (b"99999999999999999999999999", Err(BadPid::TooLarge)),
        ];
        for (content, want) in cases {
            assert_eq!(
                &parse(content),
                want,
                "content {:?}",
                String::from_utf8_lossy(content)
            );
        }
    }

    proptest! {
        #[test]
        fn never_panics(content in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse(&content);
        }

        #[test]
        fn round_trips_any_pid(pid in 1u32..=4_194_304, pad in "[ \t\n]{0,3}") {
            prop_assert_eq!(parse(format!("{pad}{pid}{pad}").as_bytes()), Ok(pid));
        }
    }
}
