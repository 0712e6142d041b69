//! The verdict: a pure function from inspected facts to a verdict, the
//! reasons for it and what to do. No OS access, so every rule is table-tested.
//!
//! The parts, each importing only those before it: `finding` and
//! `judgement` (what it returns), `policy`, `users`, `evidence` (what it
//! has found so far), `pid_file`, `storage`; this module weighs them.

use std::path::PathBuf;

use crate::inspect::flock::HolderDoubt;
use crate::inspect::{DirState, Facts, FlockState, LockFile, Lookup};

pub use finding::{Finding, Fix, PidDoubt, ProcessRef, Staleness, StopCase};
pub use judgement::{Judgement, OtherUser, Owner, PidFileVerdict, Protocol, Verdict};
pub use path_lock_state::{
    Context as PathLockContext, JudgedPathLock, PathLockReason, PathLockState, Refresher,
};
pub use path_locks::{held_for, still_stale as path_lock_still_stale};
pub use pid_file::{SLACK, pid_file_verdict};
pub use policy::Policy;

use evidence::Evidence;

mod evidence;
mod finding;
mod judgement;
mod path_lock_state;
mod path_locks;
mod pid_file;
mod policy;
pub mod server;
mod storage;
mod users;

#[cfg(test)]
pub(crate) mod tests;

/// Whether the answer for this directory needs the scan of every process:
/// the recorded flock holder is gone, a lock on a storage file names no
/// live process, the PID file is about to be called stale (its owner may
/// live in another PID namespace), or OpenViking takes no lock here at all.
pub fn needs_scan(facts: &Facts, policy: &Policy) -> bool {
    matches!(
        facts.flock,
        Some(FlockState::Unidentified { .. } | FlockState::Unsettled)
    ) || facts.workspace.skip_process_lock
        // A lock table that kept changing proves no absence: the holders'
        // own descriptors must.
        || facts.storage_locks.unsettled
        // The scan may find who holds it through an open file; a live
        // process that could not be read, it could not read either.
        || facts.storage_locks.unidentified.iter().any(|u| !u.alive)
        || matches!(
            pid_file_verdict(facts, policy),
            PidFileVerdict::Stale(why) if pid_file::namespace_ambiguous(&why)
        )
}

/// Judges one directory.
pub fn judge(facts: &Facts, policy: &Policy) -> Judgement {
    let mut j = Evidence::default();
    match &facts.dir {
        DirState::Missing => j.nothing_owns.push(Finding::DirMissing),
        DirState::NotADirectory(kind) => j.unknown.push(Finding::NotADirectory(*kind)),
        DirState::Inaccessible(err) => j.unknown.push(Finding::DirInaccessible(err.clone())),
        DirState::Present { .. } => judge_flock(facts, policy, &mut j),
    }
    let pid_file = judge_pid_file(facts, policy, &mut j);
    storage::judge_usage(facts, policy, &mut j);
    // A lock may be in there: never free while one lies about.
    for aside in &facts.left_aside {
        j.unknown.push(Finding::LeftAside(aside.clone()));
    }
    let path_locks = path_locks::judge_tree(facts, &mut j);
    if let Some(fs) = facts.remote_fs {
        j.warnings.push(Finding::RemoteFs(fs));
    }
    point_elsewhere(facts, policy, &mut j);
    if facts.workspace.skip_process_lock {
        j.warnings.push(Finding::SkipProcessLock);
    }
    finish(j, facts, pid_file, path_locks, policy)
}

/// For OpenViking's default directory, or one that does not exist, when
/// nothing owns it: the OpenViking servers that hold other data
/// directories, one of which may be the directory meant (a config not
/// found, a server started elsewhere).
fn point_elsewhere(facts: &Facts, policy: &Policy, j: &mut Evidence) {
    // A directory a server owns is most likely the one meant.
    if !j.owners.is_empty() || j.anonymous_holder {
        return;
    }
    let servers: Vec<(u32, Vec<PathBuf>)> = facts
        .elsewhere
        .iter()
        .filter(|f| policy.is_openviking(&f.process))
        .map(|f| {
            let dirs = f.dirs.iter().filter(|d| **d != facts.resolved_dir);
            (f.process.pid, dirs.cloned().collect())
        })
        .collect();
    if servers.is_empty() {
        return;
    }
    j.warnings.push(Finding::ServersElsewhere {
        missing: matches!(facts.dir, DirState::Missing),
        servers,
    });
    j.elsewhere = true;
}

/// Weighs the evidence into the verdict, its reasons and its fixes.
fn finish(
    mut evidence: Evidence,
    facts: &Facts,
    pid_file: PidFileVerdict,
    path_locks: Vec<JudgedPathLock>,
    policy: &Policy,
) -> Judgement {
    let verdict = match evidence.owners.len() {
        2.. => Verdict::Contended,
        1 => Verdict::Held,
        0 if evidence.anonymous_holder => Verdict::Held,
        _ if !evidence.unknown.is_empty() => Verdict::Unknown,
        _ if !evidence.stale.is_empty() => Verdict::Stale,
        _ => Verdict::Free,
    };
    let mut reasons = Vec::new();
    if verdict == Verdict::Contended {
        let who = evidence.owners.iter().map(|o| ProcessRef::of(&o.process));
        reasons.push(Finding::Contended(who.collect()));
    }
    match verdict {
        Verdict::Held | Verdict::Contended => {
            reasons.append(&mut evidence.owned);
            reasons.append(&mut evidence.stale);
            reasons.append(&mut evidence.nothing_owns);
            // A definite owner outranks what could not be read, but the reader must know.
            evidence.warnings.extend(
                evidence
                    .unknown
                    .drain(..)
                    .map(|u| Finding::NotInspected(Box::new(u))),
            );
        }
        Verdict::Unknown => {
            reasons.append(&mut evidence.unknown);
            reasons.append(&mut evidence.stale);
            reasons.append(&mut evidence.nothing_owns);
        }
        Verdict::Stale | Verdict::Free => {
            reasons.append(&mut evidence.stale);
            reasons.append(&mut evidence.nothing_owns);
        }
    }
    if reasons.is_empty() {
        reasons.push(Finding::NoLockFile);
    }
    let mut fixes = fixes(
        verdict,
        &evidence.owners,
        &pid_file,
        &path_locks,
        facts,
        policy,
    );
    if evidence.shutting_down && verdict == Verdict::Held {
        fixes.insert(0, Fix::WaitForRelease);
    }
    if evidence.elsewhere {
        fixes.insert(0, Fix::SeeEveryServer);
    }
    Judgement {
        verdict,
        owners: evidence.owners,
        other_users: evidence.other_users,
        pid_file,
        path_locks,
        reasons,
        warnings: evidence.warnings,
        fixes,
    }
}

fn judge_flock(facts: &Facts, policy: &Policy, j: &mut Evidence) {
    match (&facts.lock_file, &facts.flock) {
        (LockFile::Absent, _) => {}
        (LockFile::NotRegular(kind), _) => j.unknown.push(Finding::LockFileNotRegular(*kind)),
        (LockFile::Inaccessible(err), _) => {
            j.unknown.push(Finding::LockFileInaccessible(err.clone()))
        }
        (LockFile::Present { .. }, None | Some(FlockState::Unheld)) => {
            j.nothing_owns.push(Finding::FlockUnheld)
        }
        (
            LockFile::Present { .. },
            Some(FlockState::Unidentified {
                recorded_pid,
                certain,
                ..
            }),
        ) => {
            // Only when no scan ran: with one, inspect settles this state.
            let recorded = *recorded_pid;
            if *certain {
                j.anonymous_holder = true;
                j.owned
                    .push(Finding::FlockHolderNotYetIdentified { recorded });
            } else {
                j.unknown.push(Finding::FlockUndecided { recorded });
            }
        }
        (LockFile::Present { .. }, Some(FlockState::Unknown(why))) => {
            j.unknown.push(Finding::FlockUnknown(why.clone()));
        }
        // Not seen in a lock table that kept changing, and the scan, if one
        // ran, found no holder: unheld, unless a process it could not read
        // may be a server.
        (LockFile::Present { .. }, Some(FlockState::Unsettled)) => match &facts.usage {
            Some(Ok(usage))
                if storage::suspects(usage, policy, &[]).is_empty()
                    && facts.host.hidden_by().is_none() =>
            {
                j.nothing_owns.push(Finding::FlockUnheld)
            }
            _ => j.unknown.push(Finding::LockTableUnsettled),
        },
        (
            LockFile::Present { .. },
            Some(FlockState::Held {
                holders,
                recorded_pid,
                recorded_exited,
                doubt,
            }),
        ) => {
            if *doubt == Some(HolderDoubt::OpenOnly) {
                match openviking_openers(facts, policy, j) {
                    Some(openers) => {
                        let pids: Vec<u32> = openers
                            .iter()
                            .filter_map(|l| match l {
                                Lookup::Alive(p) => Some(p.pid),
                                _ => None,
                            })
                            .collect();
                        judge_flock_holders(&openers, &pids, None, false, j);
                    }
                    None => return,
                }
            } else {
                let lookups = &facts.flock_holders;
                judge_flock_holders(lookups, holders, *recorded_pid, *recorded_exited, j);
            }
            if let Some(doubt) = doubt {
                j.warnings.push(Finding::FlockHolderDoubt(doubt.clone()));
            }
        }
    }
}

/// Where only who has the lock file open is known (Windows names no lock's
/// owner): OpenViking opens it only to lock it, so an OpenViking process
/// with it open holds it. Any other process with it open may or may not
/// hold a lock on it: that is undecided, never free. The OpenViking
/// openers, or None when there is none, after saying so.
fn openviking_openers(facts: &Facts, policy: &Policy, j: &mut Evidence) -> Option<Vec<Lookup>> {
    let live = facts.flock_holders.iter().filter_map(|l| match l {
        Lookup::Alive(p) if !p.zombie => Some(p),
        _ => None,
    });
    // An argument naming the directory says what a process looks at, not what it is.
    let dirs = [facts.workspace.path.as_path(), facts.resolved_dir.as_path()];
    let openers: Vec<Lookup> = live
        .clone()
        .filter(|p| policy.is_openviking_ignoring(p, &dirs))
        .map(|p| Lookup::Alive(p.clone()))
        .collect();
    if !openers.is_empty() {
        return Some(openers);
    }
    for p in live {
        j.unknown.push(Finding::LockFileOpenedBy(ProcessRef::of(p)));
    }
    for lookup in &facts.flock_holders {
        if let Lookup::Unknown(why) = lookup {
            j.unknown.push(Finding::ProcessUnreadable(why.clone()));
        }
    }
    None
}

/// The holders of a held flock. Every one shares the one open file that
/// took the exclusive lock (forked from it): one server, the first its owner.
fn judge_flock_holders(
    lookups: &[Lookup],
    holders: &[u32],
    recorded_pid: Option<u32>,
    recorded_exited: bool,
    j: &mut Evidence,
) {
    let mut owner: Option<u32> = None;
    for lookup in lookups {
        match lookup {
            Lookup::Alive(p) if !p.zombie => match owner {
                Some(first) => {
                    if let Some(o) = j.owners.iter_mut().find(|o| o.process.pid == first) {
                        o.workers.push(p.pid);
                    }
                }
                None => {
                    owner = Some(p.pid);
                    // A live PID is never said to have exited.
                    let inherited_from = recorded_pid
                        .filter(|recorded| *recorded != p.pid)
                        .map(|recorded| (recorded, recorded_exited));
                    j.owned.push(Finding::FlockHeldBy {
                        holder: ProcessRef::of(p),
                        inherited_from,
                    });
                    j.add_owner(p, Protocol::Flock);
                }
            },
            Lookup::Alive(_) | Lookup::Gone => {}
            Lookup::Unknown(why) => j.unknown.push(Finding::ProcessUnreadable(why.clone())),
        }
    }
    if owner.is_none() {
        j.anonymous_holder = true;
        // Name the PID the kernel gives, and why it could not be read.
        let unread = holders.iter().zip(lookups).find_map(|(pid, l)| match l {
            Lookup::Unknown(why) => Some((*pid, why.clone())),
            _ => None,
        });
        j.owned.push(match unread {
            Some((pid, why)) => Finding::FlockHolderUnreadable { pid, why },
            None => Finding::FlockHolderUnknown,
        });
    }
}

fn judge_pid_file(facts: &Facts, policy: &Policy, j: &mut Evidence) -> PidFileVerdict {
    let verdict = pid_file_verdict(facts, policy);
    match &verdict {
        PidFileVerdict::Absent => {}
        PidFileVerdict::Owned { ns_pid: None, .. } => {
            if let Some(Lookup::Alive(p)) = &facts.pid_owner {
                j.owned.push(Finding::PidFileNames(ProcessRef::of(p)));
                j.add_owner(p, Protocol::PidFile);
            }
        }
        PidFileVerdict::Owned {
            pid,
            ns_pid: Some(ns_pid),
        } => {
            if let Some(user) = users::user(facts, *pid) {
                let p = &user.process;
                j.owned.push(Finding::PidFileNamesNamespaced {
                    ns_pid: *ns_pid,
                    owner: ProcessRef::of(p),
                });
                j.add_owner(p, Protocol::PidFile);
                if let Some(owner) = j.owners.iter_mut().find(|o| o.process.pid == *pid) {
                    owner.ns_pid = Some(*ns_pid);
                }
            }
        }
        PidFileVerdict::Stale(why) => j.stale.push(Finding::PidFileLeftOver(why.clone())),
        PidFileVerdict::BeingWritten => j.unknown.push(Finding::PidFileBeingWritten),
        PidFileVerdict::Unknown(doubt) => j.unknown.push(Finding::PidFileUndecided(doubt.clone())),
    }
    verdict
}

fn fixes(
    verdict: Verdict,
    owners: &[Owner],
    pid_file: &PidFileVerdict,
    path_locks: &[JudgedPathLock],
    facts: &Facts,
    policy: &Policy,
) -> Vec<Fix> {
    let stale_pid_file = matches!(pid_file, PidFileVerdict::Stale(_));
    let stale_path_locks = path_locks
        .iter()
        .filter(|p| p.state == PathLockState::Stale)
        .count();
    let mut fixes = restarts(owners, facts);
    let stop = |o: &Owner| stop_owner(o, owners.len(), policy);
    match verdict {
        Verdict::Contended => {
            fixes.push(Fix::KeepOneServer);
            fixes.extend(owners.iter().map(stop));
            fixes.push(Fix::UseHttp);
            fixes.push(Fix::OwnWorkspace);
        }
        Verdict::Held if owners.is_empty() => fixes.push(Fix::FindHolder(facts.host.lacks)),
        Verdict::Held => {
            fixes.push(Fix::UseHttp);
            fixes.push(Fix::OwnWorkspace);
            fixes.extend(owners.iter().map(stop));
        }
        Verdict::Stale => fixes.push(Fix::ClearStale {
            pid_file: stale_pid_file,
            path_locks: stale_path_locks,
        }),
        Verdict::Unknown => {
            fixes.extend(when_unknown(pid_file, facts));
            if stale_path_locks > 0 {
                fixes.push(Fix::ClearStale {
                    pid_file: false,
                    path_locks: stale_path_locks,
                });
            }
        }
        // Free by the locks, but not every process could be seen.
        Verdict::Free if !facts.host.privileged() && suspects(facts, policy) > 0 => {
            fixes.push(Fix::MakeSure)
        }
        Verdict::Free => {}
    }
    let owned = matches!(verdict, Verdict::Held | Verdict::Contended);
    // Stale path locks fail the live server's writes now: that fix comes first.
    if owned && stale_path_locks > 0 {
        fixes.insert(
            0,
            Fix::ClearLeftovers {
                pid_file: stale_pid_file,
                path_locks: stale_path_locks,
            },
        );
    } else if owned && stale_pid_file {
        fixes.push(Fix::ClearLeftovers {
            pid_file: true,
            path_locks: 0,
        });
    }
    if owned && path_locks.iter().any(|p| p.stuck_for.is_some()) {
        let one = match owners {
            [one] => Some(one),
            _ => None,
        };
        fixes.push(Fix::EndStuckTask {
            process: one.map(|o| ProcessRef::of(&o.process)),
            service: one.and_then(|o| o.process.service.clone()),
            launchd: one.and_then(|o| o.process.launchd.clone()),
        });
    }
    fixes
}

/// A server whose lock file was deleted under it keeps its lock on an
/// inode no one else can reach: only a restart makes it lock the path.
fn restarts(owners: &[Owner], facts: &Facts) -> Vec<Fix> {
    let deleted = crate::openviking::layout::deleted_lock_file(&facts.resolved_dir);
    let unnamed = &facts.storage_locks.unnamed_flocks;
    owners
        .iter()
        .filter(|o| o.files.iter().any(|t| t.path == deleted) || unnamed.contains(&o.process.pid))
        .map(|owner| Fix::Restart {
            process: ProcessRef::of(&owner.process),
            service: owner.process.service.clone(),
            launchd: owner.process.launchd.clone(),
        })
        .collect()
}

/// How to stop one owner of `owners` owners, with what to know first.
fn stop_owner(o: &Owner, owners: usize, policy: &Policy) -> Fix {
    let case = if !policy.is_openviking(&o.process) {
        StopCase::NotOpenViking
    } else if o.protocols.contains(&Protocol::PidFile) && owners > 1 {
        StopCase::BlindToFlock
    } else {
        StopCase::Plain
    };
    Fix::Stop {
        process: ProcessRef::of(&o.process),
        service: o.process.service.clone(),
        launchd: o.process.launchd.clone(),
        case,
    }
}

/// What to do when it cannot be decided: look again, look with more
/// privilege, look by hand.
fn when_unknown(pid_file: &PidFileVerdict, facts: &Facts) -> Vec<Fix> {
    let mut fixes = Vec::new();
    if matches!(pid_file, PidFileVerdict::BeingWritten) {
        fixes.push(Fix::LookAgain);
    }
    if let Some(lacks) = facts.host.lacks {
        fixes.push(Fix::LookWith(lacks));
    }
    fixes.push(Fix::LookByHand);
    fixes
}

/// How many processes that may be OpenViking a scan could not inspect
/// (none without a scan).
fn suspects(facts: &Facts, policy: &Policy) -> usize {
    match &facts.usage {
        Some(Ok(usage)) => storage::suspects(usage, policy, &[]).len(),
        _ => 0,
    }
}
