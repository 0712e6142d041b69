//! Linux /proc access: the lock table, a process's descriptors, and which of
//! them carry a lock.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::kernel_locks::{self, KernelLock, LockClass};

/// A file's identity as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// The whole kernel lock table, read once.
pub fn lock_table() -> io::Result<Vec<KernelLock>> {
    fs::read_to_string("/proc/locks").map(|text| kernel_locks::parse_table(&text))
}

/// Every PID in /proc.
pub fn pids() -> io::Result<Vec<u32>> {
    Ok(fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// A process's open descriptors and where they point.
pub fn fds(pid: u32) -> io::Result<Vec<(u32, PathBuf)>> {
    let dir = format!("/proc/{pid}/fd");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A descriptor closed since the listing is simply skipped.
        if let Ok(target) = fs::read_link(entry.path()) {
            out.push((fd, target));
        }
    }
    Ok(out)
}

/// Does this descriptor carry a held flock on `target`? The fdinfo `lock:`
/// lines name the locks owned through this open file; `stat` through the
/// descriptor confirms it is the same file even where /proc/locks shows a
/// different device number (btrfs subvolumes, overlayfs).
pub fn fd_holds_flock(pid: u32, fd: u32, target: FileId) -> io::Result<bool> {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))?;
    let locked = info
        .lines()
        .filter_map(|line| line.strip_prefix("lock:"))
        .filter_map(kernel_locks::parse_line)
        .any(|lock| lock.class == LockClass::Flock && !lock.waiting && lock.ino == target.ino);
    if !locked {
        return Ok(false);
    }
    let meta = fs::metadata(format!("/proc/{pid}/fd/{fd}"))?;
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    } == target)
}

/// Does any descriptor of `pid` carry a held flock on `target`?
pub fn holds_flock(pid: u32, target: FileId) -> io::Result<bool> {
    for (fd, _) in fds(pid)? {
        match fd_holds_flock(pid, fd, target) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}
