//! Removing one stale path-lock file (`.path.ovlock`, `.exact.ovlock.*`) the
//! way OpenViking removes its own: under an OFD write lock on the whole file,
//! after checking that the path still names the descriptor's file and that
//! its bytes are still exactly the ones judged, and still stale by a fresh
//! clock. OpenViking rewrites a token in place under that same lock, so a
//! refresh either lands before the check (and the bytes differ) or waits
//! (it retries on EAGAIN) until the file is gone. `flock` would exclude
//! nothing here: OpenViking never takes it on these files.

use std::path::Path;
use std::time::SystemTime;

/// How an attempt to remove one path-lock file ended.
// Without a lock to exclude OpenViking with every attempt fails: nothing
// else is built there.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", windows)),
    allow(dead_code)
)]
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Removed,
    /// Left in place: it changed since it was judged, is no longer stale,
    /// or is not the file judged. Nothing is lost by keeping it.
    Changed,
    /// Someone holds a lock on it right now (OpenViking is refreshing or
    /// releasing it): left in place.
    Busy,
    /// It is gone already, which meets the goal.
    Gone,
    Failed(String),
}

/// The file as it was judged.
// Without a lock to exclude OpenViking with nothing is removed, so nothing
// reads it.
#[cfg_attr(
    not(any(target_os = "linux", target_os = "macos", windows)),
    allow(dead_code)
)]
pub struct Judged<'a> {
    /// (device, inode).
    pub id: (u64, u64),
    pub size: u64,
    /// Its first bytes, as many as were read (all of a token).
    pub content: &'a [u8],
}

/// Removes the file at `rel` (relative to the data directory `dir`, never
/// through a symlink) if it is still the file judged, holding the same bytes,
/// and `still_stale` says so of those bytes now.
#[cfg(any(target_os = "linux", target_os = "macos"))]
pub fn remove(
    dir: &Path,
    rel: &Path,
    judged: &Judged,
    still_stale: impl Fn(&[u8], Option<SystemTime>) -> bool,
) -> Attempt {
    match ofd::remove(dir, rel, judged, still_stale) {
        Ok(attempt) => attempt,
        Err(why) => Attempt::Failed(why),
    }
}

/// On Windows, under the LockFileEx lock OpenViking's engine takes there.
#[cfg(windows)]
pub fn remove(
    dir: &Path,
    rel: &Path,
    judged: &Judged,
    still_stale: impl Fn(&[u8], Option<SystemTime>) -> bool,
) -> Attempt {
    windows::remove(dir, rel, judged, still_stale).unwrap_or_else(Attempt::Failed)
}

#[cfg(windows)]
mod windows;

/// Elsewhere there are no OFD locks to exclude OpenViking with, so nothing
/// is removed.
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
pub fn remove(
    _dir: &Path,
    _rel: &Path,
    _judged: &Judged,
    _still_stale: impl Fn(&[u8], Option<SystemTime>) -> bool,
) -> Attempt {
    Attempt::Failed(format!(
        "on {} ovlock cannot take OpenViking's OFD lock, so it removes no path lock",
        std::env::consts::OS
    ))
}

/// Linux and macOS alike: both have `F_OFD_SETLK` (37 and 90), which libc
/// names for each.
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod ofd {
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use std::path::{Component, Path};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, fstat, openat, statat, unlinkat};
    use rustix::io::Errno;

    use super::{Attempt, Judged};

    pub(super) fn remove(
        dir: &Path,
        rel: &Path,
        judged: &Judged,
        still_stale: impl Fn(&[u8], Option<SystemTime>) -> bool,
    ) -> Result<Attempt, String> {
        let id = judged.id;
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(format!("{} names no file", rel.display()));
        };
        let Some(parent) = open_beneath(dir, parent)? else {
            return Ok(Attempt::Gone);
        };
        let same = |s: &rustix::fs::Stat| (crate::inspect::fsread::device_of(s), s.st_ino) == id;
        // Looked at before it is opened: a device swapped in is never opened.
        match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if same(&now) && FileType::from_raw_mode(now.st_mode).is_file() => {}
            Ok(_) => return Ok(Attempt::Changed),
            Err(Errno::NOENT) => return Ok(Attempt::Gone),
            Err(err) => return Err(format!("cannot stat it: {err}")),
        }
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = match openat(&parent, name, flags | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(Attempt::Gone),
            // A symlink or something else swapped in: not the file judged.
            Err(Errno::LOOP | Errno::NXIO | Errno::ISDIR) => return Ok(Attempt::Changed),
            Err(err) => return Err(format!("cannot open it: {err}")),
        };
        let stat = fstat(&fd).map_err(|err| format!("cannot stat it: {err}"))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Ok(Attempt::Changed);
        }
        match lock_whole_file(fd.as_fd()) {
            Ok(()) => {}
            Err(Errno::AGAIN | Errno::ACCESS) => return Ok(Attempt::Busy),
            Err(err) => return Err(format!("cannot lock it: {err}")),
        }
        // Held for the few system calls below only: OpenViking's own release
        // of a lease fails while it is held.
        let locked = fstat(&fd).map_err(|err| format!("cannot stat it: {err}"))?;
        if !same(&locked) {
            return Ok(Attempt::Changed);
        }
        match statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(now) if same(&now) => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(Attempt::Changed),
            Err(err) => return Err(format!("cannot stat it: {err}")),
        }
        let bytes = read_all(&fd)?;
        let modified = u64::try_from(locked.st_mtime).ok().map(|secs| {
            UNIX_EPOCH + Duration::new(secs, u32::try_from(locked.st_mtime_nsec).unwrap_or(0))
        });
        // The same size and the same first bytes: all of them, for a token.
        let unchanged = u64::try_from(locked.st_size).ok() == Some(judged.size)
            && bytes.starts_with(judged.content);
        if !unchanged || !still_stale(&bytes, modified) {
            return Ok(Attempt::Changed);
        }
        match unlinkat(&parent, name, AtFlags::empty()) {
            Ok(()) => Ok(Attempt::Removed),
            Err(Errno::NOENT) => Ok(Attempt::Gone),
            Err(err) => Err(format!("cannot remove it: {err}")),
        }
        // The descriptor closes here, and with it the lock.
    }

    /// The directory `rel` below `dir`, opened one component at a time
    /// without following a symlink; None when it no longer exists.
    fn open_beneath(dir: &Path, rel: &Path) -> Result<Option<OwnedFd>, String> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let open = |at: BorrowedFd<'_>, name: &Path| match openat(at, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => Ok(None),
            Err(err) => Err(format!("cannot open {}: {err}", dir.join(rel).display())),
        };
        let Some(mut fd) = open(CWD, dir)? else {
            return Ok(None);
        };
        for component in rel.components() {
            let Component::Normal(name) = component else {
                return Err(format!("{} is not a plain relative path", rel.display()));
            };
            match open(fd.as_fd(), Path::new(name))? {
                Some(next) => fd = next,
                None => return Ok(None),
            }
        }
        Ok(Some(fd))
    }

    /// A non-blocking OFD write lock on the whole file, as OpenViking takes
    /// it (`fcntl(F_OFD_SETLK)`). rustix offers only the classic
    /// process-owned lock, which any other descriptor of this process
    /// closing would drop.
    fn lock_whole_file(fd: BorrowedFd<'_>) -> Result<(), Errno> {
        // SAFETY: a zeroed flock is valid (whole file from offset 0, pid 0
        // as F_OFD_SETLK requires); the descriptor is open for the call.
        let result = unsafe {
            let mut lock: libc::flock = std::mem::zeroed();
            lock.l_type = libc::F_WRLCK as libc::c_short;
            lock.l_whence = libc::SEEK_SET as libc::c_short;
            libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &lock)
        };
        if result == -1 {
            Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO))
        } else {
            Ok(())
        }
    }

    /// Locks a file as OpenViking does, for the tests.
    #[cfg(test)]
    pub(super) fn lock_for_test(file: &std::fs::File) {
        lock_whole_file(file.as_fd()).expect("OFD lock");
    }

    fn read_all(fd: &OwnedFd) -> Result<Vec<u8>, String> {
        // One byte more than inspect reads: a longer file is not what was judged.
        let mut buf = vec![0; crate::inspect::path_locks::PATH_LOCK_READ_CAP + 1];
        let mut len = 0;
        while len < buf.len() {
            match rustix::io::pread(fd, &mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(Errno::INTR) => continue,
                Err(err) => return Err(format!("cannot read it: {err}")),
            }
        }
        buf.truncate(len);
        Ok(buf)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use super::*;

    const TOKEN: &[u8] = b"0b6c6e4e-3b0a-4b8e-9d51-1d2c3e4f5a6b:1700000000000000000:T";

    struct Tree {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    /// A data directory with one lock file at `viking/default/resources/.path.ovlock`.
    fn tree() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        fs::create_dir_all(root.join("viking/default/resources")).unwrap();
        fs::write(root.join(rel()), TOKEN).unwrap();
        Tree { _dir: dir, root }
    }

    fn rel() -> &'static Path {
        Path::new("viking/default/resources/.path.ovlock")
    }

    fn judged(id: (u64, u64)) -> Judged<'static> {
        Judged {
            id,
            size: TOKEN.len() as u64,
            content: TOKEN,
        }
    }

    fn id(path: &Path) -> (u64, u64) {
        let meta = fs::symlink_metadata(path).unwrap();
        (meta.dev(), meta.ino())
    }

    #[test]
    fn removes_the_file_judged() {
        let t = tree();
        let id = id(&t.root.join(rel()));
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| true),
            Attempt::Removed
        );
        assert!(!t.root.join(rel()).exists());
        assert!(t.root.join("viking/default/resources").is_dir());
    }

    #[test]
    fn keeps_a_token_rewritten_since_it_was_judged() {
        let t = tree();
        let path = t.root.join(rel());
        let id = id(&path);
        fs::write(&path, b"0b6c6e4e:1800000000000000000:T").unwrap();
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| true),
            Attempt::Changed
        );
        assert!(path.exists());
    }

    #[test]
    fn keeps_a_token_no_longer_stale_by_a_fresh_look() {
        let t = tree();
        let id = id(&t.root.join(rel()));
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| false),
            Attempt::Changed
        );
        assert!(t.root.join(rel()).exists());
    }

    #[test]
    fn keeps_a_file_replaced_by_another_with_the_same_bytes() {
        let t = tree();
        let path = t.root.join(rel());
        let id = id(&path);
        // Another inode on the path; the first one stays, so its number is not reused.
        fs::rename(&path, t.root.join("aside")).unwrap();
        fs::write(&path, TOKEN).unwrap();
        assert_ne!(super::tests::id(&path), id);
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| true),
            Attempt::Changed
        );
        assert!(path.exists());
    }

    #[test]
    fn leaves_a_file_another_descriptor_has_locked() {
        let t = tree();
        let path = t.root.join(rel());
        let id = id(&path);
        // OFD locks of two open file descriptions conflict, even in one process.
        let other = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        ofd::lock_for_test(&other);
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| true),
            Attempt::Busy
        );
        assert!(path.exists());
        drop(other);
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| true),
            Attempt::Removed
        );
    }

    #[test]
    fn a_file_longer_than_what_was_read_is_judged_by_its_size_and_first_bytes() {
        let t = tree();
        let path = t.root.join(rel());
        let long = vec![b'x'; 600];
        fs::write(&path, &long).unwrap();
        let cap = crate::inspect::path_locks::PATH_LOCK_READ_CAP;
        let judged = Judged {
            id: id(&path),
            size: 600,
            content: &long[..cap],
        };
        let shorter = Judged {
            size: 599,
            ..judged
        };
        assert_eq!(
            remove(&t.root, rel(), &shorter, |_, _| true),
            Attempt::Changed
        );
        assert_eq!(
            remove(&t.root, rel(), &judged, |_, _| true),
            Attempt::Removed
        );
    }

    #[test]
    fn a_file_already_gone_meets_the_goal() {
        let t = tree();
        let id = id(&t.root.join(rel()));
        fs::remove_file(t.root.join(rel())).unwrap();
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| true),
            Attempt::Gone
        );
    }

    #[test]
    fn never_follows_a_symlink() {
        let t = tree();
        let real = t.root.join(rel());
        let real_id = id(&real);
        // A parent swapped for a symlink to the real directory.
        fs::rename(t.root.join("viking/default"), t.root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(t.root.join("elsewhere"), t.root.join("viking/default"))
            .unwrap();
        assert_eq!(
            remove(&t.root, rel(), &judged(real_id), |_, _| true),
            Attempt::Gone
        );
        assert!(t.root.join("elsewhere/resources/.path.ovlock").exists());

        // The lock file itself a symlink to a token.
        let t = tree();
        let target = t.root.join("token");
        fs::write(&target, TOKEN).unwrap();
        fs::remove_file(t.root.join(rel())).unwrap();
        std::os::unix::fs::symlink(&target, t.root.join(rel())).unwrap();
        let target_id = id(&target);
        assert_eq!(
            remove(&t.root, rel(), &judged(target_id), |_, _| true),
            Attempt::Changed
        );
        assert!(target.exists() && fs::symlink_metadata(t.root.join(rel())).is_ok());
    }

    #[test]
    fn never_blocks_on_a_fifo() {
        let t = tree();
        let path = t.root.join(rel());
        fs::remove_file(&path).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let id = id(&path);
        assert_eq!(
            remove(&t.root, rel(), &judged(id), |_, _| true),
            Attempt::Changed
        );
        assert!(path.exists());
    }
}
