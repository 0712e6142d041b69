//! Facts about individual processes: whether a PID is alive, and what it is.
//! Only the PIDs asked about are read, so the cost does not grow with the
//! number of processes on the machine.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sysinfo::{
    Pid, ProcessRefreshKind, ProcessStatus, ProcessesToUpdate, System, UpdateKind, Users,
};

/// What ovlock knows about one live process.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub ppid: Option<u32>,
    pub name: String,
    pub exe: Option<PathBuf>,
    pub cmdline: Vec<String>,
    pub user: Option<String>,
    pub started: Option<SystemTime>,
    /// Resident memory in bytes.
    pub memory: Option<u64>,
    pub cwd: Option<PathBuf>,
    /// Exited, but not yet reaped by its parent: it holds no files any more.
    pub zombie: bool,
    /// The systemd service it runs in, which would restart it if killed.
    pub service: Option<Service>,
    /// The launchd job it may run as (macOS), which launchd may restart if
    /// it is killed.
    pub launchd: Option<Box<LaunchdJob>>,
}

/// A process whose parent is launchd (PID 1): a LaunchAgent's or a
/// LaunchDaemon's, which `launchctl` stops for good, or one that was merely
/// orphaned, which only the label tells apart.
// Only macOS has launchd.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchdJob {
    /// Its label, from `XPC_SERVICE_NAME`, which launchd sets in the
    /// environment of the jobs it starts; None when that could not be read
    /// (another user's process, when not root) or is not set.
    pub label: Option<String>,
    /// Its user: 0 for a LaunchDaemon's (the `system` domain), another for
    /// a user's LaunchAgent (the `gui/UID` domain).
    pub uid: Option<u32>,
}

/// A systemd service, from a process's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The unit's name, `openviking.service`.
    pub name: String,
    /// A user's service (`systemctl --user`), not the system's.
    pub user: bool,
}

/// The answer to "is PID N alive?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Alive(ProcessInfo),
    Gone,
    /// It could not be told; the text says why.
    Unknown(String),
}

/// Reads processes on demand, one PID at a time.
pub struct Processes {
    system: Option<System>,
    users: Option<Users>,
}

impl Processes {
    pub fn new() -> Self {
        Processes {
            system: None,
            users: None,
        }
    }

    /// Looks one PID up; the kernel is asked first, so a PID that exists but
    /// cannot be read is told apart from one that is gone.
    #[cfg(unix)]
    pub fn lookup(&mut self, pid: u32) -> Lookup {
        match signal_probe(pid) {
            Probe::Gone => return Lookup::Gone,
            Probe::Unknown(why) => return Lookup::Unknown(why),
            Probe::Exists => {}
        }
        match self.info(pid) {
            Some(info) => Lookup::Alive(info),
            None if signal_probe(pid) == Probe::Gone => Lookup::Gone,
            None => Lookup::Unknown(format!("PID {pid} exists but its details cannot be read")),
        }
    }

    /// Looks one PID up in the process table, the only witness without kill(2).
    #[cfg(not(unix))]
    pub fn lookup(&mut self, pid: u32) -> Lookup {
        match self.info(pid) {
            Some(info) => Lookup::Alive(info),
            None if self.system.is_some() => Lookup::Gone,
            None => Lookup::Unknown("the process table cannot be read on this platform".into()),
        }
    }

    /// Everything sysinfo can tell about one PID, or None when it is not there.
    pub fn info(&mut self, pid: u32) -> Option<ProcessInfo> {
        let spid = Pid::from_u32(pid);
        let system = self.system()?;
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&[spid]), true, refresh_kind());
        let process = system.process(spid)?;
        let mut info = describe(process);
        let uid = process.user_id().cloned();
        info.user = uid.map(|uid| self.user_name(&uid));
        info.service = service(pid);
        Some(info)
    }

    /// Every process on the machine (not its threads): the full scan that
    /// `who --all` needs, and nothing else does.
    pub fn all(&mut self) -> Vec<ProcessInfo> {
        let Some(system) = self.system() else {
            return Vec::new();
        };
        system.refresh_processes_specifics(ProcessesToUpdate::All, true, refresh_kind());
        let found: Vec<(ProcessInfo, Option<sysinfo::Uid>)> = system
            .processes()
            .values()
            .filter(|p| p.thread_kind().is_none())
            .map(|p| (describe(p), p.user_id().cloned()))
            .collect();
        found
            .into_iter()
            .map(|(mut info, uid)| {
                info.user = uid.map(|uid| self.user_name(&uid));
                info
            })
            .collect()
    }

    fn system(&mut self) -> Option<&mut System> {
        if self.system.is_none() {
            self.system = System::new().ok();
        }
        self.system.as_mut()
    }

    fn user_name(&mut self, uid: &sysinfo::Uid) -> String {
        if self.users.is_none() {
            self.users = Users::new_with_refreshed_list().ok();
        }
        let name = self
            .users
            .as_ref()
            .and_then(|users| users.get_user_by_id(uid));
        name.map_or_else(|| uid.to_string(), |user| user.name().to_string())
    }
}

fn refresh_kind() -> ProcessRefreshKind {
    let kind = ProcessRefreshKind::nothing()
        .with_memory()
        .with_cmd(UpdateKind::Always)
        .with_exe(UpdateKind::Always)
        .with_cwd(UpdateKind::Always)
        .with_user(UpdateKind::Always)
        .without_tasks();
    // The environment names a launchd job's label; it comes with the
    // arguments macOS already reads (KERN_PROCARGS2).
    #[cfg(target_os = "macos")]
    let kind = kind.with_environ(UpdateKind::Always);
    kind
}

/// Only macOS has launchd.
#[cfg(not(target_os = "macos"))]
fn launchd_job(_process: &sysinfo::Process) -> Option<Box<LaunchdJob>> {
    None
}

/// The launchd job of a process whose parent is launchd (PID 1).
#[cfg(target_os = "macos")]
fn launchd_job(process: &sysinfo::Process) -> Option<Box<LaunchdJob>> {
    if process.parent().map(Pid::as_u32) != Some(1) {
        return None;
    }
    let label = process
        .environ()
        .iter()
        .find_map(|var| var.to_str()?.strip_prefix("XPC_SERVICE_NAME="))
        // launchd sets "0" for processes that are not its jobs.
        .filter(|label| !label.is_empty() && *label != "0")
        .map(String::from);
    Some(Box::new(LaunchdJob {
        label,
        uid: process.user_id().map(|uid| **uid),
    }))
}

/// What sysinfo knows of a process, but its user's name.
fn describe(process: &sysinfo::Process) -> ProcessInfo {
    ProcessInfo {
        pid: process.pid().as_u32(),
        ppid: process.parent().map(Pid::as_u32),
        name: process.name().to_string_lossy().into_owned(),
        exe: process.exe().map(PathBuf::from),
        cmdline: process
            .cmd()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        user: None,
        started: Some(process.start_time())
            .filter(|&secs| secs > 0)
            .map(|secs| UNIX_EPOCH + Duration::from_secs(secs)),
        memory: Some(process.memory()),
        cwd: process.cwd().map(PathBuf::from),
        zombie: matches!(
            process.status(),
            ProcessStatus::Zombie | ProcessStatus::Dead
        ),
        service: None,
        launchd: launchd_job(process),
    }
}

#[cfg(target_os = "linux")]
fn service(pid: u32) -> Option<Service> {
    super::procfs::systemd_unit(pid).map(|(name, user)| Service { name, user })
}

#[cfg(not(target_os = "linux"))]
fn service(_pid: u32) -> Option<Service> {
    None
}

/// When the machine last booted.
pub fn boot_time() -> Option<SystemTime> {
    System::boot_time()
        .ok()
        .filter(|&secs| secs > 0)
        .map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}

/// Whether a process with this PID exists, by kill(2) alone, which neither
/// /proc's hidepid nor a missing capability can hide; None when it cannot be told.
#[cfg(target_os = "linux")]
pub fn exists(pid: u32) -> Option<bool> {
    match signal_probe(pid) {
        Probe::Exists => Some(true),
        Probe::Gone => Some(false),
        Probe::Unknown(_) => None,
    }
}

#[cfg(unix)]
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Exists,
    Gone,
    Unknown(String),
}

/// `kill(pid, 0)`: EPERM still means the process exists.
#[cfg(unix)]
fn signal_probe(pid: u32) -> Probe {
    use rustix::io::Errno;
    let Some(target) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Probe::Gone;
    };
    match rustix::process::test_kill_process(target) {
        Ok(()) | Err(Errno::PERM) => Probe::Exists,
        Err(Errno::SRCH) => Probe::Gone,
        Err(err) => Probe::Unknown(format!("kill({pid}, 0) failed: {err}")),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn finds_itself_and_not_the_impossible() {
        let mut processes = Processes::new();
        let me = std::process::id();
        match processes.lookup(me) {
            Lookup::Alive(info) => {
                assert_eq!(info.pid, me);
                assert!(!info.cmdline.is_empty());
                assert!(info.started.is_some());
                assert!(!info.zombie);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(processes.lookup(i32::MAX as u32), Lookup::Gone);
        assert_eq!(processes.lookup(u32::MAX), Lookup::Gone);
    }

    #[test]
    fn a_reaped_child_is_gone_and_an_unreaped_one_is_a_zombie() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Until it is waited for, the child stays in the table as a zombie.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !matches!(
            Processes::new().lookup(pid),
            Lookup::Alive(ProcessInfo { zombie: true, .. })
        ) {
            assert!(
                std::time::Instant::now() < deadline,
                "child {pid} never became a zombie"
            );
            std::thread::yield_now();
        }
        child.wait().unwrap();
        assert_eq!(Processes::new().lookup(pid), Lookup::Gone);
    }
}
