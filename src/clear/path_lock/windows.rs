//! Removing one stale path-lock file on Windows, as OpenViking's engine
//! guards its own compare-and-remove there: `LockFileEx` over the whole file
//! (offset 0, length u32::MAX/u32::MAX), exclusive, non-blocking. Under that
//! lock the handle is checked to be the file judged, its bytes to be the
//! ones judged and still stale by a fresh clock, and only then is it marked
//! for deletion through the same handle (FileDispositionInfo), so the name
//! cannot be swapped between the check and the removal; the file goes when
//! the handle, and with it the lock, closes. A reparse point is never
//! followed, in the file or any directory above it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::AsRawHandle;
use std::path::{Component, Path};
use std::time::SystemTime;

use windows_sys::Win32::Storage::FileSystem::{
    DELETE, FILE_DISPOSITION_INFO, FILE_FLAG_OPEN_REPARSE_POINT, FILE_GENERIC_READ,
    FILE_GENERIC_WRITE, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FileDispositionInfo,
    LOCKFILE_EXCLUSIVE_LOCK, LOCKFILE_FAIL_IMMEDIATELY, LockFileEx, SetFileInformationByHandle,
};
use windows_sys::Win32::System::IO::OVERLAPPED;

use super::{Attempt, Judged};
use crate::inspect::windows::file_id;

/// ERROR_LOCK_VIOLATION: another handle holds a lock on the range.
const LOCK_VIOLATION: i32 = 33;

pub(super) fn remove(
    dir: &Path,
    rel: &Path,
    judged: &Judged,
    still_stale: impl Fn(&[u8], Option<SystemTime>) -> bool,
) -> Result<Attempt, String> {
    // Every directory on the way is a directory, not a junction or symlink.
    let mut at = dir.to_path_buf();
    for component in rel.components() {
        let Component::Normal(name) = component else {
            return Err(format!("{} is not a plain relative path", rel.display()));
        };
        at.push(name);
        match std::fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => return Ok(Attempt::Changed),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Attempt::Gone),
            Err(err) => return Err(format!("cannot look at it: {err}")),
        }
    }
    let file = match OpenOptions::new()
        .access_mode(FILE_GENERIC_READ | FILE_GENERIC_WRITE | DELETE)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(&at)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Attempt::Gone),
        Err(err) => return Err(format!("cannot open it: {err}")),
    };
    let meta = file
        .metadata()
        .map_err(|err| format!("cannot look at it: {err}"))?;
    if !meta.is_file() {
        return Ok(Attempt::Changed);
    }
    match lock_whole_file(&file) {
        Ok(()) => {}
        Err(err) if err.raw_os_error() == Some(LOCK_VIOLATION) => return Ok(Attempt::Busy),
        Err(err) => return Err(format!("cannot lock it: {err}")),
    }
    // Held for the few calls below only: OpenViking's own release of a
    // lease fails while it is held.
    let id = file_id::of_handle(file.as_raw_handle())
        .map_err(|err| format!("cannot read its identity: {err}"))?;
    if id != judged.id {
        return Ok(Attempt::Changed);
    }
    let bytes = read_all(&file)?;
    let unchanged = meta.len() == judged.size && bytes.starts_with(judged.content);
    if !unchanged || !still_stale(&bytes, meta.modified().ok()) {
        return Ok(Attempt::Changed);
    }
    let disposition = FILE_DISPOSITION_INFO { DeleteFile: true };
    // SAFETY: the structure lives across the call; the handle was opened
    // with DELETE access.
    let ok = unsafe {
        SetFileInformationByHandle(
            file.as_raw_handle(),
            FileDispositionInfo,
            (&raw const disposition).cast(),
            std::mem::size_of::<FILE_DISPOSITION_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(format!("cannot remove it: {}", io::Error::last_os_error()));
    }
    Ok(Attempt::Removed)
    // The handle closes here: the lock goes, and the file with it.
}

/// LockFileEx over the whole file, exclusive, failing at once if held.
fn lock_whole_file(file: &File) -> io::Result<()> {
    // SAFETY: a zeroed OVERLAPPED means offset 0; the handle is open.
    let ok = unsafe {
        let mut overlapped: OVERLAPPED = std::mem::zeroed();
        LockFileEx(
            file.as_raw_handle(),
            LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY,
            0,
            u32::MAX,
            u32::MAX,
            &mut overlapped,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn read_all(file: &File) -> Result<Vec<u8>, String> {
    // One byte more than inspect reads: a longer file is not what was judged.
    let mut buf = Vec::new();
    file.take(crate::inspect::path_locks::PATH_LOCK_READ_CAP as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|err| format!("cannot read it: {err}"))?;
    Ok(buf)
}
