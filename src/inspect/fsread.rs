//! Reading small files safely: never blocking on a FIFO or device, never
//! following a symlink where the caller forbids it, never reading more than a cap.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::SystemTime;

/// What is at a path, without following a final symlink.
// Windows has no FIFOs, sockets or device nodes to find.
#[cfg_attr(not(unix), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl FileKind {
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Other => "an unusual file",
        }
    }

    /// A one-word name, for JSON.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Regular => "regular",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "char_device",
            FileKind::BlockDevice => "block_device",
            FileKind::Other => "other",
        }
    }

    fn of(file_type: std::fs::FileType) -> FileKind {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            if file_type.is_fifo() {
                return FileKind::Fifo;
            }
            if file_type.is_socket() {
                return FileKind::Socket;
            }
            if file_type.is_char_device() {
                return FileKind::CharDevice;
            }
            if file_type.is_block_device() {
                return FileKind::BlockDevice;
            }
        }
        if file_type.is_symlink() {
            FileKind::Symlink
        } else if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_file() {
            FileKind::Regular
        } else {
            FileKind::Other
        }
    }
}

/// Identity and timestamps of a regular file, from the descriptor that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

impl FileStat {
    /// (volume serial number, file index), when they could be read: a
    /// file index is never 0.
    #[cfg(windows)]
    pub fn id(&self) -> Option<(u64, u64)> {
        (self.ino != 0).then_some((self.dev, self.ino))
    }
}

/// A regular file's first bytes and the metadata of the descriptor they came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub stat: FileStat,
    pub content: Vec<u8>,
    /// The file holds more than was read.
    pub truncated: bool,
}

/// An I/O error in words, with the remedy when it is a refusal: whoever
/// reads it at 2 a.m. should not have to guess that root would see more.
pub fn describe(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::PermissionDenied => {
            "Permission denied: run as root, or as the file's owner".to_string()
        }
        _ => err.to_string(),
    }
}

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing is at the path.
    Missing,
    /// Something other than a regular file is there; it was not opened
    /// (or, for a symlink, not followed).
    NotRegular(FileKind),
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Missing => f.write_str("no such file"),
            ReadError::NotRegular(kind) => {
                write!(f, "it is {}, not a regular file", kind.describe())
            }
            ReadError::Io(err) => f.write_str(&describe(err)),
        }
    }
}

/// How to treat a symlink at the final path component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symlinks {
    Follow,
    Refuse,
}

/// The kind of what is at `path`, without following a final symlink.
pub fn kind_of(path: &Path) -> io::Result<FileKind> {
    std::fs::symlink_metadata(path).map(|m| FileKind::of(m.file_type()))
}

/// The kind and metadata of what is at `path`, without following a final symlink.
pub fn lstat(path: &Path) -> Result<(FileKind, FileStat), ReadError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            let stat = stat_of(&meta);
            #[cfg(windows)]
            let stat = identified(stat, crate::inspect::windows::file_id::of_path(path));
            Ok((FileKind::of(meta.file_type()), stat))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Err(ReadError::Missing),
        Err(err) => Err(ReadError::Io(err)),
    }
}

/// Reads at most `cap` bytes of the regular file at `path`.
///
/// Anything but a regular file is refused before it is opened, since opening a
/// device can have side effects. The open itself cannot block (O_NONBLOCK) and,
/// with [`Symlinks::Refuse`], cannot follow a symlink (O_NOFOLLOW); the kind is
/// checked again on the open descriptor, so a file swapped in between cannot
/// fool the check. The access time is left alone where the kernel allows it.
pub fn read_capped(path: &Path, cap: usize, symlinks: Symlinks) -> Result<Snapshot, ReadError> {
    let before = match symlinks {
        Symlinks::Follow => std::fs::metadata(path),
        Symlinks::Refuse => std::fs::symlink_metadata(path),
    };
    match before {
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Err(ReadError::Missing),
        Err(err) => return Err(ReadError::Io(err)),
        Ok(meta) => match FileKind::of(meta.file_type()) {
            FileKind::Regular => {}
            kind => return Err(ReadError::NotRegular(kind)),
        },
    }
    let file = open_for_reading(path, symlinks).map_err(|err| match err.kind() {
        io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Io(err),
    })?;
    snapshot(file, cap)
}

/// Reads at most `cap` bytes of the regular file `name` in the directory open
/// as `dir`, never following a symlink and never blocking, as [`read_capped`]
/// does by path.
#[cfg(unix)]
pub fn read_capped_at(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &str,
    cap: usize,
) -> Result<Snapshot, ReadError> {
    use rustix::fs::{Mode, OFlags, openat};
    let flags =
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NOFOLLOW;
    match openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => snapshot(File::from(fd), cap),
        Err(rustix::io::Errno::NOENT) => Err(ReadError::Missing),
        Err(rustix::io::Errno::LOOP) => Err(ReadError::NotRegular(FileKind::Symlink)),
        Err(err) => Err(ReadError::Io(err.into())),
    }
}

/// The first `cap` bytes of an open file, which must be a regular one.
fn snapshot(file: File, cap: usize) -> Result<Snapshot, ReadError> {
    let meta = file.metadata().map_err(ReadError::Io)?;
    let kind = FileKind::of(meta.file_type());
    if kind != FileKind::Regular {
        return Err(ReadError::NotRegular(kind));
    }
    let stat = stat_of(&meta);
    #[cfg(windows)]
    let stat = {
        use std::os::windows::io::AsRawHandle;
        identified(
            stat,
            crate::inspect::windows::file_id::of_handle(file.as_raw_handle()),
        )
    };
    let mut content = Vec::with_capacity(cap.min(meta.len() as usize));
    // One byte more than the cap tells a file that is exactly `cap` long from a longer one.
    file.take(cap as u64 + 1)
        .read_to_end(&mut content)
        .map_err(ReadError::Io)?;
    let truncated = content.len() > cap;
    content.truncate(cap);
    Ok(Snapshot {
        stat,
        content,
        truncated,
    })
}

#[cfg(unix)]
fn open_for_reading(path: &Path, symlinks: Symlinks) -> io::Result<File> {
    use rustix::fs::{Mode, OFlags, open};
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    if symlinks == Symlinks::Refuse {
        flags |= OFlags::NOFOLLOW;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // Only the owner (or CAP_FOWNER) may ask for O_NOATIME; others just read.
        if let Ok(fd) = open(path, flags | OFlags::NOATIME, Mode::empty()) {
            return Ok(File::from(fd));
        }
    }
    Ok(File::from(open(path, flags, Mode::empty())?))
}

#[cfg(not(any(unix, windows)))]
fn open_for_reading(path: &Path, symlinks: Symlinks) -> io::Result<File> {
    if symlinks == Symlinks::Refuse && kind_of(path)? == FileKind::Symlink {
        return Err(io::Error::other("is a symbolic link"));
    }
    File::open(path)
}

/// A stat's device number as std gives it (`MetadataExt::dev`), so that
/// identities read both ways compare: macOS's dev_t is an i32, which std
/// widens to 64 bits.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // Linux's dev_t is already 64 bits.
pub fn device_of(stat: &rustix::fs::Stat) -> u64 {
    stat.st_dev as u64
}

/// Opened with every sharing mode, so that no rename or delete by another
/// process fails for our handle; with [`Symlinks::Refuse`], a reparse point
/// (symlink, junction) is opened itself, which `snapshot` then refuses.
#[cfg(windows)]
fn open_for_reading(path: &Path, symlinks: Symlinks) -> io::Result<File> {
    use std::os::windows::fs::OpenOptionsExt;
    use windows_sys::Win32::Storage::FileSystem::{
        FILE_FLAG_OPEN_REPARSE_POINT, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    };
    let mut options = std::fs::OpenOptions::new();
    options
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE);
    if symlinks == Symlinks::Refuse {
        options.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    options.open(path)
}

/// std's metadata on Windows lacks a file's identity (volume serial number
/// and file index, Windows' device and inode): it is read from a handle.
#[cfg(windows)]
fn identified(mut stat: FileStat, id: io::Result<(u64, u64)>) -> FileStat {
    if let Ok((volume, index)) = id {
        stat.dev = volume;
        stat.ino = index;
    }
    stat
}

#[cfg(unix)]
fn stat_of(meta: &std::fs::Metadata) -> FileStat {
    use std::os::unix::fs::MetadataExt;
    FileStat {
        dev: meta.dev(),
        ino: meta.ino(),
        size: meta.size(),
        modified: meta.modified().ok(),
    }
}

#[cfg(not(unix))]
fn stat_of(meta: &std::fs::Metadata) -> FileStat {
    FileStat {
        dev: 0,
        ino: 0,
        size: meta.len(),
        modified: meta.modified().ok(),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn reads_at_most_the_cap_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let snap = read_capped(&path, 4, Symlinks::Refuse).unwrap();
        assert_eq!(snap.content, b"0123");
        assert!(snap.truncated);
        let snap = read_capped(&path, 10, Symlinks::Refuse).unwrap();
        assert_eq!(snap.content, b"0123456789");
        assert!(!snap.truncated);
        assert_eq!(snap.stat.size, 10);
    }

    #[test]
    fn refuses_symlinks_fifos_and_directories_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"42").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::RUSR).unwrap();

        let kind = |p: &Path, s| match read_capped(p, 16, s) {
            Err(ReadError::NotRegular(kind)) => Some(kind),
            _ => None,
        };
        assert_eq!(kind(&link, Symlinks::Refuse), Some(FileKind::Symlink));
        assert_eq!(kind(&fifo, Symlinks::Refuse), Some(FileKind::Fifo));
        assert_eq!(kind(&fifo, Symlinks::Follow), Some(FileKind::Fifo));
        assert_eq!(
            kind(dir.path(), Symlinks::Refuse),
            Some(FileKind::Directory)
        );
        assert_eq!(
            read_capped(&link, 16, Symlinks::Follow).unwrap().content,
            b"42"
        );
        assert!(matches!(
            read_capped(&dir.path().join("absent"), 16, Symlinks::Refuse),
            Err(ReadError::Missing)
        ));
    }
}
