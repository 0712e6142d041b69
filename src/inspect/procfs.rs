//! Linux /proc access: the lock table, a process's descriptors, and which of
//! them carry a lock.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::kernel_locks::{self, KernelLock, LockClass};

/// A file's identity as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// The whole kernel lock table, read once.
pub fn lock_table() -> io::Result<Vec<KernelLock>> {
    fs::read_to_string("/proc/locks").map(|text| kernel_locks::parse_table(&text))
}

/// Every PID in /proc.
pub fn pids() -> io::Result<Vec<u32>> {
    Ok(fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// A process's open descriptors and where they point.
pub fn fds(pid: u32) -> io::Result<Vec<(u32, PathBuf)>> {
    let dir = format!("/proc/{pid}/fd");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let Ok(entry) = entry else { continue };
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        // A descriptor closed since the listing is simply skipped.
        if let Ok(target) = fs::read_link(entry.path()) {
            out.push((fd, target));
        }
    }
    Ok(out)
}

/// Does this descriptor carry a held flock on `target`? The fdinfo `lock:`
/// lines name the locks owned through this open file; `stat` through the
/// descriptor confirms it is the same file even where /proc/locks shows a
/// different device number (btrfs subvolumes, overlayfs).
fn fd_holds_flock(pid: u32, fd: u32, target: FileId) -> io::Result<bool> {
    let locked = fdinfo_locks(pid, fd)?
        .iter()
        .any(|lock| lock.class == LockClass::Flock && lock.ino == target.ino);
    Ok(locked && file_id(Path::new(&format!("/proc/{pid}/fd/{fd}")))? == target)
}

/// Does any descriptor of `pid` carry a held flock on `target`?
pub fn holds_flock(pid: u32, target: FileId) -> io::Result<bool> {
    for (fd, _) in fds(pid)? {
        match fd_holds_flock(pid, fd, target) {
            Ok(true) => return Ok(true),
            Ok(false) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(false)
}

/// The locks owned through one open file, from the `lock:` lines of
/// /proc/PID/fdinfo/FD.
pub fn fdinfo_locks(pid: u32, fd: u32) -> io::Result<Vec<KernelLock>> {
    let info = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))?;
    Ok(info
        .lines()
        .filter_map(|line| line.strip_prefix("lock:"))
        .filter_map(kernel_locks::parse_line)
        .filter(|lock| !lock.waiting)
        .collect())
}

/// A process's current directory.
pub fn cwd(pid: u32) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/cwd"))
}

/// Reads a whole /proc file into `buf`, reusing its allocation. Files there
/// report no size, and a read may return less than was asked long before
/// the end (maps gives about a page at a time): only an empty read ends it.
pub fn read_into(path: &str, buf: &mut Vec<u8>) -> io::Result<()> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    buf.clear();
    if buf.capacity() < 64 * 1024 {
        buf.reserve(64 * 1024);
    }
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let len = buf.len();
        buf.resize(buf.capacity(), 0);
        let n = file.read(&mut buf[len..])?;
        buf.truncate(len + n);
        if n == 0 {
            return Ok(());
        }
    }
}

/// The file paths of a process's memory map (read into `buf` first), with
/// repeats: one line a mapped region.
pub fn mapped_paths(pid: u32, buf: &mut Vec<u8>) -> io::Result<impl Iterator<Item = &Path>> {
    read_into(&format!("/proc/{pid}/maps"), buf)?;
    Ok(buf
        .split(|&b| b == b'\n')
        .filter_map(maps_path)
        .map(|p| Path::new(std::ffi::OsStr::from_bytes(p))))
}

/// The pathname of one /proc/PID/maps line, when it names a file:
/// `address perms offset dev inode   pathname`.
fn maps_path(line: &[u8]) -> Option<&[u8]> {
    let mut rest = line;
    for _ in 0..5 {
        let start = rest.iter().position(|&b| b != b' ')?;
        rest = &rest[start..];
        let end = rest.iter().position(|&b| b == b' ')?;
        rest = &rest[end..];
    }
    let start = rest.iter().position(|&b| b != b' ')?;
    Some(&rest[start..]).filter(|path| path.first() == Some(&b'/'))
}

/// What ovlock reads of /proc/PID/stat.
pub struct Stat {
    pub name: String,
    pub ppid: u32,
    flags: u64,
}

impl Stat {
    /// A kernel thread (PF_KTHREAD) has no files of its own, and no user to
    /// be hidden from.
    pub fn is_kernel_thread(&self) -> bool {
        const PF_KTHREAD: u64 = 0x0020_0000;
        self.flags & PF_KTHREAD != 0
    }
}

/// A process's command name, parent and flags, from /proc/PID/stat.
pub fn stat(pid: u32) -> io::Result<Stat> {
    let stat = fs::read(format!("/proc/{pid}/stat"))?;
    let malformed = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("malformed /proc/{pid}/stat"),
        )
    };
    // The name sits in parentheses and may itself contain ") ", so cut at the last one.
    let open = stat.iter().position(|&b| b == b'(').ok_or_else(malformed)?;
    let close = stat
        .iter()
        .rposition(|&b| b == b')')
        .ok_or_else(malformed)?;
    let name =
        String::from_utf8_lossy(stat.get(open + 1..close).ok_or_else(malformed)?).into_owned();
    let rest = std::str::from_utf8(&stat[close + 1..]).map_err(|_| malformed())?;
    // After the name: state, ppid, pgrp, session, tty_nr, tpgid, flags.
    let fields: Vec<&str> = rest.split_ascii_whitespace().take(7).collect();
    let field = |i: usize| fields.get(i).ok_or_else(malformed);
    Ok(Stat {
        name,
        ppid: field(1)?.parse().map_err(|_| malformed())?,
        flags: field(6)?.parse().map_err(|_| malformed())?,
    })
}

/// The mount namespace a process lives in, as /proc names it.
pub fn mount_namespace(pid: &str) -> io::Result<PathBuf> {
    fs::read_link(format!("/proc/{pid}/ns/mnt"))
}

/// A process's mounts as it sees them: each mount point with the device of
/// its filesystem (major, minor), from /proc/PID/mountinfo.
pub fn mounts(pid: u32) -> io::Result<Vec<(PathBuf, (u32, u32))>> {
    let text = fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    Ok(text.lines().filter_map(parse_mountinfo_line).collect())
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`: the
/// mount point (fifth field, with octal escapes) and the device (third).
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, (u32, u32))> {
    let mut fields = line.split(' ');
    let (_, _, dev, _, point) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let (major, minor) = dev.split_once(':')?;
    Some((
        unescape_octal(point),
        (major.parse().ok()?, minor.parse().ok()?),
    ))
}

/// Undoes the `\040`-style escapes /proc uses for spaces and the like in paths.
fn unescape_octal(text: &str) -> PathBuf {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, b| acc.wrapping_mul(8).wrapping_add(b - b'0')),
                );
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&out))
}

/// The identity of what `path` names without following a final symlink.
pub fn link_id(path: &Path) -> io::Result<FileId> {
    let meta = fs::symlink_metadata(path)?;
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The identity of what `path` names, following symlinks (as `stat` does,
/// which is what /proc's magic links need).
pub fn file_id(path: &Path) -> io::Result<FileId> {
    let meta = fs::metadata(path)?;
    Ok(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// The PID in each PID namespace the process belongs to, outermost first
/// (the `NSpid:` line of /proc/PID/status).
pub fn ns_pids(pid: u32) -> io::Result<Vec<u32>> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .map(parse_ns_pids)
        .unwrap_or_default())
}

/// The numbers of an `NSpid:` line; an unparsable line yields none.
pub fn parse_ns_pids(value: &str) -> Vec<u32> {
    let pids: Option<Vec<u32>> = value
        .split_ascii_whitespace()
        .map(|p| p.parse().ok())
        .collect();
    pids.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_map_paths() {
        let line = b"7f1c2a000000-7f1c2a021000 r--s 00000000 fe:00 10010770                   /srv/ws/queue.db-shm";
        assert_eq!(maps_path(line), Some(&b"/srv/ws/queue.db-shm"[..]));
        assert_eq!(
            maps_path(b"7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]"),
            None
        );
        assert_eq!(maps_path(b"7ffd1000-7ffd2000 rw-p 00000000 00:00 0"), None);
        assert_eq!(
            maps_path(b"55d0-55d1 r-xp 0 fe:00 12 /a b/c (deleted)"),
            Some(&b"/a b/c (deleted)"[..])
        );
    }

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let Stat { name, ppid, .. } = stat(me).unwrap();
        assert!(!name.is_empty());
        assert_eq!(
            ppid,
            rustix::process::getppid().map_or(0, |p| p.as_raw_nonzero().get() as u32)
        );
        assert_eq!(ns_pids(me).unwrap().last(), Some(&me));
        assert!(!stat(me).unwrap().is_kernel_thread());
        assert_eq!(
            mount_namespace("self").unwrap(),
            mount_namespace(&me.to_string()).unwrap()
        );
        let mut buf = Vec::new();
        assert!(mapped_paths(me, &mut buf).unwrap().any(|p| p.is_absolute()));
    }

    #[test]
    fn parses_mountinfo_lines() {
        let line = "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw";
        assert_eq!(
            parse_mountinfo_line(line),
            Some((PathBuf::from("/mnt two"), (98, 0)))
        );
        assert_eq!(parse_mountinfo_line("garbage"), None);
        assert!(
            mounts(std::process::id())
                .unwrap()
                .iter()
                .any(|(p, _)| p == Path::new("/"))
        );
    }

    #[test]
    fn parses_nspid_lines() {
        assert_eq!(parse_ns_pids("\t4242\t1"), [4242, 1]);
        assert_eq!(parse_ns_pids(" 7"), [7]);
        assert!(parse_ns_pids("x 1").is_empty());
    }

    proptest! {
        #[test]
        fn maps_and_nspid_parsers_never_panic(line in proptest::collection::vec(any::<u8>(), 0..120), text in "\\PC{0,40}") {
            let _ = maps_path(&line);
            let _ = parse_ns_pids(&text);
            let _ = parse_mountinfo_line(&text);
        }
    }
}
