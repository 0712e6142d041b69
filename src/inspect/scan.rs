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
    // ovlock itself may run from inside the directory it looks at.
    for &pid in pids.iter().filter(|&&pid| pid != std::process::id()) {
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
            let mut under = roots_of(roots, &target).peekable();
            if under.peek().is_some() {
                let locks = procfs::fdinfo(pid, fd)
                    .map(|(_, locks)| locks)
                    .unwrap_or_default();
                for root in under {
                    add(
                        root,
                        Touched {
                            path: target.clone(),
                            touch: Touch::Open,
                            locks: locks.clone(),
                        },
                    );
                }
            }
        }
        if let Ok(cwd) = procfs::cwd(pid) {
            for root in roots_of(roots, &cwd) {
                add(
                    root,
                    Touched {
                        path: cwd.clone(),
                        touch: Touch::Cwd,
                        locks: Vec::new(),
                    },
                );
            }
        }
        // A file can stay mapped after its descriptor is closed.
        if let Ok(mapped) = procfs::mapped_paths(pid, &mut buf) {
            let mut seen: Vec<&Path> = Vec::new();
            for path in mapped {
                let mut under = roots_of(roots, path).peekable();
                if under.peek().is_none() || seen.contains(&path) {
                    continue;
                }
                seen.push(path);
                for root in under {
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

/// The roots `path` lies under (component-wise, so /a/bc is not under /a/b);
/// several when the directories asked about nest.
fn roots_of<'a>(roots: &'a [PathBuf], path: &'a Path) -> impl Iterator<Item = usize> + 'a {
    roots
        .iter()
        .enumerate()
        .filter(move |(_, root)| path.starts_with(root))
        .map(|(i, _)| i)
}
