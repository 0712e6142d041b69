//! The judging rules over a table of facts, with no OS access. The table
//! also feeds the renderers' golden tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;
use crate::inspect::flock::HolderDoubt;
use crate::inspect::fsread::{FileKind, FileStat};
use crate::inspect::kernel_locks::{KernelLock, LockClass};
use crate::inspect::path_locks::{
    LockFileRead, LockMeta, Locks, NotLocal, PathLockFile, PathLocks, Walk,
};
use crate::inspect::storage_locks::Unidentified;
use crate::inspect::{
    Access, Ancestor, Host, PathAccess, Privilege, ProcessInfo, Uninspected, Usage, User,
};
use crate::openviking::layout::{PathLockName, TreePlace};
use crate::openviking::ovconf::PathLockProvider;
use crate::render::words::{self, Worded};
use crate::workspace::{Source, Workspace};

const T0: u64 = 1_800_000_000;
const STORE_LOCK: &str = "vectordb/context/store/LOCK";

/// The judgement's reasons, warnings and fixes as a reader gets them.
fn said(facts: &Facts, policy: &Policy) -> Worded {
    Worded::of(facts, &judge(facts, policy))
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn host() -> Host {
    Host {
        now: at(T0 + 3_600),
        boot_time: Some(at(T0 - 86_400)),
        self_pid: 777,
        lacks: None,
        hidepid: None,
    }
}

pub(crate) fn base() -> Facts {
    let path = PathBuf::from("/srv/ov/data");
    Facts {
        workspace: Workspace {
            path: path.clone(),
            source: Source::Argument,
            skip_process_lock: false,
            path_locks: Default::default(),
            server: Default::default(),
        },
        dir: DirState::Present {
            resolved: path.clone(),
        },
        resolved_dir: path,
        lock_file: LockFile::Absent,
        flock: None,
        flock_holders: Vec::new(),
        pid_file: LockFile::Absent,
        pid_owner: None,
        pid_owner_uses_dir: Some(false),
        storage_locks: Default::default(),
        path_locks: Default::default(),
        usage: None,
        lineage: Default::default(),
        remote_fs: None,
        left_aside: Vec::new(),
        elsewhere: Vec::new(),
        host: host(),
    }
}

fn file(content: &str, written: u64) -> LockFile {
    LockFile::Present {
        stat: FileStat {
            dev: 1,
            ino: 2,
            size: content.len() as u64,
            modified: Some(at(written)),
        },
        content: Ok(content.as_bytes().to_vec()),
        truncated: false,
    }
}

pub(crate) fn process(pid: u32, name: &str, started: u64) -> ProcessInfo {
    ProcessInfo {
        pid,
        ppid: Some(1),
        name: name.into(),
        exe: Some(PathBuf::from("/usr/bin/python3")),
        cmdline: vec!["python3".into(), format!("/venv/bin/{name}")],
        user: Some("ov".into()),
        started: Some(at(started)),
        memory: Some(1 << 20),
        cwd: None,
        zombie: false,
        service: None,
        launchd: None,
    }
}

pub(crate) fn server(pid: u32) -> ProcessInfo {
    process(pid, "openviking-server", T0)
}

/// `.openviking.pid` naming `pid`, written at T0 + 10 s, and what the lookup found.
fn pid_file(mut facts: Facts, pid: u32, lookup: Lookup) -> Facts {
    facts.pid_file = file(&pid.to_string(), T0 + 10);
    facts.pid_owner = Some(lookup);
    facts
}

/// The flock held by `holders`, taken by `recorded`, which has exited when
/// it is not among them (a forked child kept the lock).
pub(crate) fn flock_held(mut facts: Facts, holders: &[ProcessInfo], recorded: u32) -> Facts {
    facts.lock_file = file("", T0);
    facts.flock = Some(FlockState::Held {
        recorded_exited: !holders.iter().any(|p| p.pid == recorded),
        holders: holders.iter().map(|p| p.pid).collect(),
        recorded_pid: Some(recorded),
        doubt: None,
    });
    facts.flock_holders = holders.iter().cloned().map(Lookup::Alive).collect();
    facts
}

fn flock_unheld(mut facts: Facts) -> Facts {
    facts.lock_file = file("", T0);
    facts.flock = Some(FlockState::Unheld);
    facts
}

/// A POSIX lock the kernel records for `pid` on inode `ino`.
fn posix(pid: u32, ino: u64, exclusive: bool) -> KernelLock {
    KernelLock {
        class: LockClass::Posix,
        exclusive,
        pid: Some(pid),
        dev_major: 0xfe,
        dev_minor: 0,
        ino,
        waiting: false,
    }
}

/// `process` holds a lock on the storage file `rel`, as /proc/locks shows it.
fn storage_lock(mut facts: Facts, process: ProcessInfo, rel: &str) -> Facts {
    let path = facts.resolved_dir.join(rel);
    let lock = posix(
        process.pid,
        100 + facts.storage_locks.holders.len() as u64,
        true,
    );
    facts.storage_locks.holders.push(User {
        process,
        ns_pids: Vec::new(),
        accesses: vec![PathAccess {
            path,
            access: Access::Open,
            locks: vec![lock],
        }],
    });
    facts
}

/// A scan that ran and could not read the processes `uninspected`.
fn scanned(mut facts: Facts, uninspected: Vec<Uninspected>) -> Facts {
    facts.usage = Some(Ok(Usage {
        users: Vec::new(),
        uninspected,
    }));
    facts
}

pub(crate) struct Case {
    pub(crate) name: &'static str,
    pub(crate) facts: Facts,
    verdict: Verdict,
    owners: &'static [u32],
    /// A fragment the first reason must contain.
    reason: &'static str,
}

pub(crate) fn cases() -> Vec<Case> {
    let mut zombie = server(42);
    zombie.zombie = true;
    let mut missing = base();
    missing.dir = DirState::Missing;
    let mut not_dir = base();
    not_dir.dir = DirState::NotADirectory(FileKind::Regular);
    let mut fifo_lock = base();
    fifo_lock.lock_file = LockFile::NotRegular(FileKind::Fifo);
    let mut symlink_pid = base();
    symlink_pid.pid_file = LockFile::NotRegular(FileKind::Symlink);
    let mut empty_young = base();
    empty_young.pid_file = file("", T0 + 3_599);
    let mut empty_old = base();
    empty_old.pid_file = file("", T0);
    let mut garbage_old = base();
    garbage_old.pid_file = file("not a pid", T0);
    let mut before_boot = pid_file(base(), 42, Lookup::Alive(server(42)));
    before_boot.pid_file = file("42", T0 - 90_000);
    let before_boot_in_use = before_boot.clone();
    let mut unreadable_pid = base();
    unreadable_pid.pid_file = LockFile::Present {
        stat: FileStat {
            dev: 1,
            ino: 3,
            size: 4,
            modified: Some(at(T0)),
        },
        content: Err("Permission denied (os error 13)".into()),
        truncated: false,
    };
    let mut flock_unknown = base();
    flock_unknown.lock_file = file("", T0);
    flock_unknown.flock = Some(FlockState::Unknown("cannot read /proc/locks".into()));
    let mut anonymous = base();
    anonymous.lock_file = file("", T0);
    anonymous.flock = Some(FlockState::Held {
        recorded_exited: false,
        holders: vec![],
        recorded_pid: Some(9),
        doubt: Some(HolderDoubt::NoneFound { recorded: Some(9) }),
    });
    let mut held_but_unreadable_pid = flock_held(base(), &[server(50)], 50);
    held_but_unreadable_pid.pid_file = LockFile::Inaccessible("Permission denied".into());

    vec![
        Case {
            name: "empty directory",
            facts: base(),
            verdict: Verdict::Free,
            owners: &[],
            reason: "no lock file",
        },
        Case {
            name: "no directory",
            facts: missing,
            verdict: Verdict::Free,
            owners: &[],
            reason: "would create it",
        },
        Case {
            name: "path is a file",
            facts: not_dir,
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "not a directory",
        },
        Case {
            name: "unheld flock file",
            facts: flock_unheld(base()),
            verdict: Verdict::Free,
            owners: &[],
            reason: "not held",
        },
        Case {
            name: "flock held",
            facts: flock_held(base(), &[server(50)], 50),
            verdict: Verdict::Held,
            owners: &[50],
            reason: "PID 50",
        },
        Case {
            name: "flock inherited by a forked child",
            facts: flock_held(base(), &[server(51)], 50),
            verdict: Verdict::Held,
            owners: &[51],
            reason: "inherited the lock from PID 50",
        },
        Case {
            name: "flock held by nobody identifiable",
            facts: anonymous,
            verdict: Verdict::Held,
            owners: &[],
            reason: "could not be identified",
        },
        Case {
            name: "flock state unreadable",
            facts: flock_unknown,
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "cannot tell",
        },
        Case {
            name: "lock path is a FIFO",
            facts: fifo_lock,
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "FIFO",
        },
        Case {
            name: "pid file of a live server",
            facts: pid_file(base(), 42, Lookup::Alive(server(42))),
            verdict: Verdict::Held,
            owners: &[42],
            reason: "looks like OpenViking",
        },
        Case {
            name: "pid file of a dead process",
            facts: pid_file(base(), 42, Lookup::Gone),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "PID 42 has exited",
        },
        Case {
            name: "pid file of a zombie",
            facts: pid_file(base(), 42, Lookup::Alive(zombie)),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "waiting to be reaped",
        },
        Case {
            name: "pid recycled by an unrelated process",
            facts: pid_file(base(), 42, Lookup::Alive(process(42, "sleep", T0))),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "belongs to sleep, which is not OpenViking",
        },
        Case {
            name: "pid file older than its process",
            facts: pid_file(
                base(),
                42,
                Lookup::Alive(process(42, "openviking-server", T0 + 60)),
            ),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "started after the lock was written",
        },
        Case {
            name: "process started within the slack of the write",
            facts: pid_file(
                base(),
                42,
                Lookup::Alive(process(42, "openviking-server", T0 + 12)),
            ),
            verdict: Verdict::Held,
            owners: &[42],
            reason: "PID 42",
        },
        Case {
            name: "pid file from before the boot",
            facts: before_boot,
            verdict: Verdict::Stale,
            owners: &[],
            reason: "before the last boot",
        },
        Case {
            name: "a clock that stepped after boot cannot outvote files open in the directory",
            facts: {
                let mut f = before_boot_in_use.clone();
                f.pid_owner_uses_dir = Some(true);
                f
            },
            verdict: Verdict::Held,
            owners: &[42],
            reason: "PID 42",
        },
        Case {
            name: "pid file naming ovlock itself",
            facts: pid_file(base(), 777, Lookup::Alive(server(777))),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "this ovlock process",
        },
        Case {
            name: "pid lookup failed",
            facts: pid_file(base(), 42, Lookup::Unknown("cannot read".into())),
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "cannot read",
        },
        Case {
            name: "pid file is a symlink",
            facts: symlink_pid,
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "symbolic link",
        },
        Case {
            name: "pid file unreadable",
            facts: unreadable_pid,
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "Permission denied",
        },
        Case {
            name: "empty pid file being written",
            facts: empty_young,
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "taking the lock right now",
        },
        Case {
            name: "empty pid file left behind",
            facts: empty_old,
            verdict: Verdict::Stale,
            owners: &[],
            reason: "it is empty",
        },
        Case {
            name: "garbage pid file",
            facts: garbage_old,
            verdict: Verdict::Stale,
            owners: &[],
            reason: "not a number",
        },
        Case {
            name: "old and new OpenViking on one directory",
            facts: flock_held(
                pid_file(base(), 42, Lookup::Alive(server(42))),
                &[server(50)],
                50,
            ),
            verdict: Verdict::Contended,
            owners: &[50, 42],
            reason: "PID 50",
        },
        Case {
            name: "one process holding both locks",
            facts: flock_held(
                pid_file(base(), 50, Lookup::Alive(server(50))),
                &[server(50)],
                50,
            ),
            verdict: Verdict::Held,
            owners: &[50],
            reason: "PID 50",
        },
        Case {
            name: "stale pid file beside a live flock holder",
            facts: flock_held(pid_file(base(), 42, Lookup::Gone), &[server(50)], 50),
            verdict: Verdict::Held,
            owners: &[50],
            reason: "PID 50",
        },
        Case {
            name: "stale pid file beside an unheld flock file",
            facts: flock_unheld(pid_file(base(), 42, Lookup::Gone)),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "PID 42 has exited",
        },
        Case {
            name: "a live owner outranks what could not be read",
            facts: held_but_unreadable_pid,
            verdict: Verdict::Held,
            owners: &[50],
            reason: "PID 50",
        },
        Case {
            name: "a server that let go of its flock still holds its storage",
            facts: storage_lock(flock_unheld(base()), server(60), STORE_LOCK),
            verdict: Verdict::Held,
            owners: &[60],
            reason: "has let go of .openviking.lock but still holds the storage",
        },
        Case {
            name: "a lock file deleted under its server",
            facts: {
                let mut f = storage_lock(base(), server(60), STORE_LOCK);
                let deleted = crate::openviking::layout::deleted_lock_file(&f.resolved_dir);
                f.storage_locks.holders[0].accesses.push(PathAccess {
                    path: deleted,
                    access: Access::Open,
                    locks: Vec::new(),
                });
                f
            },
            verdict: Verdict::Held,
            owners: &[60],
            reason: "that was deleted under it",
        },
        Case {
            name: "two servers on the storage without a lock file",
            facts: storage_lock(
                storage_lock(base(), server(60), STORE_LOCK),
                server(61),
                "_system/queue/queue.db",
            ),
            verdict: Verdict::Contended,
            owners: &[60, 61],
            reason: "2 live processes own it",
        },
        Case {
            name: "a storage lock of the flock holder is the same server",
            facts: storage_lock(
                flock_held(base(), &[server(50)], 50),
                server(50),
                STORE_LOCK,
            ),
            verdict: Verdict::Held,
            owners: &[50],
            reason: "PID 50",
        },
        Case {
            name: "a worker holding storage is part of its server",
            facts: {
                let mut f = storage_lock(
                    flock_held(base(), &[server(50)], 50),
                    server(51),
                    STORE_LOCK,
                );
                f.lineage.insert(
                    51,
                    vec![
                        Ancestor {
                            pid: 50,
                            name: "openviking-server".into(),
                        },
                        Ancestor {
                            pid: 1,
                            name: "init".into(),
                        },
                    ],
                );
                f
            },
            verdict: Verdict::Held,
            owners: &[50],
            reason: "PID 50",
        },
        Case {
            name: "another program's storage lock owns nothing",
            facts: storage_lock(base(), process(70, "sqlite3", T0), STORE_LOCK),
            verdict: Verdict::Free,
            owners: &[],
            reason: "no lock file",
        },
        Case {
            name: "a storage lock of a live process that cannot be identified",
            facts: {
                let mut f = base();
                f.storage_locks.unidentified.push(Unidentified {
                    path: f.resolved_dir.join(STORE_LOCK),
                    lock: posix(80, 100, true),
                    pid: Some(80),
                    alive: true,
                    why: "PID 80 exists but its details cannot be read".into(),
                });
                f
            },
            verdict: Verdict::Held,
            owners: &[],
            reason: "held by a live process that could not be identified",
        },
        Case {
            name: "a storage lock no visible process holds",
            facts: {
                let mut f = scanned(base(), Vec::new());
                f.storage_locks.unidentified.push(Unidentified {
                    path: f.resolved_dir.join(STORE_LOCK),
                    lock: posix(80, 100, true),
                    pid: None,
                    alive: false,
                    why: "the kernel records no process for it".into(),
                });
                f
            },
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "not by any process ovlock could see",
        },
        Case {
            name: "a container's server may hide among the uninspected",
            facts: scanned(
                pid_file(base(), 1, Lookup::Alive(process(1, "init", T0 - 100))),
                vec![Uninspected {
                    pid: 4242,
                    process: Some(server(4242)),
                    ns_pids: vec![4242, 1],
                }],
            ),
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "inside its own PID namespace",
        },
        Case {
            name: "an uninspected process that is plainly something else",
            facts: scanned(
                pid_file(base(), 1, Lookup::Alive(process(1, "init", T0 - 100))),
                vec![Uninspected {
                    pid: 4242,
                    process: Some(process(4242, "postgres", T0)),
                    ns_pids: vec![4242, 1],
                }],
            ),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "not OpenViking",
        },
        Case {
            name: "hidepid hides what the pid file's PID may be",
            facts: {
                let mut f = scanned(pid_file(base(), 42, Lookup::Gone), Vec::new());
                f.host.lacks = Some(Privilege::Root);
                f.host.hidepid = Some("hidepid=2".into());
                f
            },
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "hidepid=2",
        },
        Case {
            name: "what could not be read outranks stale",
            facts: {
                let mut f = pid_file(base(), 42, Lookup::Gone);
                f.lock_file = LockFile::NotRegular(FileKind::Directory);
                f
            },
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "a directory",
        },
        Case {
            name: "path locks left behind by a crash",
            facts: with_path_locks(
                base(),
                vec![
                    path_lock("resources/.path.ovlock", lease(T0 + 3_590), T0 + 3_590),
                    path_lock("resources/proj/.path.ovlock", "abc-123:1700", T0),
                ],
            ),
            verdict: Verdict::Stale,
            owners: &[],
            reason: "2 path locks in the storage tree are stale, the first on viking://resources/proj",
        },
        Case {
            name: "a live server with a stale path lock and a stuck lease",
            facts: {
                let mut stuck = path_lock(
                    "resources/a.md.dir/.path.ovlock",
                    lease(T0 + 3_595),
                    T0 + 3_595,
                );
                if let LockFileRead::Read { meta, .. } = &mut stuck.read {
                    meta.born = Some(at(T0 - 7_200));
                }
                // A server running for 3 h, with a lease as old.
                let mut long_running = server(50);
                long_running.started = Some(at(T0 - 7_200));
                with_path_locks(
                    flock_held(base(), &[long_running], 50),
                    vec![
                        stuck,
                        path_lock("resources/old/.path.ovlock", lease(T0), T0),
                        path_lock("resources/new/.path.ovlock", lease(T0 + 3_599), T0 + 3_599),
                    ],
                )
            },
            verdict: Verdict::Held,
            owners: &[50],
            reason: "locked (flock) by PID 50",
        },
        Case {
            name: "path locks kept in the server process",
            facts: {
                let mut f = base();
                f.path_locks = PathLocks::NotLocal(NotLocal::Provider(PathLockProvider::Memory));
                f
            },
            verdict: Verdict::Free,
            owners: &[],
            reason: "no lock file",
        },
        Case {
            name: "a lock table that kept changing, and no scan",
            facts: unsettled(flock_unheld(base())),
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "kept changing",
        },
        Case {
            name: "a lock table that kept changing, and a server the scan could not read",
            facts: scanned(
                unsettled(flock_unheld(base())),
                vec![Uninspected {
                    pid: 4242,
                    process: Some(server(4242)),
                    ns_pids: vec![4242],
                }],
            ),
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "kept changing",
        },
        Case {
            name: "a lock table that kept changing, and only init unread",
            facts: scanned(
                unsettled(flock_unheld(base())),
                vec![Uninspected {
                    pid: 1,
                    process: Some(process(1, "init", T0 - 100)),
                    ns_pids: vec![1],
                }],
            ),
            verdict: Verdict::Free,
            owners: &[],
            reason: "not held",
        },
        Case {
            name: "a lock table that kept changing, and no lock file",
            facts: {
                let mut f = base();
                f.storage_locks.unsettled = true;
                f
            },
            verdict: Verdict::Unknown,
            owners: &[],
            reason: "kept changing",
        },
    ]
}

/// `facts` as read from a lock table that kept changing: the flock not
/// seen, and left so by a scan that could not read every process; the
/// storage locks uncertain.
fn unsettled(mut facts: Facts) -> Facts {
    if facts.flock == Some(FlockState::Unheld) {
        facts.flock = Some(FlockState::Unsettled);
    }
    facts.storage_locks.unsettled = true;
    facts
}

/// A lease token refreshed at `secs`.
pub(crate) fn lease(secs: u64) -> String {
    format!(
        "5d0c9a3e-1f2b-4c6d-8e9f-0a1b2c3d4e5f:{}:T",
        u128::from(secs) * 1_000_000_000
    )
}

/// A path-lock file at `rel` below `viking/default/`, holding `content`.
pub(crate) fn path_lock(rel: &str, content: impl AsRef<[u8]>, written: u64) -> PathLockFile {
    let content = content.as_ref();
    let rel = PathBuf::from(rel);
    let dir = rel.parent().unwrap_or(Path::new(""));
    PathLockFile {
        path: PathBuf::from("/srv/ov/data/viking/default").join(&rel),
        name: PathLockName::TreeOrDirectory,
        locks: Locks::Place(TreePlace::of(&Path::new("default").join(dir))),
        read: LockFileRead::Read {
            meta: LockMeta {
                stat: FileStat {
                    dev: 1,
                    ino: 2,
                    size: content.len() as u64,
                    modified: Some(at(written)),
                },
                born: Some(at(written)),
            },
            content: content.to_vec(),
            token: Some(crate::openviking::lock_token::decode(content)),
        },
    }
}

/// `facts` with these path-lock files in its tree, and the ov.conf that
/// describes its workspace read (so that its lock_expire_secs is known).
pub(crate) fn with_path_locks(mut facts: Facts, files: Vec<PathLockFile>) -> Facts {
    facts.workspace.path_locks.described_by = Some(PathBuf::from("/etc/openviking/ov.conf"));
    facts.path_locks = PathLocks::Walked(Walk {
        tree: facts.resolved_dir.join("viking"),
        files,
        unreadable: Vec::new(),
        skipped_mounts: Vec::new(),
        caps: Vec::new(),
        dirs: 12,
        entries: 40,
    });
    facts
}

#[test]
fn verdicts_over_the_table() {
    let policy = Policy::new(&[]);
    for case in cases() {
        let j = judge(&case.facts, &policy);
        assert_eq!(j.verdict, case.verdict, "{}: {j:#?}", case.name);
        let owners: Vec<u32> = j.owners.iter().map(|o| o.process.pid).collect();
        assert_eq!(owners, case.owners, "{}", case.name);
        let first = words::first_reason(&case.facts, &j);
        assert!(
            first.contains(case.reason),
            "{}: first reason {first:?} lacks {:?}",
            case.name,
            case.reason
        );
    }
}

#[test]
fn arguments_that_name_the_directory_do_not_make_a_process_openviking() {
    let policy = Policy::new(&[]);
    let dir = PathBuf::from("/srv/openviking/data");
    let mut tail = process(9, "tail", T0);
    tail.exe = Some(PathBuf::from("/usr/bin/tail"));
    tail.cmdline = vec![
        "tail".into(),
        "-f".into(),
        "/srv/openviking/data/vectordb/LOG".into(),
    ];
    assert!(!policy.is_openviking_ignoring(&tail, &[&dir]));
    tail.cmdline[2] = "--file=/srv/openviking/data".into();
    assert!(!policy.is_openviking_ignoring(&tail, &[&dir]));
    // A longer name that begins with the directory's is no mention of it.
    let mut server = process(10, "python3", T0);
    server.exe = Some(PathBuf::from("/usr/bin/python3"));
    server.cmdline = vec![
        "python3".into(),
        "/srv/openviking/data-venv/bin/openviking-server".into(),
    ];
    assert!(policy.is_openviking_ignoring(&server, &[&dir]));
}

#[test]
fn relative_paths_and_sqlite_uris_that_name_the_directory_do_not_count() {
    let policy = Policy::new(&[]);
    let dir = PathBuf::from("/tmp/review/openviking-ws");
    let mut reader = process(9, "sqlite3", T0);
    reader.exe = Some(PathBuf::from("/usr/bin/sqlite3"));
    reader.cwd = Some(PathBuf::from("/tmp/review"));
    for arg in [
        "openviking-ws/_system/queue/queue.db",
        "./openviking-ws/_system/queue/queue.db",
        "file:/tmp/review/openviking-ws/_system/queue/queue.db?mode=ro",
        "file:openviking-ws/_system/queue/queue.db",
    ] {
        reader.cmdline = vec!["sqlite3".into(), arg.into()];
        assert!(!policy.is_openviking_ignoring(&reader, &[&dir]), "{arg}");
    }
    // Elsewhere, the name still says what the process is.
    reader.cmdline = vec!["sqlite3".into(), "openviking-other/x.db".into()];
    assert!(policy.is_openviking_ignoring(&reader, &[&dir]));
}

#[test]
fn a_match_marker_accepts_other_servers() {
    let facts = pid_file(base(), 42, Lookup::Alive(process(42, "viking-fork", T0)));
    assert_eq!(judge(&facts, &Policy::new(&[])).verdict, Verdict::Stale);
    assert_eq!(
        judge(&facts, &Policy::new(&["VIKING-F".into()])).verdict,
        Verdict::Held
    );
}

#[test]
fn openviking_is_recognised_by_name_exe_or_cmdline() {
    let policy = Policy::new(&[]);
    let mut p = process(1, "python3", T0);
    p.cmdline = vec!["python3".into(), "-m".into(), "x".into()];
    assert!(!policy.is_openviking(&p));
    p.exe = Some(PathBuf::from("/opt/OpenViking/bin/python3"));
    assert!(policy.is_openviking(&p));
    p.exe = None;
    p.cmdline.push("--config=/etc/openviking/ov.conf".into());
    assert!(policy.is_openviking(&p));
}

#[test]
fn fixes_name_the_real_pids_and_paths() {
    let policy = Policy::new(&[]);
    let contended = flock_held(
        pid_file(base(), 42, Lookup::Alive(server(42))),
        &[server(50)],
        50,
    );
    let fixes = said(&contended, &policy).fixes.join("\n");
    assert!(fixes.contains("over HTTP"), "{fixes}");
    assert!(
        fixes.contains("storage.workspace") && fixes.contains("/srv/ov/data"),
        "{fixes}"
    );
    assert!(
        fixes.contains("kill 42") && fixes.contains("kill 50"),
        "{fixes}"
    );
    assert!(
        fixes.contains("PID 42 (openviking-server) is an OpenViking 0.4.20 or older"),
        "{fixes}"
    );
    assert!(fixes.starts_with("Keep one OpenViking server"), "{fixes}");

    let foreign = flock_held(base(), &[process(60, "backup-tool", T0)], 60);
    let fixes = said(&foreign, &policy).fixes.join("\n");
    assert!(
        fixes.contains("PID 60 (backup-tool) does not look like OpenViking"),
        "{fixes}"
    );

    let mut anonymous = base();
    anonymous.lock_file = file("", T0);
    anonymous.flock = Some(FlockState::Held {
        recorded_exited: false,
        holders: vec![],
        recorded_pid: Some(9),
        doubt: None,
    });
    anonymous.host.lacks = Some(Privilege::Root);
    assert_eq!(
        said(&anonymous, &policy).fixes,
        ["Run as root to identify the holder: sudo ovlock who /srv/ov/data"]
    );

    let mut stale = pid_file(base(), 42, Lookup::Gone);
    stale.workspace.path = PathBuf::from("/srv/my data");
    assert_eq!(
        said(&stale, &policy).fixes,
        ["Remove the stale .openviking.pid: ovlock clear-stale '/srv/my data'"]
    );

    assert!(judge(&base(), &policy).fixes.is_empty());
}

#[test]
fn warnings_carry_what_a_live_owner_outranked() {
    let mut facts = flock_held(base(), &[server(50)], 50);
    facts.pid_file = LockFile::Inaccessible("Permission denied".into());
    facts.workspace.skip_process_lock = true;
    let j = said(&facts, &Policy::new(&[]));
    assert!(
        j.warnings.iter().any(|w| w.contains("Permission denied")),
        "{:?}",
        j.warnings
    );
    assert!(
        j.warnings.iter().any(|w| w.contains("skip_process_lock")),
        "{:?}",
        j.warnings
    );
}

#[test]
fn a_network_filesystem_is_named_in_a_warning() {
    let mut facts = base();
    facts.remote_fs = Some("NFS");
    assert_eq!(judge(&facts, &Policy::new(&[])).verdict, Verdict::Free);
    let j = said(&facts, &Policy::new(&[]));
    assert!(
        j.warnings
            .iter()
            .any(|w| w.contains("on NFS") && w.contains("only free on this host")),
        "{:?}",
        j.warnings
    );
}

#[test]
fn a_live_taker_of_an_inherited_flock_is_not_said_to_have_exited() {
    let policy = Policy::new(&[]);
    let mut facts = flock_held(base(), &[server(51)], 50);
    let exited = said(&facts, &policy).reasons[0].clone();
    assert!(
        exited.contains("PID 50, which took it and has exited"),
        "{exited}"
    );
    if let Some(FlockState::Held {
        recorded_exited, ..
    }) = &mut facts.flock
    {
        *recorded_exited = false;
    }
    let alive = said(&facts, &policy).reasons[0].clone();
    assert!(
        alive.contains("PID 50, which took it and no longer holds it"),
        "{alive}"
    );
}

#[test]
fn a_default_directory_points_elsewhere_only_when_nothing_owns_it() {
    let policy = Policy::new(&[]);
    let other = crate::inspect::usage::RunningServer {
        process: server(90),
        dirs: vec![PathBuf::from("/srv/ov/real")],
        unreadable: false,
        other_mount_namespace: false,
    };
    let mut missing = base();
    missing.dir = DirState::Missing;
    missing.workspace.source = Source::Default { config: None };
    missing.elsewhere = vec![other.clone()];
    assert_eq!(judge(&missing, &policy).verdict, Verdict::Free);
    let j = said(&missing, &policy);
    assert!(
        j.warnings
            .iter()
            .any(|w| w.contains("/srv/ov/real (PID 90)") && w.contains("does not exist")),
        "{j:#?}"
    );
    assert!(j.fixes[0].contains("ovlock who --all"), "{j:#?}");

    let mut owned = flock_held(base(), &[server(50)], 50);
    owned.workspace.source = Source::Default { config: None };
    owned.elsewhere = vec![other];
    let j = said(&owned, &policy);
    assert!(
        !j.warnings.iter().any(|w| w.contains("/srv/ov/real")),
        "{j:#?}"
    );
    assert!(!j.fixes.iter().any(|f| f.contains("who --all")), "{j:#?}");
}

/// Where only who has the lock file open is known (Windows): an OpenViking
/// process with it open holds it; anything else with it open leaves the
/// answer undecided, never free, and a reader is told why.
#[test]
fn where_only_openers_are_known_only_openviking_holds_the_lock() {
    let policy = Policy::new(&[]);
    let open_only = |holders: &[ProcessInfo]| {
        let mut facts = flock_held(base(), holders, 0);
        facts.flock = Some(FlockState::Held {
            holders: holders.iter().map(|p| p.pid).collect(),
            recorded_pid: None,
            recorded_exited: false,
            doubt: Some(HolderDoubt::OpenOnly),
        });
        facts
    };
    let mut editor = process(40, "notepad.exe", T0);
    editor.cmdline = vec!["notepad.exe".into(), "/srv/ov/data/.openviking.lock".into()];

    // The editor comes first (a lower PID): it is still no owner.
    let held = open_only(&[editor.clone(), server(50)]);
    let j = judge(&held, &policy);
    assert_eq!(j.verdict, Verdict::Held, "{j:#?}");
    let owners: Vec<u32> = j.owners.iter().map(|o| o.process.pid).collect();
    assert_eq!(owners, [50]);
    assert!(
        j.owners[0].workers.is_empty(),
        "the editor is no worker of it"
    );
    let warned = said(&held, &policy).warnings.join("\n");
    assert!(warned.contains("only who has the file open"), "{warned}");

    let other = open_only(&[editor]);
    let j = judge(&other, &policy);
    assert_eq!(j.verdict, Verdict::Unknown, "{j:#?}");
    assert!(j.owners.is_empty());
    let reasons = said(&other, &policy).reasons.join("\n");
    assert!(
        reasons.contains("PID 40 (notepad.exe)")
            && reasons.contains("does not look like OpenViking"),
        "{reasons}"
    );
}
