//! The directory lock on Windows. OpenViking locks byte 0 of
//! `.openviking.lock` (`msvcrt.locking(fd, LK_NBLCK, 1)`), opens that file
//! only to lock it, and closes it when locking fails, so whoever has the
//! file open is its holder, if that is OpenViking: Windows names no
//! byte-range lock's owner, only who has a file open. The lock itself is
//! never taken, not even shared, to find out: a server starting at that
//! instant would fail.
//!
//! Who has it open is asked of the file first
//! (`FileProcessIdsUsingFileInformation`), which needs no access to the
//! processes; where that is not implemented (Wine), of every process's
//! handles (`open_files`), which misses processes whose handles may not be
//! read.

use std::io;
use std::os::windows::io::AsRawHandle;
use std::path::Path;

use windows_sys::Wdk::Storage::FileSystem::{
    FileProcessIdsUsingFileInformation, NtQueryInformationFile,
};
use windows_sys::Win32::Foundation::STATUS_INFO_LENGTH_MISMATCH;
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;

use super::{file_id, open_files};
use crate::fsread::FileStat;
use crate::inspect::flock::{FlockState, HolderDoubt};

/// STATUS_BUFFER_OVERFLOW: the list did not fit.
const BUFFER_OVERFLOW: i32 = 0x8000_0005_u32 as i32;

/// Who has the lock file at `path`, whose metadata is `stat`, open.
pub fn state(stat: &FileStat, path: &Path) -> FlockState {
    let Some(target) = stat.id() else {
        return FlockState::Unknown("its file identity could not be read".into());
    };
    let (mut holders, uninspected) = match openers_by_kernel(path, target) {
        Ok(Some(pids)) => (pids, Default::default()),
        _ => match openers_by_handles(target) {
            Ok(found) => found,
            Err(err) => {
                return FlockState::Unknown(format!(
                    "the system's open handles cannot be read: {err}"
                ));
            }
        },
    };
    holders.retain(|&pid| pid != std::process::id());
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
    holders.sort_unstable();
    holders.dedup();
    FlockState::Held {
        holders,
        recorded_pid: None,
        recorded_exited: false,
        doubt: Some(HolderDoubt::OpenOnly),
    }
}

/// The processes that have the file open, as the file system keeps them;
/// None where that cannot be asked.
fn openers_by_kernel(path: &Path, target: file_id::Identity) -> io::Result<Option<Vec<u32>>> {
    let file = file_id::open_attributes(path)?;
    // Our own handle is of the file judged, not of one swapped in since.
    if file_id::of_handle(file.as_raw_handle())? != target {
        return Ok(None);
    }
    let mut words = 256usize;
    loop {
        // A count, then the PIDs, each pointer-sized: usize keeps them aligned.
        let mut buf = vec![0usize; words];
        // SAFETY: the status block and buffer live across the call, which
        // writes at most `len` bytes.
        let mut status_block: IO_STATUS_BLOCK = unsafe { std::mem::zeroed() };
        let len = u32::try_from(words * std::mem::size_of::<usize>()).unwrap_or(u32::MAX);
        let status = unsafe {
            NtQueryInformationFile(
                file.as_raw_handle(),
                &mut status_block,
                buf.as_mut_ptr().cast(),
                len,
                FileProcessIdsUsingFileInformation,
            )
        };
        if (status == STATUS_INFO_LENGTH_MISMATCH || status == BUFFER_OVERFLOW) && words < 1 << 20 {
            words *= 4;
            continue;
        }
        if status < 0 {
            return Ok(None);
        }
        // The count is a u32 at the start of the first word.
        let count = (buf[0] & 0xffff_ffff).min(words - 1);
        return Ok(Some(
            buf[1..=count]
                .iter()
                .filter_map(|&pid| u32::try_from(pid).ok())
                .collect(),
        ));
    }
}

/// The processes with a handle to the file, and those whose handles could
/// not be read, each with why.
fn openers_by_handles(
    target: file_id::Identity,
) -> io::Result<(Vec<u32>, std::collections::BTreeMap<u32, String>)> {
    let mut holders = Vec::new();
    let uninspected = open_files::each_disk_file(|open| {
        if !holders.contains(&open.pid) && open.identity().is_ok_and(|id| id == target) {
            holders.push(open.pid);
        }
    })?;
    Ok((holders, uninspected))
}
