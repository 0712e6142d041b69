//! Listing one directory of the tree: its lock files, what each locks,
//! and its subdirectories, from getdents on Linux and readdir on macOS.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::AsFd;
#[cfg(target_os = "macos")]
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

#[cfg(target_os = "linux")]
use rustix::fs::RawDir;
use rustix::fs::{AtFlags, FileType, statat};
use rustix::io::Errno;

use super::reading::{open_dir, read_lock};
use super::walk::{DirHandle, Gathered, Job, Shared, unreadable};
use super::{Locks, PathLockFile};
use crate::openviking::layout::{self, PathLockName, TreePlace};

/// The getdents buffer of each thread: a directory of a few hundred
/// entries in one call.
pub(super) const LISTING_BUFFER: usize = 32 * 1024;
/// How often a long listing adds to the shared count of entries.
const ENTRIES_BATCH: u64 = 4096;

/// The names of one directory's entries, other than its lock files,
/// kept while it is listed: a sidecar's target is found among them
/// without listing the directory twice.
#[derive(Default)]
pub(super) struct Names {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Names {
    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    fn push(&mut self, name: &[u8]) {
        self.bytes.extend_from_slice(name);
        self.ends.push(self.bytes.len());
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(&self.ends).map(|(s, &e)| &self.bytes[s..e])
    }
}

/// A lock file met in a listing, read once the listing is done.
struct ListedLock {
    name: Vec<u8>,
    kind: PathLockName,
    file_type: FileType,
}

/// Lists one directory: records its lock files and returns its
/// subdirectories to list.
pub(super) fn list(
    shared: &Shared,
    job: Job,
    buffer: &mut [MaybeUninit<u8>],
    names: &mut Names,
    found: &mut Gathered,
) -> Vec<Job> {
    let opened = match job.dir {
        DirHandle::Open(fd) => Ok(fd),
        DirHandle::In(parent) => open_dir(parent.as_fd(), job.path.file_name().unwrap_or_default()),
    };
    let fd = match opened {
        Ok(fd) => fd,
        // Gone since its parent was listed: nothing to search.
        Err(Errno::NOENT) => return Vec::new(),
        Err(err) => {
            found.unreadable.push(unreadable(&job.path, err));
            return Vec::new();
        }
    };
    found.dirs += 1;
    names.clear();
    let mut listed: Vec<ListedLock> = Vec::new();
    let mut subdirs: Vec<PathBuf> = Vec::new();
    let mut counted = 0;
    #[cfg(target_os = "linux")]
    let mut listing = RawDir::new(&fd, buffer);
    #[cfg(target_os = "macos")]
    let mut listing = Readdir::new(&fd, buffer);
    while let Some(entry) = listing.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) => {
                found.unreadable.push(unreadable(&job.path, err));
                break;
            }
        };
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        counted += 1;
        if counted == ENTRIES_BATCH {
            counted = 0;
            if !shared.count_entries(ENTRIES_BATCH) {
                return Vec::new();
            }
        }
        let file_type = match entry.file_type() {
            FileType::Unknown => statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_or(FileType::Unknown, |st| FileType::from_raw_mode(st.st_mode)),
            known => known,
        };
        if let Some(kind) = PathLockName::of(bytes) {
            listed.push(ListedLock {
                name: bytes.to_vec(),
                kind,
                file_type,
            });
            continue;
        }
        names.push(bytes);
        if file_type == FileType::Directory {
            subdirs.push(job.path.join(OsStr::from_bytes(bytes)));
        }
    }
    if !shared.count_entries(counted) {
        return Vec::new();
    }
    // Each entry's safe name once, for all the directory's sidecars.
    let mut by_safe: HashMap<String, Vec<&[u8]>> = HashMap::new();
    if listed.iter().any(|m| m.kind == PathLockName::ExactSidecar) {
        for entry in names.iter() {
            by_safe
                .entry(layout::sidecar_safe_name(entry))
                .or_default()
                .push(entry);
        }
    }
    for lock in listed {
        if shared.lock_files.fetch_add(1, Ordering::Relaxed) >= shared.limits.lock_files {
            found.lock_files_capped = true;
            break;
        }
        let name = OsStr::from_bytes(&lock.name);
        let Some(read) = read_lock(fd.as_fd(), name, lock.file_type) else {
            continue;
        };
        let relative = job.path.strip_prefix(shared.tree).unwrap_or(Path::new(""));
        found.files.push(PathLockFile {
            path: job.path.join(name),
            name: lock.kind,
            locks: locks(relative, &lock.name, lock.kind, &by_safe),
            read,
        });
    }
    let depth = job.depth + 1;
    let parent = Arc::new(fd);
    subdirs
        .into_iter()
        .filter(|path| {
            if shared.mounts.contains(path) {
                found.skipped_mounts.push(path.clone());
                return false;
            }
            if depth > shared.limits.depth {
                if found.too_deep.is_none() {
                    found.too_deep = Some(path.clone());
                }
                return false;
            }
            true
        })
        .map(|path| Job {
            dir: DirHandle::In(Arc::clone(&parent)),
            path,
            depth,
        })
        .collect()
}

/// What the lock file `name`, in the directory at `relative` below
/// `viking/`, locks; `by_safe` holds the directory's other entries by
/// their safe names, so that only the few a sidecar may be of are hashed.
fn locks(
    relative: &Path,
    name: &[u8],
    kind: PathLockName,
    by_safe: &HashMap<String, Vec<&[u8]>>,
) -> Locks {
    if kind == PathLockName::TreeOrDirectory {
        return Locks::Place(TreePlace::of(relative));
    }
    let dir = TreePlace::of(relative);
    let Some(safe) = layout::sidecar_safe_part(name) else {
        return Locks::Unrecognised { dir };
    };
    let candidates = std::str::from_utf8(safe)
        .ok()
        .and_then(|safe| by_safe.get(safe))
        .map_or(&[][..], Vec::as_slice);
    let target = candidates.iter().find(|entry| {
        let path = relative.join(OsStr::from_bytes(entry));
        layout::exact_lock_name(&layout::engine_path(&path)).as_bytes() == name
    });
    match target {
        Some(entry) => Locks::Place(TreePlace::of(&relative.join(OsStr::from_bytes(entry)))),
        None => Locks::Missing {
            dir,
            safe: String::from_utf8_lossy(safe).into_owned(),
        },
    }
}

/// A directory's entries through readdir, in the shape of Linux's
/// `RawDir` (macOS has no getdents; libc buffers the listing itself).
#[cfg(target_os = "macos")]
struct Readdir(Result<rustix::fs::Dir, Option<Errno>>);

#[cfg(target_os = "macos")]
impl Readdir {
    fn new(fd: &OwnedFd, _buffer: &mut [MaybeUninit<u8>]) -> Readdir {
        Readdir(rustix::fs::Dir::read_from(fd).map_err(Some))
    }

    /// The next entry; an error that kept the directory from being read
    /// at all comes first, once.
    fn next(&mut self) -> Option<Result<rustix::fs::DirEntry, Errno>> {
        match &mut self.0 {
            Ok(dir) => dir.read(),
            Err(err) => err.take().map(Err),
        }
    }
}
