//! Who uses a data directory, whatever its lock files say: the processes with
//! a file open, their current directory or a file mapped under it, the kernel
//! locks they own there, and the process trees they belong to. One scan of
//! every process serves all directories of a survey.

use std::path::PathBuf;

use super::ProcessInfo;
pub use super::scan::{Access, PathAccess};
#[cfg(not(target_os = "macos"))]
use super::{Facts, Processes};

/// A process that touches the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub process: ProcessInfo,
    /// Its PID in each PID namespace, outermost (ours) first.
    pub ns_pids: Vec<u32>,
    pub accesses: Vec<PathAccess>,
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
    /// Processes whose files could not be read in full (other users', when
    /// not root; more privileged ones, without CAP_SYS_PTRACE).
    pub uninspected: Vec<Uninspected>,
}

/// A process whose files could not be read, with what could be read of it:
/// whether it may be OpenViking, and its PID in each PID namespace (a pid
/// file written in a container names its server by the innermost one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uninspected {
    pub pid: u32,
    /// None when not even its command line could be read.
    pub process: Option<ProcessInfo>,
    /// Outermost (ours) first.
    pub ns_pids: Vec<u32>,
}

/// Scans every process once and attaches what it found to each directory
/// that exists; settles flocks whose recorded holder had gone.
#[cfg(target_os = "linux")]
pub fn attach<'a>(facts: impl IntoIterator<Item = &'a mut Facts>, processes: &mut Processes) {
    use super::{DirState, scan};

    let mut all: Vec<&mut Facts> = facts.into_iter().collect();
    if all.is_empty() {
        return;
    }
    let roots: Vec<PathBuf> = all
        .iter()
        .filter(|f| matches!(f.dir, DirState::Present { .. }))
        .map(|f| f.resolved_dir.clone())
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
    let uninspected = uninspected_processes(uninspected, processes);
    for facts in all.iter_mut() {
        let Some(root) = roots.iter().position(|r| *r == facts.resolved_dir) else {
            continue;
        };
        let mut usage = Usage {
            uninspected: uninspected.clone(),
            ..Usage::default()
        };
        let mine = uses.iter().filter(|u| u.root == root);
        add_users(&mut usage, mine, processes);
        settle_flock(facts, &usage, processes);
        add_lineage(facts, &usage);
        facts.usage = Some(Ok(usage));
    }
}

/// What can still be read of the processes the scan could not read: their
/// command line (are they OpenViking?) and their PIDs in each namespace.
#[cfg(target_os = "linux")]
fn uninspected_processes(pids: Vec<u32>, processes: &mut Processes) -> Vec<Uninspected> {
    use super::{Lookup, procfs};
    pids.into_iter()
        .filter_map(|pid| {
            let process = match processes.lookup(pid) {
                Lookup::Alive(process) => Some(process),
                Lookup::Gone => return None,
                Lookup::Unknown(_) => None,
            };
            Some(Uninspected {
                pid,
                process,
                ns_pids: procfs::ns_pids(pid).unwrap_or_default(),
            })
        })
        .collect()
}

/// The live processes of `uses`, looked up; those that cannot be are uninspected.
#[cfg(target_os = "linux")]
fn add_users<'a>(
    usage: &mut Usage,
    uses: impl Iterator<Item = &'a super::scan::ProcessUse>,
    processes: &mut Processes,
) {
    use super::{Lookup, procfs};
    for found in uses {
        let ns_pids = || procfs::ns_pids(found.pid).unwrap_or_default();
        match processes.lookup(found.pid) {
            Lookup::Alive(process) if !process.zombie => usage.users.push(User {
                ns_pids: ns_pids(),
                process,
                accesses: found.accesses.clone(),
            }),
            Lookup::Alive(_) | Lookup::Gone => {}
            Lookup::Unknown(_) => usage.uninspected.push(Uninspected {
                pid: found.pid,
                process: None,
                ns_pids: ns_pids(),
            }),
        }
    }
}

/// A flock whose recorded holder had gone, or that a changing lock table
/// may have hidden, settled with the processes the scan found holding it
/// through a descriptor.
#[cfg(target_os = "linux")]
fn settle_flock(facts: &mut Facts, usage: &Usage, processes: &mut Processes) {
    use super::kernel_locks::LockClass;
    use super::{FlockState, LOCK_NAME, LockFile, flock};
    let (
        Some(state @ (FlockState::Unidentified { .. } | FlockState::Unsettled)),
        LockFile::Present { stat, .. },
    ) = (&facts.flock, &facts.lock_file)
    else {
        return;
    };
    let lock_path = facts.resolved_dir.join(LOCK_NAME);
    let holders = usage
        .users
        .iter()
        .filter(|u| {
            u.accesses.iter().any(|t| {
                t.path == lock_path
                    && t.locks
                        .iter()
                        .any(|l| l.class == LockClass::Flock && l.ino == stat.ino)
            })
        })
        .map(|u| u.process.pid)
        .collect();
    let settled = flock::settle_with_scan(state.clone(), holders, unseen(usage, &facts.host));
    if let FlockState::Held { holders, .. } = &settled {
        facts.flock_holders = holders.iter().map(|&pid| processes.lookup(pid)).collect();
    }
    facts.flock = Some(settled);
}

/// The parents of every user and flock holder the scan added.
#[cfg(target_os = "linux")]
fn add_lineage(facts: &mut Facts, usage: &Usage) {
    use super::Lookup;
    let mut pids: Vec<u32> = usage.users.iter().map(|u| u.process.pid).collect();
    pids.extend(facts.flock_holders.iter().filter_map(|l| match l {
        Lookup::Alive(p) => Some(p.pid),
        _ => None,
    }));
    for pid in pids {
        facts.lineage.entry(pid).or_insert_with(|| lineage(pid));
    }
}

/// What the scan could not see, in a phrase, or None when it saw everything.
#[cfg(target_os = "linux")]
fn unseen(usage: &Usage, host: &super::Host) -> Option<String> {
    match (usage.uninspected.len(), host.hidden_by()) {
        (0, None) => None,
        (n, None) => Some(format!("{n} processes could not be inspected")),
        (_, Some(option)) => Some(format!(
            "/proc is mounted with {option}, which hides other users' processes"
        )),
    }
}

#[cfg(target_os = "macos")]
pub(crate) use super::macos::lineage;
#[cfg(target_os = "macos")]
pub use super::macos::{attach, discover};

/// Elsewhere there is no /proc to scan: every directory says so.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
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
pub(crate) fn lineage(pid: u32) -> Vec<Ancestor> {
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

/// Elsewhere, parents are not looked up.
#[cfg(not(any(target_os = "linux", target_os = "macos")))]
pub(crate) fn lineage(_pid: u32) -> Vec<Ancestor> {
    Vec::new()
}

/// An OpenViking process found by `who --all`, with the data directories its
/// open files belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunningServer {
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
) -> Vec<RunningServer> {
    use super::procfs;
    let ours = procfs::OurMountNamespace::read();
    let mut found: Vec<RunningServer> = processes
        .all()
        .into_iter()
        // ovlock's own command line may name an OpenViking directory.
        .filter(|p| !p.zombie && p.pid != std::process::id() && is_openviking(p))
        .map(|process| {
            // Another mount namespace names its directories by paths of its
            // own: only those that name the same directory here count (a
            // copy of our namespace, as systemd's sandboxing makes), and
            // with any other it is elsewhere. One whose namespace cannot be
            // read is unreadable, not elsewhere.
            let namespace = ours.is_other(process.pid);
            let other = matches!(namespace, Ok(true));
            let fds = procfs::fds(process.pid);
            let mut dirs: Vec<PathBuf> = match &fds {
                Ok(fds) => fds
                    .iter()
                    .filter_map(|(_, target)| crate::openviking::layout::workspace_of(target))
                    .collect(),
                _ => Vec::new(),
            };
            dirs.sort();
            dirs.dedup();
            let seen = dirs.len();
            if other {
                dirs.retain(|d| procfs::seen_alike(process.pid, d));
            }
            let elsewhere = other
                && (dirs.len() < seen
                    || (seen == 0 && !procfs::seen_alike(process.pid, std::path::Path::new("/"))));
            RunningServer {
                unreadable: fds.is_err() || namespace.is_err(),
                other_mount_namespace: elsewhere,
                process,
                dirs,
            }
        })
        .collect();
    found.sort_by_key(|f| f.process.pid);
    found
}

#[cfg(windows)]
pub use super::windows::servers::discover;

/// Elsewhere the processes can be listed but not their open files: each is
/// reported with its directories unknown.
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
pub fn discover(
    processes: &mut Processes,
    is_openviking: impl Fn(&ProcessInfo) -> bool,
) -> Vec<RunningServer> {
    processes
        .all()
        .into_iter()
        .filter(|p| !p.zombie && p.pid != std::process::id() && is_openviking(p))
        .map(|process| RunningServer {
            process,
            dirs: Vec::new(),
            unreadable: true,
            other_mount_namespace: false,
        })
        .collect()
}
