//! Who uses a data directory, whatever its lock files say: the processes with
//! a file open, their current directory or a file mapped under it, the kernel
//! locks they own there, and the process trees they belong to. One scan of
//! every process serves all directories of a survey.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::kernel_locks::KernelLock;
use super::{Facts, ProcessInfo, Processes};

/// How a process touches a path.
// Built only by the Linux scan; elsewhere the judge still reads the type.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Touch {
    /// Its current directory.
    Cwd,
    /// Mapped into its memory.
    Mapped,
    /// An open descriptor.
    Open,
}

/// One path a process touches, with the kernel locks it owns through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Touched {
    pub path: PathBuf,
    pub touch: Touch,
    pub locks: Vec<KernelLock>,
}

/// A process that touches the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub process: ProcessInfo,
    /// Its PID in each PID namespace, outermost (ours) first.
    pub ns_pids: Vec<u32>,
    pub touched: Vec<Touched>,
}

/// One link of a process's ancestry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    pub pid: u32,
    pub name: String,
}

/// What the scan found for one directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Usage {
    pub users: Vec<User>,
    /// Processes whose files could not be read (other users', when not root).
    pub uninspected: usize,
    /// Parents up to PID 1 of every user and lock owner, nearest first.
    pub lineage: BTreeMap<u32, Vec<Ancestor>>,
}

/// Scans every process once and attaches what it found to each directory
/// that exists; settles flocks whose recorded holder had gone.
#[cfg(target_os = "linux")]
pub fn attach<'a>(facts: impl IntoIterator<Item = &'a mut Facts>, processes: &mut Processes) {
    use super::{DirState, FlockState, LOCK_NAME, LockFile, Lookup, flock, scan};

    let mut all: Vec<&mut Facts> = facts.into_iter().collect();
    if all.is_empty() {
        return;
    }
    let roots: Vec<PathBuf> = all
        .iter()
        .filter(|f| matches!(f.dir, DirState::Present { .. }))
        .map(|f| f.lock_dir.clone())
        .collect();
    let (uses, uninspected) = match scan::scan(&roots) {
        Ok(found) => found,
        Err(err) => {
            for facts in all {
                facts.usage = Some(Err(format!("cannot list processes: {err}")));
            }
            return;
        }
    };
    for facts in all.iter_mut() {
        let Some(root) = roots.iter().position(|r| *r == facts.lock_dir) else {
            continue;
        };
        let mut usage = Usage {
            uninspected,
            ..Usage::default()
        };
        for found in uses.iter().filter(|u| u.root == root) {
            match processes.lookup(found.pid) {
                Lookup::Alive(process) if !process.zombie => usage.users.push(User {
                    ns_pids: super::procfs::ns_pids(found.pid).unwrap_or_default(),
                    process,
                    touched: found.touched.clone(),
                }),
                Lookup::Alive(_) | Lookup::Gone => {}
                Lookup::Unknown(_) => usage.uninspected += 1,
            }
        }
        if usage.uninspected > 0 {
            locked_by_unreadable(&facts.lock_dir, &mut usage, processes);
        }

        if let (Some(state @ FlockState::Unidentified { .. }), LockFile::Present { stat, .. }) =
            (&facts.flock, &facts.lock_file)
        {
            let lock_path = facts.lock_dir.join(LOCK_NAME);
            let holders = usage
                .users
                .iter()
                .filter(|u| {
                    u.touched.iter().any(|t| {
                        t.path == lock_path
                            && t.locks.iter().any(|l| {
                                l.class == super::kernel_locks::LockClass::Flock
                                    && l.ino == stat.ino
                            })
                    })
                })
                .map(|u| u.process.pid)
                .collect();
            let settled = flock::settle(state.clone(), holders, usage.uninspected);
            if let FlockState::Held { holders, .. } = &settled {
                facts.flock_holders = holders.iter().map(|&pid| processes.lookup(pid)).collect();
            }
            facts.flock = Some(settled);
        }

        let mut pids: Vec<u32> = usage.users.iter().map(|u| u.process.pid).collect();
        pids.extend(
            facts
                .flock_holders
                .iter()
                .chain(&facts.pid_owner)
                .filter_map(|l| match l {
                    Lookup::Alive(p) => Some(p.pid),
                    _ => None,
                }),
        );
        for pid in pids {
            usage.lineage.entry(pid).or_insert_with(|| lineage(pid));
        }
        facts.usage = Some(Ok(usage));
    }
}

/// Processes whose files could not be read still show in /proc/locks, which
/// everyone may read: the locks on OpenViking's storage files (RocksDB's
/// LOCK, the SQLite queues) name them, so an unprivileged run still sees a
/// server that uses the storage without a lock file.
#[cfg(target_os = "linux")]
fn locked_by_unreadable(dir: &std::path::Path, usage: &mut Usage, processes: &mut Processes) {
    use super::Lookup;
    use super::procfs::{self, FileId};

    // Symlinks inside the directory are never followed: one into a hung
    // network or FUSE mount would hang the run.
    let real_dir =
        |path: &std::path::Path| std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir());
    let mut storage: Vec<PathBuf> = Vec::new();
    let vectordb = dir.join("vectordb");
    if real_dir(&vectordb) {
        for entry in std::fs::read_dir(&vectordb).into_iter().flatten().flatten() {
            let store = entry.path().join("store");
            if entry.file_type().is_ok_and(|t| t.is_dir()) && real_dir(&store) {
                storage.push(store.join("LOCK"));
            }
        }
    }
    for db in ["_system/queue", "_system/usage_audit"] {
        if real_dir(&dir.join("_system")) && real_dir(&dir.join(db)) {
            let name = if db.ends_with("queue") {
                "queue.db"
            } else {
                "usage_audit.sqlite3"
            };
            for suffix in ["", "-wal", "-shm"] {
                storage.push(dir.join(db).join(format!("{name}{suffix}")));
            }
        }
    }
    let files: Vec<(FileId, PathBuf)> = storage
        .into_iter()
        .filter_map(|path| {
            let meta = std::fs::symlink_metadata(&path)
                .ok()
                .filter(|m| m.is_file())?;
            use std::os::unix::fs::MetadataExt;
            Some((
                FileId {
                    dev: meta.dev(),
                    ino: meta.ino(),
                },
                path,
            ))
        })
        .collect();
    let Ok(table) = procfs::lock_table() else {
        return;
    };
    for lock in table.into_iter().filter(|l| !l.waiting) {
        let Some(pid) = lock.pid else { continue };
        let Some((_, path)) = files.iter().find(|(id, _)| {
            id.ino == lock.ino
                && (rustix::fs::major(id.dev), rustix::fs::minor(id.dev))
                    == (lock.dev_major, lock.dev_minor)
        }) else {
            continue;
        };
        let touched = Touched {
            path: path.clone(),
            touch: Touch::Open,
            locks: vec![lock],
        };
        match usage.users.iter_mut().find(|u| u.process.pid == pid) {
            Some(user) if !user.touched.iter().any(|t| t.path == touched.path) => {
                user.touched.push(touched)
            }
            Some(_) => {}
            None => {
                if let Lookup::Alive(process) = processes.lookup(pid) {
                    usage.users.push(User {
                        ns_pids: procfs::ns_pids(pid).unwrap_or_default(),
                        process,
                        touched: vec![touched],
                    });
                }
            }
        }
    }
}

/// Off Linux there is no /proc to scan: every directory says so.
#[cfg(not(target_os = "linux"))]
pub fn attach<'a>(facts: impl IntoIterator<Item = &'a mut Facts>, _processes: &mut Processes) {
    for facts in facts {
        facts.usage = Some(Err(format!(
            "finding every process that uses a directory is implemented only on Linux, not on {}",
            std::env::consts::OS
        )));
    }
}

/// The parents of `pid`, nearest first, up to PID 1.
#[cfg(target_os = "linux")]
fn lineage(pid: u32) -> Vec<Ancestor> {
    let mut chain = Vec::new();
    let Ok(super::procfs::Stat {
        ppid: mut parent, ..
    }) = super::procfs::stat(pid)
    else {
        return chain;
    };
    // The cap guards against a process table that changes under our feet.
    while parent != 0 && chain.len() < 64 {
        let Ok(super::procfs::Stat {
            name,
            ppid: grandparent,
            ..
        }) = super::procfs::stat(parent)
        else {
            break;
        };
        chain.push(Ancestor { pid: parent, name });
        parent = grandparent;
    }
    chain
}

/// An OpenViking process found by `who --all`, with the data directories its
/// open files belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub process: ProcessInfo,
    pub dirs: Vec<PathBuf>,
    /// Its descriptors could not be read (another user's, when not root).
    pub unreadable: bool,
    /// It lives in another mount namespace (a container), whose paths mean
    /// nothing here: its directories are not named.
    pub other_mount_namespace: bool,
}

/// Every process that `is_openviking` accepts, with the data directories it
/// uses, read from its open files: `.openviking.lock`, and files under
/// `vectordb/` or `_system/`.
#[cfg(target_os = "linux")]
pub fn discover(
    processes: &mut Processes,
    is_openviking: impl Fn(&ProcessInfo) -> bool,
) -> Result<Vec<Found>, String> {
    let ours = super::procfs::mount_namespace("self").ok();
    let mut found: Vec<Found> = processes
        .all()
        .into_iter()
        // ovlock's own command line may name an OpenViking directory.
        .filter(|p| !p.zombie && p.pid != std::process::id() && is_openviking(p))
        .map(|process| {
            // Another mount namespace names its directories by paths of its
            // own, which mean nothing here: its directories stay unknown.
            let elsewhere = ours.is_some()
                && super::procfs::mount_namespace(&process.pid.to_string()).ok() != ours;
            let fds = super::procfs::fds(process.pid);
            let mut dirs: Vec<PathBuf> = match &fds {
                Ok(fds) if !elsewhere => fds
                    .iter()
                    .filter_map(|(_, target)| workspace_of(target))
                    .collect(),
                _ => Vec::new(),
            };
            dirs.sort();
            dirs.dedup();
            Found {
                unreadable: fds.is_err(),
                other_mount_namespace: elsewhere,
                process,
                dirs,
            }
        })
        .collect();
    found.sort_by_key(|f| f.process.pid);
    Ok(found)
}

/// Off Linux the processes can be listed but not their open files: each is
/// reported with its directories unknown.
#[cfg(not(target_os = "linux"))]
pub fn discover(
    processes: &mut Processes,
    is_openviking: impl Fn(&ProcessInfo) -> bool,
) -> Result<Vec<Found>, String> {
    Ok(processes
        .all()
        .into_iter()
        .filter(|p| !p.zombie && p.pid != std::process::id() && is_openviking(p))
        .map(|process| Found {
            process,
            dirs: Vec::new(),
            unreadable: true,
            other_mount_namespace: false,
        })
        .collect())
}

/// The data directory an open file of an OpenViking server belongs to: the
/// parent of `.openviking.lock`, or what lies before the last `vectordb` or
/// `_system` component (the last, since the directory's own path may hold
/// such a name).
#[cfg(target_os = "linux")]
fn workspace_of(path: &std::path::Path) -> Option<PathBuf> {
    if path.file_name() == Some(std::ffi::OsStr::new(super::LOCK_NAME)) {
        return path.parent().map(PathBuf::from);
    }
    path.ancestors()
        .skip(1)
        .find(|a| {
            matches!(
                a.file_name().and_then(|n| n.to_str()),
                Some("vectordb" | "_system")
            )
        })
        .and_then(|storage| storage.parent())
        .filter(|dir| dir.parent().is_some())
        .map(PathBuf::from)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn finds_the_data_directory_of_a_storage_file() {
        let cases = [
            ("/srv/ov/data/.openviking.lock", Some("/srv/ov/data")),
            (
                "/srv/ov/data/vectordb/context/store/LOCK",
                Some("/srv/ov/data"),
            ),
            ("/srv/ov/data/_system/queue/queue.db", Some("/srv/ov/data")),
            (
                "/srv/vectordb/ws/vectordb/context/store/LOCK",
                Some("/srv/vectordb/ws"),
            ),
            ("/vectordb/x", None),
            ("/srv/ov/data/log/server.log", None),
        ];
        for (path, want) in cases {
            assert_eq!(
                workspace_of(Path::new(path)).as_deref(),
                want.map(Path::new),
                "{path}"
            );
        }
    }
}
