//! The words for what the judge found: one sentence per finding, one
//! command per fix, with real PIDs and paths. The text and the JSON both
//! take their reasons, warnings and fixes from here. The result is not yet
//! escaped for a terminal: the text renderer escapes it, the JSON encodes it.

use std::path::Path;
use std::time::Duration;

use super::names;
use crate::clear::{KeptBecause, Stale};
use crate::inspect::flock::HolderDoubt;
use crate::inspect::kernel_locks::KernelLock;
use crate::inspect::path_locks::CapHit;
use crate::inspect::{Facts, Host, LOCK_NAME, PID_NAME, PathAccess, Privilege};
use crate::judge::{Finding, PidDoubt, ProcessRef, SLACK, Staleness};
use crate::openviking::layout::TREE_DIR;
use crate::render::timefmt;
use crate::workspace::SettingSource;

mod fixes;
mod path_locks;
mod server;

pub use fixes::fix;
pub use path_locks::{locked_place, path_lock_reason};
pub use server::{answer, server};

/// The reasons, warnings and fixes of one directory, worded.
#[derive(Debug)]
pub struct Worded {
    pub reasons: Vec<String>,
    pub warnings: Vec<String>,
    pub fixes: Vec<String>,
}

impl Worded {
    pub fn of(facts: &Facts, j: &crate::judge::Judgement) -> Worded {
        Worded {
            reasons: j.reasons.iter().map(|f| finding(f, facts)).collect(),
            warnings: j.warnings.iter().map(|f| finding(f, facts)).collect(),
            fixes: j.fixes.iter().map(|f| fix(f, facts)).collect(),
        }
    }
}

/// The first reason: the one a one-line answer gives.
pub fn first_reason(facts: &Facts, j: &crate::judge::Judgement) -> String {
    j.reasons
        .first()
        .map(|f| finding(f, facts))
        .unwrap_or_default()
}

/// One sentence for one finding about the directory of `facts`.
pub fn finding(f: &Finding, facts: &Facts) -> String {
    let ws = facts.workspace.path.display();
    let dir = &facts.resolved_dir;
    let remedy = remedy(&facts.host);
    match f {
        Finding::DirMissing => format!("{ws} does not exist; OpenViking would create it"),
        Finding::NotADirectory(kind) => format!("{ws} is {}, not a directory", kind.describe()),
        Finding::DirInaccessible(err) => format!("cannot inspect {ws}: {err}"),
        Finding::LeftAside(aside) => format!(
            "{} is a pid file that an interrupted clear-stale moved aside; if it names a live \
             OpenViking and no {PID_NAME} exists, move it back, otherwise remove it",
            aside.display()
        ),
        Finding::RemoteFs(fs) => format!(
            "{ws} is on {fs}: a lock held by a process on another host is invisible from here, \
             so free means only free on this host"
        ),
        Finding::SkipProcessLock => {
            let config = facts
                .workspace
                .source
                .config_file()
                .map(|f| format!(" in {}", f.display()))
                .unwrap_or_default();
            format!(
                "storage.skip_process_lock is true{config}: OpenViking takes no lock on this \
                 workspace, so lock files cannot show who uses it"
            )
        }
        Finding::ServersElsewhere { missing, servers } => {
            let why = if *missing {
                "does not exist"
            } else {
                "is OpenViking's default, ./data"
            };
            let servers: Vec<String> = servers
                .iter()
                .map(|(pid, dirs)| {
                    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                    format!("{} (PID {pid})", dirs.join(", "))
                })
                .collect();
            format!(
                "{ws} {why}, but OpenViking servers run on other data directories: {}; is one of \
                 them the directory meant?",
                servers.join("; ")
            )
        }
        Finding::LockFileNotRegular(kind) => format!(
            "{}: {}",
            dir.join(LOCK_NAME).display(),
            not_regular(kind.describe())
        ),
        Finding::LockFileInaccessible(err) => {
            format!("cannot inspect {}: {err}", dir.join(LOCK_NAME).display())
        }
        Finding::FlockUnheld => {
            format!("{LOCK_NAME} is not held (the file stays after a server exits, by design)")
        }
        Finding::FlockHeldBy {
            holder,
            inherited_from,
        } => {
            let inherited = match inherited_from {
                Some((recorded, exited)) => format!(
                    " (it inherited the lock from PID {recorded}, which took it and {})",
                    if *exited {
                        "has exited"
                    } else {
                        "no longer holds it"
                    }
                ),
                None => String::new(),
            };
            format!(
                "{LOCK_NAME} is locked (flock) by {}{inherited}",
                process(holder)
            )
        }
        Finding::FlockHolderNotYetIdentified { recorded } => format!(
            "{LOCK_NAME} is locked (flock) by a process not yet identified{}",
            no_longer_holds(*recorded)
        ),
        Finding::FlockUndecided { recorded } => format!(
            "cannot tell whether {LOCK_NAME} is held{}",
            no_longer_holds(*recorded)
        ),
        Finding::FlockUnknown(why) => format!("cannot tell whether {LOCK_NAME} is held: {why}"),
        Finding::FlockHolderUnreadable { pid, why } => format!(
            "{LOCK_NAME} is locked (flock) by PID {pid}, which could not be identified ({why}); \
             {remedy}"
        ),
        Finding::FlockHolderUnknown => {
            format!("{LOCK_NAME} is locked (flock), but its holder could not be identified")
        }
        Finding::FlockHolderDoubt(doubt) => holder_doubt(doubt),
        Finding::LockFileOpenedBy(p) => format!(
            "{} has {LOCK_NAME} open and does not look like OpenViking; Windows names no \
             lock's owner, only who has a file open, so whether it holds the lock cannot be told",
            process(p)
        ),
        Finding::ProcessUnreadable(why) => why.clone(),
        Finding::PidFileNames(p) => format!(
            "{PID_NAME} names {}, which is alive and looks like OpenViking",
            process(p)
        ),
        Finding::PidFileNamesNamespaced { ns_pid, owner } => format!(
            "{PID_NAME} names PID {ns_pid} of another PID namespace (a container): {} here, \
             which uses this directory and looks like OpenViking",
            process(owner)
        ),
        Finding::PidFileLeftOver(why) => format!("{PID_NAME} is left over: {}", staleness(why)),
        Finding::PidFileBeingWritten => format!(
            "{PID_NAME} is empty or unfinished and was written less than {}s ago: a server may \
             be taking the lock right now",
            SLACK.as_secs()
        ),
        Finding::PidFileUndecided(doubt) => format!(
            "{}: {}",
            dir.join(PID_NAME).display(),
            pid_doubt(doubt, &facts.host)
        ),
        Finding::Contended(owners) => {
            let who: Vec<String> = owners.iter().map(process).collect();
            format!("{} live processes own it: {}", who.len(), who.join(" and "))
        }
        Finding::NoLockFile => "no lock file is present".to_string(),
        Finding::ScanFailed(why) => {
            format!("could not look for processes that use the directory: {why}")
        }
        Finding::LockTableUnsettled => "the kernel's lock table (/proc/locks) kept changing while \
             it was read, so a lock missing from it may still be held, and the processes could \
             not all be read to tell"
            .to_string(),
        Finding::Unseen {
            suspects,
            hidden_by,
        } => unseen(suspects, hidden_by.as_deref(), remedy),
        Finding::NotCountedAsServer { process: p, access } => format!(
            "{} holds a {} on {}, but does not look like OpenViking, so it is not counted as a \
             server (use --match to count it)",
            process(p),
            describe_access(access),
            relative(dir, &access.path).display()
        ),
        Finding::HoldsDeletedLockFile(p) => format!(
            "{} holds the flock on a {LOCK_NAME} that was deleted under it: a new server would \
             lock a new file at that path and run beside it",
            process(p)
        ),
        Finding::HoldsUnnamedFlock(p) => format!(
            "{} uses the storage without a lock file that ovlock can see, but holds a flock on a \
             file it cannot name (its descriptors could not be read): most likely a {LOCK_NAME} \
             deleted under it, so that a new server would run beside it; {remedy}",
            process(p)
        ),
        Finding::LetGo { process: p, files } => format!(
            "{} has let go of {LOCK_NAME} but still holds the storage: {}",
            process(p),
            describe_files(dir, files)
        ),
        Finding::StorageWithoutLock { process: p, files } => format!(
            "{} uses the storage without holding a lock file: {}",
            process(p),
            describe_files(dir, files)
        ),
        Finding::LoneStorageOwner { lock_unheld: true } => {
            "it is a server shutting down, or one started with storage.skip_process_lock beside \
             the lock file of another"
                .to_string()
        }
        Finding::LoneStorageOwner { lock_unheld: false } => {
            "it holds no lock file: storage.skip_process_lock is set, or it is an OpenViking \
             older than any lock"
                .to_string()
        }
        Finding::OwnerHas { process: p, files } => {
            format!("{} has {}", process(p), describe_files(dir, files))
        }
        Finding::StorageLockUnidentified {
            path,
            lock,
            alive,
            why,
        } => {
            let what = format!(
                "{} ({} lock)",
                relative(dir, path).display(),
                kernel_lock(lock)
            );
            if *alive {
                format!(
                    "{what} is held by a live process that could not be identified: {why}; {remedy}"
                )
            } else {
                format!("{what} is held, but not by any process ovlock could see ({why})")
            }
        }
        Finding::StorageSearchIncomplete(why) => {
            format!("the storage was not searched in full for locks: {why}")
        }
        Finding::StalePathLocks { count: 1, first } => format!(
            "{} has a stale path lock: {}",
            locked_place(first),
            path_lock_reason(first, facts)
        ),
        Finding::StalePathLocks { count, first } => format!(
            "{count} path locks in the storage tree are stale, the first on {}: {}",
            locked_place(first),
            path_lock_reason(first, facts)
        ),
        Finding::UndecidedPathLocks { count, first } => {
            let file = relative(dir, &first.file.path).display();
            match count {
                1 => format!(
                    "the path lock {file} cannot be judged: {}",
                    path_lock_reason(first, facts)
                ),
                n => format!(
                    "{n} path locks cannot be judged, such as {file}: {}",
                    path_lock_reason(first, facts)
                ),
            }
        }
        Finding::TaskHoldsLease {
            lock,
            task,
            certain,
        } => format!(
            "{} is {}held by task {} ({}, stage {}, running for {}){}",
            locked_place(lock),
            if *certain { "" } else { "probably " },
            task.id,
            task.task_type.as_deref().unwrap_or("type not said"),
            task.stage.as_deref().unwrap_or("not said"),
            task.running_secs
                .map(|s| timefmt::short(Duration::from_secs(s)))
                .unwrap_or_else(|| "an unknown time".to_string()),
            if *certain {
                " (by the lease's owner_id, as its server reports)".to_string()
            } else {
                format!(
                    " (it runs on {}, at or below the locked URI; the server names no lease owner)",
                    task.resource.as_deref().unwrap_or("?")
                )
            }
        ),
        Finding::TasksNotListed(answer) => format!(
            "the server was asked which task holds the stuck leases, but /api/v1/tasks: {}",
            self::answer(answer)
        ),
        Finding::StuckLeases { count, oldest, by } => format!(
            "{} has been locked for {} by {}, probably a stuck task (OpenViking issue #5283){}",
            locked_place(oldest),
            oldest.stuck_for.map(timefmt::short).unwrap_or_default(),
            match by {
                Some(p) => format!("the running server, {}", process(p)),
                None => "a running server".to_string(),
            },
            match count {
                1 => String::new(),
                n => format!("; {} more leases are as old", n - 1),
            }
        ),
        Finding::PathLocksNotSearched {
            unreadable,
            skipped_mounts,
            caps,
        } => {
            let mut parts = Vec::new();
            if let Some(first) = unreadable.first() {
                parts.push(format!(
                    "{} could not be read (such as {}: {})",
                    count(unreadable.len(), "directory", "directories"),
                    first.path.display(),
                    first.error
                ));
            }
            if !skipped_mounts.is_empty() {
                let mounts: Vec<String> = skipped_mounts
                    .iter()
                    .map(|m| m.display().to_string())
                    .collect();
                parts.push(format!(
                    "network and FUSE mounts were not entered: {}",
                    mounts.join(", ")
                ));
            }
            parts.extend(caps.iter().map(cap_hit));
            format!(
                "the storage tree was not searched in full for path locks: {}",
                parts.join("; ")
            )
        }
        Finding::TreeNotADirectory(kind) => format!(
            "{} is {}, not a directory; ovlock does not follow it, so no path lock was looked for",
            dir.join(TREE_DIR).display(),
            kind.describe()
        ),
        Finding::PathLocksNotDetermined => format!(
            "on {} ovlock does not search the storage tree for path locks",
            std::env::consts::OS
        ),
        Finding::LockExpireRefused { invalid, source } => format!(
            "{} is {}, which OpenViking refuses ({}): the age of a path lock cannot be weighed",
            setting_source(source),
            invalid.found,
            invalid.expected
        ),
        Finding::NotInspected(inner) => {
            format!("could not be inspected: {}", finding(inner, facts))
        }
    }
}

/// One sentence on why a PID file is stale.
pub fn staleness(why: &Staleness) -> String {
    match why {
        Staleness::Unparsable(bad) => format!("it names no process ({bad})"),
        Staleness::TooLong { size } => {
            format!("it names no process (it is {size} bytes long, far too long to hold a PID)")
        }
        Staleness::WrittenBeforeBoot { pid } => {
            format!("it names PID {pid} but was written before the last boot")
        }
        Staleness::IsOvlock { pid } => format!("it names PID {pid}, which is this ovlock process"),
        Staleness::Gone { pid } => format!("PID {pid} has exited"),
        Staleness::GoneEverywhere { pid } => format!(
            "PID {pid}, which the file named when it was moved aside, exists nowhere (a new \
             {PID_NAME} is in place)"
        ),
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

/// Why clear-stale removed a file.
pub fn removal_reason(why: &Stale, facts: &Facts) -> String {
    match why {
        Stale::PidFile(staleness) => self::staleness(staleness),
        Stale::PathLock(judged) => format!(
            "a stale path lock on {}: {}",
            locked_place(judged),
            path_lock_reason(judged, facts)
        ),
    }
}

/// Why clear-stale left a file it had judged stale in place.
pub fn kept(why: &KeptBecause) -> String {
    match why {
        KeptBecause::OwnerAfterAll => {
            "a live server holds the directory after all, and may be refreshing it".into()
        }
        KeptBecause::OwnerUndecided => {
            "a second look could not tell whether a live server holds the directory".into()
        }
        KeptBecause::NoLongerStale => {
            "a second look at the directory no longer finds it stale".into()
        }
        KeptBecause::NotFoundAgain => "a second look did not find it".into(),
        KeptBecause::WatchTooLong(watch) => format!(
            "it is dated ahead beside a live server, which would rewrite its own lease within \
             {}, longer than clear-stale watches; look again after that",
            timefmt::short(*watch)
        ),
        KeptBecause::Changed => "it changed since it was judged, or is no longer stale".into(),
        KeptBecause::Busy => "OpenViking has it locked right now, to refresh or release it".into(),
    }
}

/// Why a PID file is neither owned nor stale, as the rest of a sentence.
pub fn pid_doubt(doubt: &PidDoubt, host: &Host) -> String {
    match doubt {
        PidDoubt::NotRegular(kind) => not_regular(kind.describe()),
        PidDoubt::Inaccessible(err) => format!("cannot inspect it: {err}"),
        PidDoubt::Unreadable(err) => format!("cannot read it: {err}"),
        PidDoubt::NoModificationTime => "its modification time cannot be read".to_string(),
        PidDoubt::OwnerUnreadable(why) => why.clone(),
        PidDoubt::UnseenNamespaceOwner { pid, unseen } => {
            let names: Vec<String> = unseen
                .iter()
                .map(|(pid, name)| match name {
                    Some(name) => format!("PID {pid} ({name})"),
                    None => format!("PID {pid}"),
                })
                .collect();
            let one = unseen.len() == 1;
            format!(
                "PID {pid} here is not its server, but {} {} PID {pid} inside {} own PID \
                 namespace, and {} could not be read to tell whether {} this directory; {}",
                names.join(" and "),
                if one { "is" } else { "are each" },
                if one { "its" } else { "their" },
                if one { "its files" } else { "their files" },
                if one { "it uses" } else { "they use" },
                remedy(host)
            )
        }
        PidDoubt::HiddenNamespaceOwner { pid, option } => format!(
            "PID {pid} here is not its server, but /proc is mounted with {option}: a process \
             that /proc hides may be PID {pid} inside a container; {}",
            remedy(host)
        ),
    }
}

fn holder_doubt(doubt: &HolderDoubt) -> String {
    match doubt {
        HolderDoubt::Unconfirmed { pid, why } => format!(
            "the kernel records PID {pid} as the holder; its descriptors could not be read to \
             confirm it ({why})"
        ),
        HolderDoubt::NoneFound {
            recorded: Some(pid),
        } => format!(
            "the kernel records PID {pid}, which no longer holds it, and no other holder was found"
        ),
        HolderDoubt::NoneFound { recorded: None } => "no holder was found".to_string(),
        HolderDoubt::Unseen(unseen) => format!("no readable process holds it; {unseen}"),
        HolderDoubt::OpenOnly => "Windows shows no lock's owner, only who has the file open: \
                                  the holder is the OpenViking process that has it open"
            .to_string(),
    }
}

/// What the scan could not see, and what would let it.
fn unseen(suspects: &[u32], hidden_by: Option<&str>, remedy: &str) -> String {
    let mut parts = Vec::new();
    if !suspects.is_empty() {
        const SHOWN: usize = 5;
        let pids: Vec<String> = suspects.iter().take(SHOWN).map(u32::to_string).collect();
        let more = if suspects.len() > SHOWN { ", ..." } else { "" };
        let (count, pid) = match suspects.len() {
            1 => ("1 process that may be OpenViking was".to_string(), "PID"),
            n => (format!("{n} processes that may be OpenViking were"), "PIDs"),
        };
        parts.push(format!(
            "{count} not inspected ({pid} {}{more})",
            pids.join(", ")
        ));
    }
    if let Some(option) = hidden_by {
        parts.push(format!(
            "/proc is mounted with {option}, which hides other users' processes even from a count"
        ));
    }
    format!("{}; {remedy} for a complete answer", parts.join("; "))
}

/// `stale .openviking.pid`, `2 stale path locks`, or both.
fn leftovers(what: &str, pid_file: bool, path_locks: usize) -> String {
    match (pid_file, path_locks) {
        (true, 0) => format!("{what} {PID_NAME}"),
        (true, n) => format!(
            "{what} {PID_NAME} and {}",
            count(n, "path lock", "path locks")
        ),
        (false, 1) => format!("{what} path lock"),
        (false, n) => format!("{n} {what} path locks"),
    }
}

/// `1 directory`, `3 directories`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn cap_hit(cap: &CapHit) -> String {
    match cap {
        CapHit::Depth { limit, first } => format!(
            "directories more than {limit} levels deep were not entered (such as {})",
            first.display()
        ),
        CapHit::Entries { limit } => format!("the search stopped after {limit} entries"),
        CapHit::Interrupted => {
            "a thread of the search failed, and what it found is lost".to_string()
        }
        CapHit::LockFiles { limit } => {
            format!("lock files beyond the first {limit} were not read")
        }
    }
}

/// `storage.agfs.pathlock.lock_expire_secs in /etc/ov.conf`, or `the default`.
pub fn setting_source(source: &SettingSource) -> String {
    match source {
        SettingSource::Default => "OpenViking's default".to_string(),
        SettingSource::Config { key, file } => format!("{key} in {}", file.display()),
    }
}

/// What would let this run see every process, as the end of a sentence.
pub fn remedy(host: &Host) -> &'static str {
    match host.lacks {
        Some(Privilege::SysPtrace) => {
            "run ovlock with CAP_SYS_PTRACE (it runs as root without it, as under a systemd \
             CapabilityBoundingSet= or in a container)"
        }
        _ => "run as root",
    }
}

/// `PID 42 (openviking-server)`.
fn process(p: &ProcessRef) -> String {
    format!("PID {} ({})", p.pid, p.name)
}

/// ` (the kernel records PID 9, which no longer holds it)`, or nothing.
fn no_longer_holds(recorded: Option<u32>) -> String {
    recorded
        .map(|p| format!(" (the kernel records PID {p}, which no longer holds it)"))
        .unwrap_or_default()
}

fn not_regular(kind: &str) -> String {
    format!("it is {kind}, not a regular file; ovlock neither follows nor opens it")
}

/// `flock write`, `posix read`.
fn kernel_lock(lock: &KernelLock) -> String {
    format!(
        "{} {}",
        names::lock_class(lock.class),
        names::lock_mode(lock.exclusive)
    )
}

/// A short list of files relative to the directory, with how each is used.
pub fn describe_files(dir: &Path, accesses: &[PathAccess]) -> String {
    const SHOWN: usize = 4;
    let mut parts: Vec<String> = accesses
        .iter()
        .take(SHOWN)
        .map(|t| {
            format!(
                "{} ({})",
                relative(dir, &t.path).display(),
                describe_access(t)
            )
        })
        .collect();
    if accesses.len() > SHOWN {
        parts.push(format!("and {} more", accesses.len() - SHOWN));
    }
    parts.join(", ")
}

/// A path relative to the directory, `.` for the directory itself.
pub fn relative<'a>(dir: &Path, path: &'a Path) -> &'a Path {
    match path.strip_prefix(dir) {
        Ok(rest) if rest.as_os_str().is_empty() => Path::new("."),
        Ok(rest) => rest,
        Err(_) => path,
    }
}

/// `open`, `mapped`, `current directory`, or the lock held through it:
/// `flock write lock`.
pub fn describe_access(t: &PathAccess) -> String {
    match t.locks.first() {
        Some(lock) => format!("{} lock", kernel_lock(lock)),
        None => names::access(t.access).text.to_string(),
    }
}
