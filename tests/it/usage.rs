//! Who uses a data directory, whatever its lock files say: real processes
//! with real files open, mapped and locked under it, judged by the built
//! binary (issue 4).

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::support::*;

const QUEUE_DB: &str = "_system/queue/queue.db";
const AUDIT_DB: &str = "_system/usage_audit/usage_audit.sqlite3";
const STORE_LOCK: &str = "vectordb/context/store/LOCK";

/// A file entry (`files[]` of an owner or other user) for this path.
fn file<'a>(entry: &'a Value, path: &Path) -> &'a Value {
    entry["files"]
        .as_array()
        .expect("files is an array")
        .iter()
        .find(|f| f["path"] == path.to_str().unwrap())
        .unwrap_or_else(|| panic!("no file {} in {entry:#}", path.display()))
}

/// The other user with this PID.
fn other_user(dir: &Value, pid: u32) -> &Value {
    dir["other_users"]
        .as_array()
        .expect("other_users is an array")
        .iter()
        .find(|u| u["pid"] == pid)
        .unwrap_or_else(|| panic!("no other user with PID {pid}: {dir:#}"))
}

fn other_user_pids(dir: &Value) -> Vec<u32> {
    dir["other_users"]
        .as_array()
        .expect("other_users is an array")
        .iter()
        .map(|u| u["pid"].as_u64().unwrap() as u32)
        .collect()
}

fn pids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|p| p.as_u64().expect("a PID") as u32)
        .collect()
}

/// Some reason line names PID `pid` and contains `text`.
fn reason_names(r: &Report, pid: u32, text: &str) -> bool {
    r.reasons()
        .lines()
        .any(|l| names_pid(l, pid) && l.contains(text))
}

fn lock_of(f: &Value) -> Value {
    f["lock"].clone()
}

// ---------------------------------------------------------------------------
// Contention without lock files, or despite them

/// Two OpenViking servers on one directory, neither taking any lock file
/// (skip_process_lock, or versions older than any lock): both use the SQLite
/// queue, one holds RocksDB's LOCK, the other an OFD lock on the audit db.
#[test]
fn two_unlocked_servers_are_contended() {
    let env = TestEnv::new();
    let ws = env.ws();
    let a = spawn_user(
        &ws,
        SERVER_TAG,
        json!([["sqlite", QUEUE_DB], ["lockf", STORE_LOCK]]),
    );
    let b = spawn_user(
        &ws,
        SERVER_TAG,
        json!([
            ["sqlite", QUEUE_DB],
            ["open", STORE_LOCK],
            ["ofd", AUDIT_DB]
        ]),
    );
    assert!(!env.lock_path().exists() && !env.pid_path().exists());

    let r = env.status();
    r.expect(3, "contended", vec![a.pid(), b.pid()]);
    assert_eq!(r.dir["scanned"], true, "{:#}", r.dir);
    for p in [&a, &b] {
        let owner = r.owner(p.pid());
        assert_eq!(owner["protocol"], "storage", "{owner:#}");
        assert_eq!(owner["protocols"], json!(["storage"]), "{owner:#}");
        let db = file(owner, &ws.join(QUEUE_DB));
        assert_eq!(db["use"], "open file", "{owner:#}");
        // SQLite in WAL mode maps the -shm file.
        let shm = ws.join(format!("{QUEUE_DB}-shm"));
        assert!(
            owner["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["path"] == shm.to_str().unwrap() && f["use"] == "mapped file"),
            "{owner:#}"
        );
        assert_eq!(owner["workers"], json!([]), "{owner:#}");
        assert_eq!(owner["ns_pid"], Value::Null, "{owner:#}");
        // The reasons name each process and what it holds.
        assert!(
            reason_names(&r, p.pid(), "uses the storage without holding a lock file"),
            "{}",
            r.reasons()
        );
        assert!(reason_names(&r, p.pid(), QUEUE_DB), "{}", r.reasons());
    }
    let store_a = file(r.owner(a.pid()), &ws.join(STORE_LOCK));
    assert_eq!(store_a["use"], "open file");
    assert_eq!(lock_of(store_a), json!({"type": "posix", "mode": "write"}));
    let store_b = file(r.owner(b.pid()), &ws.join(STORE_LOCK));
    assert_eq!(lock_of(store_b), Value::Null, "B cannot lock what A holds");
    let audit_b = file(r.owner(b.pid()), &ws.join(AUDIT_DB));
    assert_eq!(lock_of(audit_b), json!({"type": "ofd", "mode": "write"}));
    assert_eq!(r.dir["other_users"], json!([]), "{:#}", r.dir);
    assert_eq!(
        r.dir["uninspected"],
        unreadable_processes(),
        "root sees every process it may read, and counts the rest"
    );
    assert!(
        r.reasons().contains(&format!("PID {}", a.pid()))
            && r.reasons().contains(&format!("PID {}", b.pid()))
    );
    assert!(r.text.to_lowercase().contains("contended"), "{}", r.text);

    // `who` names both, with their files.
    let who = env.run(&["who", "--pid", &env.ws_str()]);
    let mut want = [a.pid(), b.pid()];
    want.sort_unstable();
    assert_eq!(
        (who.code, who.stdout.clone()),
        (0, format!("{}\n{}\n", want[0], want[1])),
        "{who:?}"
    );
    let who = env.run(&["who", "--color", "never", &env.ws_str()]);
    assert!(who.stdout.contains(STORE_LOCK), "{}", who.stdout);
    assert!(who.stdout.contains(QUEUE_DB), "{}", who.stdout);

    // check scans on its own only when the lock files call for it; --scan
    // asks for it.
    let check = env.run(&["check", "--json", "--scan", &env.ws_str()]);
    assert_eq!(check.code, 3, "{check:?}");
    assert_eq!(check.dir()["verdict"], "contended");
}

/// A 0.4.21+ server holding the flock (and RocksDB's LOCK), and a second
/// OpenViking that took no lock but has the SQLite queue open.
#[test]
fn a_locked_server_and_an_unlocked_one_are_contended() {
    let env = TestEnv::new();
    let ws = env.ws();
    let locked = spawn_user(
        &ws,
        SERVER_TAG,
        json!([["flock", LOCK], ["lockf", STORE_LOCK]]),
    );
    let unlocked = spawn_user(&ws, SERVER_TAG, json!([["open", QUEUE_DB]]));

    let r = env.status();
    r.expect(3, "contended", vec![locked.pid(), unlocked.pid()]);
    let owner = r.owner(locked.pid());
    assert_eq!(owner["protocol"], "flock", "{owner:#}");
    assert_eq!(
        lock_of(file(owner, &env.lock_path())),
        json!({"type": "flock", "mode": "write"})
    );
    assert_eq!(
        lock_of(file(owner, &ws.join(STORE_LOCK))),
        json!({"type": "posix", "mode": "write"})
    );
    let other = r.owner(unlocked.pid());
    assert_eq!(other["protocol"], "storage", "{other:#}");
    let queue = file(other, &ws.join(QUEUE_DB));
    assert_eq!(queue["use"], "open file");
    assert_eq!(lock_of(queue), Value::Null);
    assert_eq!(r.lock("flock")["held"], true);
    assert_eq!(r.lock("flock")["pid"], locked.pid());
    // Both are named with what they hold.
    assert!(
        reason_names(&r, unlocked.pid(), QUEUE_DB),
        "{}",
        r.reasons()
    );
    assert!(
        reason_names(&r, locked.pid(), STORE_LOCK),
        "{}",
        r.reasons()
    );
    // No "it holds no lock file" for a contention with a lock holder.
    assert!(
        !r.reasons().contains("holds no lock file"),
        "{}",
        r.reasons()
    );

    // check has an identified flock holder, so it does not scan and sees
    // only the flock: held. With --scan it sees the second server.
    let check = env.run(&["check", "--json", &env.ws_str()]);
    assert_eq!(check.code, 1, "{check:?}");
    assert_eq!(check.dir()["scanned"], false);
    let check = env.run(&["check", "--json", "--scan", &env.ws_str()]);
    assert_eq!(check.code, 3, "{check:?}");
    assert_eq!(check.dir()["scanned"], true);
}

/// A 0.4.20 server (pid file) and a 0.5 server (flock) that also shares the
/// storage: the old-and-new pair the issue describes.
#[test]
fn an_old_and_a_new_server_are_contended_and_both_list_their_files() {
    let env = TestEnv::new();
    let ws = env.ws();
    let old = spawn_user(
        &ws,
        SERVER_TAG,
        json!([["pidfile", PIDFILE], ["sqlite", QUEUE_DB]]),
    );
    let new = spawn_user(
        &ws,
        SERVER_TAG,
        json!([["flock", LOCK], ["sqlite", QUEUE_DB], ["lockf", STORE_LOCK]]),
    );
    let r = env.status();
    r.expect(3, "contended", vec![old.pid(), new.pid()]);
    assert_eq!(r.owner(old.pid())["protocol"], "pidfile");
    assert_eq!(r.owner(new.pid())["protocol"], "flock");
    for p in [&old, &new] {
        file(r.owner(p.pid()), &ws.join(QUEUE_DB));
    }
}

/// An MCP host (not OpenViking) that starts one stdio server per session:
/// two servers, siblings under one launcher, both using the storage. Each
/// is named with the host as its launcher.
#[test]
fn two_stdio_servers_of_one_mcp_host_are_contended() {
    let env = TestEnv::new();
    let ws = env.ws();
    let host = spawn_user(
        &ws,
        "mcp-host",
        json!([
            [
                "spawn",
                [["flock", LOCK], ["sqlite", QUEUE_DB]],
                "openviking-server --stdio"
            ],
            [
                "spawn",
                [["open", QUEUE_DB], ["open", STORE_LOCK]],
                "openviking-server --stdio"
            ],
        ]),
    );
    let servers = host.workers().to_vec();
    assert_eq!(servers.len(), 2, "{servers:?}");

    let r = env.status();
    r.expect(3, "contended", servers.clone());
    assert_eq!(r.owner(servers[0])["protocol"], "flock");
    assert_eq!(r.owner(servers[1])["protocol"], "storage");
    for &pid in &servers {
        let owner = r.owner(pid);
        assert_eq!(owner["ancestry"][0]["pid"], host.pid(), "{owner:#}");
        assert_eq!(owner["ancestry"][1]["pid"], std::process::id(), "{owner:#}");
        assert_eq!(owner["workers"], json!([]), "{owner:#}");
    }
    assert_eq!(r.dir["other_users"], json!([]), "{:#}", r.dir);
    let who = env.run(&["who", "--color", "never", &env.ws_str()]);
    assert!(
        who.stdout.contains(&format!("({})", host.pid())),
        "who names the launcher: {}",
        who.stdout
    );
}

// ---------------------------------------------------------------------------
// One server

/// One OpenViking using the storage with no lock file at all.
#[test]
fn one_unlocked_server_is_held_and_said_to_hold_no_lock() {
    let env = TestEnv::new();
    let ws = env.ws();
    let server = spawn_user(
        &ws,
        SERVER_TAG,
        json!([["lockf", STORE_LOCK], ["lockf-read", AUDIT_DB]]),
    );
    let pid = server.pid();

    let r = env.status();
    r.expect(1, "held", vec![pid]);
    let owner = r.owner(pid);
    assert_eq!(owner["protocol"], "storage", "{owner:#}");
    assert_eq!(
        lock_of(file(owner, &ws.join(AUDIT_DB))),
        json!({"type": "posix", "mode": "read"})
    );
    r.assert_reason("holds no lock file");
    assert!(
        reason_names(&r, pid, "without holding a lock file"),
        "{}",
        r.reasons()
    );
    assert_eq!(r.lock("flock")["present"], false);
    assert_eq!(r.lock("pidfile")["present"], false);

    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!((who.code, who.stdout.clone()), (0, format!("{pid}\n")));

    // With storage.skip_process_lock in ov.conf, check knows lock files
    // cannot answer, and scans by itself.
    let conf = env.root().join("ov.conf");
    fs::write(
        &conf,
        json!({"storage": {"workspace": env.ws_str(), "skip_process_lock": true}}).to_string(),
    )
    .unwrap();
    let check = env.run(&["check", "--json", "--config", conf.to_str().unwrap()]);
    assert_eq!(check.code, 1, "{check:?}");
    let dir = check.dir();
    assert_eq!(dir["scanned"], true, "{dir:#}");
    assert_eq!(owner_pids(&dir), [pid], "{dir:#}");
}

/// A process that holds a kernel lock under the directory but does not look
/// like OpenViking (a backup, `sqlite3`) is not a server: it is another user,
/// with a warning that names its lock, and `--match` counts it when asked.
#[test]
fn a_lock_holder_that_is_not_openviking_is_another_user_with_a_warning() {
    let env = TestEnv::new();
    let backup = spawn_user(&env.ws(), PLAIN_TAG, json!([["lockf-read", QUEUE_DB]]));
    let r = env.status();
    r.expect(0, "free", vec![]);
    assert_eq!(other_user_pids(&r.dir), [backup.pid()], "{:#}", r.dir);
    assert!(
        r.warnings().contains("posix read lock")
            && r.warnings().contains("does not look like OpenViking"),
        "{}",
        r.warnings()
    );

    let matched = env.status_with(&["--match", PLAIN_TAG]);
    matched.expect(1, "held", vec![backup.pid()]);
    assert_eq!(matched.owner(backup.pid())["protocol"], "storage");
}

/// A command line that only names the directory (`tail -f` of a file in
/// `/srv/openviking/data`) does not make a process OpenViking.
#[test]
fn naming_an_openviking_directory_does_not_make_a_process_openviking() {
    let env = TestEnv::new();
    let ws = env.root().join("openviking-data");
    fs::create_dir(&ws).unwrap();
    let server = spawn_user(
        &ws,
        SERVER_TAG,
        json!([["flock", ".openviking.lock"], ["lockf", QUEUE_DB]]),
    );
    let log = ws.join("vectordb/context/store/LOG");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    fs::write(&log, "").unwrap();
    let tail = spawn_tail(&log);
    let run = env.run(&["status", "--json", ws.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(owner_pids(&dir), [server.pid()], "{dir:#}");
    assert_eq!(other_user_pids(&dir), [tail.pid()], "{dir:#}");
}

/// A server's workers, forked and spawned, that open storage files and take
/// locks of their own: one server, not contention.
#[test]
fn workers_of_an_unlocked_server_are_one_server() {
    let env = TestEnv::new();
    let ws = env.ws();
    let server = spawn_user(
        &ws,
        SERVER_TAG,
        json!([
            ["open", QUEUE_DB],
            ["fork", [["lockf", STORE_LOCK]]],
            // Spawned with a command line that does not look like OpenViking,
            // holding a lock, with a worker of its own.
            [
                "spawn",
                [
                    ["lockf-read", AUDIT_DB],
                    ["fork", [["open", "vectordb/context/store/CURRENT"]]]
                ]
            ],
        ]),
    );
    let pid = server.pid();
    let workers = server.workers().to_vec();
    assert_eq!(workers.len(), 3, "{workers:?}");
    let forked = workers[0];
    let spawned = workers[1];
    assert_eq!(parent_of(forked), Some(pid));
    assert_eq!(parent_of(spawned), Some(pid));
    assert_eq!(parent_of(workers[2]), Some(spawned));

    let r = env.status();
    r.expect(1, "held", vec![pid]);
    let owner = r.owner(pid);
    assert_eq!(owner["protocol"], "storage", "{owner:#}");
    let mut got = pids(&owner["workers"]);
    got.sort_unstable();
    let mut want = workers.clone();
    want.sort_unstable();
    assert_eq!(got, want, "{owner:#}");
    assert_eq!(r.dir["other_users"], json!([]), "{:#}", r.dir);
    check_ancestry(owner, pid);

    let who = env.run(&["who", "--color", "never", &env.ws_str()]);
    assert_eq!(who.code, 0, "{who:?}");
    assert!(who.stdout.contains("Launched by"), "{}", who.stdout);
    assert!(who.stdout.contains("Workers"), "{}", who.stdout);
    for w in &workers {
        assert!(names_number(&who.stdout, *w), "{w}: {}", who.stdout);
    }
}

/// The same with a 0.5 server: the forked worker shares the flock (as an
/// uvicorn worker would), the spawned one opens RocksDB's files.
#[test]
fn workers_of_a_flock_server_are_one_server() {
    let env = TestEnv::new();
    let ws = env.ws();
    let server = spawn_user(
        &ws,
        SERVER_TAG,
        json!([
            ["flock", LOCK],
            ["fork", [["sqlite", QUEUE_DB]]],
            [
                "spawn",
                [
                    ["lockf", STORE_LOCK],
                    ["open", "vectordb/context/store/MANIFEST-000005"]
                ]
            ],
        ]),
    );
    let pid = server.pid();
    let workers = server.workers().to_vec();
    assert_eq!(workers.len(), 2, "{workers:?}");

    let r = env.status();
    r.expect(1, "held", vec![pid]);
    let owner = r.owner(pid);
    assert_eq!(owner["protocol"], "flock", "{owner:#}");
    let mut got = pids(&owner["workers"]);
    got.sort_unstable();
    let mut want = workers.clone();
    want.sort_unstable();
    assert_eq!(got, want, "{owner:#}");
    assert_eq!(r.dir["other_users"], json!([]), "{:#}", r.dir);
    check_ancestry(owner, pid);
}

/// An owner's ancestry starts at its parent (this test process) and ends at PID 1.
fn check_ancestry(owner: &Value, pid: u32) {
    let chain = owner["ancestry"].as_array().expect("ancestry is an array");
    assert!(!chain.is_empty(), "{owner:#}");
    assert_eq!(chain[0]["pid"], std::process::id(), "{owner:#}");
    assert_eq!(chain[0]["pid"], owner["ppid"], "{owner:#}");
    assert_eq!(chain.last().unwrap()["pid"], 1, "{owner:#}");
    assert!(chain.iter().all(|a| a["name"].is_string()), "{owner:#}");
    // Each link is the parent of the one before.
    let mut child = pid;
    for link in chain {
        let parent = link["pid"].as_u64().unwrap() as u32;
        assert_eq!(parent_of(child), Some(parent), "{owner:#}");
        child = parent;
    }
}

// ---------------------------------------------------------------------------
// Other users

/// A shell in the directory, a `tail -f` on a log, a backup reading the
/// queue, a viewer with a file mapped, an OpenViking client run from the
/// directory: all listed, none an owner.
#[test]
fn processes_that_only_look_are_other_users() {
    let env = TestEnv::new();
    let ws = env.ws();
    let log = ws.join("logs/server.log");
    fs::create_dir_all(log.parent().unwrap()).unwrap();
    fs::write(&log, "started\n").unwrap();
    let shell = spawn_sleep_in(&ws);
    let tail = spawn_tail(&log);
    let backup = spawn_user(&ws, PLAIN_TAG, json!([["open", QUEUE_DB]]));
    // Only a mapping remains, past the first 4 KiB of /proc/PID/maps (which
    // the kernel hands out a page per read(2)), as in any real process with
    // its libraries mapped.
    let viewer = spawn_user(
        &ws,
        PLAIN_TAG,
        json!([["mmap", "cache/blob.bin"], ["pad-maps", 100]]),
    );
    let maps = fs::read_to_string(format!("/proc/{}/maps", viewer.pid())).unwrap();
    let at = maps.find("/cache/blob.bin").expect("the blob is mapped");
    assert!(at > 8192, "the mapping sits at byte {at} of the maps file");
    // Looks like OpenViking, but touches no storage: its cwd and a log.
    let client = spawn_user(
        &ws,
        "openviking-cli",
        json!([["cwd", "logs"], ["open", "logs/client.log"]]),
    );

    let r = env.status();
    r.expect(0, "free", vec![]);
    assert_eq!(r.dir["scanned"], true);
    let mut got = other_user_pids(&r.dir);
    got.sort_unstable();
    // /proc/PID/maps gives about a page per read: the viewer's mapping lies
    // past the first page, so a scan that stopped at the first short read
    // would miss it.
    let mut want = vec![
        shell.pid(),
        tail.pid(),
        backup.pid(),
        viewer.pid(),
        client.pid(),
    ];
    want.sort_unstable();
    assert_eq!(got, want, "{:#}", r.dir);

    let u = other_user(&r.dir, shell.pid());
    assert_eq!(u["why"], "cwd", "{u:#}");
    assert_eq!(u["name"], "sleep", "{u:#}");
    assert_eq!(
        u["files"],
        json!([{"path": env.ws_str(), "use": "cwd", "lock": null}]),
        "{u:#}"
    );
    let u = other_user(&r.dir, tail.pid());
    assert_eq!(u["why"], "open file", "{u:#}");
    assert_eq!(u["name"], "tail", "{u:#}");
    assert_eq!(strings(&u["cmdline"])[0], "tail", "{u:#}");
    assert_eq!(lock_of(file(u, &log)), Value::Null);
    let u = other_user(&r.dir, backup.pid());
    assert_eq!(u["why"], "open file", "{u:#}");
    file(u, &ws.join(QUEUE_DB));
    let u = other_user(&r.dir, viewer.pid());
    assert_eq!(u["why"], "mapped file", "{u:#}");
    assert_eq!(file(u, &ws.join("cache/blob.bin"))["use"], "mapped file");
    let u = other_user(&r.dir, client.pid());
    assert_eq!(u["why"], "open file", "{u:#}");
    assert_eq!(file(u, &ws.join("logs"))["use"], "cwd", "{u:#}");
    file(u, &ws.join("logs/client.log"));

    // The text lists them too.
    for pid in want {
        assert!(names_number(&r.text, pid), "{pid}: {}", r.text);
    }
    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!((who.code, who.stdout.as_str()), (1, ""), "{who:?}");
}

/// Other users do not change a held verdict: a flock server, with a shell in
/// its directory.
#[test]
fn other_users_leave_a_held_directory_held() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let shell = spawn_sleep_in(&env.ws());
    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(other_user_pids(&r.dir), [shell.pid()], "{:#}", r.dir);
}

/// `check` without --scan, on a directory whose flock holder is known, does
/// not scan; with --scan it does.
#[test]
fn check_scans_only_when_asked_or_needed() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let shell = spawn_sleep_in(&env.ws());

    let run = env.run(&["check", "--json", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "held");
    assert_eq!(dir["scanned"], false, "{dir:#}");
    assert_eq!(dir["other_users"], json!([]), "{dir:#}");
    assert_eq!(dir["uninspected"], Value::Null, "{dir:#}");
    assert_eq!(owner_pids(&dir), [server.pid()]);

    let run = env.run(&["check", "--json", "--scan", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["scanned"], true, "{dir:#}");
    assert_eq!(dir["uninspected"], unreadable_processes(), "{dir:#}");
    assert_eq!(other_user_pids(&dir), [shell.pid()], "{dir:#}");
    let owner = &dir["owners"][0];
    assert_eq!(
        lock_of(file(owner, &env.lock_path())),
        json!({"type": "flock", "mode": "write"})
    );
}

/// A directory named through a symlink is found by its resolved path.
#[test]
fn a_directory_named_through_a_symlink_finds_its_users() {
    let env = TestEnv::new();
    let link = env.root().join("link");
    std::os::unix::fs::symlink(env.ws(), &link).unwrap();
    let a = spawn_user(&env.ws(), SERVER_TAG, json!([["open", QUEUE_DB]]));
    let b = spawn_user(&link, SERVER_TAG, json!([["open", STORE_LOCK]]));
    let run = env.run(&["status", "--json", link.to_str().unwrap()]);
    assert_eq!(run.code, 3, "{run:?}");
    let mut got = owner_pids(&run.dir());
    got.sort_unstable();
    let mut want = vec![a.pid(), b.pid()];
    want.sort_unstable();
    assert_eq!(got, want);
}

/// Several directories in one run: each gets the users under it, including
/// a data directory nested in another.
#[test]
fn each_directory_of_a_run_gets_its_own_users() {
    let env = TestEnv::new();
    let outer = env.ws();
    let inner = env.ws().join("nested");
    let other = env.root().join("other");
    fs::create_dir_all(&inner).unwrap();
    fs::create_dir_all(&other).unwrap();
    let in_outer = spawn_user(&outer, SERVER_TAG, json!([["open", QUEUE_DB]]));
    let in_inner = spawn_user(&inner, SERVER_TAG, json!([["open", STORE_LOCK]]));
    let in_other = spawn_user(&other, SERVER_TAG, json!([["open", AUDIT_DB]]));

    let run = env.run(&[
        "status",
        "--json",
        other.to_str().unwrap(),
        outer.to_str().unwrap(),
        inner.to_str().unwrap(),
    ]);
    let doc = run.json();
    let dirs = doc["data_dirs"].as_array().unwrap();
    assert_eq!(dirs.len(), 3, "{doc:#}");
    assert_eq!(owner_pids(&dirs[0]), [in_other.pid()], "{doc:#}");
    // The outer directory holds the inner one, but the inner server's files
    // are the inner directory's storage, not the outer one's: a server
    // started on the outer directory would not touch them. It uses the
    // outer directory, without owning it.
    assert_eq!(owner_pids(&dirs[1]), [in_outer.pid()], "{doc:#}");
    assert_eq!(other_user_pids(&dirs[1]), [in_inner.pid()], "{doc:#}");
    // A path counts for every directory that contains it: with OUTER given
    // before INNER, INNER's server must still be INNER's, as
    // `ovlock status INNER` alone says.
    assert_eq!(
        owner_pids(&dirs[2]),
        [in_inner.pid()],
        "a directory nested in another one asked about in the same run: {doc:#}"
    );
    let alone = env.run(&["status", "--json", inner.to_str().unwrap()]);
    assert_eq!(owner_pids(&alone.dir()), [in_inner.pid()]);
}

/// ovlock run from inside the directory is not one of its users: it would
/// have exited by the time anyone read the report.
#[test]
fn ovlock_run_from_the_directory_does_not_list_itself() {
    let env = TestEnv::new();
    let run = run_cmd(
        env.command(&["status", "--json", "."])
            .current_dir(env.ws()),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "free", "{dir:#}");
    assert_eq!(
        dir["other_users"],
        json!([]),
        "ovlock lists itself: {dir:#}"
    );
}

// ---------------------------------------------------------------------------
// PID namespaces

/// `unshare --pid --fork --kill-child` running user.py: the process the test
/// starts is unshare; the server is its child.
fn spawn_in_pid_namespace(dir: &Path, actions: Value) -> (UserProc, u32) {
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child"])
        .arg(python())
        .arg(user_script())
        .arg(SERVER_TAG);
    let proc = spawn_user_cmd(cmd, dir, actions);
    let children = children_of(proc.pid());
    assert_eq!(children.len(), 1, "unshare's children: {children:?}");
    (proc, children[0])
}

/// Fails the test unless `unshare --pid --fork` works here (tests that call
/// it are marked `#[cfg_attr(ovlock_test_no_unshare, ignore)]`).
fn assert_unshare_works() {
    let status = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "true"])
        .status();
    assert!(
        status.as_ref().is_ok_and(|s| s.success()),
        "unshare --pid --fork does not work here ({status:?}); this test needs it, \
         and root, to make PID namespaces; {PROBED}"
    );
}

/// A server in a container writes its own PID there (1) to `.openviking.pid`:
/// mapped through NSpid, it is the owner, and the file is not stale.
#[test]
#[cfg_attr(
    ovlock_test_no_unshare,
    ignore = "needs root and unshare --pid --fork (probed by build.rs)"
)]
fn a_pid_file_written_in_a_pid_namespace_names_its_server() {
    assert_unshare_works();
    let env = TestEnv::new();
    let ws = env.ws();
    let (ns, host_pid) =
        spawn_in_pid_namespace(&ws, json!([["pidfile", PIDFILE], ["sqlite", QUEUE_DB]]));
    let ns_pid = ns.reported_pid();
    assert_eq!(ns_pids_of(host_pid), [host_pid, ns_pid]);
    assert_eq!(
        fs::read_to_string(env.pid_path()).unwrap(),
        ns_pid.to_string()
    );
    assert_ne!(host_pid, ns_pid);

    let r = env.status();
    r.expect(1, "held", vec![host_pid]);
    let owner = r.owner(host_pid);
    assert_eq!(owner["ns_pid"], ns_pid, "{owner:#}");
    assert_eq!(owner["protocol"], "pidfile", "{owner:#}");
    file(owner, &ws.join(QUEUE_DB));
    assert_eq!(r.lock("pidfile")["held"], true, "{:#}", r.dir);
    assert_eq!(r.lock("pidfile")["pid"], ns_pid, "{:#}", r.dir);
    assert!(names_pid(&r.reasons(), host_pid), "{}", r.reasons());
    assert!(names_number(&r.text, ns_pid), "{}", r.text);
    // Launched by unshare.
    assert_eq!(owner["ancestry"][0]["pid"], ns.pid(), "{owner:#}");
    assert_eq!(owner["ancestry"][0]["name"], "unshare", "{owner:#}");

    // check needs no scan to tell: the kernel names the process that holds
    // the queue's SQLite locks, and its NSpid maps the file's PID to it.
    let check = env.run(&["check", "--json", &env.ws_str()]);
    assert_eq!(check.code, 1, "{check:?}");
    let dir = check.dir();
    assert_eq!(dir["verdict"], "held", "{dir:#}");
    assert_eq!(dir["scanned"], false, "{dir:#}");
    assert_eq!(owner_pids(&dir), [host_pid], "{dir:#}");
    assert_eq!(dir["owners"][0]["ns_pid"], ns_pid, "{dir:#}");

    // clear-stale keeps the file, in a dry run and for real.
    let before = fs::read(env.pid_path()).unwrap();
    for args in [
        &["clear-stale", "--json", "--dry-run"][..],
        &["clear-stale", "--json"],
    ] {
        let mut args = args.to_vec();
        let ws_str = env.ws_str();
        args.push(&ws_str);
        let run = env.run(&args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        let dir = run.dir();
        assert_eq!(dir["verdict"], "held", "{dir:#}");
        for key in ["removed", "would_remove"] {
            assert!(
                dir.get(key).is_none_or(|v| v == &json!([])),
                "{args:?}: {dir:#}"
            );
        }
        assert_eq!(fs::read(env.pid_path()).unwrap(), before, "{args:?}");
    }

    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!((who.code, who.stdout.clone()), (0, format!("{host_pid}\n")));

    drop(ns);
    assert!(!is_running(host_pid), "the namespace's server is gone");
    // And now the file is stale, and clear-stale removes it.
    let run = env.run(&["clear-stale", "--json", &env.ws_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!env.pid_path().exists());
}

/// The same with a server that is not its namespace's first process: the
/// file holds 2 (a forked child of PID 1 there), whose cwd is the directory.
#[test]
#[cfg_attr(
    ovlock_test_no_unshare,
    ignore = "needs root and unshare --pid --fork (probed by build.rs)"
)]
fn a_pid_file_naming_a_later_pid_of_a_namespace_names_its_server() {
    assert_unshare_works();
    let env = TestEnv::new();
    let ws = env.ws();
    let (ns, init) = spawn_in_pid_namespace(
        &ws,
        json!([[
            "fork",
            [["pidfile", PIDFILE], ["cwd", "."], ["open", STORE_LOCK]]
        ]]),
    );
    let children = children_of(init);
    assert_eq!(children.len(), 1, "{children:?}");
    let host_pid = children[0];
    let ns_pid = ns.workers()[0];
    assert_eq!(ns_pids_of(host_pid), [host_pid, ns_pid]);

    let r = env.status();
    r.expect(1, "held", vec![host_pid]);
    assert_eq!(r.owner(host_pid)["ns_pid"], ns_pid);
    let check = env.run(&["check", "--json", &env.ws_str()]);
    assert_eq!(check.code, 1, "{check:?}");
    let run = env.run(&["clear-stale", "--json", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(env.pid_path().exists());
}

// ---------------------------------------------------------------------------
// Not root

/// ovlock run as an unprivileged user cannot read a root process's files:
/// it says how many it could not inspect, and never answers "free" for a
/// directory whose lock files cannot answer.
#[test]
#[cfg_attr(
    ovlock_test_no_root,
    ignore = "needs root and setpriv to run ovlock as another user (probed by build.rs)"
)]
fn an_unprivileged_run_counts_what_it_could_not_inspect() {
    let env = TestEnv::new();
    open_to_others(&env);
    // It holds no lock, so nothing but its descriptors could show it.
    let server = spawn_user(&env.ws(), SERVER_TAG, json!([["open", QUEUE_DB]]));

    let run = run_as_nobody(&env, &["status", "--json", &env.ws_str()]);
    let dir = run.dir();
    assert_eq!(dir["scanned"], true, "{dir:#}");
    assert!(dir["uninspected"].as_u64().unwrap() > 0, "{dir:#}");
    let warnings = strings(&dir["warnings"]).join("\n");
    assert!(warnings.contains("not inspected"), "{dir:#}");
    let text = run_as_nobody(&env, &["status", "--color", "never", &env.ws_str()]);
    assert!(text.stdout.contains("not inspected"), "{text:?}");

    // With skip_process_lock, only the scan could tell: unknown, not free.
    let conf = env.root().join("ov.conf");
    fs::write(
        &conf,
        json!({"storage": {"workspace": env.ws_str(), "skip_process_lock": true}}).to_string(),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o644)).unwrap();
    let conf = conf.to_str().unwrap();
    let run = run_as_nobody(&env, &["check", "--json", "--config", conf]);
    assert_eq!(run.code, 4, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "unknown", "{dir:#}");
    assert!(
        strings(&dir["reasons"])
            .join("\n")
            .contains("not inspected"),
        "{dir:#}"
    );
    let who = run_as_nobody(&env, &["who", "--pid", "--config", conf]);
    assert_eq!((who.code, who.stdout.as_str()), (4, ""), "{who:?}");

    // Root sees the server.
    let run = env.run(&["check", "--json", "--config", conf]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(owner_pids(&run.dir()), [server.pid()]);
}

/// A container that mounts the data directory at another path and runs its
/// server in its own PID namespace: the server names the directory by a path
/// the host does not know, and writes its namespace PID. ovlock must match
/// its files by identity, map its PID through NSpid, say held, and keep the
/// pid file; a path-only match would call the file stale and remove it.
#[test]
#[cfg_attr(
    ovlock_test_no_unshare,
    ignore = "needs root and unshare --pid --fork (probed by build.rs)"
)]
fn a_container_with_the_directory_mounted_elsewhere_keeps_its_pid_file() {
    assert_unshare_works();
    let env = TestEnv::new();
    let inside = env.root().join("container-view");
    fs::create_dir(&inside).unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--pid", "--fork", "--kill-child", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$2" && exec "$3" "$4" "$5""#)
        .arg("sh")
        .args([
            env.ws().as_os_str(),
            inside.as_os_str(),
            python().as_os_str(),
            user_script().as_os_str(),
        ])
        .arg(SERVER_TAG);
    let ns = spawn_user_cmd(
        cmd,
        &inside,
        json!([["pidfile", PIDFILE], ["lockf", QUEUE_DB], ["cwd", "."]]),
    );
    let children = children_of(ns.pid());
    assert_eq!(children.len(), 1, "unshare's children: {children:?}");
    let host_pid = children[0];
    let ns_pid = ns.reported_pid();
    assert_ne!(host_pid, ns_pid);
    // The host sees the file under its own path, written with the container's PID.
    assert_eq!(
        fs::read_to_string(env.pid_path()).unwrap(),
        ns_pid.to_string()
    );

    let check = env.run(&["check", "--json", &env.ws_str()]);
    assert_eq!(check.code, 1, "{check:?}");
    let dir = check.dir();
    assert_eq!(owner_pids(&dir), [host_pid], "{dir:#}");
    assert_eq!(dir["owners"][0]["ns_pid"], ns_pid, "{dir:#}");
    let files: Vec<String> = dir["owners"][0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .collect();
    assert!(
        files.contains(&env.ws().join(QUEUE_DB).to_string_lossy().into_owned()),
        "{files:?}"
    );

    let cleared = env.run(&["clear-stale", "--json", &env.ws_str()]);
    assert_eq!(cleared.code, 1, "{cleared:?}");
    assert_eq!(cleared.dir()["removed"], json!([]), "{cleared:?}");
    assert_eq!(
        fs::read_to_string(env.pid_path()).unwrap(),
        ns_pid.to_string()
    );
}

/// `who --all --pid` prints owners, as `who --pid` does: not every process
/// that merely looks like OpenViking, since its output goes to `kill`.
#[test]
fn who_all_pid_prints_owners_only() {
    let env = TestEnv::new();
    let server = spawn_user(
        &env.ws(),
        SERVER_TAG,
        json!([["flock", ".openviking.lock"]]),
    );
    let onlooker = spawn_user(&env.ws(), SERVER_TAG, json!([["cwd", "."]]));
    let run = env.run(&["who", "--all", "--pid"]);
    assert_eq!(run.code, 0, "{run:?}");
    let pids: Vec<u32> = run.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert!(pids.contains(&server.pid()), "{run:?}");
    assert!(!pids.contains(&onlooker.pid()), "{run:?}");
}

/// A server of another user that holds a lock on a storage file shows in
/// /proc/locks, which everyone may read: an unprivileged run names it even
/// though it cannot read the server's descriptors.
#[test]
#[cfg_attr(
    ovlock_test_no_root,
    ignore = "needs root and setpriv to run ovlock as another user (probed by build.rs)"
)]
fn an_unprivileged_run_sees_storage_locks_of_other_users() {
    let env = TestEnv::new();
    open_to_others(&env);
    let server = spawn_user(&env.ws(), SERVER_TAG, json!([["lockf", STORE_LOCK]]));
    let run = run_as_nobody(&env, &["status", "--json", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(owner_pids(&dir), [server.pid()], "{dir:#}");
    assert_eq!(dir["owners"][0]["protocol"], "storage", "{dir:#}");
    assert!(dir["uninspected"].as_u64().unwrap() > 0, "{dir:#}");
}

/// A process in another mount namespace with a directory of its own at the
/// same path (a tmpfs mounted over it there) does not use ours: matching by
/// path alone would call our empty directory held.
#[test]
#[cfg_attr(
    ovlock_test_no_unshare,
    ignore = "needs root and unshare --pid --fork (probed by build.rs)"
)]
fn another_namespaces_own_directory_at_the_same_path_is_not_ours() {
    assert_unshare_works();
    let env = TestEnv::new();
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--pid",
        "--fork",
        "--kill-child",
        "sh",
        "-c",
    ])
    .arg(r#"mount -t tmpfs none "$1" && exec "$2" "$3" "$4""#)
    .arg("sh")
    .args([
        env.ws().as_os_str(),
        python().as_os_str(),
        user_script().as_os_str(),
    ])
    .arg(SERVER_TAG);
    let _elsewhere = spawn_user_cmd(
        cmd,
        &env.ws(),
        json!([["flock", ".openviking.lock"], ["lockf", QUEUE_DB]]),
    );
    assert!(
        !env.lock_path().exists(),
        "the lock file is in the other namespace's tmpfs only"
    );
    let r = env.examine("check", &["--scan"]);
    r.expect(0, "free", vec![]);
    assert_eq!(other_user_pids(&r.dir), Vec::<u32>::new(), "{:#}", r.dir);
}

/// A process in a copy of our mount namespace (what systemd's ProtectSystem=
/// and PrivateTmp= make) names our directories by our paths: `who --all`
/// finds its directory, while one with its own directory at that path (a
/// tmpfs over it) is still elsewhere.
#[test]
#[cfg_attr(
    ovlock_test_no_unshare,
    ignore = "needs root and unshare --pid --fork (probed by build.rs)"
)]
fn a_copy_of_our_mount_namespace_names_our_directories() {
    assert_unshare_works();
    let env = TestEnv::new();
    let in_namespace = |script: &str| {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(script)
            .arg("sh")
            .args([
                env.ws().as_os_str(),
                python().as_os_str(),
                user_script().as_os_str(),
            ])
            .arg(SERVER_TAG);
        spawn_user_cmd(cmd, &env.ws(), json!([["flock", ".openviking.lock"]]))
    };
    // What `who --all` says of the process `pid`.
    let listed = |pid: u32| {
        let doc = env.run(&["who", "--all", "--json"]).json();
        doc["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"] == pid)
            .unwrap_or_else(|| panic!("{doc:#}"))
            .clone()
    };
    let copy = in_namespace(r#"exec "$2" "$3" "$4""#);
    let found = listed(copy.pid());
    assert_eq!(found["other_mount_namespace"], false, "{found:#}");
    assert_eq!(found["data_dirs"], json!([env.ws_str()]), "{found:#}");
    drop(copy);

    let own = in_namespace(r#"mount -t tmpfs none "$1" && exec "$2" "$3" "$4""#);
    let found = listed(own.pid());
    assert_eq!(found["other_mount_namespace"], true, "{found:#}");
    assert_eq!(found["data_dirs"], json!([]), "{found:#}");
}
