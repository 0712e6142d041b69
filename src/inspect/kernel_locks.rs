//! The kernel lock table: parsing the lines of /proc/locks (and the `lock:`
//! lines of /proc/PID/fdinfo/FD, which share the format).
// Off Linux there is no lock table to read; the types stay so that facts have
// one shape everywhere.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

/// Which locking call made the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LockClass {
    /// `flock(2)`.
    Flock,
    /// `fcntl(F_SETLK)` and `lockf`, owned by a process.
    Posix,
    /// `fcntl(F_OFD_SETLK)`, owned by an open file description.
    Ofd,
    /// Leases, delegations and anything newer.
    Other,
}

impl KernelLock {
    /// The device of the locked file: (major, minor).
    pub fn device(&self) -> (u32, u32) {
        (self.dev_major, self.dev_minor)
    }
}

/// One held (or, with `waiting`, requested) lock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KernelLock {
    pub class: LockClass,
    /// WRITE (exclusive) rather than READ (shared).
    pub exclusive: bool,
    /// The PID the kernel recorded: the process that took the lock. None for
    /// OFD locks, which the kernel reports as -1 when no process is recorded.
    pub pid: Option<u32>,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub ino: u64,
    /// A blocked request (shown with `->`), not a held lock.
    pub waiting: bool,
}

/// Parses one line of /proc/locks, e.g.
/// `1: FLOCK  ADVISORY  WRITE 2389 fe:00:10010770 0 EOF` or
/// `1: -> POSIX  ADVISORY  WRITE 77 08:01:1234 0 EOF`.
pub fn parse_line(line: &str) -> Option<KernelLock> {
    let mut fields = line.split_ascii_whitespace();
    fields.next()?.strip_suffix(':')?;
    let mut class = fields.next()?;
    let waiting = class == "->";
    if waiting {
        class = fields.next()?;
    }
    let class = match class {
        "FLOCK" => LockClass::Flock,
        "POSIX" => LockClass::Posix,
        "OFDLCK" => LockClass::Ofd,
        _ => LockClass::Other,
    };
    let _mode = fields.next()?;
    let exclusive = match fields.next()? {
        "WRITE" => true,
        "READ" | "UNLCK" => false,
        // Leases say BREAKING/BREAKER/ACTIVE and the like; they are not ownership.
        _ => return None,
    };
    let pid: i64 = fields.next()?.parse().ok()?;
    let pid = u32::try_from(pid).ok().filter(|&p| p > 0);
    let mut id = fields.next()?.split(':');
    let dev_major = u32::from_str_radix(id.next()?, 16).ok()?;
    let dev_minor = u32::from_str_radix(id.next()?, 16).ok()?;
    let ino = id.next()?.parse().ok()?;
    if id.next().is_some() {
        return None;
    }
    Some(KernelLock {
        class,
        exclusive,
        pid,
        dev_major,
        dev_minor,
        ino,
        waiting,
    })
}

/// Every parsable line of a lock table; lines of unknown shape are skipped.
#[cfg(test)]
pub fn parse_table(text: &str) -> Vec<KernelLock> {
    text.lines().filter_map(parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_lines_a_real_server_makes() {
        let table = "\
1: FLOCK  ADVISORY  WRITE 2389 fe:00:10010770 0 EOF
2: POSIX  ADVISORY  READ 2390 fe:00:10010800 128 128
3: OFDLCK ADVISORY  WRITE -1 08:11:42 0 EOF
3: -> FLOCK  ADVISORY  WRITE 2401 fe:00:10010770 0 EOF
4: LEASE  ACTIVE    READ 9 fe:00:7 0 EOF
garbage
";
        let locks = parse_table(table);
        assert_eq!(locks.len(), 5);
        assert_eq!(
            locks[0],
            KernelLock {
                class: LockClass::Flock,
                exclusive: true,
                pid: Some(2389),
                dev_major: 0xfe,
                dev_minor: 0,
                ino: 10010770,
                waiting: false,
            }
        );
        assert_eq!(
            (locks[1].class, locks[1].exclusive),
            (LockClass::Posix, false)
        );
        assert_eq!(
            (locks[2].class, locks[2].pid, locks[2].dev_minor),
            (LockClass::Ofd, None, 0x11)
        );
        assert!(locks[3].waiting);
        assert_eq!(locks[4].class, LockClass::Other);
    }

    #[test]
    fn rejects_malformed_lines() {
        for line in [
            "",
            "1: FLOCK ADVISORY WRITE x fe:00:1 0 EOF",
            "1: FLOCK ADVISORY WRITE 5 fe:00 0 EOF",
            "1: FLOCK ADVISORY WRITE 5 zz:00:1 0 EOF",
            "1: FLOCK ADVISORY WRITE 5 fe:00:1:2 0 EOF",
            "1 FLOCK ADVISORY WRITE 5 fe:00:1 0 EOF",
            "1: FLOCK ADVISORY WRITE 99999999999 fe:00:1 0 EOF",
        ] {
            assert_eq!(parse_line(line).and_then(|l| l.pid), None, "{line:?}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(line in "\\PC{0,80}") {
            let _ = parse_line(&line);
        }

        #[test]
        fn round_trips_well_formed_lines(pid in 1u32..=4_194_304, major in 0u32..4096, minor in 0u32..1_048_576, ino: u64) {
            let line = format!("7: FLOCK  ADVISORY  WRITE {pid} {major:02x}:{minor:02x}:{ino} 0 EOF");
            let lock = parse_line(&line).unwrap();
            prop_assert_eq!((lock.pid, lock.dev_major, lock.dev_minor, lock.ino), (Some(pid), major, minor, ino));
        }
    }
}
