//! macOS: the few functions that ask its kernel (`F_GETLK` in [`fcntl`],
//! libproc in [`libproc`], the mount table in [`mounts`]), and the
//! inspections built on them. What their answers mean is decided by the
//! shared [`lock_query`] functions, which are tested on Linux; this module
//! only gathers the answers.

mod fcntl;
mod libproc;
mod mounts;

pub use mounts::hanging_mount_points;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::StorageLocks;
use super::lock_query::{self, Conflict, LockQuery, Openers};
use super::usage::{Access, Ancestor, PathAccess, RunningServer, Uninspected, Usage, User};
use super::{DirState, Facts, FlockState, LockTable, Lookup, ProcessInfo, Processes};
use crate::inspect::fsread::FileStat;
use crate::openviking::layout;

/// The kernel of this machine, asked through `F_GETLK` and libproc.
struct Xnu;

impl LockQuery for Xnu {
    fn conflict(&self, path: &Path, stat: &FileStat) -> Result<Option<Conflict>, String> {
        fcntl::conflict(path, stat)
    }

    fn openers(&self, stat: &FileStat) -> Result<Openers, String> {
        let pids = libproc::pids().map_err(|err| format!("cannot list processes: {err}"))?;
        // dev_t is 32 bits on macOS; std widens it to 64.
        let dev = stat.dev as u32;
        let mut openers = Openers::default();
        for pid in others(pids) {
            match libproc::vnodes(pid) {
                Ok(vnodes) if vnodes.iter().any(|v| v.dev == dev && v.ino == stat.ino) => {
                    openers.pids.push(pid)
                }
                Ok(_) => {}
                Err(err) if libproc::exited(&err) => {}
                Err(_) => openers.uninspected.push(pid),
            }
        }
        Ok(openers)
    }
}

/// Every PID but the kernel's (0) and ovlock's own.
fn others(pids: Vec<u32>) -> impl Iterator<Item = u32> {
    let me = std::process::id();
    pids.into_iter().filter(move |&pid| pid != 0 && pid != me)
}

/// The flock on the lock file at `path`, whose metadata is `stat`.
pub fn flock_state(path: &Path, stat: &FileStat) -> FlockState {
    lock_query::flock_state(&Xnu, path, stat)
}

/// The locks on `dir`'s storage files, asked of the kernel file by file.
/// `known` are processes already looked up (the lock file's owners).
pub fn find(
    dir: &Path,
    _table: &LockTable,
    _lock_ino: Option<u64>,
    known: &[&Lookup],
    processes: &mut Processes,
) -> StorageLocks {
    let (files, incomplete) = lock_query::storage_files(dir);
    let lookup = |pid| {
        let seen = known
            .iter()
            .find(|l| matches!(l, Lookup::Alive(p) if p.pid == pid));
        seen.map_or_else(|| processes.lookup(pid), |l| (*l).clone())
    };
    let mut found = lock_query::storage_locks(&Xnu, &files, lookup);
    found.incomplete = found.incomplete.or(incomplete);
    found
}

/// What one process uses under one of the roots.
struct ProcessUse {
    pid: u32,
    root: usize,
    accesses: Vec<PathAccess>,
}

/// Reads every process's descriptors and current directory once, and
/// attaches to each directory that exists the processes that use it and
/// those that could not be read.
pub fn attach<'a>(facts: impl IntoIterator<Item = &'a mut Facts>, processes: &mut Processes) {
    let all: Vec<&mut Facts> = facts.into_iter().collect();
    if all.is_empty() {
        return;
    }
    let roots: Vec<PathBuf> = all
        .iter()
        .filter(|f| matches!(f.dir, DirState::Present { .. }))
        .map(|f| f.resolved_dir.clone())
        .collect();
    let pids = match libproc::pids() {
        Ok(pids) => pids,
        Err(err) => {
            for facts in all {
                facts.usage = Some(Err(format!("cannot list processes: {err}")));
            }
            return;
        }
    };
    let mut uses = Vec::new();
    let mut unread = Vec::new();
    for pid in others(pids) {
        let vnodes = match libproc::vnodes(pid) {
            Ok(vnodes) => vnodes,
            Err(err) if libproc::exited(&err) => continue,
            Err(_) => {
                unread.push(pid);
                continue;
            }
        };
        let cwd = libproc::cwd(pid).ok();
        for (root, dir) in roots.iter().enumerate() {
            let mut accesses: Vec<PathAccess> = vnodes
                .iter()
                .filter(|v| v.path.starts_with(dir))
                .map(|v| PathAccess {
                    path: v.path.clone(),
                    access: Access::Open,
                    locks: Vec::new(),
                })
                .collect();
            accesses.sort_by(|a, b| a.path.cmp(&b.path));
            accesses.dedup_by(|a, b| a.path == b.path);
            if let Some(cwd) = cwd.as_ref().filter(|c| c.starts_with(dir)) {
                accesses.push(PathAccess {
                    path: cwd.clone(),
                    access: Access::Cwd,
                    locks: Vec::new(),
                });
            }
            if !accesses.is_empty() {
                uses.push(ProcessUse {
                    pid,
                    root,
                    accesses,
                });
            }
        }
    }
    let uninspected: Vec<Uninspected> = unread
        .into_iter()
        .filter_map(|pid| match processes.lookup(pid) {
            Lookup::Gone => None,
            found => Some(unreadable(pid, found)),
        })
        .collect();
    for facts in all {
        let Some(root) = roots.iter().position(|r| *r == facts.resolved_dir) else {
            continue;
        };
        let mut usage = Usage {
            uninspected: uninspected.clone(),
            ..Usage::default()
        };
        for found in uses.iter().filter(|u| u.root == root) {
            match processes.lookup(found.pid) {
                Lookup::Alive(process) if !process.zombie => usage.users.push(User {
                    process,
                    ns_pids: Vec::new(),
                    accesses: found.accesses.clone(),
                }),
                Lookup::Alive(_) | Lookup::Gone => {}
                unknown @ Lookup::Unknown(_) => {
                    usage.uninspected.push(unreadable(found.pid, unknown))
                }
            }
        }
        add_lineage(&mut facts.lineage, &usage);
        facts.usage = Some(Ok(usage));
    }
}

/// A process whose files could not be read, with what could be read of it.
/// macOS has no PID namespaces: its PID is the only one.
fn unreadable(pid: u32, lookup: Lookup) -> Uninspected {
    Uninspected {
        pid,
        process: match lookup {
            Lookup::Alive(process) => Some(process),
            Lookup::Gone | Lookup::Unknown(_) => None,
        },
        ns_pids: Vec::new(),
    }
}

/// The parents of every user the scan found.
fn add_lineage(lineage_of: &mut BTreeMap<u32, Vec<Ancestor>>, usage: &Usage) {
    for user in &usage.users {
        let pid = user.process.pid;
        lineage_of.entry(pid).or_insert_with(|| lineage(pid));
    }
}

/// The parents of `pid`, nearest first, up to launchd (PID 1).
pub fn lineage(pid: u32) -> Vec<Ancestor> {
    let mut chain = Vec::new();
    let Ok((mut parent, _)) = libproc::parent(pid) else {
        return chain;
    };
    // The cap guards against a process table that changes under our feet.
    while parent != 0 && chain.len() < 64 {
        let Ok((grandparent, name)) = libproc::parent(parent) else {
            break;
        };
        chain.push(Ancestor { pid: parent, name });
        if parent == 1 {
            break;
        }
        parent = grandparent;
    }
    chain
}

/// Whether `pid` has a file open or its current directory under `dir`;
/// None when its descriptors may not be read.
pub fn uses_dir(pid: u32, dir: &Path) -> Option<bool> {
    let open = libproc::vnodes(pid)
        .ok()?
        .iter()
        .any(|v| v.path.starts_with(dir));
    Some(open || libproc::cwd(pid).is_ok_and(|cwd| cwd.starts_with(dir)))
}

/// The data directories a process's open files belong to, or why they
/// could not be read.
fn dirs_of(pid: u32) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = libproc::vnodes(pid)?
        .iter()
        .filter_map(|v| layout::workspace_of(&v.path))
        .collect();
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Every process that `is_openviking` accepts, with the data directories
/// its open files belong to; another user's, when not root, is unreadable.
pub fn discover(
    processes: &mut Processes,
    is_openviking: impl Fn(&ProcessInfo) -> bool,
) -> Vec<RunningServer> {
    let mut found: Vec<RunningServer> = processes
        .all()
        .into_iter()
        // ovlock's own command line may name an OpenViking directory.
        .filter(|p| !p.zombie && p.pid != std::process::id() && is_openviking(p))
        .map(|process| {
            let dirs = dirs_of(process.pid);
            RunningServer {
                unreadable: dirs.is_err(),
                dirs: dirs.unwrap_or_default(),
                other_mount_namespace: false,
                process,
            }
        })
        .collect();
    found.sort_by_key(|f| f.process.pid);
    found
}

/// The live processes with some data directory's files open, each with
/// those directories. macOS has no lock table to start from, so every
/// process's descriptors are read; those that cannot be are left out.
pub fn lock_holders(_table: &LockTable, processes: &mut Processes) -> Vec<RunningServer> {
    let Ok(pids) = libproc::pids() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for pid in others(pids) {
        let Ok(dirs) = dirs_of(pid) else { continue };
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
    found.sort_by_key(|f| f.process.pid);
    found
}
