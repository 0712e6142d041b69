//! What the judge makes of one path-lock file: its state, why, and whether
//! its lease looks stuck. The rules are in `judge::path_locks`.

use std::time::{Duration, SystemTime};

use super::path_locks::Context;
use crate::fsread::FileKind;
use crate::inspect::path_locks::PathLockFile;
use crate::lock_token::BadToken;

/// Whether the directory has a live owner to refresh its leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresher {
    /// A live process owns the directory.
    Live,
    /// Nothing owns it: no token can be refreshed.
    Nobody,
    /// Who owns it could not be decided.
    Unknown,
}

/// What one path-lock file means now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathLockState {
    Held,
    Stale,
    Unknown,
}

/// Why a path lock is in its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathLockReason {
    /// A lease, and nothing owns the directory to refresh it.
    LeftBehind,
    /// A lease refreshed this long ago (or dated ahead), within
    /// `lock_expire_secs`, on a network filesystem with no owner on this
    /// host: a server on another host may hold it.
    MaybeElsewhere {
        age: Duration,
    },
    /// Refreshed this long ago, within `lock_expire_secs`.
    Refreshed {
        age: Duration,
    },
    /// Not refreshed for this long, more than `lock_expire_secs`: OpenViking
    /// itself treats it as free.
    Expired {
        age: Duration,
        expire: Duration,
    },
    /// Dated this far ahead of the clock, which OpenViking holds until
    /// `until`, its date plus `lock_expire_secs` (None: beyond any date the
    /// clock can hold). On a network filesystem (`remote`) another host's
    /// clock may be ahead, so it cannot be called stale.
    Ahead {
        ahead: Duration,
        until: Option<SystemTime>,
        remote: bool,
    },
    /// Refreshed within `lock_expire_secs`, but whether anything owns the
    /// directory could not be decided.
    OwnerUndecided {
        age: Duration,
    },
    /// Not a token OpenViking reads (None: longer than any token): every
    /// write below it fails. `young`: written under 2 s ago, maybe by a
    /// writer not yet done.
    Invalid {
        why: Option<BadToken>,
        young: bool,
    },
    /// Zero bytes: OpenViking truncates before it writes, so it may be
    /// written right now; stale once older than `lock_expire_secs`.
    Empty {
        age: Option<Duration>,
    },
    /// An encrypted token of OpenViking 0.4.11 or older, which 0.4.12 and
    /// later delete when they meet it.
    Legacy,
    /// Its modification time could not be read.
    NoTime,
    NotRegular(FileKind),
    Unreadable(String),
    /// `lock_expire_secs` has a value OpenViking refuses, so a lease's age
    /// cannot be weighed.
    NoExpiry,
}

/// One path-lock file, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JudgedPathLock {
    pub file: PathLockFile,
    pub state: PathLockState,
    pub reason: PathLockReason,
    /// A held lease older than `STUCK_AFTER`: how old, by its birth time.
    pub stuck_for: Option<Duration>,
    /// What it was judged by, so that clear-stale can judge it again.
    pub context: Context,
}
