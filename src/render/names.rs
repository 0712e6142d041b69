//! The one naming table for each kind of thing ovlock reports: verdicts,
//! lock protocols, how a process uses a file, kernel lock classes. The text
//! and the JSON look their names up here, so the two cannot drift apart.

use crate::inspect::Access;
use crate::inspect::kernel_locks::LockClass;
use crate::inspect::path_locks::NotLocal;
use crate::judge::{JudgedPathLock, PathLockState, Protocol, Verdict};
use crate::openviking::lock_token::LeaseKind;
use crate::openviking::ovconf::{PathLockProvider, StorageBackend};

/// A name as people read it and as the JSON spells it.
pub struct Name {
    pub text: &'static str,
    pub json: &'static str,
}

pub fn verdict(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Free => "free",
        Verdict::Held => "held",
        Verdict::Stale => "stale",
        Verdict::Contended => "contended",
        Verdict::Unknown => "unknown",
    }
}

pub fn protocol(protocol: Protocol) -> Name {
    let (text, json) = match protocol {
        Protocol::Flock => ("flock", "flock"),
        Protocol::PidFile => ("pid file", "pidfile"),
        Protocol::Storage => ("storage", "storage"),
    };
    Name { text, json }
}

pub fn access(access: Access) -> Name {
    let (text, json) = match access {
        Access::Cwd => ("current directory", "cwd"),
        Access::Open => ("open", "open file"),
        Access::Mapped => ("mapped", "mapped file"),
    };
    Name { text, json }
}

pub fn lock_class(class: LockClass) -> &'static str {
    match class {
        LockClass::Flock => "flock",
        LockClass::Posix => "posix",
        LockClass::Ofd => "ofd",
        LockClass::Other => "lease",
    }
}

/// `write` for an exclusive lock, `read` for a shared one.
pub fn lock_mode(exclusive: bool) -> &'static str {
    if exclusive { "write" } else { "read" }
}

pub fn path_lock_state(state: PathLockState) -> &'static str {
    match state {
        PathLockState::Held => "held",
        PathLockState::Stale => "stale",
        PathLockState::Unknown => "unknown",
    }
}

/// `tree` or `exact`, as the token says; None when it holds no lease.
pub fn path_lock_kind(p: &JudgedPathLock) -> Option<&'static str> {
    p.lease().map(|lease| match lease.kind {
        LeaseKind::Tree => "tree",
        LeaseKind::Exact => "exact",
    })
}

/// Where the tokens are kept when they are not files of the tree.
pub fn not_local(not_local: NotLocal) -> &'static str {
    match not_local {
        NotLocal::Provider(PathLockProvider::Memory) => "provider memory",
        NotLocal::Provider(PathLockProvider::Cache) => "provider cache",
        NotLocal::Provider(PathLockProvider::Filesystem) => "provider filesystem",
        NotLocal::Backend(StorageBackend::S3) => "backend s3",
        NotLocal::Backend(StorageBackend::Memory) => "backend memory",
        NotLocal::Backend(StorageBackend::Local) => "backend local",
    }
}
