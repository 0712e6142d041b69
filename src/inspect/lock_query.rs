//! The facts ovlock draws from a kernel that answers questions about one
//! file at a time (macOS: `F_GETLK` and libproc) rather than listing every
//! lock (Linux's /proc/locks). The platform code only answers [`LockQuery`];
//! what the answers mean is decided here, once, so that it is tested on
//! Linux with a stand-in that answers as macOS does. The storage files to
//! ask about are found here too, with nothing but std.

use std::path::{Path, PathBuf};

use super::Lookup;
use super::flock::{FlockState, HolderDoubt};
use super::kernel_locks::{KernelLock, LockClass};
use super::storage_locks::StorageLocks;
use super::usage::{Access, PathAccess};
use crate::inspect::fsread::FileStat;
use crate::openviking::layout;

/// How deep below a storage directory files are looked for; RocksDB's
/// lock sits three levels down (`vectordb/context/store/LOCK`).
const MAX_DEPTH: usize = 6;
/// How many directory entries one storage walk reads at most.
const MAX_ENTRIES: usize = 200_000;

/// A lock that would stop an exclusive lock of the whole file, as `F_GETLK`
/// reports the first one it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conflict {
    /// The process that took it: None for a flock, which records no owner
    /// (`l_pid` = -1).
    pub pid: Option<u32>,
    /// A write lock rather than a read lock.
    pub exclusive: bool,
}

/// The processes that have one file open, this one aside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Openers {
    pub pids: Vec<u32>,
    /// Processes whose descriptors could not be read (another user's, when
    /// not root): any of them may have it open.
    pub uninspected: Vec<u32>,
}

/// What is asked of the kernel about one file; it never takes a lock.
pub trait LockQuery {
    /// The lock held on the file at `path`, if any; `stat` is what was
    /// found there, which it must still be.
    fn conflict(&self, path: &Path, stat: &FileStat) -> Result<Option<Conflict>, String>;
    /// The processes with the file `stat` describes open.
    fn openers(&self, stat: &FileStat) -> Result<Openers, String>;
}

/// The state of the flock on `.openviking.lock` at `path`. A flock names no
/// owner, so its holders are the processes that have the file open (every
/// process sharing the open file holds it); when none of those could be
/// read, it is held by an unknown owner, never free.
pub fn flock_state(query: &impl LockQuery, path: &Path, stat: &FileStat) -> FlockState {
    let conflict = match query.conflict(path, stat) {
        Ok(None) => return FlockState::Unheld,
        Ok(Some(conflict)) => conflict,
        Err(why) => return FlockState::Unknown(why),
    };
    let held = |holders: Vec<u32>, doubt| FlockState::Held {
        holders,
        recorded_pid: conflict.pid,
        recorded_exited: false,
        doubt,
    };
    let openers = match query.openers(stat) {
        Ok(openers) => openers,
        Err(why) => {
            let unseen = format!("the processes with it open could not be listed: {why}");
            return match conflict.pid {
                Some(pid) => held(
                    vec![pid],
                    Some(HolderDoubt::Unconfirmed { pid, why: unseen }),
                ),
                None => held(Vec::new(), Some(HolderDoubt::Unseen(unseen))),
            };
        }
    };
    match conflict.pid {
        // A POSIX or OFD lock names its taker: trust the kernel, and say
        // when that process's files could not confirm it.
        Some(pid) if openers.pids.contains(&pid) => held(vec![pid], None),
        Some(pid) => {
            let why = if openers.uninspected.contains(&pid) {
                "its descriptors may not be read (another user's process)"
            } else {
                "no descriptor of it on this file was found"
            };
            held(
                vec![pid],
                Some(HolderDoubt::Unconfirmed {
                    pid,
                    why: why.into(),
                }),
            )
        }
        None if !openers.pids.is_empty() => {
            let mut holders = openers.pids;
            // The server before the workers it forked, which have higher PIDs.
            holders.sort_unstable();
            held(holders, None)
        }
        None if !openers.uninspected.is_empty() => held(
            Vec::new(),
            Some(HolderDoubt::Unseen(format!(
                "{} processes could not be inspected",
                openers.uninspected.len()
            ))),
        ),
        None => held(Vec::new(), Some(HolderDoubt::NoneFound { recorded: None })),
    }
}

/// The locks on a data directory's storage files (`files`: their paths and
/// metadata), each asked of the kernel: a POSIX lock names its process, which
/// `lookup` looks up; a lock that names none, or a process that cannot be
/// read, is unidentified.
pub fn storage_locks(
    query: &impl LockQuery,
    files: &[(PathBuf, FileStat)],
    mut lookup: impl FnMut(u32) -> Lookup,
) -> StorageLocks {
    let mut found = StorageLocks::default();
    for (path, stat) in files {
        let conflict = match query.conflict(path, stat) {
            Ok(Some(conflict)) => conflict,
            Ok(None) => continue,
            Err(why) => {
                found.incomplete = Some(format!("cannot ask about {}: {why}", path.display()));
                continue;
            }
        };
        let lock = kernel_lock(conflict, stat);
        let Some(pid) = conflict.pid else {
            found.add_unidentified(
                path,
                &lock,
                None,
                false,
                "the kernel records no process for it (a flock)".into(),
            );
            continue;
        };
        let access = PathAccess {
            path: path.clone(),
            access: Access::Open,
            locks: vec![lock.clone()],
        };
        if let Some(holder) = found.holders.iter_mut().find(|h| h.process.pid == pid) {
            holder.accesses.push(access);
            continue;
        }
        found.add_looked_up(access, &lock, pid, lookup(pid), Vec::new);
    }
    for holder in &mut found.holders {
        holder.accesses.sort_by(|a, b| a.path.cmp(&b.path));
    }
    found
}

/// The files under `dir`'s storage directories that take kernel locks
/// (see [`layout::takes_kernel_locks`]), with why the walk stopped short, if
/// it did. Symlinks are never followed and other filesystems never entered.
pub fn storage_files(dir: &Path) -> (Vec<(PathBuf, FileStat)>, Option<String>) {
    use std::os::unix::fs::MetadataExt;
    let mut files = Vec::new();
    let Ok(top) = std::fs::symlink_metadata(dir) else {
        return (files, None);
    };
    let mut pending: Vec<(PathBuf, usize)> = layout::STORAGE_DIRS
        .iter()
        .map(|name| (dir.join(name), 0))
        .collect();
    let mut entries = 0;
    while let Some((path, depth)) = pending.pop() {
        let Ok(listing) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in listing.flatten() {
            entries += 1;
            if entries > MAX_ENTRIES {
                let why = format!(
                    "the storage holds more than {MAX_ENTRIES} entries; the rest was not searched"
                );
                return (files, Some(why));
            }
            let child = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&child) else {
                continue;
            };
            if meta.dev() != top.dev() {
                continue;
            }
            if meta.is_dir() && depth < MAX_DEPTH {
                pending.push((child, depth + 1));
            } else if meta.is_file() && layout::takes_kernel_locks(&entry.file_name()) {
                let stat = FileStat {
                    dev: meta.dev(),
                    ino: meta.ino(),
                    size: meta.size(),
                    modified: meta.modified().ok(),
                };
                files.push((child, stat));
            }
        }
    }
    (files, None)
}

/// The lock `F_GETLK` reported, in the shape of a lock-table entry.
fn kernel_lock(conflict: Conflict, stat: &FileStat) -> KernelLock {
    let dev = stat.dev;
    KernelLock {
        class: match conflict.pid {
            Some(_) => LockClass::Posix,
            None => LockClass::Flock,
        },
        exclusive: conflict.exclusive,
        pid: conflict.pid,
        // macOS's dev_t: 8 bits of major, 24 of minor.
        dev_major: ((dev >> 24) & 0xff) as u32,
        dev_minor: (dev & 0xff_ffff) as u32,
        ino: stat.ino,
        waiting: false,
    }
}

#[cfg(test)]
mod tests {
    //! A stand-in for macOS's kernel: it answers `F_GETLK` as XNU does (a
    //! flock with no PID, a POSIX lock with its PID) and libproc as it does
    //! (another user's process refuses: EPERM, counted as uninspected).

    use std::collections::HashMap;

    use super::*;
    use crate::inspect::process::LaunchdJob;
    use crate::inspect::usage::User;
    use crate::inspect::{LockFile, Privilege};
    use crate::judge::tests::{base, server};
    use crate::judge::{Fix, Policy, Verdict, judge};
    use crate::render::words::Worded;

    #[derive(Default)]
    struct Xnu {
        locks: HashMap<PathBuf, Conflict>,
        /// Inode → processes with it open.
        open: HashMap<u64, Vec<u32>>,
        /// Processes that answer EPERM.
        other_users: Vec<u32>,
    }

    impl LockQuery for Xnu {
        fn conflict(&self, path: &Path, _: &FileStat) -> Result<Option<Conflict>, String> {
            Ok(self.locks.get(path).copied())
        }

        fn openers(&self, stat: &FileStat) -> Result<Openers, String> {
            let pids = self.open.get(&stat.ino).cloned().unwrap_or_default();
            Ok(Openers {
                pids: pids
                    .into_iter()
                    .filter(|p| !self.other_users.contains(p))
                    .collect(),
                uninspected: self.other_users.clone(),
            })
        }
    }

    fn policy() -> Policy {
        Policy::new(&[])
    }

    const FLOCK: Conflict = Conflict {
        pid: None,
        exclusive: true,
    };

    fn posix(pid: u32) -> Conflict {
        Conflict {
            pid: Some(pid),
            exclusive: true,
        }
    }

    fn stat(ino: u64) -> FileStat {
        FileStat {
            dev: 0x0100_0004,
            ino,
            size: 0,
            modified: None,
        }
    }

    fn lock_path() -> PathBuf {
        base().resolved_dir.join(".openviking.lock")
    }

    /// The facts of `/srv/ov/data` with `.openviking.lock` (inode 2) as the
    /// stand-in tells it, its holders looked up as `alive`.
    fn facts_from(xnu: &Xnu, alive: &[u32]) -> crate::inspect::Facts {
        let mut facts = base();
        facts.lock_file = LockFile::Present {
            stat: stat(2),
            content: Ok(Vec::new()),
            truncated: false,
        };
        let state = flock_state(xnu, &lock_path(), &stat(2));
        if let FlockState::Held { holders, .. } = &state {
            facts.flock_holders = holders
                .iter()
                .map(|&pid| {
                    if alive.contains(&pid) {
                        Lookup::Alive(server(pid))
                    } else {
                        Lookup::Unknown(format!("PID {pid} exists but cannot be read"))
                    }
                })
                .collect();
        }
        facts.flock = Some(state);
        facts
    }

    /// What a reader is told to do when the flock holder 4242 runs as `job`.
    fn fixes_for(job: Option<LaunchdJob>) -> Vec<String> {
        let mut xnu = Xnu::default();
        xnu.locks.insert(lock_path(), FLOCK);
        xnu.open.insert(2, vec![4242]);
        let mut facts = facts_from(&xnu, &[4242]);
        for lookup in &mut facts.flock_holders {
            if let Lookup::Alive(p) = lookup {
                p.launchd = job.clone().map(Box::new);
            }
        }
        Worded::of(&facts, &judge(&facts, &policy())).fixes
    }

    #[test]
    fn macos_a_launch_agent_is_stopped_with_launchctl_bootout_not_kill() {
        let fixes = fixes_for(Some(LaunchdJob {
            label: Some("ai.openviking.server".into()),
            uid: Some(501),
        }));
        let stop = fixes.iter().find(|f| f.starts_with("Stop ")).unwrap();
        assert!(
            stop.ends_with("launchctl bootout gui/501/ai.openviking.server"),
            "{stop}"
        );
        assert!(!stop.contains("kill 4242"), "{stop}");
    }

    #[test]
    fn macos_a_launch_daemon_is_booted_out_of_the_system_domain() {
        let fixes = fixes_for(Some(LaunchdJob {
            label: Some("ai.openviking.server".into()),
            uid: Some(0),
        }));
        let stop = fixes.iter().find(|f| f.starts_with("Stop ")).unwrap();
        assert!(
            stop.ends_with("sudo launchctl bootout system/ai.openviking.server"),
            "{stop}"
        );
    }

    #[test]
    fn macos_a_child_of_launchd_without_a_known_label_says_how_to_find_it() {
        let fixes = fixes_for(Some(LaunchdJob {
            label: None,
            uid: Some(501),
        }));
        let stop = fixes.iter().find(|f| f.starts_with("Stop ")).unwrap();
        assert!(
            stop.contains("launchctl list | grep -i openviking"),
            "{stop}"
        );
        assert!(stop.contains("launchctl bootout gui/501/LABEL"), "{stop}");
        assert!(
            stop.ends_with("if it is no launchd job: kill 4242"),
            "{stop}"
        );
    }

    #[test]
    fn macos_a_launch_agent_whose_lock_file_was_deleted_is_restarted_with_kickstart() {
        let mut facts = base();
        let mut agent = server(4242);
        agent.launchd = Some(Box::new(LaunchdJob {
            label: Some("ai.openviking.server".into()),
            uid: Some(501),
        }));
        facts.storage_locks.holders.push(User {
            process: agent,
            ns_pids: Vec::new(),
            accesses: vec![PathAccess {
                path: crate::openviking::layout::deleted_lock_file(&facts.resolved_dir),
                access: Access::Open,
                locks: Vec::new(),
            }],
        });
        let fixes = Worded::of(&facts, &judge(&facts, &policy())).fixes;
        let restart = fixes.iter().find(|f| f.starts_with("Restart ")).unwrap();
        assert!(
            restart.ends_with("launchctl kickstart -k gui/501/ai.openviking.server"),
            "{restart}"
        );
    }

    #[test]
    fn macos_a_server_launchd_does_not_run_is_killed() {
        let fixes = fixes_for(None);
        let stop = fixes.iter().find(|f| f.starts_with("Stop ")).unwrap();
        assert!(stop.ends_with(": kill 4242"), "{stop}");
    }

    #[test]
    fn macos_an_unheld_lock_file_is_free() {
        let xnu = Xnu::default();
        let facts = facts_from(&xnu, &[]);
        assert_eq!(facts.flock, Some(FlockState::Unheld));
        assert_eq!(judge(&facts, &policy()).verdict, Verdict::Free);
    }

    #[test]
    fn macos_a_flock_without_a_pid_is_held_by_the_process_with_the_file_open() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(lock_path(), FLOCK);
        xnu.open.insert(2, vec![4242]);
        let facts = facts_from(&xnu, &[4242]);
        assert_eq!(
            facts.flock,
            Some(FlockState::Held {
                holders: vec![4242],
                recorded_pid: None,
                recorded_exited: false,
                doubt: None,
            })
        );
        let j = judge(&facts, &policy());
        assert_eq!(j.verdict, Verdict::Held);
        assert_eq!(j.owners[0].process.pid, 4242);
    }

    #[test]
    fn macos_a_server_and_the_worker_it_forked_are_one_owner() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(lock_path(), FLOCK);
        xnu.open.insert(2, vec![4300, 4242]);
        let facts = facts_from(&xnu, &[4242, 4300]);
        let j = judge(&facts, &policy());
        assert_eq!(j.verdict, Verdict::Held);
        assert_eq!(j.owners.len(), 1);
        assert_eq!(
            (j.owners[0].process.pid, &j.owners[0].workers[..]),
            (4242, &[4300][..])
        );
    }

    #[test]
    fn macos_a_flock_held_by_another_users_process_is_held_by_an_unknown_owner() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(lock_path(), FLOCK);
        xnu.open.insert(2, vec![501]);
        xnu.other_users = vec![501, 502];
        let mut facts = facts_from(&xnu, &[]);
        facts.host.lacks = Some(Privilege::Root);
        assert_eq!(
            facts.flock,
            Some(FlockState::Held {
                holders: Vec::new(),
                recorded_pid: None,
                recorded_exited: false,
                doubt: Some(HolderDoubt::Unseen(
                    "2 processes could not be inspected".into()
                )),
            })
        );
        let j = judge(&facts, &policy());
        // Never free: held, and the way to name the holder is said.
        assert_eq!(j.verdict, Verdict::Held);
        assert!(j.owners.is_empty());
        assert_eq!(j.fixes, vec![Fix::FindHolder(Some(Privilege::Root))]);
    }

    #[test]
    fn macos_a_posix_lock_on_the_lock_file_names_its_pid() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(lock_path(), posix(4242));
        xnu.open.insert(2, vec![4242]);
        let facts = facts_from(&xnu, &[4242]);
        let j = judge(&facts, &policy());
        assert_eq!(j.verdict, Verdict::Held);
        assert_eq!(j.owners[0].process.pid, 4242);
    }

    #[test]
    fn macos_a_posix_lock_of_another_users_process_is_held_unconfirmed() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(lock_path(), posix(501));
        xnu.other_users = vec![501];
        let facts = facts_from(&xnu, &[]);
        assert!(matches!(
            &facts.flock,
            Some(FlockState::Held {
                holders,
                doubt: Some(HolderDoubt::Unconfirmed { pid: 501, .. }),
                ..
            }) if holders == &[501]
        ));
        assert_eq!(judge(&facts, &policy()).verdict, Verdict::Held);
    }

    #[test]
    fn macos_a_lock_file_that_cannot_be_opened_is_unknown_and_root_is_named() {
        struct Refusing;
        impl LockQuery for Refusing {
            fn conflict(&self, _: &Path, _: &FileStat) -> Result<Option<Conflict>, String> {
                Err("permission denied".into())
            }
            fn openers(&self, _: &FileStat) -> Result<Openers, String> {
                unreachable!("never asked when the lock cannot be read")
            }
        }
        let state = flock_state(&Refusing, &lock_path(), &stat(2));
        assert_eq!(state, FlockState::Unknown("permission denied".into()));
        // Another user's 0600 lock file, as a user: never free, and root is named.
        let mut facts = facts_from(&Xnu::default(), &[]);
        facts.flock = Some(state);
        facts.host.lacks = Some(Privilege::Root);
        let j = judge(&facts, &policy());
        assert_eq!(j.verdict, Verdict::Unknown);
        assert!(
            j.fixes.contains(&Fix::LookWith(Privilege::Root)),
            "{:?}",
            j.fixes
        );
    }

    fn store_lock() -> PathBuf {
        base().resolved_dir.join("vectordb/context/store/LOCK")
    }

    fn queue_db() -> PathBuf {
        base().resolved_dir.join("_system/queue/queue.db")
    }

    fn two_storage_files() -> Vec<(PathBuf, FileStat)> {
        vec![(store_lock(), stat(10)), (queue_db(), stat(11))]
    }

    fn alive(pid: u32) -> Lookup {
        Lookup::Alive(server(pid))
    }

    #[test]
    fn macos_a_server_that_let_go_of_its_flock_still_holds_its_storage() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(store_lock(), posix(4242));
        xnu.locks.insert(
            queue_db(),
            Conflict {
                pid: Some(4242),
                exclusive: false,
            },
        );
        let mut facts = facts_from(&xnu, &[]);
        facts.storage_locks = storage_locks(&xnu, &two_storage_files(), alive);
        let holders = &facts.storage_locks.holders;
        assert_eq!(holders.len(), 1);
        assert_eq!(holders[0].accesses.len(), 2);
        let j = judge(&facts, &policy());
        assert_eq!(j.verdict, Verdict::Held);
        assert_eq!(j.owners[0].process.pid, 4242);
    }

    #[test]
    fn macos_two_servers_on_one_storage_are_contention() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(lock_path(), FLOCK);
        xnu.open.insert(2, vec![4242]);
        // The second holds the queue, started on the same storage without the lock.
        xnu.locks.insert(store_lock(), posix(4242));
        xnu.locks.insert(queue_db(), posix(5151));
        let mut facts = facts_from(&xnu, &[4242]);
        facts.storage_locks = storage_locks(&xnu, &two_storage_files(), alive);
        let j = judge(&facts, &policy());
        assert_eq!(j.verdict, Verdict::Contended);
        let mut pids: Vec<u32> = j.owners.iter().map(|o| o.process.pid).collect();
        pids.sort_unstable();
        assert_eq!(pids, [4242, 5151]);
    }

    #[test]
    fn macos_a_storage_lock_of_a_process_that_cannot_be_read_is_unidentified() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(store_lock(), posix(501));
        let found = storage_locks(&xnu, &two_storage_files(), |pid| {
            Lookup::Unknown(format!("PID {pid} exists but its details cannot be read"))
        });
        assert!(found.holders.is_empty());
        assert_eq!(found.unidentified.len(), 1);
        let u = &found.unidentified[0];
        assert_eq!(
            (u.pid, u.alive, u.lock.class),
            (Some(501), true, LockClass::Posix)
        );
        let mut facts = facts_from(&xnu, &[]);
        facts.storage_locks = found;
        assert_ne!(judge(&facts, &policy()).verdict, Verdict::Free);
    }

    #[test]
    fn macos_the_storage_files_asked_about_are_the_locked_ones_and_no_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in [
            "vectordb/context/store/LOCK",
            "vectordb/context/store/LOG",
            "vectordb/context/store/000012.sst",
            "_system/queue/queue.db",
            "_system/queue/queue.db-shm",
            "_system/queue/queue.db-wal",
            "viking/default/queue.db",
        ] {
            let path = root.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, b"").unwrap();
        }
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(elsewhere.path().join("LOCK"), b"").unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), root.join("_system/linked")).unwrap();
        std::os::unix::fs::symlink(
            elsewhere.path().join("LOCK"),
            root.join("vectordb/context/LOCK"),
        )
        .unwrap();
        let (files, incomplete) = storage_files(root);
        let mut found: Vec<PathBuf> = files
            .iter()
            .map(|(p, _)| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        found.sort();
        let want: Vec<PathBuf> = [
            "_system/queue/queue.db",
            "_system/queue/queue.db-shm",
            "vectordb/context/store/LOCK",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!((found, incomplete), (want, None));
    }

    #[test]
    fn macos_a_flock_on_a_storage_file_names_no_process() {
        let mut xnu = Xnu::default();
        xnu.locks.insert(store_lock(), FLOCK);
        let found = storage_locks(&xnu, &two_storage_files(), alive);
        assert_eq!(found.unidentified.len(), 1);
        assert_eq!(found.unidentified[0].pid, None);
        assert_eq!(found.unidentified[0].lock.class, LockClass::Flock);
    }
}
