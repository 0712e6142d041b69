//! Reading one lock file and its metadata through its directory's
//! descriptor: no symlink followed, no FIFO blocked on, no access time
//! touched where that can be helped.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, fstat, openat, statat};
#[cfg(target_os = "linux")]
use rustix::fs::{StatxFlags, statx};
use rustix::io::Errno;

use super::{LockFileRead, LockMeta, PATH_LOCK_READ_CAP};
use crate::inspect::fsread::{self, FileKind, FileStat};
use crate::openviking::lock_token;

/// Reads a lock file without following a symlink, blocking on a FIFO,
/// or opening anything but a regular file; None when it was removed
/// since the listing (its lock released).
pub(super) fn read_lock(
    dir: BorrowedFd,
    name: &OsStr,
    file_type: FileType,
) -> Option<LockFileRead> {
    match file_type {
        FileType::RegularFile => {}
        FileType::Unknown => {
            return Some(LockFileRead::Unreadable {
                meta: None,
                error: "its file type could not be read".into(),
            });
        }
        other => return Some(LockFileRead::NotRegular(kind_of(other))),
    }
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match open_without_atime(dir, name, flags) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return None,
        Err(Errno::LOOP) => return Some(LockFileRead::NotRegular(FileKind::Symlink)),
        Err(err) => {
            let meta = meta_by_name(dir, name)
                .ok()
                .filter(|(t, _)| *t == FileType::RegularFile)
                .map(|(_, meta)| meta);
            return Some(LockFileRead::Unreadable {
                meta,
                error: fsread::describe(&err.into()),
            });
        }
    };
    let (file_type, meta) = match meta_of(fd.as_fd()) {
        Ok(found) => found,
        Err(err) => {
            return Some(LockFileRead::Unreadable {
                meta: None,
                error: fsread::describe(&err.into()),
            });
        }
    };
    // Swapped since the listing: the descriptor is what counts.
    if file_type != FileType::RegularFile {
        return Some(LockFileRead::NotRegular(kind_of(file_type)));
    }
    let mut content = vec![0; PATH_LOCK_READ_CAP + 1];
    let mut len = 0;
    while len < content.len() {
        match rustix::io::read(&fd, &mut content[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(Errno::INTR) => {}
            Err(err) => {
                return Some(LockFileRead::Unreadable {
                    meta: Some(meta),
                    error: fsread::describe(&err.into()),
                });
            }
        }
    }
    content.truncate(len);
    // One byte more than the cap tells a file of exactly the cap from a longer one.
    let token = (len <= PATH_LOCK_READ_CAP).then(|| lock_token::decode(&content));
    content.truncate(PATH_LOCK_READ_CAP);
    Some(LockFileRead::Read {
        meta,
        content,
        token,
    })
}

/// Opens a directory without following a symlink, and without touching
/// its access time where that is allowed.
pub(super) fn open_dir<P: rustix::path::Arg + Copy>(
    parent: BorrowedFd,
    name: P,
) -> Result<OwnedFd, Errno> {
    let flags =
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    open_without_atime(parent, name, flags)
}

/// Only the owner of a file (or CAP_FOWNER) may open it with O_NOATIME;
/// anyone else opens it plainly.
#[cfg(target_os = "linux")]
fn open_without_atime<P: rustix::path::Arg + Copy>(
    dir: BorrowedFd,
    name: P,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    match openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => openat(dir, name, flags, Mode::empty()),
        opened => opened,
    }
}

/// macOS has no O_NOATIME: reading a lock file may touch its access time.
#[cfg(target_os = "macos")]
fn open_without_atime<P: rustix::path::Arg + Copy>(
    dir: BorrowedFd,
    name: P,
    flags: OFlags,
) -> Result<OwnedFd, Errno> {
    openat(dir, name, flags, Mode::empty())
}

#[cfg(target_os = "linux")]
const STATX_MASK: StatxFlags = StatxFlags::BASIC_STATS.union(StatxFlags::BTIME);

/// The type and metadata of an open file, with its birth time where the
/// kernel and filesystem have one.
#[cfg(target_os = "linux")]
fn meta_of(fd: BorrowedFd) -> Result<(FileType, LockMeta), Errno> {
    match statx(fd, c"", AtFlags::EMPTY_PATH, STATX_MASK) {
        Ok(st) => Ok(from_statx(&st)),
        // Kernels before 4.11, and sandboxes that refuse statx.
        Err(Errno::NOSYS | Errno::PERM) => fstat(fd).map(|st| from_stat(&st)),
        Err(err) => Err(err),
    }
}

#[cfg(target_os = "linux")]
fn meta_by_name(dir: BorrowedFd, name: &OsStr) -> Result<(FileType, LockMeta), Errno> {
    match statx(dir, name, AtFlags::SYMLINK_NOFOLLOW, STATX_MASK) {
        Ok(st) => Ok(from_statx(&st)),
        Err(Errno::NOSYS | Errno::PERM) => {
            statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|st| from_stat(&st))
        }
        Err(err) => Err(err),
    }
}

/// The same on macOS, whose stat carries the birth time.
#[cfg(target_os = "macos")]
fn meta_of(fd: BorrowedFd) -> Result<(FileType, LockMeta), Errno> {
    fstat(fd).map(|st| with_birth(&st))
}

#[cfg(target_os = "macos")]
fn meta_by_name(dir: BorrowedFd, name: &OsStr) -> Result<(FileType, LockMeta), Errno> {
    statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map(|st| with_birth(&st))
}

#[cfg(target_os = "macos")]
fn with_birth(st: &rustix::fs::Stat) -> (FileType, LockMeta) {
    let (file_type, mut meta) = from_stat(st);
    meta.born = time(
        st.st_birthtime,
        u32::try_from(st.st_birthtime_nsec).unwrap_or(0),
    );
    (file_type, meta)
}

#[cfg(target_os = "linux")]
fn from_statx(st: &rustix::fs::Statx) -> (FileType, LockMeta) {
    let has = |flag: StatxFlags| st.stx_mask & flag.bits() != 0;
    let meta = LockMeta {
        stat: FileStat {
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            size: st.stx_size,
            modified: has(StatxFlags::MTIME)
                .then(|| time(st.stx_mtime.tv_sec, st.stx_mtime.tv_nsec))
                .flatten(),
        },
        born: has(StatxFlags::BTIME)
            .then(|| time(st.stx_btime.tv_sec, st.stx_btime.tv_nsec))
            .flatten(),
    };
    (FileType::from_raw_mode(st.stx_mode.into()), meta)
}

fn from_stat(st: &rustix::fs::Stat) -> (FileType, LockMeta) {
    let meta = LockMeta {
        stat: FileStat {
            dev: fsread::device_of(st),
            ino: st.st_ino,
            size: u64::try_from(st.st_size).unwrap_or(0),
            modified: time(st.st_mtime, u32::try_from(st.st_mtime_nsec).unwrap_or(0)),
        },
        born: None,
    };
    (FileType::from_raw_mode(st.st_mode), meta)
}

fn time(secs: i64, nanos: u32) -> Option<SystemTime> {
    let nanos = Duration::from_nanos(u64::from(nanos));
    match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))?
            .checked_add(nanos),
        Err(_) => UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(nanos),
    }
}

fn kind_of(file_type: FileType) -> FileKind {
    match file_type {
        FileType::RegularFile => FileKind::Regular,
        FileType::Directory => FileKind::Directory,
        FileType::Symlink => FileKind::Symlink,
        FileType::Fifo => FileKind::Fifo,
        FileType::Socket => FileKind::Socket,
        FileType::CharacterDevice => FileKind::CharDevice,
        FileType::BlockDevice => FileKind::BlockDevice,
        FileType::Unknown => FileKind::Other,
    }
}
