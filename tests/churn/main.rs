//! A busy host's lock table, made for real: longer than a page, with
//! processes taking and releasing flocks and SQLite running transactions in
//! a loop while ovlock reads it (issue 20). /proc/locks shows a page per
//! read(2), and a lock released above the reader's position between two
//! reads hides the next entry; with 300 held directories, wherever a read
//! is cut a held lock file is next. Before ovlock read the table page by
//! page with anchors, 89 of 150 `check` runs over these 300 directories
//! said one of them was free (a third of them, as here: about one in four).
//!
//! A test binary of its own: cargo runs it after the others, so that its
//! churning processes slow no other test down.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

// The shared harness; this binary uses only some of it.
#[allow(dead_code, unused_imports)]
#[path = "../it/support/mod.rs"]
mod support;

use support::*;

/// How many processes hold the directories, and how many each: few
/// descriptors a process, so that finding a holder's stays cheap.
const HOLDERS: usize = 20;
const DIRS_EACH: usize = 15;

/// The busy host, made once and shared: the tests take turns on it.
struct BusyHost {
    _tmp: tempfile::TempDir,
    _procs: Vec<Proc>,
    /// Directories whose `.openviking.lock` a live process holds.
    held: Vec<PathBuf>,
    /// Directories of a server that is stopping: its flock let go, its
    /// storage still locked.
    stopping: Vec<PathBuf>,
    /// Directories nothing holds.
    free: Vec<PathBuf>,
}

fn churn_script() -> &'static Path {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| install_script("churn", include_str!("../it/support/churn.py")))
}

fn spawn_churn(mode: &str, dir: &Path, n: usize, tag: &str) -> Proc {
    let mut cmd = Command::new(python());
    cmd.arg(churn_script())
        .arg(mode)
        .arg(dir)
        .arg(n.to_string())
        .arg(tag);
    spawn_ready(cmd, false, &format!("churn.py {mode} {}", dir.display()))
}

/// The data directories `churn.py` made under `dir`.
fn made(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| dir.join(format!("ws-{i}"))).collect()
}

fn busy_host() -> MutexGuard<'static, BusyHost> {
    static HOST: OnceLock<Mutex<BusyHost>> = OnceLock::new();
    let host = HOST.get_or_init(|| {
        let tmp = tempfile::Builder::new()
            .prefix("ovlock-churn-")
            .tempdir()
            .unwrap();
        let root = std::fs::canonicalize(tmp.path()).unwrap();
        let mut procs = Vec::new();
        let mut held = Vec::new();
        // The long-held locks first, so that the churn lands above them.
        for k in 0..HOLDERS {
            let dir = root.join(format!("held-{k}"));
            std::fs::create_dir(&dir).unwrap();
            procs.push(spawn_churn("hold", &dir, DIRS_EACH, SERVER_TAG));
            held.extend(made(&dir, DIRS_EACH));
        }
        let stopping_dir = root.join("stopping");
        std::fs::create_dir(&stopping_dir).unwrap();
        procs.push(spawn_churn("storage", &stopping_dir, 20, SERVER_TAG));
        let churn = root.join("churn");
        std::fs::create_dir(&churn).unwrap();
        for mode in ["flocks", "flocks", "sqlite"] {
            procs.push(spawn_churn(mode, &churn, 0, PLAIN_TAG));
        }
        let free: Vec<PathBuf> = (0..20).map(|i| root.join(format!("free-{i}"))).collect();
        for dir in &free {
            std::fs::create_dir(dir).unwrap();
            std::fs::write(dir.join(LOCK), "").unwrap();
        }
        let lines = std::fs::read_to_string("/proc/locks")
            .unwrap()
            .lines()
            .count();
        assert!(lines > 300, "the lock table has only {lines} lines");
        Mutex::new(BusyHost {
            _tmp: tmp,
            _procs: procs,
            held,
            stopping: made(&stopping_dir, 20),
            free,
        })
    });
    host.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// ovlock `args` followed by `dirs`.
fn ovlock(args: &[&str], dirs: &[PathBuf]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ovlock"));
    cmd.args(args)
        .args(dirs)
        .env_remove("OPENVIKING_CONFIG_FILE")
        .stdin(std::process::Stdio::null());
    run_cmd(&mut cmd)
}

/// The directories of a `--json` document that are not `verdict`, with what
/// they were called instead.
fn not_judged(run: &Run, verdict: &str) -> Vec<String> {
    run.json()["data_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["verdict"] != verdict)
        .map(|d| format!("{} {}: {}", d["path"], d["verdict"], d["reasons"]))
        .collect()
}

/// The `round`th third of `dirs`: each run asks about a third of the held
/// directories, so that runs are many and every lock is asked about often.
fn third(dirs: &[PathBuf], round: usize) -> Vec<PathBuf> {
    dirs.iter().skip(round % 3).step_by(3).cloned().collect()
}

#[test]
fn check_never_says_free_for_a_held_directory_while_the_table_churns() {
    let host = busy_host();
    for round in 0..150 {
        let run = ovlock(&["check", "--json"], &third(&host.held, round));
        let wrong = not_judged(&run, "held");
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_eq!(run.code, 1, "{run:?}");
    }
}

#[test]
fn check_never_says_free_for_a_stopping_server_while_the_table_churns() {
    // Its flock let go, its storage still locked: held, not free.
    let host = busy_host();
    for _ in 0..50 {
        let run = ovlock(&["check", "--json"], &host.stopping);
        let wrong = not_judged(&run, "held");
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}

#[test]
fn a_free_directory_stays_free_while_the_table_churns() {
    let host = busy_host();
    for _ in 0..50 {
        let run = ovlock(&["check", "--json"], &host.free);
        let wrong = not_judged(&run, "free");
        assert!(wrong.is_empty(), "{wrong:#?}");
        assert_eq!(run.code, 0, "{run:?}");
    }
}

#[test]
fn status_never_says_free_or_stale_for_a_held_directory_while_the_table_churns() {
    let host = busy_host();
    for round in 0..10 {
        let run = ovlock(&["status", "--json"], &third(&host.held, round));
        let wrong = not_judged(&run, "held");
        assert!(wrong.is_empty(), "{wrong:#?}");
    }
}

#[test]
fn clear_stale_never_removes_a_live_servers_fresh_lease_while_the_table_churns() {
    let host = busy_host();
    let leases: Vec<PathBuf> = host
        .held
        .iter()
        .map(|dir| dir.join("viking/default/resources/.path.ovlock"))
        .collect();
    for lease in &leases {
        std::fs::create_dir_all(lease.parent().unwrap()).unwrap();
    }
    for round in 0..50 {
        // Each lease refreshed just now, as its live server would.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        for lease in &leases {
            std::fs::write(
                lease,
                format!("0c3e6388-5e31-4580-abc5-cd1b6b93767d:{now}:T"),
            )
            .unwrap();
        }
        let run = ovlock(&["clear-stale", "--json"], &third(&host.held, round));
        let removed: Vec<&PathBuf> = leases.iter().filter(|l| !l.exists()).collect();
        assert!(removed.is_empty(), "removed {removed:#?}\n{run:?}");
        assert_eq!(run.code, 1, "{run:?}");
    }
    for lease in &leases {
        std::fs::remove_file(lease).unwrap();
    }
}
