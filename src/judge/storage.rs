//! Judging who uses the storage, whatever the lock files say: process trees
//! as servers, storage users without a lock, other users, and PID files
//! written inside another PID namespace. The users come from the scan, when
//! one ran, and from the kernel's locks on storage files, which need none.

use std::path::Path;
use std::time::SystemTime;

use super::{Findings, OtherUser, Owner, PidFileVerdict, Policy, Protocol, Staleness};
use crate::inspect::{
    Access, Facts, FlockState, Host, LOCK_NAME, PathAccess, Privilege, ProcessInfo, Uninspected,
    Usage, User,
};
use crate::layout;

/// Whether the answer for this directory needs the scan of every process:
/// the recorded flock holder is gone, a lock on a storage file names no
/// live process, the PID file is about to be called stale (its owner may
/// live in another PID namespace), or OpenViking takes no lock here at all.
pub fn needs_scan(facts: &Facts, policy: &Policy) -> bool {
    matches!(facts.flock, Some(FlockState::Unidentified { .. }))
        || facts.workspace.skip_process_lock
        // The scan may find who holds it through an open file; a live
        // process that could not be read, it could not read either.
        || facts.storage_locks.unidentified.iter().any(|u| !u.alive)
        || matches!(
            super::pid_file_verdict(facts, policy),
            PidFileVerdict::Stale(why) if namespace_ambiguous(&why)
        )
}

/// Whether a stale PID file's number might still be its server's PID inside
/// another PID namespace (a container).
pub(super) fn namespace_ambiguous(why: &Staleness) -> bool {
    matches!(
        why,
        Staleness::Gone { .. }
            | Staleness::Zombie { .. }
            | Staleness::IsOvlock { .. }
            | Staleness::StartedAfterWrite { .. }
            | Staleness::NotOpenViking { .. }
    )
}

/// Every process known to use the directory: the scan's users, joined by
/// the holders of locks on its storage files (which the kernel names even
/// for processes whose files cannot be read, and without a scan).
pub(super) fn users(facts: &Facts) -> Vec<User> {
    let mut users = match &facts.usage {
        Some(Ok(usage)) => usage.users.clone(),
        _ => Vec::new(),
    };
    for holder in &facts.storage_locks.holders {
        let Some(user) = users
            .iter_mut()
            .find(|u| u.process.pid == holder.process.pid)
        else {
            users.push(holder.clone());
            continue;
        };
        for accesses in &holder.accesses {
            match user.accesses.iter_mut().find(|t| t.path == accesses.path) {
                Some(t) if t.locks.is_empty() => t.locks = accesses.locks.clone(),
                Some(_) => {}
                None => user.accesses.push(accesses.clone()),
            }
        }
    }
    users
}

/// The known user with this PID.
pub(super) fn user(facts: &Facts, pid: u32) -> Option<User> {
    users(facts).into_iter().find(|u| u.process.pid == pid)
}

/// Whether a process that is PID `pid` in its innermost PID namespace
/// (`ns_pids`, outermost first) could have written a pid file holding `pid`
/// at `written`. One whose details could not be read (None) cannot be
/// ruled out.
fn could_have_written(
    process: Option<&ProcessInfo>,
    ns_pids: &[u32],
    policy: &Policy,
    pid: u32,
    written: SystemTime,
) -> bool {
    ns_pids.len() > 1
        && ns_pids.last() == Some(&pid)
        && process.is_none_or(|p| {
            policy.is_openviking(p)
                && !p
                    .started
                    .is_some_and(|s| super::started_after_write(s, written))
        })
}

/// A live OpenViking process that uses the directory and is PID `pid` in its
/// innermost PID namespace, started no later than the file was written.
pub(super) fn namespace_owner(
    facts: &Facts,
    policy: &Policy,
    pid: u32,
    written: SystemTime,
) -> Option<User> {
    users(facts)
        .into_iter()
        .find(|u| could_have_written(Some(&u.process), &u.ns_pids, policy, pid, written))
}

/// Why a pid file's number cannot be ruled out as the PID of a server in
/// another PID namespace that this run could not see, if it cannot.
pub(super) fn unseen_namespace_owner(
    facts: &Facts,
    policy: &Policy,
    pid: u32,
    written: SystemTime,
) -> Option<String> {
    let Some(Ok(usage)) = &facts.usage else {
        return None;
    };
    let unseen: Vec<String> = usage
        .uninspected
        .iter()
        .filter(|u| could_have_written(u.process.as_ref(), &u.ns_pids, policy, pid, written))
        .map(|u| match &u.process {
            Some(p) => format!("PID {} ({})", u.pid, p.name),
            None => format!("PID {}", u.pid),
        })
        .collect();
    if !unseen.is_empty() {
        return Some(format!(
            "PID {pid} here is not its server, but {} {} PID {pid} inside {} own PID namespace, \
             and {} could not be read to tell whether {} this directory; {}",
            unseen.join(" and "),
            if unseen.len() == 1 { "is" } else { "are each" },
            if unseen.len() == 1 { "its" } else { "their" },
            if unseen.len() == 1 {
                "its files"
            } else {
                "their files"
            },
            if unseen.len() == 1 {
                "it uses"
            } else {
                "they use"
            },
            remedy(&facts.host)
        ));
    }
    facts.host.hidden_by().map(|option| {
        format!(
            "PID {pid} here is not its server, but /proc is mounted with {option}: a process \
             that /proc hides may be PID {pid} inside a container; {}",
            remedy(&facts.host)
        )
    })
}

/// What would let this run see every process, as the end of a sentence.
pub(super) fn remedy(host: &Host) -> &'static str {
    match host.lacks {
        Some(Privilege::SysPtrace) => {
            "run ovlock with CAP_SYS_PTRACE (it runs as root without it, as under a systemd \
             CapabilityBoundingSet= or in a container)"
        }
        _ => "run as root",
    }
}

/// The processes a scan could not inspect that may be OpenViking servers:
/// one that plainly is something else can only ever be another user.
pub(super) fn suspects<'a>(
    usage: &'a Usage,
    policy: &Policy,
    owners: &[u32],
) -> Vec<&'a Uninspected> {
    usage
        .uninspected
        .iter()
        .filter(|u| !owners.contains(&u.pid))
        .filter(|u| u.process.as_ref().is_none_or(|p| policy.is_openviking(p)))
        .collect()
}

/// What a scan could not see that may matter, as a sentence, or None when
/// it saw every process that may be a server.
fn unseen(usage: &Usage, host: &Host, policy: &Policy, owners: &[u32]) -> Option<String> {
    let mut parts = Vec::new();
    let suspects = suspects(usage, policy, owners);
    if !suspects.is_empty() {
        const SHOWN: usize = 5;
        let pids: Vec<String> = suspects
            .iter()
            .take(SHOWN)
            .map(|u| u.pid.to_string())
            .collect();
        let more = if suspects.len() > SHOWN { ", ..." } else { "" };
        let (count, pid) = match suspects.len() {
            1 => ("1 process that may be OpenViking was".to_string(), "PID"),
            n => (format!("{n} processes that may be OpenViking were"), "PIDs"),
        };
        parts.push(format!(
            "{count} not inspected ({pid} {}{more})",
            pids.join(", ")
        ));
    }
    if let Some(option) = host.hidden_by() {
        parts.push(format!(
            "/proc is mounted with {option}, which hides other users' processes even from a count"
        ));
    }
    (!parts.is_empty()).then(|| {
        format!(
            "{}; {} for a complete answer",
            parts.join("; "),
            remedy(host)
        )
    })
}

/// Sorts every known user into an owner's server, a new owner that uses
/// the storage without a lock, or another user, and says what the scan
/// could not see.
pub(super) fn judge_usage(facts: &Facts, policy: &Policy, j: &mut Findings) {
    let scanned = match &facts.usage {
        None => None,
        Some(Err(why)) => {
            doubt(
                facts,
                j,
                format!("could not look for processes that use the directory: {why}"),
            );
            None
        }
        Some(Ok(usage)) => Some(usage),
    };
    let users = users(facts);
    unidentified_storage_locks(facts, &users, j);
    describe_lock_owners(facts, &users, j);
    let lock_owners = j.owners.len();

    let mut sorted: Vec<&User> = users.iter().collect();
    // Parents before their children, so a server is met before its workers.
    sorted.sort_by_key(|u| (ancestors(facts, u.process.pid).len(), u.process.pid));
    for u in sorted {
        place(facts, policy, u, lock_owners, j);
    }

    // Whether another server may hide among the processes that could not be
    // read; an owner that could not be read hides only its own files.
    if let Some(usage) = scanned {
        let known: Vec<u32> = j.owners.iter().map(|o| o.process.pid).collect();
        if let Some(what) = unseen(usage, &facts.host, policy, &known) {
            doubt(facts, j, what);
        }
    }
    explain_storage_owners(facts, lock_owners, j);
}

/// What could not be seen: without a lock, only the scan can show who uses
/// the storage, so there "free" would be a guess; elsewhere a warning.
fn doubt(facts: &Facts, j: &mut Findings, what: String) {
    if facts.workspace.skip_process_lock {
        j.unknown.push(what)
    } else {
        j.warnings.push(what)
    }
}

/// The parents of `pid`, nearest first, as far as they were read.
fn ancestors(facts: &Facts, pid: u32) -> Vec<u32> {
    facts
        .lineage
        .get(&pid)
        .map(|chain| chain.iter().map(|a| a.pid).collect())
        .unwrap_or_default()
}

fn descends(facts: &Facts, child: u32, parent: u32) -> bool {
    ancestors(facts, child).contains(&parent)
}

/// The files and parents of the owners the lock files named.
fn describe_lock_owners(facts: &Facts, users: &[User], j: &mut Findings) {
    for owner in &mut j.owners {
        if let Some(u) = users.iter().find(|u| u.process.pid == owner.process.pid) {
            owner.files = u.accesses.clone();
        }
        owner.ancestry = facts
            .lineage
            .get(&owner.process.pid)
            .cloned()
            .unwrap_or_default();
    }
}

/// Puts one user where it belongs: in an owner's server (a descendant, or
/// the parent of a forked lock holder), among the owners when it is an
/// OpenViking process using the storage, or among the other users.
fn place(facts: &Facts, policy: &Policy, u: &User, lock_owners: usize, j: &mut Findings) {
    let pid = u.process.pid;
    if j.owners
        .iter()
        .any(|o| o.process.pid == pid || o.workers.contains(&pid))
    {
        return;
    }
    // A process and its descendants are one server.
    let worker_of = j.owners.iter().position(|o| {
        descends(facts, pid, o.process.pid) || o.workers.iter().any(|&w| descends(facts, pid, w))
    });
    if let Some(i) = worker_of {
        j.owners[i].workers.push(pid);
        return;
    }
    let uses_storage = u.accesses.iter().any(|t| {
        (!t.locks.is_empty() && layout::belongs_to(&facts.resolved_dir, &t.path))
            || (t.access != Access::Cwd && layout::is_storage_file(&facts.resolved_dir, &t.path))
    });
    // The directory's own path in an argument (`tail -f /srv/openviking/
    // data/LOG`) does not make a process OpenViking.
    let openviking =
        policy.is_openviking_ignoring(&u.process, &[&facts.workspace.path, &facts.resolved_dir]);
    if !(uses_storage && openviking) {
        if let Some(t) = u.accesses.iter().find(|t| !t.locks.is_empty()) {
            j.warnings.push(format!(
                "PID {pid} ({}) holds a {} on {}, but does not look like OpenViking, so it is not counted as a server \
                 (use --match to count it)",
                u.process.name,
                describe_access(t),
                relative(&facts.resolved_dir, &t.path).display()
            ));
        }
        j.other_users.push(OtherUser {
            process: u.process.clone(),
            files: u.accesses.clone(),
        });
        return;
    }
    // The server process whose forked child holds the lock.
    if let Some(i) = j
        .owners
        .iter()
        .position(|o| descends(facts, o.process.pid, pid))
    {
        j.owners[i].workers.push(pid);
        return;
    }
    let reason = storage_owner_reason(facts, u, lock_owners, j);
    j.owned.push(reason);
    j.owners.push(Owner {
        process: u.process.clone(),
        protocols: vec![Protocol::Storage],
        files: u.accesses.clone(),
        ancestry: facts.lineage.get(&pid).cloned().unwrap_or_default(),
        ..Owner::default()
    });
}

/// Why an OpenViking process that holds no lock file owns the directory.
fn storage_owner_reason(facts: &Facts, u: &User, lock_owners: usize, j: &mut Findings) -> String {
    let (pid, name) = (u.process.pid, &u.process.name);
    let deleted = layout::deleted_lock_file(&facts.resolved_dir);
    let released = matches!(facts.flock, Some(FlockState::Unheld)) && lock_owners == 0;
    if u.accesses.iter().any(|t| t.path == deleted) {
        format!(
            "PID {pid} ({name}) holds the flock on a {LOCK_NAME} that was deleted under it: a new \
             server would lock a new file at that path and run beside it"
        )
    } else if facts.storage_locks.unnamed_flocks.contains(&pid) {
        format!(
            "PID {pid} ({name}) uses the storage without a lock file that ovlock can see, but holds \
             a flock on a file it cannot name (its descriptors could not be read): most likely a \
             {LOCK_NAME} deleted under it, so that a new server would run beside it; {}",
            remedy(&facts.host)
        )
    } else if released {
        j.shutting_down = true;
        format!(
            "PID {pid} ({name}) has let go of {LOCK_NAME} but still holds the storage: {}",
            describe_files(&facts.resolved_dir, &u.accesses)
        )
    } else {
        format!(
            "PID {pid} ({name}) uses the storage without holding a lock file: {}",
            describe_files(&facts.resolved_dir, &u.accesses)
        )
    }
}

/// What a lone storage owner is likely to be, and with several owners,
/// what each lock owner holds, so that a contention names every file.
fn explain_storage_owners(facts: &Facts, lock_owners: usize, j: &mut Findings) {
    let storage_owners = j.owners.len() - lock_owners;
    if storage_owners > 0 && lock_owners == 0 && j.owners.len() == 1 {
        let deleted = layout::deleted_lock_file(&facts.resolved_dir);
        let holds_deleted = j.owners[0].files.iter().any(|t| t.path == deleted)
            || facts
                .storage_locks
                .unnamed_flocks
                .contains(&j.owners[0].process.pid);
        if !holds_deleted {
            j.owned.push(if matches!(facts.flock, Some(FlockState::Unheld)) {
                "it is a server shutting down, or one started with storage.skip_process_lock \
                 beside the lock file of another"
                    .to_string()
            } else {
                "it holds no lock file: storage.skip_process_lock is set, or it is an OpenViking older than any lock"
                    .to_string()
            });
        }
    }
    if j.owners.len() > 1 {
        for owner in j
            .owners
            .iter()
            .take(lock_owners)
            .filter(|o| !o.files.is_empty())
        {
            j.owned.push(format!(
                "PID {} ({}) has {}",
                owner.process.pid,
                owner.process.name,
                describe_files(&facts.resolved_dir, &owner.files)
            ));
        }
    }
}

/// Locks on storage files whose holder is not known: held by a live process
/// that could not be identified, or by one that not even the scan found.
fn unidentified_storage_locks(facts: &Facts, users: &[User], j: &mut Findings) {
    for lock in &facts.storage_locks.unidentified {
        // The scan may have found who holds it through an open file.
        let explained = users.iter().any(|u| {
            u.accesses
                .iter()
                .any(|t| t.path == lock.path && t.locks.iter().any(|l| l.ino == lock.lock.ino))
        });
        if explained {
            continue;
        }
        let what = format!(
            "{} ({} {} lock)",
            relative(&facts.resolved_dir, &lock.path).display(),
            lock.lock.class.name(),
            if lock.lock.exclusive { "write" } else { "read" }
        );
        if lock.alive {
            j.anonymous_holder = true;
            j.owned.push(format!(
                "{what} is held by a live process that could not be identified: {}; {}",
                lock.why,
                remedy(&facts.host)
            ));
        } else {
            j.unknown.push(format!(
                "{what} is held, but not by any process ovlock could see ({})",
                lock.why
            ));
        }
    }
    if let Some(why) = &facts.storage_locks.incomplete {
        j.warnings.push(format!(
            "the storage was not searched in full for locks: {why}"
        ));
    }
}

/// A short list of accesses files relative to the directory, with their locks.
pub fn describe_files(dir: &Path, accesses: &[PathAccess]) -> String {
    const SHOWN: usize = 4;
    let mut parts: Vec<String> = accesses
        .iter()
        .take(SHOWN)
        .map(|t| {
            format!(
                "{} ({})",
                relative(dir, &t.path).display(),
                describe_access(t)
            )
        })
        .collect();
    if accesses.len() > SHOWN {
        parts.push(format!("and {} more", accesses.len() - SHOWN));
    }
    parts.join(", ")
}

/// A path relative to the directory, `.` for the directory itself.
pub fn relative<'a>(dir: &Path, path: &'a Path) -> &'a Path {
    match path.strip_prefix(dir) {
        Ok(rest) if rest.as_os_str().is_empty() => Path::new("."),
        Ok(rest) => rest,
        Err(_) => path,
    }
}

/// `open`, `mapped`, `cwd`, or the lock held through it: `flock write lock`.
pub fn describe_access(t: &PathAccess) -> String {
    match t.locks.first() {
        Some(lock) => format!(
            "{} {} lock",
            lock.class.name(),
            if lock.exclusive { "write" } else { "read" }
        ),
        None => match t.access {
            Access::Cwd => "current directory",
            Access::Open => "open",
            Access::Mapped => "mapped",
        }
        .to_string(),
    }
}
