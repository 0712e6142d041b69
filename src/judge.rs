//! The verdict: a pure function from inspected facts to a verdict, the
//! reasons for it and what to do. No OS access, so every rule is table-tested.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::fsread::FileKind;
use crate::inspect::process::Service;
use crate::inspect::{
    Ancestor, DirState, Facts, FlockState, LOCK_NAME, LockFile, Lookup, PID_NAME, PathAccess,
    Privilege, ProcessInfo,
};
use crate::pidfile::{self, BadPid};

/// How long a PID file may be empty or unparsable before it counts as
/// abandoned rather than being written (OpenViking truncates, then writes),
/// and how much earlier than its process a PID file may seem to be written
/// (process start times are known to the second).
pub const SLACK: Duration = Duration::from_secs(2);

/// The verdict on one data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Free,
    Held,
    Stale,
    Contended,
    Unknown,
}

impl Verdict {
    /// Nothing live owns the directory: a server may start on it (once a
    /// stale pid file is cleared).
    pub fn released(self) -> bool {
        matches!(self, Verdict::Free | Verdict::Stale)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Free => "free",
            Verdict::Held => "held",
            Verdict::Stale => "stale",
            Verdict::Contended => "contended",
            Verdict::Unknown => "unknown",
        }
    }
}

/// Which lock protocol made a process an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Holds the flock on `.openviking.lock` (OpenViking 0.4.21 and later).
    Flock,
    /// Is named by a live `.openviking.pid` (OpenViking up to 0.4.20).
    Pidfile,
    /// Uses the storage (open files, mapped files or kernel locks under the
    /// directory) without any lock file: `skip_process_lock`, or a version
    /// older than any lock.
    Storage,
}

/// A live process that owns the directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Owner {
    pub process: ProcessInfo,
    /// Every protocol through which it owns the directory, flock first.
    pub protocols: Vec<Protocol>,
    /// Its PID inside its own PID namespace, when the pid file names that one.
    pub ns_pid: Option<u32>,
    /// What it touches under the directory (known after a scan).
    pub files: Vec<PathAccess>,
    /// Its descendants that use the directory too: one server, not contenders.
    pub workers: Vec<u32>,
    /// Its parents up to PID 1, nearest first (known after a scan).
    pub ancestry: Vec<Ancestor>,
}

/// A process that uses the directory but does not own it: a shell whose
/// current directory it is, a `tail -f` on a log, a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherUser {
    pub process: ProcessInfo,
    pub files: Vec<PathAccess>,
}

/// Why a PID file no longer names its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Staleness {
    Unparsable(String),
    WrittenBeforeBoot { pid: u32 },
    IsOvlock { pid: u32 },
    Gone { pid: u32 },
    Zombie { pid: u32, name: String },
    StartedAfterWrite { pid: u32, name: String },
    NotOpenViking { pid: u32, name: String },
}

/// The judgement on `.openviking.pid` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidFileVerdict {
    Absent,
    /// `pid` owns it; `ns_pid` is the PID the file holds when the owner runs
    /// in another PID namespace (a container).
    Owned {
        pid: u32,
        ns_pid: Option<u32>,
    },
    Stale(Staleness),
    /// Empty or unparsable, but young: a server may be writing it right now.
    BeingWritten,
    Unknown(String),
}

/// Everything the renderers and clear-stale need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub verdict: Verdict,
    pub owners: Vec<Owner>,
    /// Processes that use the directory without owning it (known after a scan).
    pub other_users: Vec<OtherUser>,
    pub pid_file: PidFileVerdict,
    /// Why the verdict is what it is, most decisive first.
    pub reasons: Vec<String>,
    /// Facts that did not decide the verdict but that a reader should know.
    pub warnings: Vec<String>,
    /// What to do, in order of preference, with real PIDs and paths.
    pub fixes: Vec<String>,
}

/// Extra rules from the command line.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Lowercase substrings that also mark a process as OpenViking.
    pub markers: Vec<String>,
}

impl Policy {
    pub fn new(extra_markers: &[String]) -> Policy {
        let mut markers = vec!["openviking".to_string()];
        markers.extend(
            extra_markers
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| m.to_lowercase()),
        );
        Policy { markers }
    }

    /// Whether a process looks like OpenViking: its name, executable or
    /// command line contains a marker, case-insensitively.
    pub fn is_openviking(&self, process: &ProcessInfo) -> bool {
        self.is_openviking_ignoring(process, &[])
    }

    /// The same, but arguments that name one of `paths` (or a file in one)
    /// do not count: they say what a process looks at, not what it is.
    pub fn is_openviking_ignoring(&self, process: &ProcessInfo, paths: &[&Path]) -> bool {
        // The path itself or a path below it, as a word or after `=`
        // (`--workspace=/srv/ov`), relative to the process's current
        // directory, or as an SQLite `file:` URI; not a longer name that
        // merely begins with it (`/srv/ov-venv/bin/openviking-server`):
        // paths compare by components.
        let names_a_path = |arg: &str| {
            let value = arg.split_once('=').map_or(arg, |(_, v)| v);
            [arg, value].iter().any(|a| {
                let a = match a.strip_prefix("file:") {
                    Some(uri) => uri.split('?').next().unwrap_or(uri),
                    None => a,
                };
                let named = match (Path::new(a).is_absolute(), &process.cwd) {
                    (true, _) => Path::new(a).to_path_buf(),
                    (false, Some(cwd)) => cwd.join(a).components().collect(),
                    (false, None) => return false,
                };
                paths
                    .iter()
                    .any(|p| !p.as_os_str().is_empty() && named.starts_with(p))
            })
        };
        let args = process
            .cmdline
            .iter()
            .map(String::as_str)
            .filter(|a| !names_a_path(a));
        let exe = process
            .exe
            .as_deref()
            .map(Path::to_string_lossy)
            .unwrap_or_default();
        let haystacks = [process.name.as_str(), &exe]
            .into_iter()
            .chain(args)
            .map(str::to_lowercase)
            .collect::<Vec<_>>();
        self.markers
            .iter()
            .any(|m| haystacks.iter().any(|h| h.contains(m.as_str())))
    }
}

/// Judges one directory.
pub fn judge(facts: &Facts, policy: &Policy) -> Judgement {
    let mut j = Findings::default();
    match &facts.dir {
        DirState::Missing => {
            j.nothing_owns.push(format!(
                "{} does not exist; OpenViking would create it",
                facts.workspace.path.display()
            ));
        }
        DirState::NotADirectory(kind) => j.unknown.push(format!(
            "{} is {}, not a directory",
            facts.workspace.path.display(),
            kind.describe()
        )),
        DirState::Inaccessible(err) => j.unknown.push(format!(
            "cannot inspect {}: {err}",
            facts.workspace.path.display()
        )),
        DirState::Present { .. } => {
            judge_flock(facts, &mut j);
        }
    }
    let pid_file = judge_pid_file(facts, policy, &mut j);
    storage::judge_usage(facts, policy, &mut j);
    // A lock may be in there: never free while one lies about.
    for aside in &facts.left_aside {
        j.unknown.push(format!(
            "{} is a pid file that an interrupted clear-stale moved aside; if it names a live \
             OpenViking and no {PID_NAME} exists, move it back, otherwise remove it",
            aside.display()
        ));
    }
    if let Some(fs) = facts.remote_fs {
        j.warnings.push(format!(
            "{} is on {fs}: a lock held by a process on another host is invisible from here, \
             so free means only free on this host",
            facts.workspace.path.display()
        ));
    }
    point_elsewhere(facts, policy, &mut j);
    if facts.workspace.skip_process_lock {
        let config = facts
            .workspace
            .source
            .config_file()
            .map(|f| format!(" in {}", f.display()))
            .unwrap_or_default();
        j.warnings.push(format!(
            "storage.skip_process_lock is true{config}: OpenViking takes no lock on this workspace, so lock files cannot show who uses it"
        ));
    }
    j.finish(facts, pid_file, policy)
}

/// For OpenViking's default directory, or one that does not exist, when
/// nothing owns it: the OpenViking servers that hold other data
/// directories, one of which may be the directory meant (a config not
/// found, a server started elsewhere).
fn point_elsewhere(facts: &Facts, policy: &Policy, j: &mut Findings) {
    // A directory a server owns is most likely the one meant.
    if !j.owners.is_empty() || j.anonymous_holder {
        return;
    }
    let servers: Vec<String> = facts
        .elsewhere
        .iter()
        .filter(|f| policy.is_openviking(&f.process))
        .map(|f| {
            let dirs: Vec<String> = f
                .dirs
                .iter()
                .filter(|d| **d != facts.resolved_dir)
                .map(|d| d.display().to_string())
                .collect();
            format!("{} (PID {})", dirs.join(", "), f.process.pid)
        })
        .collect();
    if servers.is_empty() {
        return;
    }
    let why = match &facts.dir {
        DirState::Missing => "does not exist",
        _ => "is OpenViking's default, ./data",
    };
    j.warnings.push(format!(
        "{} {why}, but OpenViking servers run on other data directories: {}; is one of them the directory meant?",
        facts.workspace.path.display(),
        servers.join("; ")
    ));
    j.elsewhere = true;
}

/// What judging one directory has found so far, sorted by what each fact
/// argues for; `finish` weighs them into the verdict.
#[derive(Default)]
struct Findings {
    owners: Vec<Owner>,
    other_users: Vec<OtherUser>,
    /// Reasons that name owners.
    owned: Vec<String>,
    /// Facts that could not be read or decided.
    unknown: Vec<String>,
    /// Reasons a PID file is stale.
    stale: Vec<String>,
    /// Facts that show nothing owns the directory.
    nothing_owns: Vec<String>,
    warnings: Vec<String>,
    /// The flock is held, but by no process that could be identified.
    anonymous_holder: bool,
    /// OpenViking servers run on other data directories (see `point_elsewhere`).
    elsewhere: bool,
    /// An owner has let go of `.openviking.lock` but holds its storage.
    shutting_down: bool,
}

impl Findings {
    fn add_owner(&mut self, process: &ProcessInfo, protocol: Protocol) {
        match self
            .owners
            .iter_mut()
            .find(|o| o.process.pid == process.pid)
        {
            Some(owner) => owner.protocols.push(protocol),
            None => self.owners.push(Owner {
                process: process.clone(),
                protocols: vec![protocol],
                ..Owner::default()
            }),
        }
    }

    fn finish(mut self, facts: &Facts, pid_file: PidFileVerdict, policy: &Policy) -> Judgement {
        let verdict = match self.owners.len() {
            2.. => Verdict::Contended,
            1 => Verdict::Held,
            0 if self.anonymous_holder => Verdict::Held,
            _ if !self.unknown.is_empty() => Verdict::Unknown,
            _ if !self.stale.is_empty() => Verdict::Stale,
            _ => Verdict::Free,
        };
        let mut reasons = Vec::new();
        if verdict == Verdict::Contended {
            let who: Vec<String> = self
                .owners
                .iter()
                .map(|o| format!("PID {} ({})", o.process.pid, o.process.name))
                .collect();
            reasons.push(format!(
                "{} live processes own it: {}",
                who.len(),
                who.join(" and ")
            ));
        }
        match verdict {
            Verdict::Held | Verdict::Contended => {
                reasons.append(&mut self.owned);
                reasons.append(&mut self.stale);
                reasons.append(&mut self.nothing_owns);
                // A definite owner outranks what could not be read, but the reader must know.
                self.warnings.extend(
                    self.unknown
                        .iter()
                        .map(|u| format!("could not be inspected: {u}")),
                );
            }
            Verdict::Unknown => {
                reasons.append(&mut self.unknown);
                reasons.append(&mut self.stale);
                reasons.append(&mut self.nothing_owns);
            }
            Verdict::Stale | Verdict::Free => {
                reasons.append(&mut self.stale);
                reasons.append(&mut self.nothing_owns);
            }
        }
        if reasons.is_empty() {
            reasons.push("no lock file is present".to_string());
        }
        let mut fixes = fixes(verdict, &self.owners, &pid_file, facts, policy);
        if self.shutting_down && verdict == Verdict::Held {
            fixes.insert(
                0,
                format!(
                    "If it is shutting down, wait until it has let go: ovlock check --wait 30 {}",
                    quoted_path(&facts.workspace.path)
                ),
            );
        }
        if self.elsewhere {
            fixes.insert(
                0,
                "See every OpenViking server and the data directory it uses: ovlock who --all"
                    .to_string(),
            );
        }
        Judgement {
            verdict,
            owners: self.owners,
            other_users: self.other_users,
            pid_file,
            reasons,
            warnings: self.warnings,
            fixes,
        }
    }
}

fn judge_flock(facts: &Facts, j: &mut Findings) {
    let path = facts.resolved_dir.join(LOCK_NAME);
    match (&facts.lock_file, &facts.flock) {
        (LockFile::Absent, _) => {}
        (LockFile::NotRegular(kind), _) => {
            j.unknown
                .push(format!("{}: {}", path.display(), not_regular(*kind)))
        }
        (LockFile::Inaccessible(err), _) => j
            .unknown
            .push(format!("cannot inspect {}: {err}", path.display())),
        (LockFile::Present { .. }, None | Some(FlockState::Unheld)) => j.nothing_owns.push(
            format!("{LOCK_NAME} is not held (the file stays after a server exits, by design)"),
        ),
        (
            LockFile::Present { .. },
            Some(FlockState::Unidentified {
                recorded_pid,
                certain,
                ..
            }),
        ) => {
            // Only when no scan ran: with one, inspect settles this state.
            let recorded = recorded_pid
                .map(|p| format!(" (the kernel records PID {p}, which no longer holds it)"))
                .unwrap_or_default();
            if *certain {
                j.anonymous_holder = true;
                j.owned.push(format!(
                    "{LOCK_NAME} is locked (flock) by a process not yet identified{recorded}"
                ));
            } else {
                j.unknown
                    .push(format!("cannot tell whether {LOCK_NAME} is held{recorded}"));
            }
        }
        (LockFile::Present { .. }, Some(FlockState::Unknown(why))) => {
            j.unknown
                .push(format!("cannot tell whether {LOCK_NAME} is held: {why}"));
        }
        (
            LockFile::Present { .. },
            Some(FlockState::Held {
                holders,
                recorded_pid,
                recorded_exited,
                note,
            }),
        ) => {
            // Every holder shares the one open file that took the exclusive
            // lock (forked from it): one server, the first its owner.
            let mut owner: Option<u32> = None;
            for lookup in &facts.flock_holders {
                match lookup {
                    Lookup::Alive(p) if !p.zombie => match owner {
                        Some(first) => {
                            if let Some(o) = j.owners.iter_mut().find(|o| o.process.pid == first) {
                                o.workers.push(p.pid);
                            }
                        }
                        None => {
                            owner = Some(p.pid);
                            let inherited = match recorded_pid {
                                // A live PID is never said to have exited.
                                Some(recorded) if *recorded != p.pid => format!(
                                    " (it inherited the lock from PID {recorded}, which took it and {})",
                                    if *recorded_exited {
                                        "has exited"
                                    } else {
                                        "no longer holds it"
                                    }
                                ),
                                _ => String::new(),
                            };
                            j.owned.push(format!(
                                "{LOCK_NAME} is locked (flock) by PID {} ({}){inherited}",
                                p.pid, p.name
                            ));
                            j.add_owner(p, Protocol::Flock);
                        }
                    },
                    Lookup::Alive(_) | Lookup::Gone => {}
                    Lookup::Unknown(why) => j.unknown.push(why.clone()),
                }
            }
            let identified = owner.is_some();
            if !identified {
                j.anonymous_holder = true;
                // Name the PID the kernel gives, and why it could not be read.
                let unread =
                    holders
                        .iter()
                        .zip(&facts.flock_holders)
                        .find_map(|(pid, l)| match l {
                            Lookup::Unknown(why) => Some((pid, why)),
                            _ => None,
                        });
                j.owned.push(match unread {
                    Some((pid, why)) => format!(
                        "{LOCK_NAME} is locked (flock) by PID {pid}, which could not be identified ({why}); {}",
                        storage::remedy(&facts.host)
                    ),
                    None => format!("{LOCK_NAME} is locked (flock), but its holder could not be identified"),
                });
            }
            if let Some(note) = note {
                j.warnings.push(note.clone());
            }
        }
    }
}

fn not_regular(kind: FileKind) -> String {
    format!(
        "it is {}, not a regular file; ovlock neither follows nor opens it",
        kind.describe()
    )
}

fn judge_pid_file(facts: &Facts, policy: &Policy, j: &mut Findings) -> PidFileVerdict {
    let verdict = pid_file_verdict(facts, policy);
    let path = facts.resolved_dir.join(PID_NAME);
    match &verdict {
        PidFileVerdict::Absent => {}
        PidFileVerdict::Owned { ns_pid: None, .. } => {
            if let Some(Lookup::Alive(p)) = &facts.pid_owner {
                j.owned.push(format!("{PID_NAME} names PID {} ({}), which is alive and looks like OpenViking", p.pid, p.name));
                j.add_owner(p, Protocol::Pidfile);
            }
        }
        PidFileVerdict::Owned { pid, ns_pid: Some(ns_pid) } => {
            if let Some(user) = storage::user(facts, *pid) {
                let p = &user.process;
                j.owned.push(format!(
                    "{PID_NAME} names PID {ns_pid} of another PID namespace (a container): PID {} ({}) here, \
                     which uses this directory and looks like OpenViking",
                    p.pid, p.name
                ));
                j.add_owner(p, Protocol::Pidfile);
                if let Some(owner) = j.owners.iter_mut().find(|o| o.process.pid == *pid) {
                    owner.ns_pid = Some(*ns_pid);
                }
            }
        }
        PidFileVerdict::Stale(why) => j.stale.push(format!("{PID_NAME} is left over: {}", describe_staleness(why))),
        PidFileVerdict::BeingWritten => j.unknown.push(format!(
            "{PID_NAME} is empty or unfinished and was written less than {}s ago: a server may be taking the lock right now",
            SLACK.as_secs()
        )),
        PidFileVerdict::Unknown(why) => j.unknown.push(format!("{}: {why}", path.display())),
    }
    verdict
}

/// Judges `.openviking.pid` on its own: the verdict clear-stale acts on.
pub fn pid_file_verdict(facts: &Facts, policy: &Policy) -> PidFileVerdict {
    let (stat, content, truncated) = match &facts.pid_file {
        LockFile::Absent => return PidFileVerdict::Absent,
        LockFile::NotRegular(kind) => return PidFileVerdict::Unknown(not_regular(*kind)),
        LockFile::Inaccessible(err) => {
            return PidFileVerdict::Unknown(format!("cannot inspect it: {err}"));
        }
        LockFile::Present {
            content: Err(err), ..
        } => return PidFileVerdict::Unknown(format!("cannot read it: {err}")),
        LockFile::Present {
            stat,
            content: Ok(content),
            truncated,
        } => (stat, content, *truncated),
    };
    let Some(written) = stat.modified else {
        return PidFileVerdict::Unknown("its modification time cannot be read".into());
    };
    let parsed = if truncated {
        Err(format!(
            "it is {} bytes long, far too long to hold a PID",
            stat.size
        ))
    } else {
        pidfile::parse(content).map_err(|bad: BadPid| bad.to_string())
    };
    let pid = match parsed {
        Ok(pid) => pid,
        Err(why) => {
            let young = match facts.host.now.duration_since(written) {
                Ok(age) => age < SLACK,
                Err(ahead) => ahead.duration() < SLACK,
            };
            return if young && !truncated {
                PidFileVerdict::BeingWritten
            } else {
                PidFileVerdict::Stale(Staleness::Unparsable(why))
            };
        }
    };
    match host_pid_verdict(facts, policy, pid, written) {
        // The PID may be one of another PID namespace (a container), where
        // the server that wrote it sees itself under that number; where this
        // run could not see every such process, it cannot be ruled out.
        PidFileVerdict::Stale(why) if storage::namespace_ambiguous(&why) => {
            match storage::namespace_owner(facts, policy, pid, written) {
                Some(owner) => PidFileVerdict::Owned {
                    pid: owner.process.pid,
                    ns_pid: Some(pid),
                },
                None => match storage::unseen_namespace_owner(facts, policy, pid, written) {
                    Some(doubt) => PidFileVerdict::Unknown(doubt),
                    None => PidFileVerdict::Stale(why),
                },
            }
        }
        verdict => verdict,
    }
}

/// Judges a PID file's number as a PID of this namespace.
fn host_pid_verdict(
    facts: &Facts,
    policy: &Policy,
    pid: u32,
    written: SystemTime,
) -> PidFileVerdict {
    if pid == facts.host.self_pid {
        return PidFileVerdict::Stale(Staleness::IsOvlock { pid });
    }
    let process = match &facts.pid_owner {
        None | Some(Lookup::Gone) => return PidFileVerdict::Stale(Staleness::Gone { pid }),
        Some(Lookup::Unknown(why)) => return PidFileVerdict::Unknown(why.clone()),
        Some(Lookup::Alive(p)) => p,
    };
    let name = process.name.clone();
    if process.zombie {
        return PidFileVerdict::Stale(Staleness::Zombie { pid, name });
    }
    let openviking = policy.is_openviking(process);
    // Evidence beats clocks: an OpenViking process with files open in the
    // directory owns it, even where a clock stepped after boot (machines
    // without a real-time clock) makes the timestamps below lie.
    if openviking && facts.pid_owner_uses_dir == Some(true) {
        return PidFileVerdict::Owned { pid, ns_pid: None };
    }
    if facts.host.boot_time.is_some_and(|boot| written < boot) {
        return PidFileVerdict::Stale(Staleness::WrittenBeforeBoot { pid });
    }
    if process
        .started
        .is_some_and(|started| started_after_write(started, written))
    {
        return PidFileVerdict::Stale(Staleness::StartedAfterWrite { pid, name });
    }
    if !openviking {
        return PidFileVerdict::Stale(Staleness::NotOpenViking { pid, name });
    }
    PidFileVerdict::Owned { pid, ns_pid: None }
}

/// Whether a process started more than [`SLACK`] after its PID file was
/// written, which no owner can have done. Never overflows, whatever the mtime.
fn started_after_write(started: SystemTime, written: SystemTime) -> bool {
    started.duration_since(written).is_ok_and(|gap| gap > SLACK)
}

/// One sentence on why a PID file is stale.
pub fn describe_staleness(why: &Staleness) -> String {
    match why {
        Staleness::Unparsable(what) => format!("it names no process ({what})"),
        Staleness::WrittenBeforeBoot { pid } => {
            format!("it names PID {pid} but was written before the last boot")
        }
        Staleness::IsOvlock { pid } => format!("it names PID {pid}, which is this ovlock process"),
        Staleness::Gone { pid } => format!("PID {pid} has exited"),
        Staleness::Zombie { pid, name } => {
            format!("PID {pid} ({name}) has exited and is waiting to be reaped")
        }
        Staleness::StartedAfterWrite { pid, name } => {
            format!("PID {pid} now belongs to {name}, which started after the lock was written")
        }
        Staleness::NotOpenViking { pid, name } => {
            format!("PID {pid} now belongs to {name}, which is not OpenViking")
        }
    }
}

fn fixes(
    verdict: Verdict,
    owners: &[Owner],
    pid_file: &PidFileVerdict,
    facts: &Facts,
    policy: &Policy,
) -> Vec<String> {
    let dir = quoted_path(&facts.workspace.path);
    let mut fixes = restarts(owners, facts);
    let http = "Connect every client to one OpenViking server over HTTP instead of starting another \
                (MCP hosts that start one stdio server per session collide here)";
    let workspace = format!(
        "Give each OpenViking instance its own storage.workspace in ov.conf (this one is {dir})"
    );
    let stop = |o: &Owner| stop_owner(o, owners.len(), &dir, policy);
    match verdict {
        Verdict::Contended => {
            fixes.push(
                "Keep one OpenViking server on this directory and stop the others".to_string(),
            );
            fixes.extend(owners.iter().map(stop));
            fixes.push(http.to_string());
            fixes.push(workspace);
        }
        Verdict::Held if owners.is_empty() => fixes.push(match facts.host.lacks {
            None => format!("Look for the holder by hand: fuser -v {dir}/{LOCK_NAME}"),
            Some(Privilege::Root) => {
                format!("Run as root to identify the holder: sudo ovlock who {dir}")
            }
            Some(Privilege::SysPtrace) => format!(
                "Run ovlock with CAP_SYS_PTRACE to identify the holder (this run lacks it): ovlock who {dir}"
            ),
        }),
        Verdict::Held => {
            fixes.push(http.to_string());
            fixes.push(workspace);
            fixes.extend(owners.iter().map(stop));
        }
        Verdict::Stale => fixes.push(format!(
            "Remove the stale {PID_NAME}: ovlock clear-stale {dir}"
        )),
        Verdict::Unknown => fixes.extend(when_unknown(pid_file, facts, &dir)),
        // Free by the locks, but not every process could be seen.
        Verdict::Free if !facts.host.privileged() && suspects(facts, policy) > 0 => {
            fixes.push(format!(
                "To be sure no process uses it without a lock, {}: ovlock status {dir}",
                storage::remedy(&facts.host)
            ))
        }
        Verdict::Free => {}
    }
    if matches!(verdict, Verdict::Held | Verdict::Contended)
        && matches!(pid_file, PidFileVerdict::Stale(_))
    {
        fixes.push(format!(
            "Remove the leftover {PID_NAME}: ovlock clear-stale {dir}"
        ));
    }
    fixes
}

/// A server whose lock file was deleted under it keeps its lock on an
/// inode no one else can reach: only a restart makes it lock the path.
fn restarts(owners: &[Owner], facts: &Facts) -> Vec<String> {
    let deleted = crate::layout::deleted_lock_file(&facts.resolved_dir);
    let unnamed = &facts.storage_locks.unnamed_flocks;
    owners
        .iter()
        .filter(|o| o.files.iter().any(|t| t.path == deleted) || unnamed.contains(&o.process.pid))
        .map(|owner| {
            let p = &owner.process;
            format!(
                "Restart PID {} ({}) so that it locks {LOCK_NAME} at its path again; until then a new server cannot see it: {}",
                p.pid,
                p.name,
                match &p.service {
                    Some(service) => systemctl("restart", service),
                    None => format!("kill {}, then start it again", p.pid),
                }
            )
        })
        .collect()
}

/// How to stop one owner of `owners` owners, with what to know first.
fn stop_owner(o: &Owner, owners: usize, dir: &str, policy: &Policy) -> String {
    let p = &o.process;
    if !policy.is_openviking(p) {
        format!(
            "PID {} ({}) does not look like OpenViking: see what it is (ovlock who {dir}) before you stop it: kill {}",
            p.pid, p.name, p.pid
        )
    } else if o.protocols.contains(&Protocol::Pidfile) && owners > 1 {
        format!(
            "PID {} ({}) is an OpenViking 0.4.20 or older (it uses {PID_NAME}) and cannot see the lock of 0.4.21 and later: stop it: {}",
            p.pid,
            p.name,
            stop_command(p)
        )
    } else {
        format!(
            "Stop PID {} ({}) if it should not run: {}",
            p.pid,
            p.name,
            stop_command(p)
        )
    }
}

/// What to do when it cannot be decided: look again, look with more
/// privilege, look by hand.
fn when_unknown(pid_file: &PidFileVerdict, facts: &Facts, dir: &str) -> Vec<String> {
    let mut fixes = Vec::new();
    if matches!(pid_file, PidFileVerdict::BeingWritten) {
        fixes.push(format!(
            "Look again in a moment: sleep 2; ovlock status {dir}"
        ));
    }
    match facts.host.lacks {
        None => {}
        Some(Privilege::Root) => fixes.push(format!(
            "Run as root to see every process and file: sudo ovlock status {dir}"
        )),
        Some(Privilege::SysPtrace) => fixes.push(format!(
            "Run ovlock with CAP_SYS_PTRACE to see every process and file (this run lacks it): ovlock status {dir}"
        )),
    }
    fixes.push(format!("Look at the directory by hand: ls -la {dir}"));
    fixes
}

/// How to stop a process for good: through its systemd service, which
/// would otherwise start it again, then by its PID.
fn stop_command(p: &ProcessInfo) -> String {
    match &p.service {
        Some(service) => format!(
            "{}, then if it still runs: kill {}",
            systemctl("stop", service),
            p.pid
        ),
        None => format!("kill {}", p.pid),
    }
}

/// `systemctl VERB UNIT`, with `--user` for a user's service.
fn systemctl(verb: &str, service: &Service) -> String {
    let user = if service.user { "--user " } else { "" };
    format!("systemctl {user}{verb} {}", shell_quote(&service.name))
}

/// Quotes a string for a POSIX shell when it needs quoting, so that a
/// suggested command can be pasted as it is shown.
pub fn shell_quote(s: &str) -> String {
    shell_quote_bytes(s.as_bytes())
}

/// Quotes bytes for a shell: bare when safe, in single quotes when printable,
/// else as `$'...'` with escapes, so the result holds no control character
/// and names exactly these bytes (bash, zsh, ksh and busybox sh read `$'...'`).
pub fn shell_quote_bytes(bytes: &[u8]) -> String {
    let plain = !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(b));
    if plain {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    match std::str::from_utf8(bytes) {
        Ok(text) if !text.chars().any(crate::terminal_chars::is_unsafe) => {
            format!("'{}'", text.replace('\'', r"'\''"))
        }
        _ => {
            let mut out = String::from("$'");
            for chunk in bytes.utf8_chunks() {
                for c in chunk.valid().chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\'' => out.push_str("\\'"),
                        '\n' => out.push_str("\\n"),
                        '\t' => out.push_str("\\t"),
                        c if crate::terminal_chars::is_unsafe(c) => {
                            let mut buf = [0; 4];
                            for b in c.encode_utf8(&mut buf).bytes() {
                                out.push_str(&format!("\\x{b:02x}"));
                            }
                        }
                        c => out.push(c),
                    }
                }
                for b in chunk.invalid() {
                    out.push_str(&format!("\\x{b:02x}"));
                }
            }
            out.push('\'');
            out
        }
    }
}

/// How many processes that may be OpenViking a scan could not inspect
/// (none without a scan).
fn suspects(facts: &Facts, policy: &Policy) -> usize {
    match &facts.usage {
        Some(Ok(usage)) => storage::suspects(usage, policy, &[]).len(),
        _ => 0,
    }
}

/// A path, quoted for a shell.
fn quoted_path(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        shell_quote_bytes(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        shell_quote(&path.to_string_lossy())
    }
}

mod storage;

pub use storage::{describe_access, needs_scan, relative};

#[cfg(test)]
pub(crate) mod tests;
