//! The directory lock on Windows. OpenViking locks byte 0 of
//! `.openviking.lock` (`msvcrt.locking(fd, LK_NBLCK, 1)`), opens that file
//! only to lock it, and closes it when locking fails, so whoever has the
//! file open is its holder, if that is OpenViking: Windows names no
//! byte-range lock's owner, only who has a file open. The lock itself is
//! never taken, not even shared, to find out: a server starting at that
//! instant would fail.

use std::path::Path;

use super::open_files;
use crate::inspect::flock::{FlockState, HolderDoubt};
use crate::inspect::fsread::FileStat;

/// Who has the lock file at `path`, whose metadata is `stat`, open.
pub fn state(stat: &FileStat, path: &Path) -> FlockState {
    let Some(target) = stat.id() else {
        return FlockState::Unknown("its file identity could not be read".into());
    };
    let open_files::Openers {
        pids: holders,
        uninspected,
    } = match open_files::openers(path, target) {
        Ok(openers) => openers,
        Err(err) => {
            return FlockState::Unknown(format!("who has it open cannot be read: {err}"));
        }
    };
    if holders.is_empty() && uninspected.is_empty() {
        return FlockState::Unheld;
    }
    if holders.is_empty() {
        let (pid, why) = uninspected.iter().next().expect("not empty");
        let others = match uninspected.len() {
            1 => String::new(),
            n => format!(" and {} other processes", n - 1),
        };
        return FlockState::Unknown(format!(
            "no process ovlock could inspect has it open, but PID {pid}{others} could not be \
             inspected ({why})"
        ));
    }
    FlockState::Held {
        holders,
        recorded_pid: None,
        recorded_exited: false,
        doubt: Some(HolderDoubt::OpenOnly),
    }
}
