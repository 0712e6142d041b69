//! What the judge says about a directory, as data: each finding and each fix
//! is a variant carrying the PIDs, paths and kinds it is about. The renderer
//! owns the words (`render::words`), so the text and the JSON say the same
//! thing and a test can match a finding without matching a sentence.

use std::path::PathBuf;

use super::path_lock_state::JudgedPathLock;

use crate::inspect::flock::HolderDoubt;
use crate::inspect::fsread::FileKind;
use crate::inspect::kernel_locks::KernelLock;
use crate::inspect::path_locks::{CapHit, Unreadable};
use crate::inspect::process::{LaunchdJob, Service};
use crate::inspect::{PathAccess, Privilege, ProcessInfo};
use crate::openviking::ovconf::Invalid;
use crate::openviking::pid_file::BadPid;
use crate::workspace::SettingSource;

/// A process as a finding names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRef {
    pub pid: u32,
    pub name: String,
}

impl ProcessRef {
    pub fn of(process: &ProcessInfo) -> ProcessRef {
        ProcessRef {
            pid: process.pid,
            name: process.name.clone(),
        }
    }
}

/// One fact that decided the verdict (a reason) or that a reader should
/// know (a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// The data directory does not exist.
    DirMissing,
    NotADirectory(FileKind),
    DirInaccessible(String),
    /// A pid file an interrupted clear-stale moved aside, at this path.
    LeftAside(PathBuf),
    /// The directory is on this network or FUSE filesystem.
    RemoteFs(&'static str),
    /// `storage.skip_process_lock` is set.
    SkipProcessLock,
    /// Nothing owns the directory, which is missing (or the default), but
    /// servers run on these other directories.
    ServersElsewhere {
        missing: bool,
        servers: Vec<(u32, Vec<PathBuf>)>,
    },

    LockFileNotRegular(FileKind),
    LockFileInaccessible(String),
    FlockUnheld,
    /// The flock's holder; `inherited_from` is the PID that took it, and
    /// whether that one has exited.
    FlockHeldBy {
        holder: ProcessRef,
        inherited_from: Option<(u32, bool)>,
    },
    /// Held, by a process only a scan could name (none ran).
    FlockHolderNotYetIdentified {
        recorded: Option<u32>,
    },
    /// Whether it is held could not be told (none ran).
    FlockUndecided {
        recorded: Option<u32>,
    },
    FlockUnknown(String),
    /// Held by this PID, whose details could not be read, for this reason.
    FlockHolderUnreadable {
        pid: u32,
        why: String,
    },
    FlockHolderUnknown,
    /// A process that does not look like OpenViking has the lock file open,
    /// where only who has it open can be told (Windows).
    LockFileOpenedBy(ProcessRef),
    /// Why the flock's holder is not known for certain.
    FlockHolderDoubt(HolderDoubt),
    /// A process could not be looked up, for this reason.
    ProcessUnreadable(String),

    PidFileNames(ProcessRef),
    /// The pid file holds `ns_pid`, the PID of `owner` in its own namespace.
    PidFileNamesNamespaced {
        ns_pid: u32,
        owner: ProcessRef,
    },
    PidFileLeftOver(Staleness),
    PidFileBeingWritten,
    PidFileUndecided(PidDoubt),

    Contended(Vec<ProcessRef>),
    NoLockFile,

    /// The scan of every process failed.
    ScanFailed(String),
    /// The kernel's lock table kept changing while it was read, and no scan
    /// could confirm what it lacked.
    LockTableUnsettled,
    /// What the scan could not see: processes that may be servers, and the
    /// `hidepid=` option that hid others.
    Unseen {
        suspects: Vec<u32>,
        hidden_by: Option<String>,
    },
    /// A process that holds a lock on the storage but is not counted as a
    /// server, as it does not look like OpenViking.
    NotCountedAsServer {
        process: ProcessRef,
        access: PathAccess,
    },
    /// An owner holds the flock on a lock file deleted under it.
    HoldsDeletedLockFile(ProcessRef),
    /// An owner holds a flock on a file it could not be asked to name.
    HoldsUnnamedFlock(ProcessRef),
    /// An owner has let go of the lock file but still has these files.
    LetGo {
        process: ProcessRef,
        files: Vec<PathAccess>,
    },
    StorageWithoutLock {
        process: ProcessRef,
        files: Vec<PathAccess>,
    },
    /// What a lone storage owner is likely to be.
    LoneStorageOwner {
        lock_unheld: bool,
    },
    /// What a lock owner has open, where several own the directory.
    OwnerHas {
        process: ProcessRef,
        files: Vec<PathAccess>,
    },
    /// A lock on a storage file, held by a live process that could not be
    /// identified (`alive`), or by none ovlock could see.
    StorageLockUnidentified {
        path: PathBuf,
        lock: KernelLock,
        alive: bool,
        why: String,
    },
    StorageSearchIncomplete(String),

    /// `count` path locks are stale; `first` is the first of them.
    StalePathLocks {
        count: usize,
        first: Box<JudgedPathLock>,
    },
    /// `count` path locks can be called neither held nor stale.
    UndecidedPathLocks {
        count: usize,
        first: Box<JudgedPathLock>,
    },
    /// `count` held leases are older than any operation should take;
    /// `oldest` is the oldest, and `by` the one owner that holds them, if
    /// there is one (tokens name no process).
    StuckLeases {
        count: usize,
        oldest: Box<JudgedPathLock>,
        by: Option<ProcessRef>,
    },
    /// The server that holds a stuck lease names (`certain`: by the lease's
    /// owner_id) or probably runs (a running task on the locked URI or
    /// below it) the task behind it.
    TaskHoldsLease {
        lock: Box<JudgedPathLock>,
        task: Box<crate::inspect::server::Task>,
        certain: bool,
    },
    /// The stuck leases' server was asked for its tasks and did not list them.
    TasksNotListed(Box<crate::inspect::server::Answer>),
    /// The storage tree was not searched in full for path locks.
    PathLocksNotSearched {
        unreadable: Vec<Unreadable>,
        skipped_mounts: Vec<PathBuf>,
        caps: Vec<CapHit>,
    },
    /// `viking` is not a directory (a symlink is not followed).
    TreeNotADirectory(FileKind),
    /// Path locks are searched for on Linux only.
    PathLocksNotDetermined,
    /// The config sets a `lock_expire_secs` OpenViking refuses.
    LockExpireRefused {
        invalid: Invalid,
        source: SettingSource,
    },

    /// Something that could not be read, outranked by a live owner.
    NotInspected(Box<Finding>),
}

/// Why a PID file no longer names its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    Unparsable(BadPid),
    /// Longer than any PID; the file holds this many bytes.
    TooLong {
        size: u64,
    },
    WrittenBeforeBoot {
        pid: u32,
    },
    IsOvlock {
        pid: u32,
    },
    Gone {
        pid: u32,
    },
    /// Moved aside with a new pid file in its place: it named this PID,
    /// which exists in no PID namespace. Only Unix can move a file aside.
    #[cfg_attr(not(unix), allow(dead_code))]
    GoneEverywhere {
        pid: u32,
    },
    Zombie {
        pid: u32,
        name: String,
    },
    StartedAfterWrite {
        pid: u32,
        name: String,
    },
    NotOpenViking {
        pid: u32,
        name: String,
    },
}

/// Why a PID file can be called neither owned nor stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidDoubt {
    NotRegular(FileKind),
    Inaccessible(String),
    Unreadable(String),
    NoModificationTime,
    /// The process it names could not be looked up.
    OwnerUnreadable(String),
    /// These processes (PID, and name where known) are `pid` in their own
    /// namespace and could not be read.
    UnseenNamespaceOwner {
        pid: u32,
        unseen: Vec<(u32, Option<String>)>,
    },
    /// `/proc` hides processes (this `hidepid=` option), one of which may
    /// be `pid` in a container.
    HiddenNamespaceOwner {
        pid: u32,
        option: String,
    },
}

/// Why an owner is to be stopped, which changes what to say first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCase {
    /// It does not look like OpenViking: see what it is first.
    NotOpenViking,
    /// An OpenViking 0.4.20 or older beside a newer one.
    BlindToFlock,
    Plain,
}

/// One thing to do, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// An owner that let go of the lock file may be shutting down.
    WaitForRelease,
    SeeEveryServer,
    KeepOneServer,
    Stop {
        process: ProcessRef,
        service: Option<Service>,
        /// Its parent is launchd, which may start it again after a kill.
        launchd: Option<Box<LaunchdJob>>,
        case: StopCase,
    },
    UseHttp,
    OwnWorkspace,
    /// The flock holder could not be identified; this run lacked the privilege.
    FindHolder(Option<Privilege>),
    /// Nothing owns the directory: remove what is stale (the pid file, and
    /// this many path locks).
    ClearStale {
        pid_file: bool,
        path_locks: usize,
    },
    /// A live owner runs: remove what is stale beside it.
    ClearLeftovers {
        pid_file: bool,
        path_locks: usize,
    },
    /// End the task that holds a lease far too long: cancel it, or restart
    /// the one server (None: several own the directory).
    EndStuckTask {
        process: Option<ProcessRef>,
        service: Option<Service>,
        launchd: Option<Box<LaunchdJob>>,
    },
    LookAgain,
    /// See every process and file, with the privilege this run lacked.
    LookWith(Privilege),
    LookByHand,
    /// Free by the locks, but unreadable processes may use it without one.
    MakeSure,
    /// Restart a server whose lock file was deleted under it.
    Restart {
        process: ProcessRef,
        service: Option<Service>,
        launchd: Option<Box<LaunchdJob>>,
    },
    /// An owner's server takes connections but does not answer: look at
    /// why, and restart it if it stays so (never delete its lock).
    RestartSilentServer {
        process: ProcessRef,
        service: Option<Service>,
        address: std::net::SocketAddr,
    },
    /// Cancel the task behind a stuck lease, at its server.
    CancelTask {
        address: std::net::SocketAddr,
        task_id: String,
    },
    /// An owner's server wants an API key that ovlock did not have (or
    /// that it refused).
    GiveApiKey {
        key_sent: bool,
    },
}
