//! Judging who uses the storage, whatever the lock files say: process trees
//! as servers, storage users without a lock, other users, and PID files
//! written inside another PID namespace.

use std::path::Path;
use std::time::SystemTime;

use super::{Acc, OtherUser, Owner, PidFileVerdict, Policy, Protocol, Staleness};
use crate::inspect::{Facts, FlockState, Touch, Touched, User};

/// Whether the answer for this directory needs the scan of every process:
/// the recorded flock holder is gone, the PID file is about to be called
/// stale (its owner may live in another PID namespace), or OpenViking takes
/// no lock here at all.
pub fn needs_scan(facts: &Facts, policy: &Policy) -> bool {
    matches!(facts.flock, Some(FlockState::Unidentified { .. }))
        || facts.workspace.skip_process_lock
        || matches!(
            super::pid_file_verdict(facts, policy),
            PidFileVerdict::Stale(
                Staleness::Gone { .. }
                    | Staleness::Zombie { .. }
                    | Staleness::IsOvlock { .. }
                    | Staleness::StartedAfterWrite { .. }
                    | Staleness::NotOpenViking { .. }
            )
        )
}

/// The scanned user with this PID.
pub(super) fn user(facts: &Facts, pid: u32) -> Option<&User> {
    match &facts.usage {
        Some(Ok(usage)) => usage.users.iter().find(|u| u.process.pid == pid),
        _ => None,
    }
}

/// A live OpenViking process that uses the directory and is PID `pid` in its
/// innermost PID namespace, started no later than the file was written.
pub(super) fn namespace_owner<'a>(
    facts: &'a Facts,
    policy: &Policy,
    pid: u32,
    written: SystemTime,
) -> Option<&'a User> {
    let Some(Ok(usage)) = &facts.usage else {
        return None;
    };
    usage.users.iter().find(|u| {
        u.ns_pids.len() > 1
            && u.ns_pids.last() == Some(&pid)
            && policy.is_openviking(&u.process)
            && !u
                .process
                .started
                .is_some_and(|s| super::started_after_write(s, written))
    })
}

/// Sorts every scanned user into an owner's server, a new owner that uses
/// the storage without a lock, or another user.
pub(super) fn judge_usage(facts: &Facts, policy: &Policy, j: &mut Acc) {
    // Without a lock, only the scan can show who uses the storage: where it
    // could not see everything, "free" would be a guess.
    let unlocked = facts.workspace.skip_process_lock;
    let usage = match &facts.usage {
        None => return,
        Some(Err(why)) => {
            let what = format!("could not look for processes that use the directory: {why}");
            if unlocked {
                j.unknown.push(what)
            } else {
                j.warnings.push(what)
            }
            return;
        }
        Some(Ok(usage)) => usage,
    };
    if usage.uninspected > 0 {
        let what = format!(
            "{} processes of other users were not inspected; run as root for a complete answer",
            usage.uninspected
        );
        if unlocked {
            j.unknown.push(what)
        } else {
            j.warnings.push(what)
        }
    }
    let ancestors = |pid: u32| -> Vec<u32> {
        usage
            .lineage
            .get(&pid)
            .map(|chain| chain.iter().map(|a| a.pid).collect())
            .unwrap_or_default()
    };
    let descends = |child: u32, parent: u32| ancestors(child).contains(&parent);

    for owner in &mut j.owners {
        if let Some(u) = user(facts, owner.process.pid) {
            owner.files = u.touched.clone();
        }
        owner.ancestry = usage
            .lineage
            .get(&owner.process.pid)
            .cloned()
            .unwrap_or_default();
    }
    let lock_owners = j.owners.len();

    let mut users: Vec<&User> = usage.users.iter().collect();
    // Parents before their children, so a server is met before its workers.
    users.sort_by_key(|u| (ancestors(u.process.pid).len(), u.process.pid));
    for u in users {
        let pid = u.process.pid;
        if j.owners
            .iter()
            .any(|o| o.process.pid == pid || o.workers.contains(&pid))
        {
            continue;
        }
        // A process and its descendants are one server.
        let worker_of = j.owners.iter().position(|o| {
            descends(pid, o.process.pid) || o.workers.iter().any(|&w| descends(pid, w))
        });
        if let Some(i) = worker_of {
            j.owners[i].workers.push(pid);
            continue;
        }
        let uses_storage = u.touched.iter().any(|t| {
            !t.locks.is_empty()
                || (t.touch != Touch::Cwd && is_storage_file(&facts.lock_dir, &t.path))
        });
        // The directory's own path in an argument (`tail -f /srv/openviking/
        // data/LOG`) does not make a process OpenViking.
        let openviking =
            policy.is_openviking_beyond(&u.process, &[&facts.workspace.path, &facts.lock_dir]);
        if !(uses_storage && openviking) {
            if let Some(t) = u.touched.iter().find(|t| !t.locks.is_empty()) {
                j.warnings.push(format!(
                    "PID {pid} ({}) holds a {} on {}, but does not look like OpenViking, so it is not counted as a server \
                     (use --match to count it)",
                    u.process.name,
                    describe_touch(t),
                    relative(&facts.lock_dir, &t.path).display()
                ));
            }
            j.other_users.push(OtherUser {
                process: u.process.clone(),
                files: u.touched.clone(),
            });
            continue;
        }
        // The server process whose forked child holds the lock.
        if let Some(i) = j.owners.iter().position(|o| descends(o.process.pid, pid)) {
            j.owners[i].workers.push(pid);
            continue;
        }
        j.owned.push(format!(
            "PID {pid} ({}) uses the storage without holding a lock file: {}",
            u.process.name,
            describe_files(&facts.lock_dir, &u.touched)
        ));
        j.owners.push(Owner {
            process: u.process.clone(),
            protocols: vec![Protocol::Storage],
            files: u.touched.clone(),
            ancestry: usage.lineage.get(&pid).cloned().unwrap_or_default(),
            ..Owner::default()
        });
    }

    let storage_owners = j.owners.len() - lock_owners;
    if storage_owners > 0 && lock_owners == 0 && j.owners.len() == 1 {
        j.owned.push(
            "it holds no lock file: storage.skip_process_lock is set, or it is an OpenViking older than any lock"
                .to_string(),
        );
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
                describe_files(&facts.lock_dir, &owner.files)
            ));
        }
    }
}

/// Whether a path under the directory is part of OpenViking's storage (its
/// lock file, its vector store, its SQLite queues), rather than, say, a log
/// someone is tailing.
fn is_storage_file(dir: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(dir) else {
        return false;
    };
    let mut components = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    let first = components.next().unwrap_or_default();
    if matches!(first.as_ref(), ".openviking.lock" | "vectordb" | "_system") {
        return true;
    }
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let name = name.trim_end_matches(" (deleted)");
    [
        ".db",
        ".db-wal",
        ".db-shm",
        ".db-journal",
        ".sqlite",
        ".sqlite3",
        ".sqlite3-wal",
        ".sqlite3-shm",
        ".sst",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
        || matches!(name, "LOCK" | "CURRENT" | "IDENTITY")
        || name.starts_with("MANIFEST-")
}

/// A short list of touched files relative to the directory, with their locks.
pub fn describe_files(dir: &Path, touched: &[Touched]) -> String {
    const SHOWN: usize = 4;
    let mut parts: Vec<String> = touched
        .iter()
        .take(SHOWN)
        .map(|t| {
            format!(
                "{} ({})",
                relative(dir, &t.path).display(),
                describe_touch(t)
            )
        })
        .collect();
    if touched.len() > SHOWN {
        parts.push(format!("and {} more", touched.len() - SHOWN));
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
pub fn describe_touch(t: &Touched) -> String {
    match t.locks.first() {
        Some(lock) => format!(
            "{} {} lock",
            lock.class.name(),
            if lock.exclusive { "write" } else { "read" }
        ),
        None => match t.touch {
            Touch::Cwd => "current directory",
            Touch::Open => "open",
            Touch::Mapped => "mapped",
        }
        .to_string(),
    }
}
