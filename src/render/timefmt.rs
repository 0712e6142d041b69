//! Times and durations as people and JSON read them.

use std::time::{Duration, SystemTime};

/// RFC 3339 in UTC, to the second: `2026-11-26T23:24:57Z`; None for a time
/// RFC 3339 cannot write (before 1970 here, or after the year 9999), which a
/// file's modification time can be.
pub fn rfc3339(time: SystemTime) -> Option<String> {
    const YEAR_10000: Duration = Duration::from_secs(253_402_300_800);
    let since_epoch = time.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    (since_epoch < YEAR_10000).then(|| humantime::format_rfc3339_seconds(time).to_string())
}

/// A duration in its two largest units: `3d 4h`, `2h 5m`, `42s`.
pub fn short(duration: Duration) -> String {
    let secs = duration.as_secs();
    if secs == 0 && duration.subsec_millis() > 0 {
        return format!("{}ms", duration.subsec_millis());
    }
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let first = UNITS
        .iter()
        .position(|&(size, _)| secs >= size)
        .unwrap_or(UNITS.len() - 1);
    let (size, unit) = UNITS[first];
    let mut out = format!("{}{unit}", secs / size);
    if let Some(&(next, next_unit)) = UNITS.get(first + 1) {
        let value = secs % size / next;
        if value > 0 {
            out.push_str(&format!(" {value}{next_unit}"));
        }
    }
    out
}

/// How long before `now` a moment was; a moment in the future says so.
pub fn ago(time: SystemTime, now: SystemTime) -> String {
    match now.duration_since(time) {
        Ok(age) => format!("{} ago", short(age)),
        Err(ahead) => format!("{} in the future", short(ahead.duration())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_the_two_largest_units() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (61, "1m 1s"),
            (3_600, "1h"),
            (3_661, "1h 1m"),
            (90_000, "1d 1h"),
            (86_400 * 3 + 59, "3d"),
        ];
        for (secs, want) in cases {
            assert_eq!(short(Duration::from_secs(secs)), want, "{secs}");
        }
        assert_eq!(short(Duration::from_millis(250)), "250ms");
    }

    #[test]
    fn formats_utc_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t).as_deref(), Some("2026-11-18T11:06:40Z"));
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH - Duration::from_secs(1)),
            None
        );
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800)),
            None
        );
        assert_eq!(ago(t, t + Duration::from_secs(5)), "5s ago");
        assert_eq!(ago(t + Duration::from_secs(5), t), "5s in the future");
    }
}
