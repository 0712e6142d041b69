//! The kernel locks on a data directory's storage files: RocksDB's
//! `vectordb/*/store/LOCK`, the SQLite queue and the usage-audit databases.
//! A server holds them for as long as it runs, with or without a lock file:
//! after it let go of `.openviking.lock` while shutting down, after that file
//! was deleted under it, and under `skip_process_lock`. They come from
//! /proc/locks, read once per survey, and a walk of the storage directories,
//! so finding them costs the same however many processes run.

#[cfg(any(target_os = "linux", target_os = "macos", test))]
use std::path::Path;
use std::path::PathBuf;

#[cfg(any(target_os = "linux", target_os = "macos", test))]
use super::Lookup;
use super::kernel_locks::KernelLock;
#[cfg(any(target_os = "linux", target_os = "macos", test))]
use super::usage::PathAccess;
use super::usage::User;

/// What the lock table says about the storage of one directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageLocks {
    /// Live processes that hold a lock on a storage file, with those files.
    pub holders: Vec<User>,
    /// Locks on storage files whose holder could not be identified.
    pub unidentified: Vec<Unidentified>,
    /// Why some of the storage could not be searched.
    pub incomplete: Option<String>,
    /// The lock table kept changing while it was read: a lock missing from
    /// it may still be held, and only the holders' descriptors can tell.
    pub unsettled: bool,
    /// Holders whose descriptors could not be read, that hold a flock the
    /// kernel shows on a file other than `.openviking.lock` at its path:
    /// most likely that file, deleted under them.
    pub unnamed_flocks: Vec<u32>,
}

/// A lock on a storage file whose holder is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unidentified {
    pub path: PathBuf,
    pub lock: KernelLock,
    /// The PID the kernel records, when it records one.
    pub pid: Option<u32>,
    /// That PID is alive (kill(2) finds it), but could not be identified.
    pub alive: bool,
    /// Why the holder is unknown.
    pub why: String,
}

impl StorageLocks {
    /// Records a lock on the storage file `path` whose holder has no PID
    /// (an open-file lock, or a flock on macOS), or one that is not known.
    #[cfg(any(target_os = "linux", target_os = "macos", test))]
    pub(crate) fn add_unidentified(
        &mut self,
        path: &Path,
        lock: &KernelLock,
        pid: Option<u32>,
        alive: bool,
        why: String,
    ) {
        self.unidentified.push(Unidentified {
            path: path.to_path_buf(),
            lock: lock.clone(),
            pid,
            alive,
            why,
        });
    }

    /// Records the holder the kernel names for a lock on the storage file
    /// `path`, as `pid` was looked up: a live process becomes a holder
    /// (with `ns_pids`, its PIDs in nested namespaces); an exiting, exited
    /// or unreadable one leaves the lock unidentified. A lock outlives
    /// neither its process (POSIX) nor its open file (flock, which a forked
    /// child may have kept): only a scan can name who holds it now.
    #[cfg(any(target_os = "linux", target_os = "macos", test))]
    pub(crate) fn add_looked_up(
        &mut self,
        access: PathAccess,
        lock: &KernelLock,
        pid: u32,
        looked_up: Lookup,
        ns_pids: impl FnOnce() -> Vec<u32>,
    ) {
        let path = access.path.clone();
        match looked_up {
            Lookup::Alive(process) if !process.zombie => self.holders.push(User {
                ns_pids: ns_pids(),
                process,
                accesses: vec![access],
            }),
            Lookup::Alive(_) => self.add_unidentified(
                &path,
                lock,
                Some(pid),
                false,
                format!("the kernel records PID {pid}, which is exiting"),
            ),
            Lookup::Gone => self.add_unidentified(
                &path,
                lock,
                Some(pid),
                false,
                format!("the kernel records PID {pid}, which has exited"),
            ),
            Lookup::Unknown(why) => self.add_unidentified(&path, lock, Some(pid), true, why),
        }
    }
}

#[cfg(target_os = "macos")]
pub use super::macos::{find, lock_holders};
#[cfg(target_os = "linux")]
pub use linux::{find, lock_holders};

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::HashSet;
    use std::os::fd::{AsFd, OwnedFd};
    use std::path::{Path, PathBuf};

    use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, openat, statat};

    use super::StorageLocks;
    use crate::inspect::kernel_locks::{KernelLock, LockClass};
    use crate::inspect::procfs::{self, FileId};
    use crate::inspect::scan::{Access, PathAccess};
    use crate::inspect::usage::RunningServer;
    use crate::inspect::{LockTable, Lookup, Processes};
    use crate::openviking::layout;

    /// How deep below a storage directory files are looked for; RocksDB's
    /// lock sits three levels down (`vectordb/context/store/LOCK`).
    const MAX_DEPTH: usize = 6;
    /// How many directory entries one walk reads at most.
    const MAX_ENTRIES: usize = 200_000;

    /// The locks in `table` on files under `dir`'s storage directories.
    /// `known` are processes already looked up (the lock files' owners), which
    /// usually hold these locks too and need not be read again.
    pub fn find(
        dir: &Path,
        table: &LockTable,
        lock_ino: Option<u64>,
        known: &[&Lookup],
        processes: &mut Processes,
    ) -> StorageLocks {
        let mut found = StorageLocks {
            unsettled: !table.settled(),
            ..StorageLocks::default()
        };
        let locks: Vec<&KernelLock> = match table.get() {
            Ok(locks) => locks.iter().filter(|l| !l.waiting).collect(),
            Err(err) => {
                found.incomplete = Some(format!("cannot read /proc/locks: {err}"));
                return found;
            }
        };
        if locks.is_empty() {
            return found;
        }
        let inodes: HashSet<u64> = locks.iter().map(|l| l.ino).collect();
        let walk = walk(dir, &inodes);
        found.incomplete = walk.incomplete;
        for (path, id) in walk.files {
            for lock in locks.iter().filter(|l| l.ino == id.ino) {
                // btrfs and overlayfs show another device in /proc/locks than
                // stat does: there the holder must have the very file open.
                let same_device = lock.device() == id.device();
                let confirmed = same_device
                    || lock
                        .pid
                        .is_some_and(|pid| procfs::has_open(pid, id).unwrap_or(false));
                if confirmed {
                    add(&mut found, &path, lock, known, processes);
                }
            }
        }
        for holder in &mut found.holders {
            let pid = holder.process.pid;
            holder.accesses.sort_by(|a, b| a.path.cmp(&b.path));
            // Only a holder of a flock on some file other than the lock file
            // at its path can hold one deleted under it: the others need not
            // have their descriptors read.
            let flock_elsewhere = locks.iter().any(|l| {
                l.class == LockClass::Flock && l.pid == Some(pid) && Some(l.ino) != lock_ino
            });
            if !flock_elsewhere {
                continue;
            }
            match procfs::fds(pid) {
                Ok(fds) => holder
                    .accesses
                    .extend(deleted_lock_file(dir, pid, &fds, &locks)),
                Err(_) => found.unnamed_flocks.push(pid),
            }
        }
        found
    }

    /// `.openviking.lock` held open by `pid` after the file was deleted, with
    /// the flock it holds on it: the server keeps its lock on an inode that
    /// no one else can reach, and a new server would lock a new file.
    fn deleted_lock_file(
        dir: &Path,
        pid: u32,
        fds: &[(u32, PathBuf)],
        locks: &[&KernelLock],
    ) -> Option<PathAccess> {
        let deleted = layout::deleted_lock_file(dir);
        let (fd, _) = fds.iter().find(|(_, target)| *target == deleted)?;
        let id = procfs::file_id(Path::new(&format!("/proc/{pid}/fd/{fd}"))).ok()?;
        let held = locks
            .iter()
            .filter(|l| l.class == LockClass::Flock && l.ino == id.ino)
            .map(|l| (*l).clone())
            .collect();
        Some(PathAccess {
            path: deleted,
            access: Access::Open,
            locks: held,
        })
    }

    /// The live processes in `table` with a data directory's files open (its
    /// `.openviking.lock`, or files under its storage), each with those
    /// directories: every running server holds such locks, so this finds
    /// them without a scan. Directories that a process of another mount
    /// namespace names by paths that mean something else here, and processes
    /// whose files cannot be read, are left out.
    pub fn lock_holders(table: &LockTable, processes: &mut Processes) -> Vec<RunningServer> {
        let Ok(locks) = table.get() else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = locks.iter().filter_map(|l| l.pid).collect();
        pids.sort_unstable();
        pids.dedup();
        let ours = procfs::OurMountNamespace::read();
        let mut found = Vec::new();
        for pid in pids {
            let Ok(other) = ours.is_other(pid) else {
                continue;
            };
            let Ok(fds) = procfs::fds(pid) else { continue };
            let mut dirs: Vec<PathBuf> = fds
                .iter()
                .filter_map(|(_, target)| layout::workspace_of(target))
                // Another namespace's paths count where they name the same
                // directory here (see `procfs::seen_alike`).
                .filter(|d| !other || procfs::seen_alike(pid, d))
                .collect();
            dirs.sort();
            dirs.dedup();
            if dirs.is_empty() {
                continue;
            }
            if let Lookup::Alive(process) = processes.lookup(pid) {
                found.push(RunningServer {
                    process,
                    dirs,
                    unreadable: false,
                    other_mount_namespace: false,
                });
            }
        }
        found
    }

    fn add(
        found: &mut StorageLocks,
        path: &Path,
        lock: &KernelLock,
        known: &[&Lookup],
        processes: &mut Processes,
    ) {
        let accesses = PathAccess {
            path: path.to_path_buf(),
            access: Access::Open,
            locks: vec![lock.clone()],
        };
        let Some(pid) = lock.pid else {
            found.add_unidentified(
                path,
                lock,
                None,
                false,
                "the kernel records no process for it (an open-file lock)".into(),
            );
            return;
        };
        if let Some(holder) = found.holders.iter_mut().find(|h| h.process.pid == pid) {
            match holder.accesses.iter_mut().find(|t| t.path == accesses.path) {
                Some(t) => t.locks.push(lock.clone()),
                None => holder.accesses.push(accesses),
            }
            return;
        }
        let seen = known
            .iter()
            .find(|l| matches!(l, Lookup::Alive(p) if p.pid == pid))
            .map(|l| (*l).clone());
        let looked_up = seen.unwrap_or_else(|| processes.lookup(pid));
        found.add_looked_up(accesses, lock, pid, looked_up, || {
            procfs::ns_pids(pid).unwrap_or_default()
        });
    }

    struct Walk {
        files: Vec<(PathBuf, FileId)>,
        incomplete: Option<String>,
    }

    /// The regular files under `dir`'s storage directories whose inode
    /// number is one of `inodes`, found by the inode numbers directory
    /// entries carry, so only those files are ever looked at. Symlinks are
    /// never followed, and network and FUSE mounts inside are not entered:
    /// one whose server hangs would hang the run.
    fn walk(dir: &Path, inodes: &HashSet<u64>) -> Walk {
        let mut walk = Walk {
            files: Vec::new(),
            incomplete: None,
        };
        let Ok(top) = open_dir(None, dir) else {
            return walk;
        };
        let mounts = procfs::hanging_mount_points().unwrap_or_default();
        let mut pending: Vec<(OwnedFd, PathBuf, usize)> = layout::STORAGE_DIRS
            .iter()
            .filter_map(|name| {
                let path = dir.join(name);
                if mounts.contains(&path) {
                    return None;
                }
                let fd = open_dir(Some(&top), Path::new(name)).ok()?;
                Some((fd, path, 0))
            })
            .collect();
        let mut entries = 0;
        while let Some((fd, path, depth)) = pending.pop() {
            let Ok(mut listing) = Dir::read_from(&fd) else {
                walk.incomplete = Some(format!("cannot list {}", path.display()));
                continue;
            };
            while let Some(Ok(entry)) = listing.read() {
                entries += 1;
                if entries > MAX_ENTRIES {
                    walk.incomplete = Some(format!(
                        "the storage holds more than {MAX_ENTRIES} entries; the rest was not searched"
                    ));
                    return walk;
                }
                let name = entry.file_name();
                let bytes = name.to_bytes();
                if bytes == b"." || bytes == b".." {
                    continue;
                }
                let child = path.join(name_of(bytes));
                let kind = match entry.file_type() {
                    FileType::Unknown => statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode)),
                    kind => kind,
                };
                match kind {
                    FileType::RegularFile if inodes.contains(&entry.ino()) => {
                        if let Ok(st) = statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                            let regular =
                                FileType::from_raw_mode(st.st_mode) == FileType::RegularFile;
                            if regular {
                                let id = FileId {
                                    dev: st.st_dev,
                                    ino: st.st_ino,
                                };
                                walk.files.push((child, id));
                            }
                        }
                    }
                    FileType::Directory if depth < MAX_DEPTH && !mounts.contains(&child) => {
                        if let Ok(sub) = open_dir(Some(&fd), Path::new(name_of(bytes))) {
                            pending.push((sub, child, depth + 1));
                        }
                    }
                    _ => {}
                }
            }
        }
        walk
    }

    fn name_of(bytes: &[u8]) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(bytes)
    }

    /// Opens a directory (relative to `parent`) without following a
    /// symlink, and without touching its access time where allowed.
    fn open_dir(parent: Option<&OwnedFd>, path: &Path) -> rustix::io::Result<OwnedFd> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = |flags| match parent {
            Some(parent) => openat(parent.as_fd(), path, flags, Mode::empty()),
            None => openat(rustix::fs::CWD, path, flags, Mode::empty()),
        };
        open(flags | OFlags::NOATIME).or_else(|_| open(flags))
    }
}

/// Elsewhere there is no kernel lock table to read.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn lock_holders(
    _table: &super::LockTable,
    _processes: &mut super::Processes,
) -> Vec<super::usage::RunningServer> {
    Vec::new()
}

/// Elsewhere there is no kernel lock table to read.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub fn find(
    _dir: &std::path::Path,
    _table: &super::LockTable,
    _lock_ino: Option<u64>,
    _known: &[&super::Lookup],
    _processes: &mut super::Processes,
) -> StorageLocks {
    StorageLocks::default()
}
