//! What the judge makes of one path-lock file: its state, why, and whether
//! its lease looks stuck. The rules are in `judge::path_locks`.

use std::time::{Duration, SystemTime};

use crate::inspect::fsread::FileKind;
use crate::inspect::path_locks::{LockFileRead, PathLockFile};
use crate::openviking::lock_token::{BadToken, Lease, Token};

/// What a judgement of path locks needs besides the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub refresher: Refresher,
    /// `lock_expire_secs`, or None when the config sets a value OpenViking refuses.
    pub expire: Option<Duration>,
    /// Whether `expire` is the server's own: an ov.conf that describes
    /// this workspace was read. Otherwise it is OpenViking's default, and
    /// the server may have set a longer one.
    pub expire_known: bool,
    pub now: SystemTime,
    /// The directory is on a network or FUSE filesystem.
    pub remote: bool,
    /// When the longest-running owner started: no lease of a live owner is
    /// older.
    pub owner_since: Option<SystemTime>,
}

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
    /// A lease, and nothing owns the directory to refresh it; OpenViking
    /// refuses writes there until `until` (its date plus `lock_expire_secs`),
    /// when that is still to come.
    LeftBehind {
        until: Option<SystemTime>,
    },
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
    /// Not refreshed for `age`, longer than OpenViking's default
    /// `lock_expire_secs`, beside a live owner whose own setting is not known
    /// (no ov.conf that describes this workspace was read): it may have a
    /// longer one.
    ExpireUnknown {
        age: Duration,
    },
    /// Not a token OpenViking reads (None: longer than any token): every
    /// write below it fails. `young`: written under 2 s ago, maybe by a
    /// writer not yet done.
    Invalid {
        why: Option<BadToken>,
        young: bool,
    },
    /// Zero bytes, written `age` ago: OpenViking truncates before it
    /// writes, so it may be written right now; stale once older than
    /// `lock_expire_secs`, or when nothing owns the directory.
    Empty {
        age: Duration,
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
    /// A held lease older than `STUCK_AFTER`: how old, by its file's birth
    /// time, but never older than its owner (OpenViking takes over an
    /// expired file in place, so the file may predate the lease).
    pub stuck_for: Option<Duration>,
    /// What it was judged by, so that clear-stale can judge it again.
    pub context: Context,
}

impl JudgedPathLock {
    /// The lease its token records, if it holds one.
    pub fn lease(&self) -> Option<&Lease> {
        match &self.file.read {
            LockFileRead::Read {
                token: Some(Token::Lease(lease)),
                ..
            } => Some(lease),
            _ => None,
        }
    }
}
