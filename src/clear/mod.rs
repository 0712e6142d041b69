//! clear-stale: removing `.openviking.pid` files whose owner is gone, and
//! stale path locks (`clear::path_lock`), and nothing else.
//! `.openviking.lock` is never removed: OpenViking relies on every contender
//! locking the same inode.
//!
//! A starting OpenViking 0.4.20 takes over a stale file by truncating it and
//! writing its own PID into the same inode, so no re-read before an unlink by
//! path can close the race: the takeover may land between the two. Instead
//! the file is first renamed aside, atomically. A server that opens the path
//! afterwards creates a new file and is unaffected; one that opened it before
//! truncated it then, which the check of the moved file sees. Only a moved
//! file that is still exactly the one judged, and is judged stale again with
//! a fresh look at its PID, is unlinked; anything else is put back.

use std::path::PathBuf;
use std::time::Duration;

mod path_lock;
#[cfg(windows)]
mod windows;

use crate::inspect::path_locks::LockFileRead;
use crate::inspect::{self, Facts, LockFile, PID_NAME, Processes};
use crate::judge::{
    self, JudgedPathLock, Judgement, PathLockContext, PathLockReason, PathLockState,
    PidFileVerdict, Policy, Refresher, Staleness,
};

/// A stale lock file that clear-stale acted on.
pub struct Removal {
    /// Its absolute path.
    pub path: PathBuf,
    pub reason: Stale,
    pub outcome: Outcome,
}

/// Why a removed file was stale.
pub enum Stale {
    PidFile(Staleness),
    PathLock(Box<JudgedPathLock>),
}

/// Why a path lock judged stale was left in place after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptBecause {
    /// The second look found a live server holding the directory.
    OwnerAfterAll,
    /// The second look could not tell whether a live server holds it.
    OwnerUndecided,
    /// The second look no longer judged it stale, for another reason.
    NoLongerStale,
    /// The second look did not find the file.
    NotFoundAgain,
    /// Dated ahead beside a live server, which rewrites its own lease
    /// within this long: longer than clear-stale watches.
    WatchTooLong(Duration),
    /// Its content or identity changed since it was judged, or it is no
    /// longer stale by the clock under the lock.
    Changed,
    /// OpenViking holds its lock right now, to refresh or release it.
    Busy,
}

/// How a removal ended when nothing failed.
enum Done {
    /// Unlinked, for this reason.
    Removed(Staleness),
    /// Left in place: it changed, or another run (or OpenViking) removed
    /// it first, which meets the goal.
    Kept,
}

/// What became of a stale lock file.
pub enum Outcome {
    Removed,
    /// `--dry-run`.
    WouldRemove,
    /// Left in place: what it was judged on no longer holds.
    Kept(KeptBecause),
    /// unlink failed; the text says why.
    Failed(String),
}

/// Removes (or, with `dry_run`, names) the stale pid file and path locks
/// the judgement found.
pub fn clear(
    facts: &Facts,
    judgement: &Judgement,
    policy: &Policy,
    processes: &mut Processes,
    dry_run: bool,
) -> Vec<Removal> {
    let mut removals = clear_pid_file(facts, policy, processes, dry_run);
    removals.extend(clear_path_locks(
        facts, judgement, policy, processes, dry_run,
    ));
    removals
}

/// The directory as it is now: its locks read again from a new reading of
/// the kernel's lock table, and scanned where that reading needs it (or
/// where the survey scanned). What a removal rests on ("no live owner") is
/// established again this way just before it, as carefully as the survey
/// established it.
fn facts_now(facts: &Facts, policy: &Policy, processes: &mut Processes) -> Facts {
    let mut now = inspect::locks_now(facts, processes);
    if facts.usage.is_some() || judge::needs_scan(&now, policy) {
        inspect::usage::attach(std::iter::once(&mut now), processes);
    }
    now
}

/// The longest clear-stale watches a token dated ahead of the clock beside a
/// live server before it removes it.
const LONGEST_WATCH: Duration = Duration::from_secs(60);

/// Removes each path lock judged stale, if it still is (`path_lock::remove`).
fn clear_path_locks(
    facts: &Facts,
    judgement: &Judgement,
    policy: &Policy,
    processes: &mut Processes,
    dry_run: bool,
) -> Vec<Removal> {
    let stale: Vec<&JudgedPathLock> = judgement
        .path_locks
        .iter()
        .filter(|p| p.state == PathLockState::Stale)
        .collect();
    let mut removals = Vec::new();
    // A token dated ahead beside a live server may be its own lease, if the
    // clock has just stepped back: the server rewrites each of its leases
    // within a third of lock_expire_secs, so one left unchanged that long is
    // not refreshed by anyone.
    let watch = stale.iter().filter_map(|p| ahead_beside_an_owner(p)).max();
    if let Some(watch) = watch.filter(|w| *w <= LONGEST_WATCH && !dry_run) {
        std::thread::sleep(watch);
    }
    // Whether a live server holds the directory, looked at again once the
    // watch is over and just before the removals: a server seen then
    // refreshes its leases, and one that starts after it makes new ones.
    let now = (!dry_run && !stale.is_empty())
        .then(|| judge::judge(&facts_now(facts, policy, processes), policy));
    for judged in stale {
        let judged_now = now.as_ref().map(|now| {
            now.path_locks
                .iter()
                .find(|p| p.file.path == judged.file.path)
        });
        let outcome = match judged_now {
            Some(Some(again)) if again.state != PathLockState::Stale => {
                Some(Outcome::Kept(no_longer_stale(judged, again)))
            }
            Some(None) => Some(Outcome::Kept(KeptBecause::NotFoundAgain)),
            Some(Some(again)) => clear_path_lock(facts, again, dry_run),
            None => clear_path_lock(facts, judged, dry_run),
        };
        if let Some(outcome) = outcome {
            removals.push(Removal {
                path: judged.file.path.clone(),
                reason: Stale::PathLock(Box::new(judged.clone())),
                outcome,
            });
        }
    }
    removals
}

/// Why a path lock judged stale is kept after a second look at the
/// directory's owners.
fn no_longer_stale(before: &JudgedPathLock, again: &JudgedPathLock) -> KeptBecause {
    match (before.context.refresher, again.context.refresher) {
        (Refresher::Nobody, Refresher::Live) => KeptBecause::OwnerAfterAll,
        (Refresher::Nobody, Refresher::Unknown) => KeptBecause::OwnerUndecided,
        _ => KeptBecause::NoLongerStale,
    }
}

/// What becomes of one path lock judged stale; None when there is nothing
/// to say (it cannot be removed as it was never read, or its owner removed
/// it meanwhile, which meets the goal).
fn clear_path_lock(facts: &Facts, judged: &JudgedPathLock, dry_run: bool) -> Option<Outcome> {
    let LockFileRead::Read { meta, content, .. } = &judged.file.read else {
        return None;
    };
    let rel = judged.file.path.strip_prefix(&facts.resolved_dir).ok()?;
    if let Some(watch) = ahead_beside_an_owner(judged).filter(|w| *w > LONGEST_WATCH) {
        return Some(Outcome::Kept(KeptBecause::WatchTooLong(watch)));
    }
    if dry_run {
        return Some(Outcome::WouldRemove);
    }
    // Judged again from the bytes as they are under the lock, by the clock
    // as it is then.
    let still_stale = |bytes: &[u8], modified| {
        let cx = PathLockContext {
            now: std::time::SystemTime::now(),
            ..judged.context
        };
        judge::path_lock_still_stale(bytes, modified, &cx)
    };
    let judged_file = path_lock::Judged {
        id: (meta.stat.dev, meta.stat.ino),
        size: meta.stat.size,
        content,
    };
    Some(
        match path_lock::remove(&facts.resolved_dir, rel, &judged_file, still_stale) {
            path_lock::Attempt::Removed => Outcome::Removed,
            path_lock::Attempt::Changed => Outcome::Kept(KeptBecause::Changed),
            path_lock::Attempt::Busy => Outcome::Kept(KeptBecause::Busy),
            path_lock::Attempt::Gone => return None,
            path_lock::Attempt::Failed(why) => Outcome::Failed(why),
        },
    )
}

/// How long to watch a stale path lock before removing it: a token dated
/// ahead of the clock beside a live (or undecided) owner, for a third of
/// lock_expire_secs and a margin; None for any other.
fn ahead_beside_an_owner(p: &JudgedPathLock) -> Option<Duration> {
    let ahead = matches!(p.reason, PathLockReason::Ahead { remote: false, .. });
    let owned = p.context.refresher != Refresher::Nobody;
    (ahead && owned).then(|| p.context.expire.unwrap_or(Duration::MAX) / 3 + judge::SLACK)
}

/// Removes (or names) the pid file, if it is stale.
fn clear_pid_file(
    facts: &Facts,
    policy: &Policy,
    processes: &mut Processes,
    dry_run: bool,
) -> Vec<Removal> {
    let PidFileVerdict::Stale(why) = judge::pid_file_verdict(facts, policy) else {
        return Vec::new();
    };
    let path = facts.resolved_dir.join(PID_NAME);
    if dry_run {
        return vec![Removal {
            path,
            reason: Stale::PidFile(why),
            outcome: Outcome::WouldRemove,
        }];
    }
    // Judged again from the file as it is when it is removed, with a fresh
    // look at the process it names.
    // The clock is read again too: the judgement may have taken seconds (a
    // scan), and "written less than 2 s ago" must hold for now.
    // The directory's locks are read again too (`facts_now`), before the
    // move, so that the file is aside for no longer than its own re-check:
    // the storage locks tell whether the PID may be a container's server.
    let locks = facts_now(facts, policy, processes);
    let still_stale = |file: &LockFile, processes: &mut Processes| -> Option<Staleness> {
        let pid = inspect::pid_file_facts(file.clone(), &facts.resolved_dir, processes);
        let fresh = Facts {
            pid_file: pid.file,
            pid_owner: pid.owner,
            pid_owner_uses_dir: pid.owner_uses_dir,
            host: inspect::Host::current(),
            ..locks.clone()
        };
        match judge::pid_file_verdict(&fresh, policy) {
            PidFileVerdict::Stale(why) => Some(why),
            _ => None,
        }
    };
    match remove(facts, processes, still_stale) {
        Ok(Done::Removed(reason)) => vec![Removal {
            path,
            reason: Stale::PidFile(reason),
            outcome: Outcome::Removed,
        }],
        Ok(Done::Kept) => Vec::new(),
        Err(err) => vec![Removal {
            path,
            reason: Stale::PidFile(why),
            outcome: Outcome::Failed(err),
        }],
    }
}

/// Moves the pid file aside, checks it, and unlinks it or puts it back.
#[cfg(unix)]
fn remove(
    facts: &Facts,
    processes: &mut Processes,
    still_stale: impl Fn(&LockFile, &mut Processes) -> Option<Staleness>,
) -> Result<Done, String> {
    use rustix::fs::{AtFlags, CWD, Mode, OFlags, openat, renameat, unlinkat};
    use rustix::io::Errno;

    // Every step goes through one descriptor of the directory, so a parent
    // swapped for a symlink meanwhile cannot redirect it.
    let dir = openat(
        CWD,
        &facts.resolved_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|err| format!("cannot open {}: {err}", facts.resolved_dir.display()))?;
    // Taken over since it was judged (the judgement may have scanned every
    // process): leave it, rather than move a live lock out of the way.
    if fsread_at(&dir, PID_NAME).is_none_or(|now| !same_file(&facts.pid_file, &now)) {
        return Ok(Done::Kept);
    }
    // Unique per run, so no earlier file left aside is ever replaced.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let aside = format!("{}{}-{nanos}", inspect::ASIDE_PREFIX, std::process::id());
    match renameat(&dir, PID_NAME, &dir, &aside) {
        Ok(()) => {}
        Err(Errno::NOENT) => return Ok(Done::Kept),
        Err(err) => return Err(format!("cannot move it aside: {err}")),
    }
    // Now that no one can reach it by its name: a server that took it over
    // just before the move has written into it, so anything but the very
    // file judged goes back. That one is judged again, as it is now.
    let reason = fsread_at(&dir, &aside)
        .filter(|moved| same_file(&facts.pid_file, moved))
        .and_then(|moved| still_stale(&moved, processes));
    let Some(reason) = reason else {
        return match put_back(&dir, &aside) {
            Ok(()) => Ok(Done::Kept),
            // A new pid file is in the way. The moved one may still go, if
            // the process it names exists nowhere: not here, and not as the
            // PID of any other PID namespace.
            Err(err) => match fsread_at(&dir, &aside).and_then(|moved| moved.pid()) {
                Some(pid) if inspect::exists_nowhere(pid) => {
                    unlinkat(&dir, &aside, AtFlags::empty())
                        .map_err(|err| format!("cannot remove {aside}: {err}"))?;
                    Ok(Done::Removed(Staleness::GoneEverywhere { pid }))
                }
                _ => Err(err),
            },
        };
    };
    unlinkat(&dir, &aside, AtFlags::empty())
        .map_err(|err| format!("cannot remove {aside}: {err}"))?;
    Ok(Done::Removed(reason))
}

/// The file `name` in `dir` as a lock file, or None when it cannot be read.
#[cfg(unix)]
fn fsread_at(dir: &std::os::fd::OwnedFd, name: &str) -> Option<LockFile> {
    use std::os::fd::AsFd;
    let snapshot =
        crate::inspect::fsread::read_capped_at(dir.as_fd(), name, inspect::DIR_LOCK_READ_CAP)
            .ok()?;
    Some(LockFile::Present {
        stat: snapshot.stat,
        content: Ok(snapshot.content),
        truncated: snapshot.truncated,
    })
}

/// Restores a live (or unjudgeable) file moved aside, never over a pid file
/// a starting server may have written meanwhile: neither may be destroyed,
/// so then the moved one stays aside, and two servers really are starting.
/// A hard link fails atomically when the name exists, on NFS and FUSE too,
/// where a no-replace rename is refused as unsupported.
#[cfg(unix)]
fn put_back(dir: &std::os::fd::OwnedFd, aside: &str) -> Result<(), String> {
    use rustix::fs::{AtFlags, linkat, unlinkat};
    use rustix::io::Errno;
    let conflict = |err: Errno| {
        format!(
            "it changed while being cleared and a new {PID_NAME} appeared meanwhile ({err}): \
             two servers may be starting at once; the changed file was left as {aside}"
        )
    };
    match linkat(dir, aside, dir, PID_NAME, AtFlags::empty()) {
        Ok(()) => {
            // Both names now hold the file; the aside one goes.
            let _ = unlinkat(dir, aside, AtFlags::empty());
            Ok(())
        }
        Err(Errno::EXIST) => Err(conflict(Errno::EXIST)),
        // No hard links here: a rename that refuses to replace, where there is one.
        Err(_) => rename_back(dir, aside).map_err(|err| match err {
            Errno::EXIST => conflict(err),
            _ => format!("cannot put it back ({err}); it was left as {aside}"),
        }),
    }
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn rename_back(dir: &std::os::fd::OwnedFd, aside: &str) -> rustix::io::Result<()> {
    rustix::fs::renameat_with(
        dir,
        aside,
        dir,
        PID_NAME,
        rustix::fs::RenameFlags::NOREPLACE,
    )
}

/// Other systems have no atomic no-replace rename: check, then rename, which
/// leaves a window where a pid file made in between is replaced.
#[cfg(all(
    unix,
    not(any(target_os = "linux", target_os = "android", target_vendor = "apple"))
))]
fn rename_back(dir: &std::os::fd::OwnedFd, aside: &str) -> rustix::io::Result<()> {
    match rustix::fs::statat(dir, PID_NAME, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Err(rustix::io::Errno::EXIST),
        Err(_) => rustix::fs::renameat(dir, aside, dir, PID_NAME),
    }
}

#[cfg(windows)]
use windows::remove;

/// Elsewhere there is no renameat: re-read the file just before removing it
/// by path, which narrows the window a takeover could use.
#[cfg(not(any(unix, windows)))]
fn remove(
    facts: &Facts,
    processes: &mut Processes,
    still_stale: impl Fn(&LockFile, &mut Processes) -> Option<Staleness>,
) -> Result<Done, String> {
    let path = facts.resolved_dir.join(PID_NAME);
    let now = inspect::read_lock_file(&path);
    if !same_file(&facts.pid_file, &now) {
        return Ok(Done::Kept);
    }
    let Some(reason) = still_stale(&now, processes) else {
        return Ok(Done::Kept);
    };
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(Done::Removed(reason)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Done::Kept),
        Err(err) => Err(err.to_string()),
    }
}

/// The same file with the same content: inode, size, modification time and bytes.
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
