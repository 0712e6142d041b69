//! `F_GETLK`: whether a file is locked, and by whom when the lock records
//! it. XNU keeps flock, POSIX and OFD locks on one list per file, so asking
//! for an exclusive lock of the whole file reports any of them; a flock
//! comes back with `l_pid` = -1. Asking takes no lock, so a server starting
//! at that instant never fails because of ovlock.

use std::ffi::c_short;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::inspect::fsread::{self, FileStat};
use crate::inspect::lock_query::Conflict;

/// The lock held on the file at `path`, which must still be the file
/// `stat` describes; None when it is unlocked.
pub fn conflict(path: &Path, stat: &FileStat) -> Result<Option<Conflict>, String> {
    let file = open(path).map_err(|err| format!("cannot open it: {}", fsread::describe(&err)))?;
    let now = file
        .metadata()
        .map_err(|err| format!("cannot stat it: {}", fsread::describe(&err)))?;
    if (now.dev(), now.ino()) != (stat.dev, stat.ino) {
        return Err("it was replaced while ovlock looked at it".into());
    }
    // SAFETY: a zeroed flock is a valid request once its type is set: the
    // whole file (start 0, length 0 = to the end); the descriptor is open.
    let (result, lock) = unsafe {
        let mut lock: libc::flock = std::mem::zeroed();
        lock.l_type = libc::F_WRLCK as c_short;
        lock.l_whence = libc::SEEK_SET as c_short;
        let result = libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock);
        (result, lock)
    };
    if result == -1 {
        let err = std::io::Error::last_os_error();
        return Err(format!("F_GETLK failed: {}", fsread::describe(&err)));
    }
    if lock.l_type == libc::F_UNLCK as c_short {
        return Ok(None);
    }
    Ok(Some(Conflict {
        pid: u32::try_from(lock.l_pid).ok().filter(|&pid| pid > 0),
        exclusive: lock.l_type == libc::F_WRLCK as c_short,
    }))
}

/// Read-only, without following a symlink, blocking on a FIFO, or taking
/// a terminal. (The descriptor closes before this returns: ovlock holds no
/// POSIX lock for that close to drop.)
fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
}
