//! All OS access: lock files, the kernel lock table, processes. It produces
//! plain facts for `judge` and decides nothing.

pub mod flock;
pub mod fsread;
pub mod kernel_locks;
// Linux reads the whole lock table; macOS answers one file at a time, and
// what its answers mean is tested everywhere.
#[cfg(any(target_os = "macos", test))]
pub mod lock_query;
#[cfg(target_os = "macos")]
mod macos;
pub mod path_locks;
pub mod process;
#[cfg(target_os = "linux")]
mod procfs;
mod scan;
pub mod server;
#[cfg(target_os = "linux")]
mod sockets;
pub mod storage_locks;
#[cfg(target_os = "linux")]
pub mod table_reading;
pub mod usage;
#[cfg(windows)]
pub(crate) mod windows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::openviking::pid_file;
use crate::workspace::Workspace;
use fsread::{FileKind, FileStat, ReadError, Symlinks};

pub use crate::openviking::layout::{ASIDE_PREFIX, LOCK_NAME, PID_NAME};
pub use flock::{FlockState, LockTable};
pub use path_locks::PathLocks;
pub use process::{Lookup, ProcessInfo, Processes};
pub use storage_locks::StorageLocks;
pub use usage::{Access, Ancestor, PathAccess, Uninspected, Usage, User};

/// How much of a lock file is read; a PID needs a few bytes.
pub const DIR_LOCK_READ_CAP: usize = 256;

/// What is at the data directory's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirState {
    /// Nothing: OpenViking would create it.
    Missing,
    /// A directory; `resolved` is its path with symlinks resolved, as OpenViking uses it.
    Present {
        resolved: PathBuf,
    },
    NotADirectory(FileKind),
    Inaccessible(String),
}

/// What is at a lock file's path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockFile {
    Absent,
    /// Something other than a regular file; never opened, never followed.
    NotRegular(FileKind),
    /// Not even its metadata could be read.
    Inaccessible(String),
    Present {
        stat: FileStat,
        /// The first [`DIR_LOCK_READ_CAP`] bytes, or why they could not be read.
        content: Result<Vec<u8>, String>,
        truncated: bool,
    },
}

impl LockFile {
    /// The PID a complete, readable pid file names, if it names one.
    pub fn pid(&self) -> Option<u32> {
        match self {
            LockFile::Present {
                content: Ok(content),
                truncated: false,
                ..
            } => pid_file::parse(content).ok(),
            _ => None,
        }
    }
}

/// Everything ovlock learned about one data directory.
#[derive(Debug, Clone)]
pub struct Facts {
    pub workspace: Workspace,
    pub dir: DirState,
    /// The path the lock files were looked for in.
    pub resolved_dir: PathBuf,
    pub lock_file: LockFile,
    /// The flock on `.openviking.lock`; None when that file is not a regular file.
    pub flock: Option<FlockState>,
    pub flock_holders: Vec<Lookup>,
    pub pid_file: LockFile,
    /// The process the PID file names, when it names one.
    pub pid_owner: Option<Lookup>,
    /// Whether that process has a file open or its current directory in the
    /// directory; None when it could not be told.
    pub pid_owner_uses_dir: Option<bool>,
    /// The locks on its storage files, from the kernel lock table.
    pub storage_locks: StorageLocks,
    /// OpenViking's path locks in its storage tree, `viking/`.
    pub path_locks: PathLocks,
    /// Every process that uses the directory; None when no scan was run.
    pub usage: Option<Result<Usage, String>>,
    /// Parents up to PID 1, nearest first, of every process found to own
    /// or use the directory.
    pub lineage: BTreeMap<u32, Vec<Ancestor>>,
    /// The network or FUSE filesystem the directory is on, if it is on one:
    /// a lock held on another host is invisible from here.
    pub remote_fs: Option<&'static str>,
    /// Pid files that an interrupted clear-stale left moved aside.
    pub left_aside: Vec<PathBuf>,
    /// When the directory is OpenViking's default or does not exist: the
    /// processes that hold locks in other data directories, which may be
    /// the one meant.
    pub elsewhere: Vec<usage::RunningServer>,
    pub host: Host,
}

/// Facts about the machine and this run that judgements depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub now: SystemTime,
    pub boot_time: Option<SystemTime>,
    pub self_pid: u32,
    /// What this run lacks to read every process, if anything.
    pub lacks: Option<Privilege>,
    /// The `hidepid=` option /proc is mounted with, when it hides processes.
    pub hidepid: Option<String>,
}

/// What it takes to read every process's descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Privilege {
    Root,
    /// Root, but without CAP_SYS_PTRACE in its effective set. Only Linux
    /// says which capabilities a process has.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    SysPtrace,
}

impl Host {
    pub fn current() -> Host {
        Host {
            now: SystemTime::now(),
            boot_time: process::boot_time(),
            self_pid: std::process::id(),
            lacks: lacks(),
            hidepid: hidepid(),
        }
    }

    /// Whether this run may read every process.
    pub fn privileged(&self) -> bool {
        self.lacks.is_none()
    }

    /// The `hidepid=` option that hides other users' processes from this
    /// run, if one does (a run that may read every process sees through it).
    pub fn hidden_by(&self) -> Option<&str> {
        self.hidepid.as_deref().filter(|_| !self.privileged())
    }
}

/// What one survey reads once and shares across its directories.
pub struct Survey {
    pub host: Host,
    pub locks: LockTable,
    /// Processes holding locks in some data directory, found once if asked for.
    lock_holders: std::cell::OnceCell<Vec<usage::RunningServer>>,
}

impl Survey {
    pub fn now() -> Survey {
        Survey {
            host: Host::current(),
            locks: LockTable::default(),
            lock_holders: std::cell::OnceCell::new(),
        }
    }

    fn lock_holders(&self, processes: &mut Processes) -> &[usage::RunningServer] {
        self.lock_holders
            .get_or_init(|| storage_locks::lock_holders(&self.locks, processes))
    }
}

/// Inspects one data directory.
pub fn inspect(workspace: &Workspace, processes: &mut Processes, survey: &Survey) -> Facts {
    let dir = dir_state(&workspace.path);
    let resolved_dir = match &dir {
        DirState::Present { resolved } => resolved.clone(),
        _ => resolve_existing_part(&workspace.path),
    };
    let left_aside = match &dir {
        DirState::Present { .. } => left_aside(&resolved_dir),
        _ => Vec::new(),
    };
    let remote_fs = match &dir {
        DirState::Present { resolved } => remote_filesystem(resolved),
        _ => None,
    };
    let pid = match &dir {
        DirState::Present { .. } => inspect_pid_file(&resolved_dir, processes),
        _ => PidFileFacts {
            file: LockFile::Absent,
            owner: None,
            owner_uses_dir: None,
        },
    };
    let locks = lock_evidence(&dir, &resolved_dir, pid.owner.as_ref(), processes, survey);
    let path_locks = match &dir {
        DirState::Present { .. } => path_locks::find(&resolved_dir, &workspace.path_locks),
        _ => PathLocks::NoTree,
    };
    // Who launched each process found so far: a worker of a server is part
    // of it, not a second owner. A few reads for each, not a scan.
    let mut lineage = BTreeMap::new();
    add_lineage(&mut lineage, &locks, pid.owner.as_ref());
    let elsewhere = if matches!(dir, DirState::Missing)
        || matches!(workspace.source, crate::workspace::Source::Default { .. })
    {
        survey
            .lock_holders(processes)
            .iter()
            .filter(|f| f.dirs.iter().any(|d| *d != resolved_dir))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    Facts {
        workspace: workspace.clone(),
        dir,
        resolved_dir,
        lock_file: locks.lock_file,
        flock: locks.flock,
        flock_holders: locks.flock_holders,
        pid_file: pid.file,
        pid_owner: pid.owner,
        pid_owner_uses_dir: pid.owner_uses_dir,
        storage_locks: locks.storage_locks,
        path_locks,
        usage: None,
        lineage,
        remote_fs,
        left_aside,
        elsewhere,
        host: survey.host.clone(),
    }
}

/// What the kernel's locks say of a directory: `.openviking.lock` and the
/// flock on it, and the locks on its storage files.
struct LockEvidence {
    lock_file: LockFile,
    flock: Option<FlockState>,
    flock_holders: Vec<Lookup>,
    storage_locks: StorageLocks,
}

/// Reads the lock evidence of a directory; `pid_owner` is the process its
/// pid file names, already looked up.
fn lock_evidence(
    dir: &DirState,
    resolved_dir: &Path,
    pid_owner: Option<&Lookup>,
    processes: &mut Processes,
    survey: &Survey,
) -> LockEvidence {
    let DirState::Present { .. } = dir else {
        return LockEvidence {
            lock_file: LockFile::Absent,
            flock: None,
            flock_holders: Vec::new(),
            storage_locks: StorageLocks::default(),
        };
    };
    let lock_file = read_lock_file(&resolved_dir.join(LOCK_NAME));
    let flock = match &lock_file {
        LockFile::Present { stat, .. } => Some(lock_file_state(resolved_dir, stat, survey)),
        _ => None,
    };
    let flock_holders: Vec<Lookup> = match &flock {
        Some(FlockState::Held { holders, .. }) => {
            holders.iter().map(|&pid| processes.lookup(pid)).collect()
        }
        _ => Vec::new(),
    };
    // The lock files' owners, already looked up.
    let known: Vec<&Lookup> = flock_holders.iter().chain(pid_owner).collect();
    let lock_ino = match &lock_file {
        LockFile::Present { stat, .. } => Some(stat.ino),
        _ => None,
    };
    let storage_locks =
        storage_locks::find(resolved_dir, &survey.locks, lock_ino, &known, processes);
    LockEvidence {
        lock_file,
        flock,
        flock_holders,
        storage_locks,
    }
}

/// Who launched each process the locks name: a worker of a server is part
/// of it, not a second owner. A few reads for each, not a scan.
fn add_lineage(
    lineage: &mut BTreeMap<u32, Vec<Ancestor>>,
    locks: &LockEvidence,
    pid_owner: Option<&Lookup>,
) {
    let alive = locks
        .flock_holders
        .iter()
        .chain(pid_owner)
        .filter_map(|l| match l {
            Lookup::Alive(p) => Some(p.pid),
            _ => None,
        });
    for found in alive.chain(locks.storage_locks.holders.iter().map(|h| h.process.pid)) {
        lineage
            .entry(found)
            .or_insert_with(|| usage::lineage(found));
    }
}

/// The directory of `facts` with its lock evidence read again, from a new
/// reading of the kernel's lock table, and the pid file's owner looked up
/// again: what clear-stale checks just before it removes anything. The
/// scan's findings are dropped with the old evidence; the caller scans
/// again where the new evidence needs it.
pub fn locks_now(facts: &Facts, processes: &mut Processes) -> Facts {
    let survey = Survey::now();
    let pid = pid_file_facts(facts.pid_file.clone(), &facts.resolved_dir, processes);
    let locks = lock_evidence(
        &facts.dir,
        &facts.resolved_dir,
        pid.owner.as_ref(),
        processes,
        &survey,
    );
    let mut lineage = BTreeMap::new();
    add_lineage(&mut lineage, &locks, pid.owner.as_ref());
    Facts {
        lock_file: locks.lock_file,
        flock: locks.flock,
        flock_holders: locks.flock_holders,
        pid_owner: pid.owner,
        pid_owner_uses_dir: pid.owner_uses_dir,
        storage_locks: locks.storage_locks,
        usage: None,
        lineage,
        host: survey.host,
        ..facts.clone()
    }
}

/// The flock on `.openviking.lock` in `dir`, whose metadata is `stat`: from
/// the lock table read once per survey, or, on macOS, asked of the kernel,
/// or, on Windows, which has no lock table, asked of the file: who has it open.
#[cfg(not(any(target_os = "macos", windows)))]
fn lock_file_state(_dir: &Path, stat: &FileStat, survey: &Survey) -> FlockState {
    flock::state(stat, &survey.locks)
}

#[cfg(windows)]
fn lock_file_state(dir: &Path, stat: &FileStat, _survey: &Survey) -> FlockState {
    windows::dir_lock::state(stat, &dir.join(LOCK_NAME))
}

#[cfg(target_os = "macos")]
fn lock_file_state(dir: &Path, stat: &FileStat, _survey: &Survey) -> FlockState {
    macos::flock_state(&dir.join(LOCK_NAME), stat)
}

/// `.openviking.pid` and the process it names.
pub struct PidFileFacts {
    pub file: LockFile,
    pub owner: Option<Lookup>,
    pub owner_uses_dir: Option<bool>,
}

/// Pid files a clear-stale killed between its move and its unlink left aside.
/// The directory is listed without touching its access time where the
/// kernel allows it (O_NOATIME), as the lock files are read.
#[cfg(unix)]
fn left_aside(resolved_dir: &Path) -> Vec<PathBuf> {
    use rustix::fs::{CWD, Dir, Mode, OFlags, openat};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let fd = openat(CWD, resolved_dir, flags | OFlags::NOATIME, Mode::empty())
        .or_else(|_| openat(CWD, resolved_dir, flags, Mode::empty()));
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let fd = openat(CWD, resolved_dir, flags, Mode::empty());
    let Ok(mut dir) = fd.and_then(Dir::read_from) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    while let Some(Ok(entry)) = dir.read() {
        let name = entry.file_name().to_string_lossy();
        if name.starts_with(ASIDE_PREFIX) {
            found.push(resolved_dir.join(name.as_ref()));
        }
    }
    found.sort();
    found
}

#[cfg(not(unix))]
fn left_aside(resolved_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(resolved_dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(ASIDE_PREFIX))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// Reads `.openviking.pid` in `resolved_dir`, looks up the process it names, and
/// whether that process uses the directory (one process's descriptors).
pub fn inspect_pid_file(resolved_dir: &Path, processes: &mut Processes) -> PidFileFacts {
    pid_file_facts(
        read_lock_file(&resolved_dir.join(PID_NAME)),
        resolved_dir,
        processes,
    )
}

/// Looks up the process a pid file names, as it is now.
pub fn pid_file_facts(
    file: LockFile,
    resolved_dir: &Path,
    processes: &mut Processes,
) -> PidFileFacts {
    let owner = file.pid().map(|pid| processes.lookup(pid));
    let owner_uses_dir = match &owner {
        Some(Lookup::Alive(p)) => uses_dir(p.pid, resolved_dir),
        _ => None,
    };
    PidFileFacts {
        file,
        owner,
        owner_uses_dir,
    }
}

/// Whether no process has this PID, neither here nor as its innermost PID
/// in another PID namespace: the one case where a number is surely dead.
/// Reads every process's status, so it is kept for rare paths.
#[cfg(target_os = "linux")]
pub fn exists_nowhere(pid: u32) -> bool {
    let gone_here = matches!(Processes::new().lookup(pid), Lookup::Gone);
    // Processes that /proc hides cannot be ruled out.
    let sees_all = Host::current().hidden_by().is_none();
    gone_here
        && sees_all
        && procfs::pids().is_ok_and(|pids| {
            pids.into_iter().all(|p| match procfs::ns_pids(p) {
                Ok(ns) => ns.len() < 2 || ns.last() != Some(&pid),
                // Exited meanwhile; one that cannot be read might be it.
                Err(err) => err.kind() == std::io::ErrorKind::NotFound,
            })
        })
}

#[cfg(all(unix, not(target_os = "linux")))]
pub fn exists_nowhere(_pid: u32) -> bool {
    false
}

#[cfg(target_os = "linux")]
fn uses_dir(pid: u32, dir: &Path) -> Option<bool> {
    let open = procfs::fds(pid)
        .ok()?
        .iter()
        .any(|(_, target)| target.starts_with(dir));
    Some(open || procfs::cwd(pid).is_ok_and(|cwd| cwd.starts_with(dir)))
}

#[cfg(target_os = "macos")]
use macos::uses_dir;

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn uses_dir(_pid: u32, _dir: &Path) -> Option<bool> {
    None
}

/// The path with symlinks resolved in the part that exists, as realpath
/// does for a directory OpenViking has yet to create.
fn resolve_existing_part(path: &Path) -> PathBuf {
    let mut missing = Vec::new();
    let mut existing = path;
    while let Some(parent) = existing.parent() {
        if let Ok(resolved) = std::fs::canonicalize(existing) {
            return missing
                .iter()
                .rev()
                .fold(resolved, |acc: PathBuf, part| acc.join(part));
        }
        missing.push(existing.file_name().unwrap_or_default());
        existing = parent;
    }
    path.to_path_buf()
}

/// The kind of filesystem `path` is on, when it is one whose locks other
/// hosts take without this kernel knowing (statfs's magic number).
#[cfg(target_os = "linux")]
fn remote_filesystem(path: &Path) -> Option<&'static str> {
    let magic = rustix::fs::statfs(path).ok()?.f_type as u64 & 0xffff_ffff;
    Some(match magic {
        0x6969 => "NFS",
        0xff53_4d42 => "CIFS",
        0xfe53_4d42 => "SMB2",
        0x517b => "SMB",
        0x6573_5546 => "FUSE",
        0x00c3_6400 => "CephFS",
        0x0102_1997 => "9P",
        0x5346_414f => "AFS",
        0x0bd0_0bd0 => "Lustre",
        0x0116_1970 => "GFS2",
        _ => return None,
    })
}

#[cfg(not(target_os = "linux"))]
fn remote_filesystem(_path: &Path) -> Option<&'static str> {
    None
}

fn dir_state(path: &Path) -> DirState {
    #[cfg(windows)]
    if let Some(device) = windows::reserved::device_in(path) {
        return DirState::Inaccessible(format!(
            "{device} is a Windows device name, which no directory can have"
        ));
    }
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => match fsread::kind_of(path) {
            Ok(FileKind::Symlink) => {
                DirState::Inaccessible("it is a symbolic link whose target does not exist".into())
            }
            _ => DirState::Missing,
        },
        Err(err) => DirState::Inaccessible(fsread::describe(&err)),
        Ok(meta) if !meta.is_dir() => {
            DirState::NotADirectory(fsread::kind_of(path).unwrap_or(FileKind::Other))
        }
                Ok(_) => match std::fs::canonicalize(path) {
            // Looking inside needs search permission, which `dir/.` tests.
            Ok(resolved) => match std::fs::symlink_metadata(resolved.join(".")) {
                Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => DirState::Inaccessible(
                    "permission denied: ovlock may not look inside it (run as root or as its owner)".into(),
                ),
                _ => DirState::Present { resolved },
            },
            Err(err) => DirState::Inaccessible(fsread::describe(&err)),
        },
    }
}

/// Reads a lock file's metadata and first bytes without following a symlink.
pub fn read_lock_file(path: &Path) -> LockFile {
    let stat = match fsread::lstat(path) {
        Ok((FileKind::Regular, stat)) => stat,
        Ok((kind, _)) => return LockFile::NotRegular(kind),
        Err(ReadError::Missing) => return LockFile::Absent,
        Err(err) => return LockFile::Inaccessible(err.to_string()),
    };
    if stat.size == 0 {
        // An empty file needs no open, which also needs no read permission.
        return LockFile::Present {
            stat,
            content: Ok(Vec::new()),
            truncated: false,
        };
    }
    match fsread::read_capped(path, DIR_LOCK_READ_CAP, Symlinks::Refuse) {
        Ok(snapshot) => LockFile::Present {
            stat: snapshot.stat,
            content: Ok(snapshot.content),
            truncated: snapshot.truncated,
        },
        Err(ReadError::Missing) => LockFile::Absent,
        Err(ReadError::NotRegular(kind)) => LockFile::NotRegular(kind),
        Err(ReadError::Io(err)) => LockFile::Present {
            stat,
            content: Err(fsread::describe(&err)),
            truncated: false,
        },
    }
}

/// What this process lacks to read every other one: root, or (as root)
/// CAP_SYS_PTRACE, which a systemd CapabilityBoundingSet= or a container may drop.
#[cfg(target_os = "linux")]
fn lacks() -> Option<Privilege> {
    if !rustix::process::geteuid().is_root() {
        return Some(Privilege::Root);
    }
    match procfs::has_sys_ptrace() {
        Ok(true) => None,
        _ => Some(Privilege::SysPtrace),
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn lacks() -> Option<Privilege> {
    (!rustix::process::geteuid().is_root()).then_some(Privilege::Root)
}

#[cfg(not(unix))]
fn lacks() -> Option<Privilege> {
    Some(Privilege::Root)
}

#[cfg(target_os = "linux")]
fn hidepid() -> Option<String> {
    procfs::hidepid().ok().flatten()
}

#[cfg(not(target_os = "linux"))]
fn hidepid() -> Option<String> {
    None
}
