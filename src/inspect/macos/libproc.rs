//! libproc, what `lsof` and `ps` read on macOS: every PID, a process's
//! descriptors with the vnode each names, its current directory and parent.
//! Another user's process refuses all but its parent (EPERM) unless ovlock
//! runs as root; the callers count such a process as uninspected.

use std::ffi::{CStr, c_int, c_void};
use std::io;
use std::mem::{MaybeUninit, size_of};
use std::path::PathBuf;

/// `struct proc_fileinfo` of `<sys/proc_info.h>`, which libc lacks.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProcFileInfo {
    fi_openflags: u32,
    fi_status: u32,
    fi_offset: i64,
    fi_type: i32,
    fi_guardflags: u32,
}

/// `struct vnode_fdinfowithpath`, which libc lacks: what
/// `PROC_PIDFDVNODEPATHINFO` fills for one descriptor.
#[repr(C)]
#[derive(Clone, Copy)]
struct VnodeFdInfoWithPath {
    pfi: ProcFileInfo,
    pvip: libc::vnode_info_path,
}

// The sizes `<sys/proc_info.h>` gives them: the kernel refuses a buffer of
// any other size, and a wrong layout would misread every field after it.
const _: () = assert!(size_of::<ProcFileInfo>() == 24);
const _: () = assert!(size_of::<libc::vnode_info_path>() == 1176);
const _: () = assert!(size_of::<VnodeFdInfoWithPath>() == 1200);
const _: () = assert!(size_of::<libc::proc_fdinfo>() == 8);

/// `PROC_PIDFDVNODEPATHINFO`, which libc lacks.
const PROC_PIDFDVNODEPATHINFO: c_int = 2;

/// A file one descriptor names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vnode {
    pub path: PathBuf,
    pub dev: u32,
    pub ino: u64,
}

/// Every PID on the machine.
pub fn pids() -> io::Result<Vec<u32>> {
    // SAFETY: a null buffer of size 0 asks only for the count.
    let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    if count <= 0 {
        return Err(io::Error::last_os_error());
    }
    // Room for processes started between the two calls.
    let mut pids: Vec<c_int> = vec![0; count as usize + 64];
    let bytes = c_int::try_from(pids.len() * size_of::<c_int>()).unwrap_or(c_int::MAX);
    // SAFETY: the buffer holds `bytes` bytes.
    let found = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast::<c_void>(), bytes) };
    if found <= 0 {
        return Err(io::Error::last_os_error());
    }
    pids.truncate(found as usize);
    Ok(pids
        .into_iter()
        .filter_map(|p| u32::try_from(p).ok())
        .collect())
}

/// The files a process's descriptors name (not its sockets, pipes and the
/// like). EPERM: another user's process; ESRCH: it has exited.
pub fn vnodes(pid: u32) -> io::Result<Vec<Vnode>> {
    let pid = c_int::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // libproc answers 0 both for an error and for a process with no
    // descriptors (a zombie): only errno tells them apart.
    // SAFETY: errno is this thread's; a null buffer of size 0 asks only
    // for the size needed.
    let needed = unsafe {
        *libc::__error() = 0;
        libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, std::ptr::null_mut(), 0)
    };
    if needed <= 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(0) => Ok(Vec::new()),
            _ => Err(err),
        };
    }
    let room = needed as usize / size_of::<libc::proc_fdinfo>() + 16;
    let mut fds: Vec<MaybeUninit<libc::proc_fdinfo>> = vec![MaybeUninit::uninit(); room];
    let bytes = c_int::try_from(room * size_of::<libc::proc_fdinfo>()).unwrap_or(c_int::MAX);
    // SAFETY: the buffer holds `bytes` bytes.
    let filled = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDLISTFDS,
            0,
            fds.as_mut_ptr().cast::<c_void>(),
            bytes,
        )
    };
    if filled <= 0 {
        return Err(io::Error::last_os_error());
    }
    let count = (filled as usize / size_of::<libc::proc_fdinfo>()).min(room);
    let mut found = Vec::new();
    for fd in &fds[..count] {
        // SAFETY: the kernel filled the first `count` entries.
        let fd = unsafe { fd.assume_init() };
        if fd.proc_fdtype != libc::PROX_FDTYPE_VNODE as u32 {
            continue;
        }
        match vnode_of(pid, fd.proc_fd) {
            Ok(vnode) => found.push(vnode),
            // Closed since the listing.
            Err(err) if err.raw_os_error() == Some(libc::EBADF) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(found)
}

fn vnode_of(pid: c_int, fd: c_int) -> io::Result<Vnode> {
    let mut info = MaybeUninit::<VnodeFdInfoWithPath>::uninit();
    let size = size_of::<VnodeFdInfoWithPath>() as c_int;
    // SAFETY: the buffer is exactly the size the flavour fills.
    let filled = unsafe {
        libc::proc_pidfdinfo(
            pid,
            fd,
            PROC_PIDFDVNODEPATHINFO,
            info.as_mut_ptr().cast::<c_void>(),
            size,
        )
    };
    if filled != size {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled all of it.
    let info = unsafe { info.assume_init() };
    let stat = &info.pvip.vip_vi.vi_stat;
    Ok(Vnode {
        path: path_of(&info.pvip),
        dev: stat.vst_dev,
        ino: stat.vst_ino,
    })
}

/// A process's current directory.
pub fn cwd(pid: u32) -> io::Result<PathBuf> {
    let pid = c_int::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    let mut info = MaybeUninit::<libc::proc_vnodepathinfo>::uninit();
    let size = size_of::<libc::proc_vnodepathinfo>() as c_int;
    // SAFETY: the buffer is exactly the size the flavour fills.
    let filled = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDVNODEPATHINFO,
            0,
            info.as_mut_ptr().cast::<c_void>(),
            size,
        )
    };
    if filled != size {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled all of it.
    let info = unsafe { info.assume_init() };
    Ok(path_of(&info.pvi_cdir))
}

/// A process's parent and short name, which libproc gives for any user's
/// process.
pub fn parent(pid: u32) -> io::Result<(u32, String)> {
    let pid = c_int::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    let mut info = MaybeUninit::<libc::proc_bsdinfo>::uninit();
    let size = size_of::<libc::proc_bsdinfo>() as c_int;
    // SAFETY: the buffer is exactly the size the flavour fills.
    let filled = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            info.as_mut_ptr().cast::<c_void>(),
            size,
        )
    };
    if filled != size {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled all of it.
    let info = unsafe { info.assume_init() };
    let comm: Vec<u8> = info.pbi_comm.iter().map(|&c| c as u8).collect();
    let name = CStr::from_bytes_until_nul(&comm)
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&comm).into_owned());
    Ok((info.pbi_ppid, name))
}

/// The NUL-terminated path of a `vnode_info_path` (MAXPATHLEN bytes, which
/// libc declares as 32 rows of 32).
fn path_of(vip: &libc::vnode_info_path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let bytes: Vec<u8> = vip.vip_path.iter().flatten().map(|&c| c as u8).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    PathBuf::from(std::ffi::OsStr::from_bytes(&bytes[..end]))
}

/// Whether an error means the process has exited.
pub fn exited(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::ESRCH)
}
