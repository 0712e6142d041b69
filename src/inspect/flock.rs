//! Who holds the flock on `.openviking.lock`, read from the kernel without
//! ever taking the lock (a probe could make a server that starts at that
//! instant fail).

// macOS and Windows ask about the file by its path instead.
#[cfg(not(any(target_os = "macos", windows)))]
use crate::inspect::fsread::FileStat;

/// Why the holder of a held flock is not known for certain.
// Where the kernel cannot be asked, none is ever built.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HolderDoubt {
    /// The kernel names this PID, whose descriptors could not be read.
    Unconfirmed { pid: u32, why: String },
    /// The scan found no holder; the kernel recorded this PID, if any.
    NoneFound { recorded: Option<u32> },
    /// No readable process holds it; this is what the scan could not see.
    Unseen(String),
    /// Windows names no lock's owner: the holders are the processes that
    /// have the file open.
    #[cfg_attr(not(windows), allow(dead_code))]
    OpenOnly,
}

/// The kernel's answer for one lock file.
// Where the kernel cannot be asked, only Unknown is ever built.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlockState {
    /// No process holds a flock on it.
    Unheld,
    /// Held. `holders` are the processes that hold it now; it may be empty
    /// when none could be identified, and `doubt` then says why.
    Held {
        holders: Vec<u32>,
        /// The PID the kernel recorded when the lock was taken.
        recorded_pid: Option<u32>,
        /// That PID no longer exists (not merely: no longer holds the lock).
        recorded_exited: bool,
        doubt: Option<HolderDoubt>,
    },
    /// /proc/locks shows a flock on this inode, but the PID it records does not
    /// hold it (it exited, leaving the lock to a forked child): a scan of every
    /// process must find the holder. `certain` is false when only the inode
    /// number matched, not the device (btrfs subvolumes and overlayfs show
    /// another device in /proc/locks). Only Linux's lock table tells this.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Unidentified {
        recorded_pid: Option<u32>,
        recorded_exited: bool,
        certain: bool,
    },
    /// /proc/locks shows no flock on it, but it kept changing while it was
    /// read, so one may have been missed: only the descriptors of the
    /// processes that have the file open can tell. A scan settles it, or,
    /// when the scan could not read every process, leaves it so. Only
    /// Linux's lock table is read a page at a time.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Unsettled,
    /// It could not be told; the text says why.
    Unknown(String),
}

/// The kernel lock table, read at most once per survey however many
/// directories are asked about.
#[derive(Default)]
pub struct LockTable {
    #[cfg(target_os = "linux")]
    cached: std::cell::OnceCell<Result<super::table_reading::Reading, String>>,
}

#[cfg(target_os = "linux")]
impl LockTable {
    fn reading(&self) -> Result<&super::table_reading::Reading, &str> {
        self.cached
            .get_or_init(|| super::procfs::lock_table().map_err(|err| err.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }

    /// Every lock seen while the table was read.
    pub fn get(&self) -> Result<&[super::kernel_locks::KernelLock], &str> {
        self.reading().map(|r| r.locks.as_slice())
    }

    /// Whether a lock missing from [`LockTable::get`] was surely not held:
    /// false when the table kept changing while it was read.
    pub fn settled(&self) -> bool {
        self.reading().is_ok_and(|r| r.settled)
    }
}

/// Reads the flock state of the lock file at `path`, whose metadata is `stat`.
#[cfg(target_os = "linux")]
pub fn state(stat: &FileStat, locks: &LockTable) -> FlockState {
    use super::kernel_locks::LockClass;
    use super::procfs::{self, FileId};

    let table = match locks.get() {
        Ok(table) => table,
        Err(err) => return FlockState::Unknown(format!("cannot read /proc/locks: {err}")),
    };
    let target = FileId {
        dev: stat.dev,
        ino: stat.ino,
    };
    // Entries on an inode of the same number. The device tells this file from
    // one on another filesystem, except on btrfs and overlayfs, where
    // /proc/locks shows the superblock's device rather than the one stat
    // shows: such an entry is this file only if its holder has it open.
    // Each candidate: the lock, whether its device matches, and whether the
    // PID it records has exited.
    let mut candidates = Vec::new();
    let mut unreadable = None;
    for lock in table
        .iter()
        .filter(|l| l.class == LockClass::Flock && !l.waiting && l.ino == stat.ino)
    {
        let same_device = lock.device() == target.device();
        match lock.pid.map(|pid| (pid, procfs::holds_flock(pid, target))) {
            Some((pid, Ok(true))) => {
                return FlockState::Held {
                    holders: vec![pid],
                    recorded_pid: Some(pid),
                    recorded_exited: false,
                    doubt: None,
                };
            }
            // Alive without the file: another file's lock, unless the device
            // matches, when the taker closed it and a forked child holds it.
            Some((_, Ok(false))) if !same_device => {}
            Some((_, Ok(false))) => candidates.push((lock, same_device, false)),
            // Its /proc entry is gone, yet kill(2) may still find it: /proc
            // mounted with hidepid hides other users' processes.
            Some((pid, Err(err)))
                if err.kind() == std::io::ErrorKind::NotFound
                    && super::process::exists(pid) != Some(true) =>
            {
                candidates.push((lock, same_device, true));
            }
            Some((pid, Err(err))) => {
                if same_device {
                    unreadable = Some((pid, err));
                }
            }
            None => candidates.push((lock, same_device, false)),
        }
    }
    if let Some((pid, err)) = unreadable {
        // The kernel names a live PID whose descriptors we may not read: trust the kernel.
        let why = match err.kind() {
            std::io::ErrorKind::NotFound => "/proc hides it".to_string(),
            _ => err.to_string(),
        };
        return FlockState::Held {
            holders: vec![pid],
            recorded_pid: Some(pid),
            recorded_exited: false,
            doubt: Some(HolderDoubt::Unconfirmed { pid, why }),
        };
    }
    if candidates.is_empty() {
        return if locks.settled() {
            FlockState::Unheld
        } else {
            FlockState::Unsettled
        };
    }
    // The recorded holder has exited or no longer has the file: a process that
    // inherited the open file (a fork without exec) holds it now, and only a
    // scan of every process can name it.
    let recorded = candidates.iter().find(|(l, _, _)| l.pid.is_some());
    FlockState::Unidentified {
        recorded_pid: recorded.and_then(|(l, _, _)| l.pid),
        recorded_exited: recorded.is_some_and(|(_, _, exited)| *exited),
        certain: candidates.iter().any(|(_, same_device, _)| *same_device),
    }
}

#[cfg(target_os = "linux")]
/// Settles an [`FlockState::Unidentified`] or [`FlockState::Unsettled`] lock
/// with what the scan found:
/// the processes that own a flock on the file through a descriptor of theirs.
/// `unseen` says what the scan could not see, when it could not see every process.
pub fn settle_with_scan(
    state: FlockState,
    holders: Vec<u32>,
    unseen: Option<String>,
) -> FlockState {
    if state == FlockState::Unsettled {
        return match (holders.is_empty(), unseen) {
            (false, _) => FlockState::Held {
                holders,
                recorded_pid: None,
                recorded_exited: false,
                doubt: None,
            },
            (true, None) => FlockState::Unheld,
            // Whether one that could not be seen may hold it is the judge's
            // to weigh: only a possible server makes this a doubt.
            (true, Some(_)) => FlockState::Unsettled,
        };
    }
    let FlockState::Unidentified {
        recorded_pid,
        recorded_exited,
        certain,
    } = state
    else {
        return state;
    };
    let held = |doubt| FlockState::Held {
        holders: Vec::new(),
        recorded_pid,
        recorded_exited,
        doubt: Some(doubt),
    };
    if !holders.is_empty() {
        return FlockState::Held {
            holders,
            recorded_pid,
            recorded_exited,
            doubt: None,
        };
    }
    match (certain, unseen) {
        (true, None) => held(HolderDoubt::NoneFound {
            recorded: recorded_pid,
        }),
        (true, Some(unseen)) => held(HolderDoubt::Unseen(unseen)),
        (false, None) => FlockState::Unheld,
        (false, Some(unseen)) => FlockState::Unknown(format!(
            "/proc/locks shows a flock on an inode of the same number on another device view; \
             {unseen}, so it cannot be told whether it is this file"
        )),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
pub fn state(_stat: &FileStat, _locks: &LockTable) -> FlockState {
    FlockState::Unknown(format!(
        "on {} ovlock cannot read the kernel's lock table, and it never takes the lock to test it",
        std::env::consts::OS
    ))
}
