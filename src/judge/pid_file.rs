//! Judging `.openviking.pid` on its own: whether the PID it holds is its
//! live owner, here or as the PID of a server in another PID namespace.

use std::time::{Duration, SystemTime};

use super::finding::{PidDoubt, Staleness};
use super::judgement::PidFileVerdict;
use super::policy::Policy;
use super::users;
use crate::inspect::{Facts, LockFile, Lookup, ProcessInfo, User};
use crate::openviking::pid_file;

/// How long a PID file may be empty or unparsable before it counts as
/// abandoned rather than being written (OpenViking truncates, then writes),
/// and how much earlier than its process a PID file may seem to be written
/// (process start times are known to the second).
pub const SLACK: Duration = Duration::from_secs(2);

/// Judges `.openviking.pid` on its own: the verdict clear-stale acts on.
pub fn pid_file_verdict(facts: &Facts, policy: &Policy) -> PidFileVerdict {
    let (stat, content, truncated) = match &facts.pid_file {
        LockFile::Absent => return PidFileVerdict::Absent,
        LockFile::NotRegular(kind) => return PidFileVerdict::Unknown(PidDoubt::NotRegular(*kind)),
        LockFile::Inaccessible(err) => {
            return PidFileVerdict::Unknown(PidDoubt::Inaccessible(err.clone()));
        }
        LockFile::Present {
            content: Err(err), ..
        } => return PidFileVerdict::Unknown(PidDoubt::Unreadable(err.clone())),
        LockFile::Present {
            stat,
            content: Ok(content),
            truncated,
        } => (stat, content, *truncated),
    };
    let Some(written) = stat.modified else {
        return PidFileVerdict::Unknown(PidDoubt::NoModificationTime);
    };
    let parsed = if truncated {
        Err(Staleness::TooLong { size: stat.size })
    } else {
        pid_file::parse(content).map_err(Staleness::Unparsable)
    };
    let pid = match parsed {
        Ok(pid) => pid,
        Err(why) => {
            let young = match facts.host.now.duration_since(written) {
                Ok(age) => age < SLACK,
                Err(ahead) => ahead.duration() < SLACK,
            };
            return if young && !truncated {
                PidFileVerdict::BeingWritten
            } else {
                PidFileVerdict::Stale(why)
            };
        }
    };
    match host_pid_verdict(facts, policy, pid, written) {
        // The PID may be one of another PID namespace (a container), where
        // the server that wrote it sees itself under that number; where this
        // run could not see every such process, it cannot be ruled out.
        PidFileVerdict::Stale(why) if namespace_ambiguous(&why) => {
            match namespace_owner(facts, policy, pid, written) {
                Some(owner) => PidFileVerdict::Owned {
                    pid: owner.process.pid,
                    ns_pid: Some(pid),
                },
                None => match unseen_namespace_owner(facts, policy, pid, written) {
                    Some(doubt) => PidFileVerdict::Unknown(doubt),
                    None => PidFileVerdict::Stale(why),
                },
            }
        }
        verdict => verdict,
    }
}

/// Judges a PID file's number as a PID of this namespace.
fn host_pid_verdict(
    facts: &Facts,
    policy: &Policy,
    pid: u32,
    written: SystemTime,
) -> PidFileVerdict {
    if pid == facts.host.self_pid {
        return PidFileVerdict::Stale(Staleness::IsOvlock { pid });
    }
    let process = match &facts.pid_owner {
        None | Some(Lookup::Gone) => return PidFileVerdict::Stale(Staleness::Gone { pid }),
        Some(Lookup::Unknown(why)) => {
            return PidFileVerdict::Unknown(PidDoubt::OwnerUnreadable(why.clone()));
        }
        Some(Lookup::Alive(p)) => p,
    };
    let name = process.name.clone();
    if process.zombie {
        return PidFileVerdict::Stale(Staleness::Zombie { pid, name });
    }
    let openviking = policy.is_openviking(process);
    // Evidence beats clocks: an OpenViking process with files open in the
    // directory owns it, even where a clock stepped after boot (machines
    // without a real-time clock) makes the timestamps below lie.
    if openviking && facts.pid_owner_uses_dir == Some(true) {
        return PidFileVerdict::Owned { pid, ns_pid: None };
    }
    if facts.host.boot_time.is_some_and(|boot| written < boot) {
        return PidFileVerdict::Stale(Staleness::WrittenBeforeBoot { pid });
    }
    if process
        .started
        .is_some_and(|started| started_after_write(started, written))
    {
        return PidFileVerdict::Stale(Staleness::StartedAfterWrite { pid, name });
    }
    if !openviking {
        return PidFileVerdict::Stale(Staleness::NotOpenViking { pid, name });
    }
    PidFileVerdict::Owned { pid, ns_pid: None }
}

/// Whether a process started more than [`SLACK`] after its PID file was
/// written, which no owner can have done. Never overflows, whatever the mtime.
pub(super) fn started_after_write(started: SystemTime, written: SystemTime) -> bool {
    started.duration_since(written).is_ok_and(|gap| gap > SLACK)
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
            policy.is_openviking(p) && !p.started.is_some_and(|s| started_after_write(s, written))
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
    users::users(facts)
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
) -> Option<PidDoubt> {
    let Some(Ok(usage)) = &facts.usage else {
        return None;
    };
    let unseen: Vec<(u32, Option<String>)> = usage
        .uninspected
        .iter()
        .filter(|u| could_have_written(u.process.as_ref(), &u.ns_pids, policy, pid, written))
        .map(|u| (u.pid, u.process.as_ref().map(|p| p.name.clone())))
        .collect();
    if !unseen.is_empty() {
        return Some(PidDoubt::UnseenNamespaceOwner { pid, unseen });
    }
    facts
        .host
        .hidden_by()
        .map(|option| PidDoubt::HiddenNamespaceOwner {
            pid,
            option: option.to_string(),
        })
}
