//! The one pass over every process on the machine. It is the only code whose
//! cost grows with the number of processes, so callers run it only when the
//! answer needs it, and then once for all directories. Linux only: elsewhere
//! there is no /proc to walk.

use std::io;
use std::path::{Path, PathBuf};

use super::procfs;
use super::usage::{Touch, Touched};

/// Everything one process touches under one of the roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub pid: u32,
    /// Index into the roots the scan was given.
    pub root: usize,
    pub touched: Vec<Touched>,
}

/// Finds every process that has a file open, its current directory, or a file
/// mapped under one of `roots` (resolved paths), reading each process's
/// descriptor table, current directory and memory map once, whatever the
/// number of roots. Also counts the processes it could not read. The
/// processes are shared out among a few threads: the work is all system
/// calls, independent from one process to the next.
pub fn scan(roots: &[PathBuf]) -> io::Result<(Vec<Use>, usize)> {
    let pids = procfs::pids()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let chunk = pids.len().div_ceil(threads).max(1);
    let results: Vec<(Vec<Use>, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = pids
            .chunks(chunk)
            .map(|pids| scope.spawn(move || scan_some(pids, roots)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut uses = Vec::new();
    let mut uninspected = 0;
    for (found, missed) in results {
        uses.extend(found);
        uninspected += missed;
    }
    Ok((uses, uninspected))
}

fn scan_some(pids: &[u32], roots: &[PathBuf]) -> (Vec<Use>, usize) {
    let mut uninspected = 0;
    let mut uses = Vec::new();
    let mut buf = Vec::new();
    for &pid in pids {
        let fds = match procfs::fds(pid) {
            Ok(fds) => fds,
            // It exited while we looked: it uses nothing any more.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(_) => {
                uninspected += 1;
                continue;
            }
        };
        let mut found: Vec<Use> = Vec::new();
        let mut add =
            |root: usize, touched: Touched| match found.iter_mut().find(|u| u.root == root) {
                Some(u) => u.touched.push(touched),
                None => found.push(Use {
                    pid,
                    root,
                    touched: vec![touched],
                }),
            };
        for (fd, target) in fds {
            if let Some(root) = root_of(roots, &target) {
                let locks = procfs::fdinfo(pid, fd)
                    .map(|(_, locks)| locks)
                    .unwrap_or_default();
                add(
                    root,
                    Touched {
                        path: target,
                        touch: Touch::Open,
                        locks,
                    },
                );
            }
        }
        if let Ok(cwd) = procfs::cwd(pid)
            && let Some(root) = root_of(roots, &cwd)
        {
            add(
                root,
                Touched {
                    path: cwd,
                    touch: Touch::Cwd,
                    locks: Vec::new(),
                },
            );
        }
        // A file can stay mapped after its descriptor is closed.
        if let Ok(mapped) = procfs::mapped_paths(pid, &mut buf) {
            let mut seen: Vec<&Path> = Vec::new();
            for path in mapped {
                if let Some(root) = root_of(roots, path)
                    && !seen.contains(&path)
                {
                    seen.push(path);
                    add(
                        root,
                        Touched {
                            path: path.to_path_buf(),
                            touch: Touch::Mapped,
                            locks: Vec::new(),
                        },
                    );
                }
            }
        }
        uses.extend(found);
    }
    (uses, uninspected)
}

/// Which root `path` lies under, if any (component-wise, so /a/bc is not under /a/b).
fn root_of(roots: &[PathBuf], path: &Path) -> Option<usize> {
    roots.iter().position(|root| path.starts_with(root))
}
