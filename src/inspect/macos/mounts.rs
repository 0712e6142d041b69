//! The mount points a walk must not enter on macOS: filesystems that are not
//! local (NFS, SMB, AFP, WebDAV) and FUSE ones (macFUSE), whose server may
//! hang whoever reads them. `getfsstat` with `MNT_NOWAIT` answers from the
//! kernel's table without asking any of them.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// Every mount point whose filesystem can hang a reader.
pub fn hanging_mount_points() -> Vec<PathBuf> {
    // SAFETY: a null buffer asks only for the number of mounts.
    let count = unsafe { libc::getfsstat(std::ptr::null_mut(), 0, libc::MNT_NOWAIT) };
    let Ok(count) = usize::try_from(count) else {
        return Vec::new();
    };
    // Room for mounts made between the two calls.
    let room = count + 8;
    // SAFETY: statfs is plain data, for which zero is a valid value.
    let mut mounts: Vec<libc::statfs> = vec![unsafe { std::mem::zeroed() }; room];
    let bytes = i32::try_from(room * std::mem::size_of::<libc::statfs>()).unwrap_or(i32::MAX);
    // SAFETY: the buffer holds `bytes` bytes.
    let filled = unsafe { libc::getfsstat(mounts.as_mut_ptr(), bytes, libc::MNT_NOWAIT) };
    let Ok(filled) = usize::try_from(filled) else {
        return Vec::new();
    };
    mounts.truncate(filled.min(room));
    mounts
        .iter()
        .filter(|m| {
            let local = m.f_flags & libc::MNT_LOCAL as u32 != 0;
            !local || text(&m.f_fstypename).to_bytes().ends_with(b"fuse")
        })
        .map(|m| PathBuf::from(std::ffi::OsStr::from_bytes(text(&m.f_mntonname).to_bytes())))
        .collect()
}

/// A NUL-terminated field of `statfs`.
fn text(field: &[libc::c_char]) -> &CStr {
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes = unsafe { std::slice::from_raw_parts(field.as_ptr().cast::<u8>(), field.len()) };
    CStr::from_bytes_until_nul(bytes).unwrap_or(c"")
}
