//! A file's identity on Windows: its volume's serial number and its file
//! index, which play the part of Unix's device and inode (two names of one
//! file, or one name of two files in turn, are told apart by them). Read
//! through a handle opened for its attributes only: that takes no lock,
//! conflicts with no sharing mode a server opened the file with, and, with
//! FILE_FLAG_OPEN_REPARSE_POINT, never follows a symlink or junction.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, RawHandle};
use std::path::Path;

use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE,
    GetFileInformationByHandle,
};

/// (volume serial number, file index).
pub type Identity = (u64, u64);

/// Opens what is at `path` itself (a directory, or a reparse point rather
/// than its target) for reading its attributes.
pub fn open_attributes(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .access_mode(FILE_READ_ATTRIBUTES)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
}

/// The identity of what is at `path`, never following a reparse point.
pub fn of_path(path: &Path) -> io::Result<Identity> {
    of_handle(open_attributes(path)?.as_raw_handle())
}

/// The identity of the file an open handle is of.
pub fn of_handle(handle: RawHandle) -> io::Result<Identity> {
    // SAFETY: the structure is plain data, filled by the call; the handle
    // is open for the call's length.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    if unsafe { GetFileInformationByHandle(handle, &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
    Ok((u64::from(info.dwVolumeSerialNumber), index))
}
