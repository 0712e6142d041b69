//! clear-stale: removing `.openviking.pid` files whose owner is gone, and
//! nothing else. `.openviking.lock` is never removed: OpenViking relies on
//! every contender locking the same inode.

use crate::inspect::{self, Facts, LockFile, PID_NAME, Processes};
use crate::judge::{self, PidFileVerdict, Policy};
use crate::render::{Outcome, Removal};

/// Removes (or, with `dry_run`, names) the stale PID file the judgement found.
///
/// The file is judged again from a fresh read immediately before it is
/// unlinked, and must still be the very file that was judged (same inode,
/// modification time and content): a server that took the lock in the
/// meantime keeps it.
pub fn clear(
    facts: &Facts,
    policy: &Policy,
    processes: &mut Processes,
    dry_run: bool,
) -> Vec<Removal> {
    let PidFileVerdict::Stale(why) = judge::pid_file_verdict(facts, policy) else {
        return Vec::new();
    };
    let path = facts.lock_dir.join(PID_NAME);
    if dry_run {
        return vec![Removal {
            path,
            reason: judge::describe_staleness(&why),
            outcome: Outcome::WouldRemove,
        }];
    }
    let pid = inspect::inspect_pid_file(&facts.lock_dir, processes);
    if !same_file(&facts.pid_file, &pid.file) {
        return Vec::new();
    }
    let fresh = Facts {
        pid_file: pid.file,
        pid_owner: pid.owner,
        pid_owner_uses_dir: pid.owner_uses_dir,
        ..facts.clone()
    };
    let PidFileVerdict::Stale(why) = judge::pid_file_verdict(&fresh, policy) else {
        return Vec::new();
    };
    let reason = judge::describe_staleness(&why);
    // unlink(2) removes a symlink itself, never its target; and the fresh read
    // above refused anything but a regular file.
    match std::fs::remove_file(&path) {
        Ok(()) => vec![Removal {
            path,
            reason,
            outcome: Outcome::Removed,
        }],
        // Someone else (another clear-stale, or OpenViking) removed it first: the goal is met.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => vec![Removal {
            path,
            reason,
            outcome: Outcome::Failed(err.to_string()),
        }],
    }
}

fn same_file(before: &LockFile, after: &LockFile) -> bool {
    match (before, after) {
        (
            LockFile::Present {
                stat: a,
                content: Ok(ca),
                ..
            },
            LockFile::Present {
                stat: b,
                content: Ok(cb),
                ..
            },
        ) => (a.dev, a.ino, a.size, a.modified) == (b.dev, b.ino, b.size, b.modified) && ca == cb,
        _ => false,
    }
}
