//! The one pass over every process on the machine. It is the only code whose
//! cost grows with the number of processes, so callers run it only when the
//! answer needs it. Linux only: elsewhere there is no /proc to walk.

use std::path::Path;

/// How complete a pass was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Processes whose descriptors were read.
    pub inspected: usize,
    /// Processes whose descriptors could not be read (other users', when not root).
    pub uninspected: usize,
}

/// Calls `visit(pid, fd, target)` for every open descriptor of every process.
pub fn each_descriptor(mut visit: impl FnMut(u32, u32, &Path)) -> std::io::Result<Coverage> {
    use super::procfs;
    let mut coverage = Coverage::default();
    for pid in procfs::pids()? {
        match procfs::fds(pid) {
            Ok(fds) => {
                coverage.inspected += 1;
                for (fd, target) in fds {
                    visit(pid, fd, &target);
                }
            }
            // It exited while we looked: it uses nothing any more.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => coverage.uninspected += 1,
        }
    }
    Ok(coverage)
}
