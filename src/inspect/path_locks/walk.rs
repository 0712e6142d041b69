//! The walk over the storage tree: a few threads share a queue of
//! directories, each lists one at a time, and the limits of one walk are
//! counted across all of them.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use rustix::fs::{Mode, OFlags, openat};
use rustix::io::Errno;

use super::listing::{LISTING_BUFFER, Names, list};
use super::reading::open_dir;
use super::{CapHit, PathLockFile, PathLocks, Unreadable, Walk};
use crate::inspect::fsread::{self, FileKind};

/// How far one walk goes, so that a pathological tree costs bounded
/// time; a walk that meets a limit says so.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Levels below `viking/`.
    pub depth: usize,
    pub entries: u64,
    pub lock_files: usize,
}

pub const LIMITS: Limits = Limits {
    depth: 128,
    entries: 4_000_000,
    lock_files: 100_000,
};

/// More threads than this only contend for the same disk.
const MAX_THREADS: usize = 8;

pub fn search(tree: &Path) -> PathLocks {
    search_with(tree, LIMITS, hanging_mount_points)
}

#[cfg(target_os = "linux")]
fn hanging_mount_points() -> Vec<PathBuf> {
    crate::inspect::procfs::hanging_mount_points().unwrap_or_default()
}

#[cfg(target_os = "macos")]
use crate::inspect::macos::hanging_mount_points;

/// The search, within `limits`; `hanging` lists the network and FUSE
/// mount points of the system, read only once the tree is found.
pub fn search_with(
    tree: &Path,
    limits: Limits,
    hanging: impl FnOnce() -> Vec<PathBuf>,
) -> PathLocks {
    // O_PATH touches neither the directory nor a filesystem mounted
    // there, which may be a network one whose server hangs. macOS has
    // none: it opens the directory, as the walk would next.
    #[cfg(target_os = "linux")]
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    #[cfg(target_os = "macos")]
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let handle = match openat(rustix::fs::CWD, tree, flags, Mode::empty()) {
        Ok(handle) => handle,
        Err(Errno::NOENT) => return PathLocks::NoTree,
        Err(err) => {
            return match fsread::kind_of(tree) {
                Ok(FileKind::Directory) | Err(_) => PathLocks::Walked(Walk {
                    unreadable: vec![unreadable(tree, err)],
                    ..empty(tree)
                }),
                Ok(kind) => PathLocks::TreeNotADirectory(kind),
            };
        }
    };
    let mounts: Vec<PathBuf> = hanging()
        .into_iter()
        .filter(|m| m.starts_with(tree))
        .collect();
    if mounts.iter().any(|m| m == tree) {
        return PathLocks::Walked(Walk {
            skipped_mounts: vec![tree.to_path_buf()],
            ..empty(tree)
        });
    }
    let root = match open_dir(handle.as_fd(), c".") {
        Ok(root) => root,
        Err(err) => {
            return PathLocks::Walked(Walk {
                unreadable: vec![unreadable(tree, err)],
                ..empty(tree)
            });
        }
    };
    drop(handle);
    PathLocks::Walked(walk(tree, root, &mounts, limits))
}

fn empty(tree: &Path) -> Walk {
    Walk {
        tree: tree.to_path_buf(),
        files: Vec::new(),
        unreadable: Vec::new(),
        skipped_mounts: Vec::new(),
        caps: Vec::new(),
        dirs: 0,
        entries: 0,
    }
}

pub(super) fn unreadable(path: &Path, err: Errno) -> Unreadable {
    Unreadable {
        path: path.to_path_buf(),
        error: fsread::describe(&err.into()),
    }
}

/// A directory waiting to be listed.
pub(super) struct Job {
    pub(super) dir: DirHandle,
    pub(super) path: PathBuf,
    /// Levels below `viking/`.
    pub(super) depth: usize,
}

pub(super) enum DirHandle {
    Open(OwnedFd),
    /// Opened by name from its parent's descriptor when its turn comes:
    /// a path could lead through a symlink swapped in meanwhile, and
    /// opening every subdirectory at once could run out of descriptors.
    In(Arc<OwnedFd>),
}

/// What the threads share: the directories still to list, and the counts
/// the limits are kept by.
pub(super) struct Shared<'a> {
    pub(super) tree: &'a Path,
    pub(super) mounts: &'a [PathBuf],
    pub(super) limits: Limits,
    queue: Mutex<Queue>,
    changed: Condvar,
    entries: AtomicU64,
    pub(super) lock_files: AtomicUsize,
    stop: AtomicBool,
}

struct Queue {
    jobs: Vec<Job>,
    /// Jobs taken and not yet finished: the walk is over when none is
    /// and none waits.
    busy: usize,
}

/// What one thread found.
#[derive(Default)]
pub(super) struct Gathered {
    pub(super) files: Vec<PathLockFile>,
    pub(super) unreadable: Vec<Unreadable>,
    pub(super) skipped_mounts: Vec<PathBuf>,
    pub(super) too_deep: Option<PathBuf>,
    pub(super) lock_files_capped: bool,
    pub(super) dirs: u64,
}

fn walk(tree: &Path, root: OwnedFd, mounts: &[PathBuf], limits: Limits) -> Walk {
    let shared = Shared {
        tree,
        mounts,
        limits,
        queue: Mutex::new(Queue {
            jobs: vec![Job {
                dir: DirHandle::Open(root),
                path: tree.to_path_buf(),
                depth: 0,
            }],
            busy: 0,
        }),
        changed: Condvar::new(),
        entries: AtomicU64::new(0),
        lock_files: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    let mut interrupted = false;
    let found: Vec<Gathered> = std::thread::scope(|scope| {
        // A thread that cannot be started leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("ovlock-walk".into())
                    .spawn_scoped(scope, || work(&shared))
                    .ok()
            })
            .collect();
        let mut found = vec![work(&shared)];
        for helper in helpers {
            match helper.join() {
                Ok(part) => found.push(part),
                Err(_) => interrupted = true,
            }
        }
        found
    });
    let entries = shared.entries.load(Ordering::Relaxed);
    let mut walk = empty(tree);
    walk.entries = entries;
    let mut too_deep: Vec<PathBuf> = Vec::new();
    let mut lock_files_capped = false;
    for part in found {
        walk.files.extend(part.files);
        walk.unreadable.extend(part.unreadable);
        walk.skipped_mounts.extend(part.skipped_mounts);
        too_deep.extend(part.too_deep);
        lock_files_capped |= part.lock_files_capped;
        walk.dirs += part.dirs;
    }
    walk.files.sort_by(|a, b| a.path.cmp(&b.path));
    walk.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    walk.skipped_mounts.sort();
    if let Some(first) = too_deep.into_iter().min() {
        walk.caps.push(CapHit::Depth {
            limit: limits.depth,
            first,
        });
    }
    if entries > limits.entries {
        walk.caps.push(CapHit::Entries {
            limit: limits.entries,
        });
    }
    if lock_files_capped {
        walk.caps.push(CapHit::LockFiles {
            limit: limits.lock_files,
        });
    }
    if interrupted {
        walk.caps.push(CapHit::Interrupted);
    }
    walk
}

fn work(shared: &Shared) -> Gathered {
    let mut found = Gathered::default();
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); LISTING_BUFFER];
    let mut names = Names::default();
    while let Some(job) = shared.next() {
        let unwinding = Unwinding(shared);
        let children = list(shared, job, &mut buffer, &mut names, &mut found);
        std::mem::forget(unwinding);
        shared.finish(children);
    }
    found
}

/// Stops the walk if a thread panics while it lists a directory, so
/// that the others, waiting for its children, end instead of hanging.
struct Unwinding<'a, 'b>(&'a Shared<'b>);

impl Drop for Unwinding<'_, '_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Relaxed);
        self.0.finish(Vec::new());
    }
}

impl Shared<'_> {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next directory to list, waiting while others may yet add
    /// some; None when the walk is over.
    fn next(&self) -> Option<Job> {
        let mut queue = self.lock();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(job) = queue.jobs.pop() {
                queue.busy += 1;
                return Some(job);
            }
            if queue.busy == 0 {
                return None;
            }
            queue = self
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn finish(&self, children: Vec<Job>) {
        let mut queue = self.lock();
        queue.busy -= 1;
        let over = queue.busy == 0 && children.is_empty() && queue.jobs.is_empty();
        let wake = !children.is_empty() || over || self.stop.load(Ordering::Relaxed);
        queue.jobs.extend(children);
        drop(queue);
        if wake {
            self.changed.notify_all();
        }
    }

    /// Adds `n` entries to the count; false once the walk has read too many.
    pub(super) fn count_entries(&self, n: u64) -> bool {
        let total = self.entries.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.limits.entries {
            self.stop.store(true, Ordering::Relaxed);
        }
        !self.stop.load(Ordering::Relaxed)
    }
}
