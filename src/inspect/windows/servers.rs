//! `who --all` on Windows: every process that looks like OpenViking, with
//! the data directories its open files belong to, read from the system's
//! handles (one pass over the handle table for all of them).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::open_files;
use crate::inspect::usage::RunningServer;
use crate::inspect::{ProcessInfo, Processes};

pub fn discover(
    processes: &mut Processes,
    is_openviking: impl Fn(&ProcessInfo) -> bool,
) -> Vec<RunningServer> {
    let servers: Vec<ProcessInfo> = processes
        .all()
        .into_iter()
        // ovlock's own command line may name an OpenViking directory.
        .filter(|p| !p.zombie && p.pid != std::process::id() && is_openviking(p))
        .collect();
    let mut dirs: BTreeMap<u32, Vec<PathBuf>> = BTreeMap::new();
    let scanned = if servers.is_empty() {
        Ok(BTreeMap::new())
    } else {
        open_files::each_disk_file(|open| {
            if !servers.iter().any(|s| s.pid == open.pid) {
                return;
            }
            if let Some(dir) = open
                .path()
                .ok()
                .and_then(|p| crate::openviking::layout::workspace_of(&p))
            {
                dirs.entry(open.pid).or_default().push(dir);
            }
        })
    };
    let mut found: Vec<RunningServer> = servers
        .into_iter()
        .map(|process| {
            let mut dirs = dirs.remove(&process.pid).unwrap_or_default();
            dirs.sort();
            dirs.dedup();
            let unreadable = match &scanned {
                Ok(uninspected) => uninspected.contains_key(&process.pid),
                Err(_) => true,
            };
            RunningServer {
                process,
                dirs,
                unreadable,
                other_mount_namespace: false,
            }
        })
        .collect();
    found.sort_by_key(|f| f.process.pid);
    found
}
