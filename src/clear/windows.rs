//! clear-stale's removal of a stale `.openviking.pid` on Windows, as on
//! Unix: the file is renamed aside (MoveFileExW, which fails rather than
//! replace), judged again as it is there, and deleted only if it is still
//! the very file judged and still stale; anything else is put back, never
//! over a pid file a starting server wrote meanwhile. Windows refuses to
//! rename a file that another process has open without delete sharing: then
//! the processes that have it open are named.

use std::io;
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem::MoveFileExW;

use super::{Done, same_file};
use crate::inspect::windows::{file_id, open_files};
use crate::inspect::{self, Facts, LockFile, PID_NAME, Processes};
use crate::judge::Staleness;

/// ERROR_FILE_NOT_FOUND, ERROR_ALREADY_EXISTS, ERROR_SHARING_VIOLATION, ERROR_ACCESS_DENIED.
const NOT_FOUND: i32 = 2;
const ALREADY_EXISTS: i32 = 183;
const SHARING_VIOLATION: i32 = 32;
const ACCESS_DENIED: i32 = 5;

/// Moves the pid file aside, checks it, and deletes it or puts it back.
pub(super) fn remove(
    facts: &Facts,
    processes: &mut Processes,
    still_stale: impl Fn(&LockFile, &mut Processes) -> Option<Staleness>,
) -> Result<Done, String> {
    let dir = &facts.resolved_dir;
    let path = dir.join(PID_NAME);
    // Taken over since it was judged: leave it.
    if !same_file(&facts.pid_file, &inspect::read_lock_file(&path)) {
        return Ok(Done::Kept);
    }
    // Unique per run, so no earlier file left aside is ever replaced.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let aside_name = format!("{}{}-{nanos}", inspect::ASIDE_PREFIX, std::process::id());
    let aside = dir.join(&aside_name);
    match rename_no_replace(&path, &aside) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(NOT_FOUND) => return Ok(Done::Kept),
        Err(err) => return Err(format!("cannot move it aside: {}", why_not(&err, &path))),
    }
    // No one reaches it by its name now; anything but the file judged, still
    // stale by a fresh look at its PID, goes back.
    let moved = inspect::read_lock_file(&aside);
    let reason = Some(&moved)
        .filter(|moved| same_file(&facts.pid_file, moved))
        .and_then(|moved| still_stale(moved, processes));
    let Some(reason) = reason else {
        return match rename_no_replace(&aside, &path) {
            Ok(()) => Ok(Done::Kept),
            Err(err) if err.raw_os_error() == Some(ALREADY_EXISTS) => Err(format!(
                "it changed while being cleared and a new {PID_NAME} appeared meanwhile: two \
                 servers may be starting at once; the changed file was left as {aside_name}"
            )),
            Err(err) => Err(format!(
                "cannot put it back ({err}); it was left as {aside_name}"
            )),
        };
    };
    std::fs::remove_file(&aside)
        .map_err(|err| format!("cannot remove {aside_name}: {}", why_not(&err, &aside)))?;
    Ok(Done::Removed(reason))
}

/// Renames `from` to `to`, failing if `to` exists.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::windows::ffi::OsStrExt;
    let wide = |p: &Path| -> Vec<u16> { p.as_os_str().encode_wide().chain([0]).collect() };
    let (from, to) = (wide(from), wide(to));
    // SAFETY: both names are NUL-terminated wide strings that outlive the call.
    if unsafe { MoveFileExW(from.as_ptr(), to.as_ptr(), 0) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A failed rename or delete, with the processes that have the file open
/// when Windows refused because of them.
fn why_not(err: &io::Error, path: &Path) -> String {
    if !matches!(err.raw_os_error(), Some(SHARING_VIOLATION | ACCESS_DENIED)) {
        return err.to_string();
    }
    let Ok(target) = file_id::of_path(path) else {
        return err.to_string();
    };
    match open_files::openers(path, target).map(|o| o.pids) {
        Ok(pids) if pids.is_empty() => err.to_string(),
        Err(_) => err.to_string(),
        Ok(pids) => {
            let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
            format!(
                "{err}: Windows renames or deletes no file another process has open without \
                 delete sharing, and PID {} has it open",
                pids.join(", PID ")
            )
        }
    }
}
