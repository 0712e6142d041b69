//! The one pass over every process on the machine, and what it finds: the
//! paths each process touches. It is the only code whose cost grows with
//! the number of processes, so callers run it only when the answer needs
//! it, and then once for all directories. The walk is Linux only: elsewhere
//! there is no /proc to walk.

use std::path::PathBuf;

use super::kernel_locks::KernelLock;

#[cfg(target_os = "linux")]
pub use linux::{ProcessUse, scan};

/// How a process touches a path.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Its current directory.
    Cwd,
    /// Mapped into its memory.
    Mapped,
    /// An open descriptor.
    Open,
}

/// One path a process touches, with the kernel locks it owns through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathAccess {
    pub path: PathBuf,
    pub access: Access,
    pub locks: Vec<KernelLock>,
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::path::{Path, PathBuf};

    use super::super::procfs::{self, FileId, MountTable};
    use super::{Access, KernelLock, PathAccess};

    /// Everything one process touches under one of the roots.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ProcessUse {
        pub pid: u32,
        /// Index into the roots the scan was given.
        pub root: usize,
        pub accesses: Vec<PathAccess>,
    }

    /// The directories asked about, as paths and as files.
    struct Roots<'a> {
        paths: &'a [PathBuf],
        ids: Vec<Option<FileId>>,
        /// Ours: a process in another one sees the directories under other paths.
        mount_namespace: procfs::OurMountNamespace,
    }

    /// Finds every process that has a file open, its current directory, or a file
    /// mapped under one of `roots` (resolved paths), reading each process's
    /// descriptor table, current directory and memory map once, whatever the
    /// number of roots. Also returns the processes it could not read in full
    /// (kernel threads aside, which have no files): what could not be read is
    /// never taken for "nothing there". The processes are shared out among a
    /// few threads: the work is all system calls, independent from one process
    /// to the next.
    pub fn scan(roots: &[PathBuf]) -> io::Result<(Vec<ProcessUse>, Vec<u32>)> {
        let roots = Roots {
            paths: roots,
            ids: roots.iter().map(|r| procfs::file_id(r).ok()).collect(),
            mount_namespace: procfs::OurMountNamespace::read(),
        };
        let pids = procfs::pids()?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let chunk = pids.len().div_ceil(threads).max(1);
        let results: Vec<(Vec<ProcessUse>, Vec<u32>)> = std::thread::scope(|scope| {
            let workers: Vec<_> = pids
                .chunks(chunk)
                .map(|pids| (pids, scope.spawn(|| scan_some(pids, &roots))))
                .collect();
            // A worker that failed saw none of its processes: say so, never a silent gap.
            workers
                .into_iter()
                .map(|(pids, w)| w.join().unwrap_or_else(|_| (Vec::new(), pids.to_vec())))
                .collect()
        });
        let mut uses = Vec::new();
        let mut uninspected = Vec::new();
        for (found, missed) in results {
            uses.extend(found);
            uninspected.extend(missed);
        }
        Ok((uses, uninspected))
    }

    /// An error that means the process has exited, rather than that it may not be read.
    fn exited(err: &io::Error) -> bool {
        err.kind() == io::ErrorKind::NotFound
    }

    fn scan_some(pids: &[u32], roots: &Roots) -> (Vec<ProcessUse>, Vec<u32>) {
        let mut uninspected = Vec::new();
        let mut uses = Vec::new();
        let mut buf = Vec::new();
        // ovlock itself may run from inside the directory it looks at.
        for &pid in pids.iter().filter(|&&pid| pid != std::process::id()) {
            match scan_one(pid, roots, &mut buf) {
                Scanned::Gone => {}
                Scanned::Unreadable => uninspected.push(pid),
                Scanned::Read { found, complete } => {
                    uses.extend(found);
                    if !complete {
                        uninspected.push(pid);
                    }
                }
            }
        }
        (uses, uninspected)
    }

    /// What the scan learned of one process.
    enum Scanned {
        /// It exited while we looked, or is a kernel thread: it uses nothing.
        Gone,
        /// Its descriptors or namespace could not be read at all.
        Unreadable,
        /// What it uses under the roots; `complete` is false when some of
        /// its cwd, memory map or fdinfo could not be read.
        Read {
            found: Vec<ProcessUse>,
            complete: bool,
        },
    }

    /// Reads one process's descriptors, current directory and memory map.
    fn scan_one(pid: u32, roots: &Roots, buf: &mut Vec<u8>) -> Scanned {
        let fds = match procfs::fds(pid) {
            Ok(fds) => fds,
            Err(err) if exited(&err) => return Scanned::Gone,
            Err(_) if procfs::stat(pid).is_ok_and(|s| s.is_kernel_thread()) => {
                return Scanned::Gone;
            }
            Err(_) => return Scanned::Unreadable,
        };
        let foreign = match foreign_mounts(pid, roots) {
            Ok(mounts) => mounts,
            Err(err) if exited(&err) => return Scanned::Gone,
            Err(_) => return Scanned::Unreadable,
        };
        let foreign = foreign.as_deref();
        let mut found = ProcessUses {
            pid,
            uses: Vec::new(),
            complete: true,
        };
        for (fd, target) in fds {
            let under = locate(roots, pid, foreign, &target);
            if !under.is_empty() {
                let locks = procfs::fdinfo_locks(pid, fd).unwrap_or_else(|err| {
                    found.complete &= exited(&err);
                    Vec::new()
                });
                for (root, path) in under {
                    found.add(root, path, Access::Open, locks.clone());
                }
            }
        }
        match procfs::cwd(pid) {
            Ok(cwd) => {
                for (root, path) in locate(roots, pid, foreign, &cwd) {
                    found.add(root, path, Access::Cwd, Vec::new());
                }
            }
            Err(err) => found.complete &= exited(&err),
        }
        // A file can stay mapped after its descriptor is closed. (A process
        // in another mount namespace names paths of its own: its mappings
        // are not matched.)
        if foreign.is_none() {
            match procfs::mapped_paths(pid, buf) {
                Err(err) => found.complete &= exited(&err),
                Ok(mapped) => {
                    let mut seen: Vec<&Path> = Vec::new();
                    for path in mapped {
                        let under: Vec<usize> = roots_of(roots.paths, path).collect();
                        if under.is_empty() || seen.contains(&path) {
                            continue;
                        }
                        seen.push(path);
                        for root in under {
                            found.add(root, path.to_path_buf(), Access::Mapped, Vec::new());
                        }
                    }
                }
            }
        }
        Scanned::Read {
            found: found.uses,
            complete: found.complete,
        }
    }

    /// The mount table of a process in another mount namespace, to tell from
    /// a path which filesystem it lies on without touching that filesystem;
    /// None in ours. A namespace that cannot be read is not taken for ours.
    fn foreign_mounts(pid: u32, roots: &Roots) -> io::Result<Option<MountTable>> {
        if roots.mount_namespace.is_other(pid)? {
            procfs::mounts(pid).map(Some)
        } else {
            Ok(None)
        }
    }

    /// What one process uses, root by root, as it is found.
    struct ProcessUses {
        pid: u32,
        uses: Vec<ProcessUse>,
        complete: bool,
    }

    impl ProcessUses {
        fn add(&mut self, root: usize, path: PathBuf, access: Access, locks: Vec<KernelLock>) {
            let entry = PathAccess {
                path,
                access,
                locks,
            };
            match self.uses.iter_mut().find(|u| u.root == root) {
                Some(u) => u.accesses.push(entry),
                None => self.uses.push(ProcessUse {
                    pid: self.pid,
                    root,
                    accesses: vec![entry],
                }),
            }
        }
    }

    /// The roots a path of process `pid` lies under, each with the path as it
    /// is seen from here. A process in another mount namespace (`mounts` is its
    /// mount table) names paths of its own, which may be another directory with
    /// the same name, or the directory under another name (a volume mounted at
    /// /data): there the path's filesystem is read from its mount table, and
    /// only on a root's filesystem is its path walked up inside the process's
    /// root, without following symlinks, until an ancestor is the root itself.
    /// Nothing is asked of any other filesystem, which may hang (a stuck FUSE).
    fn locate(
        roots: &Roots,
        pid: u32,
        mounts: Option<&[(PathBuf, (u32, u32))]>,
        path: &Path,
    ) -> Vec<(usize, PathBuf)> {
        let Some(mounts) = mounts else {
            return roots_of(roots.paths, path)
                .map(|i| (i, path.to_path_buf()))
                .collect();
        };
        // A deleted file's name says where it was, not where it is.
        if !path.is_absolute() || path.as_os_str().as_encoded_bytes().ends_with(b" (deleted)") {
            return Vec::new();
        }
        let Some((_, device)) = mounts
            .iter()
            .filter(|(point, _)| path.starts_with(point))
            .max_by_key(|(point, _)| point.as_os_str().len())
        else {
            return Vec::new();
        };
        let proc_root = PathBuf::from(format!("/proc/{pid}/root"));
        let mut found = Vec::new();
        for (i, root) in roots.ids.iter().enumerate() {
            let Some(root) = root.filter(|r| r.device() == *device) else {
                continue;
            };
            let ancestor = path.ancestors().find(|a| {
                let inside = proc_root.join(a.strip_prefix("/").unwrap_or(a));
                procfs::link_id(&inside).is_ok_and(|id| id == root)
            });
            if let Some(ancestor) = ancestor {
                let rest = path.strip_prefix(ancestor).unwrap_or(Path::new(""));
                let here = if rest.as_os_str().is_empty() {
                    roots.paths[i].clone()
                } else {
                    roots.paths[i].join(rest)
                };
                found.push((i, here));
            }
        }
        found
    }

    /// The roots `path` lies under (component-wise, so /a/bc is not under /a/b);
    /// several when the directories asked about nest.
    fn roots_of<'a>(roots: &'a [PathBuf], path: &'a Path) -> impl Iterator<Item = usize> + 'a {
        roots
            .iter()
            .enumerate()
            .filter(move |(_, root)| path.starts_with(root))
            .map(|(i, _)| i)
    }
}
