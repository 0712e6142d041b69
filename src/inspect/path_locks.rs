//! OpenViking's path locks: every `.path.ovlock` and `.exact.ovlock.*` in
//! the storage tree `{workspace}/viking/`, what each locks, and what it
//! says. The walk reads directories only (each entry's kind comes with its
//! name from getdents on Linux, readdir on macOS), opens nothing but the
//! lock files, never follows a symlink, does not enter network or FUSE
//! mounts (one whose server hangs would hang the run), and spreads over the
//! cores, so that `check` can afford it on a large tree.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::inspect::fsread::{FileKind, FileStat};
use crate::openviking::layout::{PathLockName, TREE_DIR, TreePlace};
use crate::openviking::lock_token::Token;
use crate::openviking::ovconf::{PathLockProvider, StorageBackend};
use crate::workspace::PathLockSettings;

/// How much of a path-lock file is read: OpenViking's tokens are about 60
/// bytes long.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
pub const READ_CAP: usize = 512;

/// What the workspace's path locks are, as far as files can tell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PathLocks {
    /// There is no `viking/` (or no workspace at all): nothing is locked.
    #[default]
    NoTree,
    /// `viking` is something other than a directory; a symlink there is
    /// not followed.
    TreeNotADirectory(FileKind),
    /// The config keeps the tokens where no file on this machine shows them.
    NotLocal(NotLocal),
    /// The tree is there, but only Linux, macOS and Windows search it.
    #[cfg_attr(
        any(target_os = "linux", target_os = "macos", windows),
        allow(dead_code)
    )]
    NotDetermined,
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "macos", windows)),
        allow(dead_code)
    )]
    Walked(Walk),
}

/// Why the tokens are not files of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotLocal {
    /// `memory` keeps them in the server process, `cache` in Redis.
    Provider(PathLockProvider),
    /// `s3` keeps the tree, tokens included, in S3; `memory` in the process.
    Backend(StorageBackend),
}

/// What a search of the tree found.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// `{resolved workspace}/viking`.
    pub tree: PathBuf,
    /// Every lock file found, sorted by path.
    pub files: Vec<PathLockFile>,
    /// Directories that could not be opened or listed, so were not searched.
    pub unreadable: Vec<Unreadable>,
    /// Network and FUSE mounts inside the tree, which were not entered.
    pub skipped_mounts: Vec<PathBuf>,
    /// The limits the walk met, each once; it searched less than the tree.
    pub caps: Vec<CapHit>,
    /// How many directories were listed, and how many entries they held.
    pub dirs: u64,
    pub entries: u64,
}

/// A directory that could not be opened or listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

/// A limit that kept the walk from searching the whole tree.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapHit {
    /// Directories more than `limit` levels below `viking/` were not
    /// entered; `first` is the first one met.
    Depth { limit: usize, first: PathBuf },
    /// The walk stopped after about `limit` entries.
    Entries { limit: u64 },
    /// Lock files beyond the first `limit` were not read.
    LockFiles { limit: usize },
    /// A thread of the search failed (a panic, in a build that unwinds),
    /// and what it had found is lost.
    Interrupted,
}

/// One lock file: where it is, what it locks, what it holds.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLockFile {
    pub path: PathBuf,
    pub name: PathLockName,
    pub locks: Locks,
    pub read: LockFileRead,
}

/// What a lock file locks, from its name and place.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locks {
    /// The place locked: for `.path.ovlock`, its directory; for a sidecar,
    /// the entry of its directory whose engine path hashes to the name's
    /// suffix.
    Place(TreePlace),
    /// A sidecar whose hash is of no entry of its directory `dir`: an
    /// exact lock on a path that does not exist (yet, or any more), whose
    /// name sanitises to `safe`.
    Missing { dir: TreePlace, safe: String },
    /// A sidecar whose name does not end in `.<16 hex digits>`, as no
    /// OpenViking names one, in the directory `dir`.
    Unrecognised { dir: TreePlace },
}

/// What reading a lock file gave.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockFileRead {
    /// A symlink, FIFO, directory, device or socket: never opened.
    NotRegular(FileKind),
    /// It could not be opened or read; its metadata, when that could be read.
    Unreadable {
        meta: Option<LockMeta>,
        error: String,
    },
    Read {
        meta: LockMeta,
        /// At most [`READ_CAP`] bytes.
        content: Vec<u8>,
        /// None when the file is longer than [`READ_CAP`], so was not
        /// read whole.
        token: Option<Token>,
    },
}

/// A lock file's identity and times, from the descriptor that was read.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockMeta {
    pub stat: FileStat,
    /// When the file was created, where the filesystem records it (statx's
    /// birth time). A refresh rewrites the token in place, so this is when
    /// the lock was taken; a restarted server that re-adopts a lease keeps
    /// its file.
    pub born: Option<SystemTime>,
}

/// The path locks of the workspace at `resolved_dir`, which exists. A
/// workspace without `viking/` costs one failed open.
pub fn find(resolved_dir: &Path, settings: &PathLockSettings) -> PathLocks {
    match (&settings.provider.value, &settings.backend.value) {
        (Ok(provider @ (PathLockProvider::Memory | PathLockProvider::Cache)), _) => {
            PathLocks::NotLocal(NotLocal::Provider(*provider))
        }
        (_, Ok(backend @ (StorageBackend::S3 | StorageBackend::Memory))) => {
            PathLocks::NotLocal(NotLocal::Backend(*backend))
        }
        // A setting OpenViking refuses says nothing of where an older
        // server kept its tokens: the files are looked for.
        _ => search(&resolved_dir.join(TREE_DIR)),
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
use walk::search;

#[cfg(windows)]
use super::windows::path_walk::search;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn search(tree: &Path) -> PathLocks {
    match crate::inspect::fsread::kind_of(tree) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => PathLocks::NoTree,
        Ok(FileKind::Directory) | Err(_) => PathLocks::NotDetermined,
        Ok(kind) => PathLocks::TreeNotADirectory(kind),
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod walk {
    use std::collections::HashMap;
    use std::ffi::OsStr;
    use std::mem::MaybeUninit;
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use rustix::fs::{AtFlags, FileType, Mode, OFlags, fstat, openat, statat};
    #[cfg(target_os = "linux")]
    use rustix::fs::{RawDir, StatxFlags, statx};
    use rustix::io::Errno;

    use super::{
        CapHit, LockFileRead, LockMeta, Locks, PathLockFile, PathLocks, READ_CAP, Unreadable, Walk,
    };
    use crate::inspect::fsread::{self, FileKind, FileStat};
    use crate::openviking::layout::{self, PathLockName, TreePlace};
    use crate::openviking::lock_token;

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
    /// The getdents buffer of each thread: a directory of a few hundred
    /// entries in one call.
    const LISTING_BUFFER: usize = 32 * 1024;
    /// How often a long listing adds to the shared count of entries.
    const ENTRIES_BATCH: u64 = 4096;

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

    fn unreadable(path: &Path, err: Errno) -> Unreadable {
        Unreadable {
            path: path.to_path_buf(),
            error: fsread::describe(&err.into()),
        }
    }

    /// A directory waiting to be listed.
    struct Job {
        dir: DirHandle,
        path: PathBuf,
        /// Levels below `viking/`.
        depth: usize,
    }

    enum DirHandle {
        Open(OwnedFd),
        /// Opened by name from its parent's descriptor when its turn comes:
        /// a path could lead through a symlink swapped in meanwhile, and
        /// opening every subdirectory at once could run out of descriptors.
        In(Arc<OwnedFd>),
    }

    /// What the threads share: the directories still to list, and the counts
    /// the limits are kept by.
    struct Shared<'a> {
        tree: &'a Path,
        mounts: &'a [PathBuf],
        limits: Limits,
        queue: Mutex<Queue>,
        changed: Condvar,
        entries: AtomicU64,
        lock_files: AtomicUsize,
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
    struct Found {
        files: Vec<PathLockFile>,
        unreadable: Vec<Unreadable>,
        skipped_mounts: Vec<PathBuf>,
        too_deep: Option<PathBuf>,
        lock_files_capped: bool,
        dirs: u64,
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
        let found: Vec<Found> = std::thread::scope(|scope| {
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

    fn work(shared: &Shared) -> Found {
        let mut found = Found::default();
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
        fn count_entries(&self, n: u64) -> bool {
            let total = self.entries.fetch_add(n, Ordering::Relaxed) + n;
            if total > self.limits.entries {
                self.stop.store(true, Ordering::Relaxed);
            }
            !self.stop.load(Ordering::Relaxed)
        }
    }

    /// The names of one directory's entries, other than its lock files,
    /// kept while it is listed: a sidecar's target is found among them
    /// without listing the directory twice.
    #[derive(Default)]
    struct Names {
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
    struct Met {
        name: Vec<u8>,
        kind: PathLockName,
        file_type: FileType,
    }

    /// Lists one directory: records its lock files and returns its
    /// subdirectories to list.
    fn list(
        shared: &Shared,
        job: Job,
        buffer: &mut [MaybeUninit<u8>],
        names: &mut Names,
        found: &mut Found,
    ) -> Vec<Job> {
        let opened = match job.dir {
            DirHandle::Open(fd) => Ok(fd),
            DirHandle::In(parent) => {
                open_dir(parent.as_fd(), job.path.file_name().unwrap_or_default())
            }
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
        let mut met: Vec<Met> = Vec::new();
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
                met.push(Met {
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
        if met.iter().any(|m| m.kind == PathLockName::ExactSidecar) {
            for entry in names.iter() {
                by_safe
                    .entry(layout::sidecar_safe_name(entry))
                    .or_default()
                    .push(entry);
            }
        }
        for lock in met {
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

    /// Reads a lock file without following a symlink, blocking on a FIFO,
    /// or opening anything but a regular file; None when it was removed
    /// since the listing (its lock released).
    fn read_lock(dir: BorrowedFd, name: &OsStr, file_type: FileType) -> Option<LockFileRead> {
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
        let mut content = vec![0; READ_CAP + 1];
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
        let token = (len <= READ_CAP).then(|| lock_token::decode(&content));
        content.truncate(READ_CAP);
        Some(LockFileRead::Read {
            meta,
            content,
            token,
        })
    }

    /// Opens a directory without following a symlink, and without touching
    /// its access time where that is allowed.
    fn open_dir<P: rustix::path::Arg + Copy>(
        parent: BorrowedFd,
        name: P,
    ) -> Result<OwnedFd, Errno> {
        let flags = OFlags::RDONLY
            | OFlags::DIRECTORY
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::CLOEXEC;
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
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::collections::BTreeSet;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::walk::{LIMITS, Limits, search_with};
    use super::*;
    use crate::openviking::layout;
    use crate::openviking::lock_token::{BadToken, LeaseKind};
    use crate::workspace::{Setting, SettingSource};

    const TOKEN: &[u8] = b"dd0d5c0c-9d45-4ed7-a741-7a7d9e7dbf64:1796173763185979065:T";

    fn write(path: &Path, content: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn mkfifo(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::RUSR).unwrap();
    }

    /// The path locks of `ws`, found on another thread: a walk that
    /// blocked (on a FIFO, say) fails the test instead of hanging it.
    fn search(ws: &Path, settings: PathLockSettings) -> PathLocks {
        let ws = ws.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(find(&ws, &settings));
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the walk blocked")
    }

    fn walked(found: PathLocks) -> Walk {
        match found {
            PathLocks::Walked(walk) => walk,
            other => panic!("{other:?}"),
        }
    }

    fn file<'a>(walk: &'a Walk, relative: &str) -> &'a PathLockFile {
        let path = walk.tree.join(relative);
        walk.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{relative} not found in {:#?}", walk.files))
    }

    fn place(account: &str, uri: &str) -> TreePlace {
        TreePlace::Account {
            account: account.into(),
            uri: uri.into(),
        }
    }

    fn token(file: &PathLockFile) -> Option<&Token> {
        match &file.read {
            LockFileRead::Read { token, .. } => token.as_ref(),
            other => panic!("{}: {other:?}", file.path.display()),
        }
    }

    #[test]
    fn a_workspace_without_a_tree_costs_nothing_and_says_so() {
        let ws = tempfile::tempdir().unwrap();
        let none = PathLockSettings::default;
        assert_eq!(search(ws.path(), none()), PathLocks::NoTree);
        let tree = ws.path().join("viking");
        std::fs::write(&tree, b"").unwrap();
        assert_eq!(
            search(ws.path(), none()),
            PathLocks::TreeNotADirectory(FileKind::Regular)
        );
        std::fs::remove_file(&tree).unwrap();
        mkfifo(&tree);
        assert_eq!(
            search(ws.path(), none()),
            PathLocks::TreeNotADirectory(FileKind::Fifo)
        );
        std::fs::remove_file(&tree).unwrap();
        // A symlinked tree is not followed, though it leads to locks.
        let elsewhere = tempfile::tempdir().unwrap();
        write(&elsewhere.path().join("default/.path.ovlock"), TOKEN);
        symlink(elsewhere.path(), &tree).unwrap();
        assert_eq!(
            search(ws.path(), none()),
            PathLocks::TreeNotADirectory(FileKind::Symlink)
        );
    }

    #[test]
    fn finds_every_lock_and_what_it_locks() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        let res = tree.join("default/resources");
        write(&tree.join(".path.ovlock"), b"o1:1700:T");
        std::fs::create_dir_all(tree.join("newacct")).unwrap();
        write(
            &tree.join(".exact.ovlock.newacct.f9d26da03b3fcb09"),
            b"o2:1700:E",
        );
        write(&tree.join("default/.path.ovlock"), TOKEN);
        write(&res.join("new file.md"), b"text");
        write(
            &res.join(".exact.ovlock.new_file.md.77ed9eafed6a3362"),
            b"o3:1:E",
        );
        // Two names with one safe name: the hash tells them apart.
        write(&res.join("a b"), b"");
        write(&res.join("a  b"), b"");
        let sidecar = layout::exact_lock_name(b"/local/default/resources/a  b");
        write(&res.join(&sidecar), b"o4:1:E");
        write(
            &res.join(".exact.ovlock.gone.md.0123456789abcdef"),
            b"o5:1:E",
        );
        write(&res.join(".exact.ovlock.oddname"), b"o6:1:E");
        write(&tree.join("default/empty/.path.ovlock"), b"");
        write(&tree.join("default/long/.path.ovlock"), &[b'x'; 600]);
        write(
            &tree.join("default/legacy/.path.ovlock"),
            b"OVE1\x00\x01secret",
        );
        write(&tree.join("default/bad/.path.ovlock"), b"abc-123:1700");
        mkfifo(&tree.join("default/fifo/.path.ovlock"));
        std::fs::create_dir_all(tree.join("default/link")).unwrap();
        symlink("../.path.ovlock", tree.join("default/link/.path.ovlock")).unwrap();
        write(
            &tree.join("default/dirlock/.path.ovlock/.path.ovlock"),
            TOKEN,
        );
        let outside = tempfile::tempdir().unwrap();
        write(&outside.path().join(".path.ovlock"), TOKEN);
        symlink(outside.path(), tree.join("default/linked")).unwrap();
        let odd = tree.join("other").join(OsStr::from_bytes(b"\xff"));
        write(&odd.join(".path.ovlock"), TOKEN);
        for i in 0..50 {
            write(&res.join(format!("doc{i}.md")), b"");
        }

        let walk = walked(search(ws.path(), PathLockSettings::default()));
        assert_eq!(walk.tree, tree);
        assert!(walk.unreadable.is_empty(), "{:?}", walk.unreadable);
        assert!(walk.caps.is_empty() && walk.skipped_mounts.is_empty());

        let all = file(&walk, ".path.ovlock");
        assert_eq!(all.name, PathLockName::TreeOrDirectory);
        assert_eq!(all.locks, Locks::Place(TreePlace::AllAccounts));
        assert!(matches!(token(all), Some(Token::Lease(l)) if l.kind == LeaseKind::Tree));

        let account = file(&walk, ".exact.ovlock.newacct.f9d26da03b3fcb09");
        assert_eq!(account.name, PathLockName::ExactSidecar);
        assert_eq!(account.locks, Locks::Place(place("newacct", "viking://")));

        let default = file(&walk, "default/.path.ovlock");
        assert_eq!(default.locks, Locks::Place(place("default", "viking://")));
        match &default.read {
            LockFileRead::Read {
                meta,
                content,
                token: Some(Token::Lease(lease)),
            } => {
                assert_eq!(content, TOKEN);
                assert_eq!(lease.owner, "dd0d5c0c-9d45-4ed7-a741-7a7d9e7dbf64");
                let std = std::fs::metadata(&default.path).unwrap();
                assert_eq!(
                    (meta.stat.dev, meta.stat.ino, meta.stat.size),
                    (std.dev(), std.ino(), std.size())
                );
                assert_eq!(meta.stat.modified, std.modified().ok());
                // std asks statx too; None where the filesystem keeps no birth time.
                assert_eq!(meta.born, std.created().ok());
            }
            other => panic!("{other:?}"),
        }

        let docs = |uri: &str| Locks::Place(place("default", uri));
        assert_eq!(
            file(
                &walk,
                "default/resources/.exact.ovlock.new_file.md.77ed9eafed6a3362"
            )
            .locks,
            docs("viking://resources/new file.md")
        );
        assert_eq!(
            file(&walk, &format!("default/resources/{sidecar}")).locks,
            docs("viking://resources/a  b")
        );
        assert_eq!(
            file(
                &walk,
                "default/resources/.exact.ovlock.gone.md.0123456789abcdef"
            )
            .locks,
            Locks::Missing {
                dir: place("default", "viking://resources"),
                safe: "gone.md".into()
            }
        );
        assert_eq!(
            file(&walk, "default/resources/.exact.ovlock.oddname").locks,
            Locks::Unrecognised {
                dir: place("default", "viking://resources")
            }
        );

        assert_eq!(
            token(file(&walk, "default/empty/.path.ovlock")),
            Some(&Token::Empty)
        );
        assert_eq!(
            token(file(&walk, "default/legacy/.path.ovlock")),
            Some(&Token::Legacy)
        );
        assert_eq!(
            token(file(&walk, "default/bad/.path.ovlock")),
            Some(&Token::Invalid(BadToken::MissingSecondColon))
        );
        match &file(&walk, "default/long/.path.ovlock").read {
            LockFileRead::Read {
                meta,
                content,
                token: None,
            } => assert_eq!((content.len(), meta.stat.size), (READ_CAP, 600)),
            other => panic!("{other:?}"),
        }
        for (relative, kind) in [
            ("default/fifo/.path.ovlock", FileKind::Fifo),
            ("default/link/.path.ovlock", FileKind::Symlink),
            ("default/dirlock/.path.ovlock", FileKind::Directory),
        ] {
            assert_eq!(
                file(&walk, relative).read,
                LockFileRead::NotRegular(kind),
                "{relative}"
            );
        }
        let odd = odd.join(".path.ovlock");
        let odd = walk.files.iter().find(|f| f.path == odd).unwrap();
        assert_eq!(odd.locks, Locks::Place(place("other", "viking://\u{fffd}")));

        // Nothing behind a symlink or inside a lock-named directory, and
        // each directory listed once.
        assert_eq!(walk.files.len(), 15, "{:#?}", walk.files);
        let mut paths: Vec<&PathBuf> = walk.files.iter().map(|f| &f.path).collect();
        paths.dedup();
        assert_eq!(paths.len(), 15);
        assert!(paths.windows(2).all(|w| w[0] < w[1]), "sorted");
        // viking, newacct, default, resources, empty, long, legacy, bad,
        // fifo, link, dirlock, other, other/\xff.
        assert_eq!(walk.dirs, 13);
    }

    /// Runs `f` on a thread without the capabilities that let root read
    /// anything, so that permissions bite as they do for other users.
    fn as_unprivileged<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // Capabilities are per thread: the rest of the tests keep theirs.
                    let mut caps = capabilities(None).unwrap();
                    caps.effective -= CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
                    set_capabilities(None, caps).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    #[test]
    fn what_cannot_be_read_is_said() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        write(&tree.join("default/secret/.path.ovlock"), TOKEN);
        write(&tree.join("default/.path.ovlock"), TOKEN);
        write(&tree.join("default/open/.path.ovlock"), TOKEN);
        let mode = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        mode(&tree.join("default/secret"), 0o000);
        mode(&tree.join("default/.path.ovlock"), 0o000);
        let walk = as_unprivileged(|| walked(search(ws.path(), PathLockSettings::default())));
        mode(&tree.join("default/secret"), 0o755);
        assert_eq!(walk.unreadable.len(), 1, "{:?}", walk.unreadable);
        assert_eq!(walk.unreadable[0].path, tree.join("default/secret"));
        assert!(
            walk.unreadable[0].error.contains("Permission denied"),
            "{}",
            walk.unreadable[0].error
        );
        match &file(&walk, "default/.path.ovlock").read {
            LockFileRead::Unreadable {
                meta: Some(meta),
                error,
            } => {
                assert_eq!(meta.stat.size, TOKEN.len() as u64);
                assert!(error.contains("Permission denied"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            token(file(&walk, "default/open/.path.ovlock")),
            Some(Token::Lease(_))
        ));
    }

    #[test]
    fn a_limit_met_is_said_not_kept_quiet() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        write(&tree.join("a/.path.ovlock"), TOKEN);
        write(&tree.join("a/b/.path.ovlock"), TOKEN);
        write(&tree.join("a/b/c/d/.path.ovlock"), TOKEN);
        let walk_with = |limits| walked(search_with(&tree, limits, Vec::new));
        let walk = walk_with(Limits { depth: 2, ..LIMITS });
        let found: Vec<&Path> = walk.files.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(
            found,
            [tree.join("a/.path.ovlock"), tree.join("a/b/.path.ovlock")]
        );
        assert_eq!(
            walk.caps,
            [CapHit::Depth {
                limit: 2,
                first: tree.join("a/b/c")
            }]
        );
        let walk = walk_with(Limits {
            lock_files: 2,
            ..LIMITS
        });
        assert_eq!(walk.files.len(), 2);
        assert_eq!(walk.caps, [CapHit::LockFiles { limit: 2 }]);
        for i in 0..10 {
            write(&tree.join(format!("f{i}")), b"");
        }
        let walk = walk_with(Limits {
            entries: 5,
            ..LIMITS
        });
        assert_eq!(walk.caps, [CapHit::Entries { limit: 5 }]);
        assert_eq!(walk_with(LIMITS).caps, []);
    }

    #[test]
    fn network_mounts_are_not_entered() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        write(&tree.join("default/nfs/.path.ovlock"), TOKEN);
        write(&tree.join("default/.path.ovlock"), TOKEN);
        let mounted = tree.join("default/nfs");
        let hanging = || vec![PathBuf::from("/elsewhere"), mounted.clone()];
        let walk = walked(search_with(&tree, LIMITS, hanging));
        assert_eq!(walk.skipped_mounts, std::slice::from_ref(&mounted));
        assert_eq!(walk.files.len(), 1);
        let walk = walked(search_with(&tree, LIMITS, || vec![tree.clone()]));
        assert_eq!(walk.skipped_mounts, std::slice::from_ref(&tree));
        assert!(walk.files.is_empty() && walk.dirs == 0);
    }

    #[test]
    fn tokens_kept_elsewhere_are_not_looked_for() {
        let ws = tempfile::tempdir().unwrap();
        write(&ws.path().join("viking/default/.path.ovlock"), TOKEN);
        fn set<T>(value: Result<T, crate::openviking::ovconf::Invalid>) -> Setting<T> {
            Setting {
                value,
                source: SettingSource::Default,
            }
        }
        let with = |provider, backend| PathLockSettings {
            provider: set(provider),
            backend: set(backend),
            ..PathLockSettings::default()
        };
        let invalid = || crate::openviking::ovconf::Invalid {
            found: "\"redis\"".into(),
            expected: "a provider",
        };
        use {PathLockProvider as P, StorageBackend as B};
        for (provider, backend, want) in [
            (
                Ok(P::Memory),
                Ok(B::Local),
                Some(NotLocal::Provider(P::Memory)),
            ),
            (Ok(P::Cache), Ok(B::S3), Some(NotLocal::Provider(P::Cache))),
            (Ok(P::Filesystem), Ok(B::S3), Some(NotLocal::Backend(B::S3))),
            (
                Ok(P::Filesystem),
                Ok(B::Memory),
                Some(NotLocal::Backend(B::Memory)),
            ),
            (Err(invalid()), Ok(B::Local), None),
            (Ok(P::Filesystem), Ok(B::Local), None),
        ] {
            let found = search(ws.path(), with(provider, backend));
            match want {
                Some(not_local) => assert_eq!(found, PathLocks::NotLocal(not_local)),
                None => assert_eq!(walked(found).files.len(), 1),
            }
        }
    }

    #[test]
    fn finds_what_a_plain_recursive_listing_finds() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        let mut want = BTreeSet::new();
        // A few hundred directories, some deep, so that every thread has work.
        for i in 0..300 {
            let dir = tree.join(format!("acct{}/d{}/e{}", i % 3, i % 17, i));
            write(&dir.join("file.md"), b"");
            if i % 7 == 0 {
                write(&dir.join(".path.ovlock"), TOKEN);
                want.insert(dir.join(".path.ovlock"));
            }
            if i % 11 == 0 {
                let sidecar = dir.join(".exact.ovlock.file.md.0000000000000000");
                write(&sidecar, TOKEN);
                want.insert(sidecar);
            }
        }
        /// The lock files below `dir`, and how many directories were listed.
        fn oracle(dir: &Path, found: &mut BTreeSet<PathBuf>) -> u64 {
            let mut dirs = 1;
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name();
                if PathLockName::of(name.as_bytes()).is_some() {
                    found.insert(entry.path());
                } else if entry.file_type().unwrap().is_dir() {
                    dirs += oracle(&entry.path(), found);
                }
            }
            dirs
        }
        let mut listed = BTreeSet::new();
        let dirs = oracle(&tree, &mut listed);
        assert_eq!(listed, want);
        for _ in 0..5 {
            let walk = walked(search(ws.path(), PathLockSettings::default()));
            let found: BTreeSet<PathBuf> = walk.files.into_iter().map(|f| f.path).collect();
            assert_eq!(found, want);
            assert_eq!(walk.dirs, dirs);
        }
    }
}
