//! Judging who uses the storage, whatever the lock files say: process trees
//! as servers, storage users without a lock, other users, and what the scan
//! could not see. The users come from the scan, when one ran, and from the
//! kernel's locks on storage files, which need none.

use super::evidence::Evidence;
use super::finding::{Finding, ProcessRef};
use super::judgement::{OtherUser, Owner, Protocol};
use super::policy::Policy;
use super::users::users;
use crate::inspect::{Access, Facts, FlockState, Host, Uninspected, Usage, User};
use crate::openviking::layout;

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

/// What a scan could not see that may matter, or None when it saw every
/// process that may be a server.
fn unseen(usage: &Usage, host: &Host, policy: &Policy, owners: &[u32]) -> Option<Finding> {
    let suspects: Vec<u32> = suspects(usage, policy, owners)
        .iter()
        .map(|u| u.pid)
        .collect();
    let hidden_by = host.hidden_by().map(str::to_string);
    (!suspects.is_empty() || hidden_by.is_some()).then_some(Finding::Unseen {
        suspects,
        hidden_by,
    })
}

/// Sorts every known user into an owner's server, a new owner that uses
/// the storage without a lock, or another user, and says what the scan
/// could not see.
pub(super) fn judge_usage(facts: &Facts, policy: &Policy, j: &mut Evidence) {
    let scanned = match &facts.usage {
        None => None,
        Some(Err(why)) => {
            doubt(facts, j, Finding::ScanFailed(why.clone()));
            None
        }
        Some(Ok(usage)) => Some(usage),
    };
    // Without the scan, a storage lock the table may have hidden is unknown.
    if facts.storage_locks.unsettled && scanned.is_none() {
        j.unknown.push(Finding::LockTableUnsettled);
    }
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

/// What could not be seen: without a lock, or with a lock table that kept
/// changing, only the scan can show who uses the storage, so there "free"
/// would be a guess; elsewhere a warning.
fn doubt(facts: &Facts, j: &mut Evidence, what: Finding) {
    if facts.workspace.skip_process_lock || facts.storage_locks.unsettled {
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
fn describe_lock_owners(facts: &Facts, users: &[User], j: &mut Evidence) {
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
fn place(facts: &Facts, policy: &Policy, u: &User, lock_owners: usize, j: &mut Evidence) {
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
            j.warnings.push(Finding::NotCountedAsServer {
                process: ProcessRef::of(&u.process),
                access: t.clone(),
            });
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
fn storage_owner_reason(facts: &Facts, u: &User, lock_owners: usize, j: &mut Evidence) -> Finding {
    let process = ProcessRef::of(&u.process);
    let deleted = layout::deleted_lock_file(&facts.resolved_dir);
    let released = matches!(facts.flock, Some(FlockState::Unheld)) && lock_owners == 0;
    let files = u.accesses.clone();
    if u.accesses.iter().any(|t| t.path == deleted) {
        Finding::HoldsDeletedLockFile(process)
    } else if facts.storage_locks.unnamed_flocks.contains(&process.pid) {
        Finding::HoldsUnnamedFlock(process)
    } else if released {
        j.shutting_down = true;
        Finding::LetGo { process, files }
    } else {
        Finding::StorageWithoutLock { process, files }
    }
}

/// What a lone storage owner is likely to be, and with several owners,
/// what each lock owner holds, so that a contention names every file.
fn explain_storage_owners(facts: &Facts, lock_owners: usize, j: &mut Evidence) {
    let storage_owners = j.owners.len() - lock_owners;
    if storage_owners > 0 && lock_owners == 0 && j.owners.len() == 1 {
        let deleted = layout::deleted_lock_file(&facts.resolved_dir);
        let holds_deleted = j.owners[0].files.iter().any(|t| t.path == deleted)
            || facts
                .storage_locks
                .unnamed_flocks
                .contains(&j.owners[0].process.pid);
        if !holds_deleted {
            j.owned.push(Finding::LoneStorageOwner {
                lock_unheld: matches!(facts.flock, Some(FlockState::Unheld)),
            });
        }
    }
    if j.owners.len() > 1 {
        let has = j
            .owners
            .iter()
            .take(lock_owners)
            .filter(|o| !o.files.is_empty())
            .map(|o| Finding::OwnerHas {
                process: ProcessRef::of(&o.process),
                files: o.files.clone(),
            })
            .collect::<Vec<_>>();
        j.owned.extend(has);
    }
}

/// Locks on storage files whose holder is not known: held by a live process
/// that could not be identified, or by one that not even the scan found.
fn unidentified_storage_locks(facts: &Facts, users: &[User], j: &mut Evidence) {
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
        let finding = Finding::StorageLockUnidentified {
            path: lock.path.clone(),
            lock: lock.lock.clone(),
            alive: lock.alive,
            why: lock.why.clone(),
        };
        if lock.alive {
            j.anonymous_holder = true;
            j.owned.push(finding);
        } else {
            j.unknown.push(finding);
        }
    }
    if let Some(why) = &facts.storage_locks.incomplete {
        j.warnings
            .push(Finding::StorageSearchIncomplete(why.clone()));
    }
}
