//! Linux /proc access: the lock table, a process's descriptors, and which of
//! them carry a lock.

use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::kernel_locks::{self, KernelLock, LockClass};
use super::table_reading;

/// A file's identity as `stat` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// Its device as /proc/locks and mountinfo name it: (major, minor).
    pub fn device(&self) -> (u32, u32) {
        (rustix::fs::major(self.dev), rustix::fs::minor(self.dev))
    }
}

/// The kernel lock table, read so that what it lacks is absent when it
/// settles (see `table_reading`).
pub fn lock_table() -> io::Result<table_reading::Reading> {
    use std::os::unix::fs::FileExt;
    let file = fs::File::open("/proc/locks")?;
    table_reading::read(|offset, buf| {
        buf.resize(table_reading::READ_BUFFER, 0);
        let n = file.read_at(buf, offset)?;
        buf.truncate(n);
        Ok(())
    })
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
        match fs::read_link(entry.path()) {
            Ok(target) => out.push((fd, target)),
            // A descriptor closed since the listing is simply skipped.
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            // The listing may be allowed where the links are not (a root
            // without CAP_SYS_PTRACE looking at a more privileged process):
            // what could not be read is not "nothing open".
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// Whether some descriptor of `pid` is open on the file `target`.
pub fn has_open(pid: u32, target: FileId) -> io::Result<bool> {
    for (fd, _) in fds(pid)? {
        match file_id(Path::new(&format!("/proc/{pid}/fd/{fd}"))) {
            Ok(id) if id == target => return Ok(true),
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
    }
    Ok(false)
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

/// This process's mount namespace, read once, to tell the processes whose
/// paths mean something else here (a container's) from ours.
pub struct OurMountNamespace(Option<PathBuf>);

impl OurMountNamespace {
    pub fn read() -> OurMountNamespace {
        OurMountNamespace(mount_namespace("self").ok())
    }

    /// Whether `pid` lives in another mount namespace; an error when its
    /// namespace cannot be read, which is never taken for ours. When ours
    /// is not known, every process counts as ours.
    pub fn is_other(&self, pid: u32) -> io::Result<bool> {
        match &self.0 {
            None => Ok(false),
            Some(ours) => Ok(mount_namespace(&pid.to_string())? != *ours),
        }
    }
}

/// Whether `path` names the same file for `pid` as for this process: so
/// when `pid`'s mount namespace is another copy of ours (a systemd unit's
/// ProtectSystem= or PrivateTmp=, say) rather than a container's own tree.
pub fn seen_alike(pid: u32, path: &Path) -> bool {
    let theirs =
        Path::new(&format!("/proc/{pid}/root")).join(path.strip_prefix("/").unwrap_or(path));
    match (fs::metadata(theirs), fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Mount points, each with the device (major, minor) of its filesystem.
pub type MountTable = Vec<(PathBuf, (u32, u32))>;

/// A process's mounts as it sees them, from /proc/PID/mountinfo.
pub fn mounts(pid: u32) -> io::Result<MountTable> {
    let text = fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    Ok(text.lines().filter_map(parse_mountinfo_line).collect())
}

/// This process's mount points whose filesystem can hang whoever reads it
/// when its server stops answering: network filesystems and FUSE.
pub fn hanging_mount_points() -> io::Result<Vec<PathBuf>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().filter_map(hanging_mount_point).collect())
}

fn hanging_mount_point(line: &str) -> Option<PathBuf> {
    let mount = parse_mount(line)?;
    let remote = mount.fstype.starts_with("fuse")
        || matches!(
            mount.fstype,
            "nfs"
                | "nfs4"
                | "cifs"
                | "smb3"
                | "smbfs"
                | "ceph"
                | "9p"
                | "afs"
                | "lustre"
                | "gfs2"
                | "glusterfs"
        );
    remote.then_some(mount.point)
}

/// One line of mountinfo, as much of it as ovlock reads.
struct Mount<'a> {
    /// The mount point (fifth field), with its octal escapes undone.
    point: PathBuf,
    /// The device of its filesystem (third field): (major, minor).
    device: (u32, u32),
    /// The filesystem type, first after the ` - ` separator.
    fstype: &'a str,
    /// The filesystem's own options, third after the separator.
    options: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`.
fn parse_mount(line: &str) -> Option<Mount<'_>> {
    let (mount, fs) = line.split_once(" - ")?;
    let mut fields = mount.split(' ');
    let (_, _, dev, _, point) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let (major, minor) = dev.split_once(':')?;
    let mut fs = fs.split(' ');
    let fstype = fs.next()?;
    let options = fs.nth(1).unwrap_or("");
    Some(Mount {
        point: unescape_octal(point),
        device: (major.parse().ok()?, minor.parse().ok()?),
        fstype,
        options,
    })
}

/// A mountinfo line's mount point and device.
fn parse_mountinfo_line(line: &str) -> Option<(PathBuf, (u32, u32))> {
    parse_mount(line).map(|m| (m.point, m.device))
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

/// Whether this process may read every other process's descriptors: it
/// needs CAP_SYS_PTRACE in its effective set (root without it, under a
/// systemd CapabilityBoundingSet= or in a container, may not).
pub fn has_sys_ptrace() -> io::Result<bool> {
    const CAP_SYS_PTRACE: u32 = 19;
    let status = fs::read_to_string("/proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "no CapEff in /proc/self/status")
        })?;
    Ok(effective & (1 << CAP_SYS_PTRACE) != 0)
}

/// The `hidepid=` option /proc is mounted with, when it hides processes:
/// `hidepid=2` (`invisible`) hides other users' processes from listings
/// altogether, `1` (`noaccess`) and `4` (`ptraceable`) deny their details.
/// A `gid=` names the group exempt from it.
pub fn hidepid() -> io::Result<Option<String>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    Ok(text.lines().find_map(proc_hidepid))
}

/// The hiding options of one mountinfo line, if it is /proc's and has any:
/// `22 27 0:21 / /proc rw,relatime - proc proc rw,hidepid=invisible,gid=4`.
fn proc_hidepid(line: &str) -> Option<String> {
    let mount = parse_mount(line)?;
    if mount.point != Path::new("/proc") || mount.fstype != "proc" {
        return None;
    }
    let options: Vec<&str> = mount.options.split(',').collect();
    let hidepid = options
        .iter()
        .find_map(|o| o.strip_prefix("hidepid="))
        .filter(|v| !matches!(*v, "0" | "off"))?;
    let gid = options.iter().find(|o| o.starts_with("gid="));
    Some(match gid {
        Some(gid) => format!("hidepid={hidepid},{gid}"),
        None => format!("hidepid={hidepid}"),
    })
}

/// The systemd service a process runs in, from its cgroup path
/// (`0::/system.slice/openviking.service`), and whether it is a user's
/// service (under `user@UID.service`), which `systemctl --user` stops.
pub fn systemd_unit(pid: u32) -> Option<(String, bool)> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    unit_of_cgroup(&text)
}

/// The unit of a /proc/PID/cgroup text: the unified (`0::`) line, else the
/// `name=systemd` one of a cgroup-v1 host.
fn unit_of_cgroup(text: &str) -> Option<(String, bool)> {
    let path = |prefix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(prefix))
            .filter(|p| *p != "/")
    };
    let path = path("0::").or_else(|| {
        text.lines()
            .find_map(|line| line.split_once(":name=systemd:").map(|(_, p)| p))
    })?;
    let parts: Vec<&str> = path.split('/').collect();
    let manager = |p: &&str| p.starts_with("user@") && p.ends_with(".service");
    // A user's service manager itself is no service to stop: that would
    // end every service of the user.
    let unit = parts
        .iter()
        .rev()
        .find(|p| p.ends_with(".service") && !manager(p))?;
    let user = parts.iter().any(manager);
    Some((unit.to_string(), user))
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
    fn reads_hidepid_and_systemd_units() {
        for (line, want) in [
            ("22 27 0:21 / /proc rw,relatime - proc proc rw", None),
            (
                "22 27 0:21 / /proc rw,relatime - proc proc rw,hidepid=invisible,gid=4",
                Some("hidepid=invisible,gid=4"),
            ),
            (
                "22 27 0:21 / /proc rw - proc proc rw,hidepid=2",
                Some("hidepid=2"),
            ),
            ("22 27 0:21 / /proc rw - proc proc rw,hidepid=0", None),
            ("30 27 0:40 / /x/proc rw - proc proc rw,hidepid=2", None),
            ("30 27 0:40 / /proc rw - tmpfs tmpfs rw,hidepid=2", None),
        ] {
            assert_eq!(proc_hidepid(line).as_deref(), want, "{line}");
        }
        for (text, want) in [
            (
                "0::/system.slice/openviking.service\n",
                Some(("openviking.service", false)),
            ),
            (
                "0::/user.slice/user-1000.slice/user@1000.service/app.slice/ov.service\n",
                Some(("ov.service", true)),
            ),
            ("0::/user.slice/user-1000.slice/session-3.scope\n", None),
            (
                "0::/user.slice/user-1000.slice/user@1000.service/init.scope\n",
                None,
            ),
            ("0::/user.slice/user-1000.slice/user@1000.service\n", None),
            (
                "9:name=systemd:/system.slice/ov.service\n0::/\n",
                Some(("ov.service", false)),
            ),
            ("0::/\n", None),
        ] {
            assert_eq!(
                unit_of_cgroup(text),
                want.map(|(u, user)| (u.to_string(), user)),
                "{text}"
            );
        }
    }

    #[test]
    fn knows_the_mounts_that_can_hang() {
        for (line, want) in [
            (
                "36 35 0:50 / /srv/ws/vectordb rw - fuse.sshfs host:/v rw",
                Some("/srv/ws/vectordb"),
            ),
            ("36 35 0:51 / /srv/n rw - nfs4 host:/n rw", Some("/srv/n")),
            ("36 35 0:52 / /srv/t\\040x rw - tmpfs tmpfs rw", None),
            ("36 35 8:1 / / rw - ext4 /dev/sda1 rw", None),
        ] {
            assert_eq!(hanging_mount_point(line), want.map(PathBuf::from), "{line}");
        }
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
