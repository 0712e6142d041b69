//! What the judge returns: the verdict on a directory, its owners and other
//! users, the pid file's state, and the findings and fixes behind them.

use super::finding::{Finding, Fix, PidDoubt, Staleness};
use super::path_lock_state::JudgedPathLock;
use crate::inspect::{Ancestor, PathAccess, ProcessInfo};

/// The verdict on one data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Free,
    Held,
    Stale,
    Contended,
    Unknown,
}

impl Verdict {
    /// Nothing live owns the directory: a server may start on it (once a
    /// stale pid file is cleared).
    pub fn released(self) -> bool {
        matches!(self, Verdict::Free | Verdict::Stale)
    }
}

/// Which lock protocol made a process an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Holds the flock on `.openviking.lock` (OpenViking 0.4.21 and later).
    Flock,
    /// Is named by a live `.openviking.pid` (OpenViking up to 0.4.20).
    PidFile,
    /// Uses the storage (open files, mapped files or kernel locks under the
    /// directory) without any lock file: `skip_process_lock`, or a version
    /// older than any lock.
    Storage,
}

/// A live process that owns the directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    pub process: ProcessInfo,
    /// Every protocol through which it owns the directory, flock first.
    pub protocols: Vec<Protocol>,
    /// Its PID inside its own PID namespace, when the pid file names that one.
    pub ns_pid: Option<u32>,
    /// What it touches under the directory (known after a scan).
    pub files: Vec<PathAccess>,
    /// Its descendants that use the directory too: one server, not contenders.
    pub workers: Vec<u32>,
    /// Its parents up to PID 1, nearest first (known after a scan).
    pub ancestry: Vec<Ancestor>,
}

/// A process that uses the directory but does not own it: a shell whose
/// current directory it is, a `tail -f` on a log, a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUser {
    pub process: ProcessInfo,
    pub files: Vec<PathAccess>,
}

/// The judgement on `.openviking.pid` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidFileVerdict {
    Absent,
    /// `pid` owns it; `ns_pid` is the PID the file holds when the owner runs
    /// in another PID namespace (a container).
    Owned {
        pid: u32,
        ns_pid: Option<u32>,
    },
    Stale(Staleness),
    /// Empty or unparsable, but young: a server may be writing it right now.
    BeingWritten,
    Unknown(PidDoubt),
}

/// Everything the renderers and clear-stale need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub owners: Vec<Owner>,
    /// Processes that use the directory without owning it (known after a scan).
    pub other_users: Vec<OtherUser>,
    pub pid_file: PidFileVerdict,
    /// Every path lock of the storage tree, judged, in path order.
    pub path_locks: Vec<JudgedPathLock>,
    /// Why the verdict is what it is, most decisive first.
    pub reasons: Vec<Finding>,
    /// Facts that did not decide the verdict but that a reader should know.
    pub warnings: Vec<Finding>,
    /// What to do, in order of preference.
    pub fixes: Vec<Fix>,
}
