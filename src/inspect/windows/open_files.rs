//! Who has a file open, on Windows. No Windows API names the owner of a
//! byte-range lock, and the Restart Manager (`RmGetList`) is a stub under
//! Wine, so this reads the system's handle table
//! (`NtQuerySystemInformation(SystemExtendedHandleInformation)`), copies
//! each file handle of another process into this one (`DuplicateHandle`),
//! and, for a disk file only (`GetFileType`: a pipe's name is never asked
//! for, which can block), compares its identity with the files asked
//! about. Nothing is locked and nothing is opened but our own probe.
//! A process whose handles cannot be copied (another user's, without
//! SeDebugPrivilege) is reported, never taken for one that has nothing open.
//!
//! For one file, the file system is asked first
//! (`FileProcessIdsUsingFileInformation`), which needs no access to the
//! processes; the handles are read only where that is not implemented (Wine).

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::io;
use std::os::windows::ffi::OsStringExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle, RawHandle};

use std::path::{Path, PathBuf};

use windows_sys::Wdk::Storage::FileSystem::{
    FileProcessIdsUsingFileInformation, NtQueryInformationFile,
};
use windows_sys::Wdk::System::SystemInformation::NtQuerySystemInformation;
use windows_sys::Win32::Foundation::{
    DUPLICATE_SAME_ACCESS, DuplicateHandle, HANDLE, STATUS_INFO_LENGTH_MISMATCH,
};
use windows_sys::Win32::Storage::FileSystem::{
    FILE_NAME_NORMALIZED, FILE_TYPE_DISK, GetFileType, GetFinalPathNameByHandleW,
};
use windows_sys::Win32::System::IO::IO_STATUS_BLOCK;
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcess, PROCESS_DUP_HANDLE};

use super::file_id::{self, Identity};

/// `SystemExtendedHandleInformation`, which windows-sys does not name.
const SYSTEM_EXTENDED_HANDLE_INFORMATION: i32 = 64;
/// STATUS_BUFFER_OVERFLOW: the list did not fit.
const BUFFER_OVERFLOW: i32 = 0x8000_0005_u32 as i32;
/// The handle table is read into a buffer grown up to this size.
const MAX_TABLE: usize = 1 << 30;

/// One entry of the handle table (`SYSTEM_HANDLE_TABLE_ENTRY_INFO_EX`).
#[repr(C)]
#[derive(Clone, Copy)]
struct Entry {
    object: *mut c_void,
    pid: usize,
    handle: usize,
    granted_access: u32,
    creator_back_trace_index: u16,
    object_type_index: u16,
    attributes: u32,
    reserved: u32,
}

/// The table's header (`SYSTEM_HANDLE_INFORMATION_EX`), entries after it.
#[repr(C)]
struct Header {
    count: usize,
    reserved: usize,
}

/// A disk file another process has open: the process, and a copy of its handle.
pub struct OpenFile<'a> {
    pub pid: u32,
    pub handle: &'a OwnedHandle,
}

impl OpenFile<'_> {
    pub fn identity(&self) -> io::Result<Identity> {
        file_id::of_handle(self.handle.as_raw_handle())
    }

    /// Its path, as Windows names it now (`\\?\C:\...`).
    pub fn path(&self) -> io::Result<PathBuf> {
        final_path(self.handle.as_raw_handle())
    }
}

/// Who has one file open: the processes, and those that could not be
/// inspected, each with why. ovlock itself is left out.
pub struct Openers {
    pub pids: Vec<u32>,
    pub uninspected: BTreeMap<u32, String>,
}

/// Who has the file at `path`, whose identity is `target`, open.
pub fn openers(path: &Path, target: Identity) -> io::Result<Openers> {
    let mut found = match openers_by_kernel(path, target) {
        Ok(Some(pids)) => Openers {
            pids,
            uninspected: BTreeMap::new(),
        },
        _ => openers_by_handles(target)?,
    };
    found.pids.retain(|&pid| pid != std::process::id());
    found.pids.sort_unstable();
    found.pids.dedup();
    Ok(found)
}

/// The processes that have the file open, as the file system keeps them;
/// None where that cannot be asked.
fn openers_by_kernel(path: &Path, target: Identity) -> io::Result<Option<Vec<u32>>> {
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
fn openers_by_handles(target: Identity) -> io::Result<Openers> {
    let mut holders = Vec::new();
    let uninspected = each_disk_file(|open| {
        if !holders.contains(&open.pid) && open.identity().is_ok_and(|id| id == target) {
            holders.push(open.pid);
        }
    })?;
    Ok(Openers {
        pids: holders,
        uninspected,
    })
}

/// Calls `found` for every disk file another process has open (ovlock's own
/// handles left out), and returns the processes whose handles could not be
/// read, each with why.
pub fn each_disk_file(mut found: impl FnMut(OpenFile<'_>)) -> io::Result<BTreeMap<u32, String>> {
    let table = handle_table()?;
    let own = std::process::id() as usize;
    // Only handles of the kernel's File type are copied, when that type's
    // number can be learnt from a handle of our own.
    let probe = std::env::current_exe().and_then(|exe| file_id::open_attributes(&exe));
    let file_type = probe.as_ref().ok().and_then(|probe| {
        let value = probe.as_raw_handle() as usize;
        table
            .iter()
            .find(|e| e.pid == own && e.handle == value)
            .map(|e| e.object_type_index)
    });
    let mut processes: BTreeMap<u32, Result<OwnedHandle, String>> = BTreeMap::new();
    let mut uninspected = BTreeMap::new();
    // SAFETY: the pseudo-handle of this process needs no closing.
    let this = unsafe { GetCurrentProcess() };
    for entry in table
        .iter()
        .filter(|e| e.pid != own && e.pid != 0)
        .filter(|e| file_type.is_none_or(|t| e.object_type_index == t))
    {
        let Ok(pid) = u32::try_from(entry.pid) else {
            continue;
        };
        let process = processes.entry(pid).or_insert_with(|| open_process(pid));
        let process = match process {
            Ok(process) => process,
            Err(why) => {
                uninspected.entry(pid).or_insert_with(|| why.clone());
                continue;
            }
        };
        let mut copy: HANDLE = std::ptr::null_mut();
        // SAFETY: both process handles are open; the copy, if made, is
        // ours and is owned (closed) below.
        let ok = unsafe {
            DuplicateHandle(
                process.as_raw_handle(),
                entry.handle as HANDLE,
                this,
                &mut copy,
                0,
                0,
                DUPLICATE_SAME_ACCESS,
            )
        };
        if ok == 0 {
            // Closed meanwhile, or a kind that cannot be copied: only a file
            // handle we could not look at leaves a gap.
            if file_type.is_some() && !closed(&io::Error::last_os_error()) {
                uninspected.entry(pid).or_insert_with(|| {
                    format!(
                        "a file handle of it could not be copied: {}",
                        io::Error::last_os_error()
                    )
                });
            }
            continue;
        }
        // SAFETY: DuplicateHandle made this handle for us alone.
        let copy = unsafe { OwnedHandle::from_raw_handle(copy as RawHandle) };
        // SAFETY: GetFileType only asks the handle's device type; it does
        // not block on a pipe, as asking a pipe's name can.
        if unsafe { GetFileType(copy.as_raw_handle()) } == FILE_TYPE_DISK {
            found(OpenFile { pid, handle: &copy });
        }
    }
    Ok(uninspected)
}

/// Whether a failed copy means the handle was closed while we looked.
fn closed(err: &io::Error) -> bool {
    // ERROR_INVALID_HANDLE
    err.raw_os_error() == Some(6)
}

fn open_process(pid: u32) -> Result<OwnedHandle, String> {
    // SAFETY: a plain call; a handle returned is ours to close.
    let handle = unsafe { OpenProcess(PROCESS_DUP_HANDLE, 0, pid) };
    if handle.is_null() {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(5) => "access denied to its handles (run as an administrator)".to_string(),
            _ => format!("its handles cannot be read: {err}"),
        });
    }
    // SAFETY: OpenProcess returned an open handle, now owned.
    Ok(unsafe { OwnedHandle::from_raw_handle(handle as RawHandle) })
}

/// Every handle of every process, read in one call with a buffer grown
/// until the table fits.
fn handle_table() -> io::Result<Vec<Entry>> {
    let mut size: usize = 1 << 20;
    loop {
        // u64 elements keep the buffer aligned for the entries' pointers.
        let mut buf = vec![0u64; size / 8];
        let mut needed = 0u32;
        // SAFETY: the buffer is `size` bytes long and writable.
        let status = unsafe {
            NtQuerySystemInformation(
                SYSTEM_EXTENDED_HANDLE_INFORMATION,
                buf.as_mut_ptr().cast(),
                u32::try_from(size).unwrap_or(u32::MAX),
                &mut needed,
            )
        };
        if status == STATUS_INFO_LENGTH_MISMATCH {
            size = (needed as usize + (1 << 16)).max(size * 2);
            if size > MAX_TABLE {
                return Err(io::Error::other("the system's handle table is too large"));
            }
            continue;
        }
        if status < 0 {
            return Err(io::Error::other(format!(
                "NtQuerySystemInformation failed with status {:#x}",
                status as u32
            )));
        }
        let header_len = std::mem::size_of::<Header>();
        // SAFETY: the call filled a header, then `count` entries within the buffer.
        let count = unsafe { (*buf.as_ptr().cast::<Header>()).count };
        let fits = (size - header_len) / std::mem::size_of::<Entry>();
        let base = unsafe { buf.as_ptr().cast::<u8>().add(header_len).cast::<Entry>() };
        return Ok((0..count.min(fits))
            .map(|i| unsafe { *base.add(i) })
            .collect());
    }
}

/// The path of an open disk file, as Windows names it now. Asked of disk
/// files only: for a pipe it can block.
fn final_path(handle: RawHandle) -> io::Result<PathBuf> {
    let mut buf = vec![0u16; 512];
    loop {
        // SAFETY: the buffer holds `buf.len()` wide characters.
        let len = unsafe {
            GetFinalPathNameByHandleW(
                handle,
                buf.as_mut_ptr(),
                u32::try_from(buf.len()).unwrap_or(u32::MAX),
                FILE_NAME_NORMALIZED,
            )
        } as usize;
        if len == 0 {
            return Err(io::Error::last_os_error());
        }
        if len < buf.len() {
            buf.truncate(len);
            return Ok(PathBuf::from(std::ffi::OsString::from_wide(&buf)));
        }
        // Too small: `len` is the size needed, with its terminating NUL.
        buf.resize(len + 1, 0);
    }
}
