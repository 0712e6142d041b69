//! OpenViking's path locks (`.path.ovlock`, `.exact.ovlock.*` under
//! `{workspace}/viking/`), every situation of issue 10 made for real: tokens
//! written as OpenViking writes them (or as a torn write, a stepped-back
//! clock or an older release leaves them), a live owner that is a real flock
//! holder, real symlinks, FIFOs and FUSE mounts, judged by the built ovlock
//! through its exit code, its JSON and its text.
//!
//! The rules themselves are table-tested in src/judge/path_locks.rs, and
//! their agreement with OpenViking's own engine lives in path_lock_interop.rs;
//! this module checks what an operator sees and what clear-stale does.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::*;

/// A lease id, as OpenViking's are (a UUID per lease).
const LEASE: &str = "0c3e6388-5e31-4580-abc5-cd1b6b93767d";
const OTHER_LEASE: &str = "5d1f3b52-7a0e-4c4b-9f61-2b8e0a9c4d17";

/// The torn token seen on a real 0.5.2 server.
const CORRUPT: &str = "abc-123:1700";

const SECOND: u128 = 1_000_000_000;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `LEASE:time_ns:kind`, refreshed `secs` ago (negative: ahead of the clock).
fn token_aged(secs: i64, kind: char) -> String {
    token_of(LEASE, secs, kind)
}

fn token_of(owner: &str, secs: i64, kind: char) -> String {
    let now = now_ns();
    let at = if secs >= 0 {
        now - u128::from(secs.unsigned_abs()) * SECOND
    } else {
        now + u128::from(secs.unsigned_abs()) * SECOND
    };
    format!("{owner}:{at}:{kind}")
}

/// `.path.ovlock` of `rel` (a directory below `viking/`).
fn tree_lock(env: &TestEnv, rel: &str) -> PathBuf {
    viking(env).join(rel).join(".path.ovlock")
}

fn viking(env: &TestEnv) -> PathBuf {
    env.ws().join("viking")
}

/// Writes `content` at `path`, making its directories.
fn put(path: &Path, content: impl AsRef<[u8]>) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
    path.to_path_buf()
}

/// Writes `content` at `path`, last modified `secs` ago: old enough that a
/// torn write is over (ovlock waits 2 s for one).
fn put_old(path: &Path, content: impl AsRef<[u8]>, secs: u64) -> PathBuf {
    put(path, content);
    set_mtime(path, ago(secs));
    path.to_path_buf()
}

/// A live owner: a process holding the data directory's flock with a
/// server-like command line, as OpenViking 0.4.21+ does.
fn server(env: &TestEnv) -> Proc {
    spawn_holder("flock", &env.lock_path(), SERVER_TAG)
}

/// An ov.conf describing the test's data directory, with `storage` merged in.
fn conf(env: &TestEnv, name: &str, mut storage: Value) -> PathBuf {
    storage["workspace"] = json!(env.ws_str());
    let path = env.root().join(name);
    fs::write(&path, json!({ "storage": storage }).to_string()).unwrap();
    path
}

/// An ov.conf for the workspace that sets `storage.agfs.pathlock.lock_expire_secs`.
fn expire_conf(env: &TestEnv, secs: u64) -> PathBuf {
    conf(
        env,
        "ov.conf",
        json!({"agfs": {"pathlock": {"lock_expire_secs": secs}}}),
    )
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn path_locks(dir: &Value) -> &Vec<Value> {
    dir["path_locks"]
        .as_array()
        .unwrap_or_else(|| panic!("no path_locks array: {dir:#}"))
}

/// The `path_locks` entry of the lock file `file`.
fn entry<'a>(dir: &'a Value, file: &Path) -> &'a Value {
    path_locks(dir)
        .iter()
        .find(|p| p["path"] == s(file))
        .unwrap_or_else(|| panic!("no path lock {} in {dir:#}", file.display()))
}

fn listed(dir: &Value) -> Vec<String> {
    let mut paths: Vec<String> = path_locks(dir)
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    paths.sort();
    paths
}

/// `state` and `reason` of the entry for `file`.
fn judged(dir: &Value, file: &Path) -> (String, String) {
    let e = entry(dir, file);
    (
        e["state"].as_str().unwrap().to_string(),
        e["reason"].as_str().unwrap().to_string(),
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn clear_json(env: &TestEnv, extra: &[&str]) -> Run {
    let ws = env.ws_str();
    let mut args = vec!["clear-stale", "--json"];
    args.extend_from_slice(extra);
    args.push(&ws);
    env.run(&args)
}

fn check_line(env: &TestEnv) -> Run {
    env.run(&["check", "--color", "never", &env.ws_str()])
}

fn ctx(r: &Report) -> String {
    format!("{:#}\n--- text ---\n{}", r.dir, r.text)
}

/// Everything that ovlock could change about a file: its bytes and times.
fn file_state(path: &Path) -> (Vec<u8>, SystemTime, u64) {
    let meta = fs::symlink_metadata(path).unwrap();
    (
        fs::read(path).unwrap(),
        meta.modified().unwrap(),
        meta.ino(),
    )
}

// ---------------------------------------------------------------------------
// Corrupt tokens

#[test]
fn corrupt_token_without_an_owner_is_stale() {
    let env = TestEnv::new();
    let file = put_old(&tree_lock(&env, "default/resources"), CORRUPT, 60);

    let r = env.status();
    r.expect(2, "stale", vec![]);
    let e = entry(&r.dir, &file);
    assert_eq!(e["state"], "stale", "{}", ctx(&r));
    assert_eq!(e["uri"], "viking://resources", "{e:#}");
    assert_eq!(e["account"], "default", "{e:#}");
    assert_eq!(
        e["kind"],
        Value::Null,
        "a corrupt token names no kind: {e:#}"
    );
    assert_eq!(e["owner"], Value::Null, "{e:#}");
    let reason = e["reason"].as_str().unwrap();
    assert!(
        reason.contains("invalid lock token") && reason.contains("missing second ':'"),
        "{reason}"
    );
    assert!(r.reasons().contains("viking://resources"), "{}", ctx(&r));
    assert!(
        strings(&r.dir["fixes"])
            .iter()
            .any(|f| f.contains("ovlock clear-stale")),
        "{}",
        ctx(&r)
    );
    // What it blocks and the file, in the text.
    for what in [
        "viking://resources",
        "viking/default/resources/.path.ovlock",
    ] {
        assert!(r.text.contains(what), "the text lacks {what}:\n{}", r.text);
    }
    assert_eq!(check_line(&env).code, 2);
}

#[test]
fn corrupt_token_beside_a_live_owner_is_a_warning_and_clear_stale_removes_only_it() {
    let env = TestEnv::new();
    let server = server(&env);
    let corrupt = put_old(&tree_lock(&env, "default/resources"), CORRUPT, 60);
    let held = put(&tree_lock(&env, "default/docs"), token_aged(0, 'T'));
    let held_before = file_state(&held);

    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(judged(&r.dir, &corrupt).0, "stale", "{}", ctx(&r));
    assert_eq!(judged(&r.dir, &held).0, "held", "{}", ctx(&r));
    let warnings = r.warnings();
    assert!(
        warnings.contains("viking://resources") && warnings.contains("stale path lock"),
        "the stale path lock is not warned about: {}",
        ctx(&r)
    );
    assert!(
        !r.reasons().contains("path lock"),
        "a live owner's verdict is its own: {}",
        ctx(&r)
    );
    assert!(
        strings(&r.dir["fixes"])
            .iter()
            .any(|f| f.contains("path lock") && f.contains("ovlock clear-stale")),
        "{}",
        ctx(&r)
    );

    let run = clear_json(&env, &[]);
    assert_eq!(run.code, 1, "still held after clearing: {run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "held", "{dir:#}");
    assert_eq!(strings(&dir["removed"]), [s(&corrupt)], "{dir:#}");
    assert!(!corrupt.exists());
    assert_eq!(file_state(&held), held_before, "the held lease was touched");
    assert!(env.lock_path().exists());

    let after = env.status();
    after.expect(1, "held", vec![server.pid()]);
    assert_eq!(listed(&after.dir), [s(&held)], "{}", ctx(&after));
    assert!(
        !after.warnings().contains("path lock"),
        "nothing stale is left: {}",
        ctx(&after)
    );
}

/// A token torn less than 2 s ago may be a write still under way: not
/// stale yet, so clear-stale keeps it.
#[test]
fn corrupt_token_written_moments_ago_is_not_removed() {
    let env = TestEnv::new();
    let file = tree_lock(&env, "default/resources");
    // A sample counts only if ovlock looked while the file was young.
    let young = (0..20).find_map(|_| {
        put(&file, CORRUPT);
        let written = std::time::Instant::now();
        let run = clear_json(&env, &[]);
        (written.elapsed() < Duration::from_millis(1500)).then_some(run)
    });
    let run = young.expect("ovlock never ran within 1.5 s of the write");
    let dir = run.dir();
    assert_eq!(strings(&dir["removed"]), Vec::<String>::new(), "{dir:#}");
    let (state, reason) = judged(&dir, &file);
    assert_eq!(state, "unknown", "{dir:#}");
    assert!(reason.contains("less than 2s ago"), "{reason}");
    assert_ne!(run.code, 2, "{run:?}");
    assert_eq!(fs::read_to_string(&file).unwrap(), CORRUPT);
}

// ---------------------------------------------------------------------------
// Tokens dated ahead of the clock

/// The RFC 3339 second of a token's time, as ovlock prints times.
fn rfc3339_of_token(token: &str) -> String {
    rfc3339_after_token(token, 0)
}

/// The same, `secs` after the token's time.
fn rfc3339_after_token(token: &str, secs: u64) -> String {
    let ns: u64 = token.split(':').nth(1).unwrap().parse().unwrap();
    let at = UNIX_EPOCH + Duration::from_nanos(ns) + Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(at).to_string()
}

#[test]
fn future_dated_token_beside_a_live_owner_is_stale_until_its_date() {
    let env = TestEnv::new();
    let server = server(&env);
    let token = token_aged(-86_400, 'T');
    let file = put(&tree_lock(&env, "default/resources"), &token);

    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    let (state, reason) = judged(&r.dir, &file);
    assert_eq!(state, "stale", "{}", ctx(&r));
    assert!(
        reason.contains("dated") && reason.contains("ahead: the clock moved back"),
        "{reason}"
    );
    // Until when: a date a day from now (its exactness is the next test's).
    let until = reason
        .split("until ")
        .nth(1)
        .unwrap_or_else(|| panic!("the reason does not say until when: {reason}"));
    let until = humantime::parse_rfc3339_weak(until)
        .unwrap_or_else(|e| panic!("until {until:?} is not a date ({e}): {reason}"));
    let from_now = until.duration_since(SystemTime::now()).unwrap_or_default();
    assert!(
        from_now > Duration::from_secs(86_400 - 3_600),
        "until {until:?} is not a day ahead: {reason}"
    );
    assert!(r.warnings().contains("viking://resources"), "{}", ctx(&r));

    let run = clear_json(&env, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(strings(&run.dir()["removed"]), [s(&file)], "{run:?}");
    assert!(!file.exists());
}

/// OpenViking 0.5.2's engine ages a token dated ahead from its date: it
/// refuses the path until lock_expire_secs after that date (measured: with
/// lock_expire_secs 10, a tree lock was refused 1.5 s and 5 s after the
/// token's time and acquired 11.5 s after it), as ovlock's own "left behind"
/// reason says of the same token.
#[test]
fn future_dated_token_is_held_until_lock_expire_after_its_date() {
    let env = TestEnv::new();
    let config = expire_conf(&env, 600);
    let server = server(&env);
    let token = token_aged(-86_400, 'T');
    let file = put(&tree_lock(&env, "default/resources"), &token);

    let r = env.status_with(&["--config", s(&config)]);
    r.expect(1, "held", vec![server.pid()]);
    let (state, reason) = judged(&r.dir, &file);
    assert_eq!(state, "stale", "{}", ctx(&r));
    let until = rfc3339_after_token(&token, 600);
    assert!(
        reason.contains(&format!("until {until}")),
        "OpenViking refuses writes until {until}: {reason}"
    );
}

/// A bindfs mount, unmounted on drop (after whatever holds files in it).
struct FuseMount(PathBuf);

impl FuseMount {
    fn new(source: &Path, mountpoint: &Path) -> FuseMount {
        fs::create_dir_all(mountpoint).unwrap();
        let mounted = Command::new("bindfs").arg(source).arg(mountpoint).status();
        assert!(
            mounted.as_ref().is_ok_and(|s| s.success()),
            "bindfs could not mount a FUSE filesystem here ({mounted:?}); {PROBED}"
        );
        FuseMount(mountpoint.to_path_buf())
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        let unmounted = Command::new("fusermount").arg("-u").arg(&self.0).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("fusermount").arg("-uz").arg(&self.0).status();
        }
    }
}

#[test]
#[cfg_attr(
    ovlock_test_no_bindfs,
    ignore = "needs bindfs and /dev/fuse for a FUSE mount (probed by build.rs)"
)]
fn future_dated_token_on_fuse_is_unknown_not_stale() {
    let env = TestEnv::new();
    let token = token_aged(-86_400, 'T');
    put(&tree_lock(&env, "default/resources"), &token);
    let mnt = env.root().join("mnt");
    // Declared before the holder, so that it is unmounted after the holder dies.
    let _mount = FuseMount::new(&env.ws(), &mnt);
    let server = spawn_holder("flock", &mnt.join(LOCK), SERVER_TAG);
    let file = mnt.join("viking/default/resources/.path.ovlock");

    let run = env.run(&["status", "--json", s(&mnt)]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["remote_filesystem"], "FUSE", "{dir:#}");
    assert_eq!(owner_pids(&dir), [server.pid()], "{dir:#}");
    let e = entry(&dir, &file);
    assert_eq!(e["state"], "unknown", "{e:#}");
    let reason = e["reason"].as_str().unwrap();
    assert!(
        reason.contains("ahead") && reason.contains("network filesystem"),
        "{reason}"
    );

    let run = env.run(&["clear-stale", "--json", s(&mnt)]);
    assert_eq!(
        strings(&run.dir()["removed"]),
        Vec::<String>::new(),
        "{run:?}"
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), token);
}

/// On a network filesystem "no owner" means none on this host: a lease
/// refreshed a moment ago may be a server's on another host, so it is
/// neither called stale nor removed; an expired one is stale all the same.
#[test]
#[cfg_attr(
    ovlock_test_no_bindfs,
    ignore = "needs bindfs and /dev/fuse for a FUSE mount (probed by build.rs)"
)]
fn a_fresh_lease_on_fuse_without_an_owner_here_is_unknown_and_kept() {
    let env = TestEnv::new();
    let fresh = token_aged(1, 'T');
    put(&tree_lock(&env, "default/resources"), &fresh);
    let expired = token_aged(3600, 'T');
    put(&tree_lock(&env, "default/old"), &expired);
    let mnt = env.root().join("mnt");
    let _mount = FuseMount::new(&env.ws(), &mnt);
    let fresh_file = mnt.join("viking/default/resources/.path.ovlock");
    let expired_file = mnt.join("viking/default/old/.path.ovlock");

    // Path locks never keep a server from starting: the expired one makes
    // the directory stale, the undecided one is a warning.
    let run = env.run(&["status", "--json", s(&mnt)]);
    assert_eq!(run.code, 2, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "stale", "{dir:#}");
    assert!(
        dir["warnings"].to_string().contains("another host"),
        "{dir:#}"
    );
    let e = entry(&dir, &fresh_file);
    assert_eq!(e["state"], "unknown", "{e:#}");
    assert!(
        e["reason"].as_str().unwrap().contains("another host"),
        "{e:#}"
    );
    assert_eq!(entry(&dir, &expired_file)["state"], "stale", "{dir:#}");

    let run = env.run(&["clear-stale", "--json", s(&mnt)]);
    assert_eq!(
        strings(&run.dir()["removed"]),
        [s(&expired_file).to_string()],
        "{run:?}"
    );
    assert_eq!(fs::read_to_string(&fresh_file).unwrap(), fresh);
}

// ---------------------------------------------------------------------------
// Leases refreshed and not

#[test]
fn expired_lease_beside_a_live_owner_is_stale_and_a_fresh_one_is_held_and_kept() {
    let env = TestEnv::new();
    let server = server(&env);
    let expired_token = token_aged(3600, 'T');
    let expired = put(&tree_lock(&env, "default/old"), &expired_token);
    let fresh = put(
        &tree_lock(&env, "default/new"),
        token_of(OTHER_LEASE, 0, 'T'),
    );
    let fresh_before = file_state(&fresh);

    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    let (state, reason) = judged(&r.dir, &expired);
    assert_eq!(state, "stale", "{}", ctx(&r));
    assert!(
        reason.contains("not refreshed for 1h") && reason.contains("lock_expire_secs"),
        "{reason}"
    );
    let e = entry(&r.dir, &expired);
    assert_eq!(e["refreshed_at"], rfc3339_of_token(&expired_token), "{e:#}");
    // The creation time is statx's, where the filesystem records one.
    let born = fs::metadata(&expired).unwrap().created().ok();
    let born = born.map(|t| humantime::format_rfc3339_seconds(t).to_string());
    assert_eq!(e["created_at"].as_str(), born.as_deref(), "{e:#}");
    let e = entry(&r.dir, &fresh);
    assert_eq!(e["state"], "held", "{e:#}");
    assert_eq!(e["kind"], "tree", "{e:#}");
    assert_eq!(e["owner"], OTHER_LEASE, "{e:#}");
    assert!(e["refreshed_at"].is_string(), "{e:#}");

    let run = clear_json(&env, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(strings(&run.dir()["removed"]), [s(&expired)], "{run:?}");
    assert_eq!(
        file_state(&fresh),
        fresh_before,
        "the held lease was touched"
    );
}

/// Nothing owns the directory, so nothing refreshes its leases: however
/// fresh or far ahead, each is left behind.
#[test]
fn leases_without_an_owner_are_left_behind_however_fresh() {
    let env = TestEnv::new();
    let fresh = put(&tree_lock(&env, "default/fresh"), token_aged(0, 'T'));
    let future = put(&tree_lock(&env, "default/future"), token_aged(-86_400, 'E'));

    let r = env.status();
    r.expect(2, "stale", vec![]);
    for file in [&fresh, &future] {
        let (state, reason) = judged(&r.dir, file);
        assert_eq!(state, "stale", "{}", ctx(&r));
        assert!(reason.contains("nothing owns the directory"), "{reason}");
    }
    // OpenViking refuses writes there until lock_expire_secs (30 s) after
    // its time; the reason says until when.
    let (_, reason) = judged(&r.dir, &future);
    let until = rfc3339_after_token(&fs::read_to_string(&future).unwrap(), 30);
    assert!(reason.contains(&format!("until {until}")), "{reason}");

    let run = clear_json(&env, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        sorted(strings(&run.dir()["removed"])),
        sorted(vec![s(&fresh).into(), s(&future).into()]),
        "{run:?}"
    );
}

#[test]
fn who_lists_held_leases_under_their_owner_with_their_ages() {
    let env = TestEnv::new();
    // A day's lock_expire_secs, so that a lease refreshed 2 h ago is held
    // and its age is one a person can read back.
    let config = expire_conf(&env, 86_400);
    let server = server(&env);
    put(&tree_lock(&env, "default/resources"), token_aged(7200, 'T'));
    let stale = put_old(&tree_lock(&env, "default/broken"), CORRUPT, 60);

    let r = env.examine("who", &["--config", s(&config)]);
    assert_eq!(r.code, 0, "who found the owner: {}", ctx(&r));
    let header = r
        .text
        .lines()
        .position(|l| l.starts_with(&format!("PID {}", server.pid())))
        .unwrap_or_else(|| panic!("no section for PID {}:\n{}", server.pid(), r.text));
    let lease = r
        .text
        .lines()
        .position(|l| l.contains("viking://resources (tree lock, account default)"))
        .unwrap_or_else(|| panic!("the held lease is not listed:\n{}", r.text));
    assert!(
        lease > header,
        "the lease is not under its owner:\n{}",
        r.text
    );
    let line = r.text.lines().nth(lease).unwrap();
    assert!(line.contains("Leases"), "{line}");
    assert!(line.contains("refreshed 2h"), "no age: {line}");
    let table: Vec<&str> = r
        .text
        .lines()
        .skip(header)
        .take_while(|l| !l.starts_with('└'))
        .collect();
    assert!(
        !table.iter().any(|l| l.contains("viking://broken")),
        "a stale path lock is listed as a held lease:\n{}",
        r.text
    );
    assert_eq!(judged(&r.dir, &stale).0, "stale", "{}", ctx(&r));
}

// ---------------------------------------------------------------------------
// Empty files: a token being written, or a write that never came

#[test]
fn empty_lock_file_is_held_while_young_beside_a_live_owner() {
    let env = TestEnv::new();
    let server = server(&env);
    let file = put(&tree_lock(&env, "default/resources"), "");

    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    let (state, reason) = judged(&r.dir, &file);
    assert_eq!(state, "held", "{}", ctx(&r));
    assert!(reason.contains("empty"), "{reason}");
    assert_eq!(entry(&r.dir, &file)["kind"], Value::Null);

    let run = clear_json(&env, &[]);
    assert_eq!(strings(&run.dir()["removed"]), Vec::<String>::new());
    assert!(file.exists());
}

#[test]
fn empty_lock_file_older_than_lock_expire_is_stale_beside_a_live_owner() {
    let env = TestEnv::new();
    let server = server(&env);
    let file = put_old(&tree_lock(&env, "default/resources"), "", 60);

    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    let (state, reason) = judged(&r.dir, &file);
    assert_eq!(state, "stale", "{}", ctx(&r));
    assert!(reason.contains("empty"), "{reason}");
    assert!(r.warnings().contains("stale path lock"), "{}", ctx(&r));
}

#[test]
fn empty_lock_file_without_an_owner_is_stale() {
    let env = TestEnv::new();
    let file = put(&tree_lock(&env, "default/resources"), "");

    let r = env.status();
    r.expect(2, "stale", vec![]);
    assert_eq!(judged(&r.dir, &file).0, "stale", "{}", ctx(&r));
}

// ---------------------------------------------------------------------------
// Legacy tokens

#[test]
fn legacy_encrypted_token_is_stale() {
    let env = TestEnv::new();
    let file = put_old(
        &tree_lock(&env, "default/resources"),
        b"OVE1\x00\x17\x8c\xfe\x02sealed",
        60,
    );

    let r = env.status();
    r.expect(2, "stale", vec![]);
    let (state, reason) = judged(&r.dir, &file);
    assert_eq!(state, "stale", "{}", ctx(&r));
    assert!(reason.contains("0.4.11"), "{reason}");
    assert!(!has_raw_control(&r.text), "{}", r.text);

    let server = server(&env);
    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(
        judged(&r.dir, &file).0,
        "stale",
        "a live owner does not refresh a token of another format: {}",
        ctx(&r)
    );
}

// ---------------------------------------------------------------------------
// Exact-lock sidecars and accounts

/// The sidecar name OpenViking gives an exact lock on the engine path
/// `/local/{account}/{rel}`: the basename made safe, then the first 16 hex
/// digits of the path's SHA-1 (Python's hashlib, independent of ovlock).
fn sidecar_name(engine_path: &str) -> String {
    let base = engine_path.rsplit('/').next().unwrap();
    let mut safe = String::new();
    for c in base.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            safe.push(c);
        } else if !safe.ends_with('_') {
            safe.push('_');
        }
    }
    let safe = safe.trim_matches(|c| c == '.' || c == '_');
    assert!(
        !safe.is_empty() && safe.len() <= 80,
        "keep test names short and plain: {base}"
    );
    let out = Command::new(python())
        .args([
            "-c",
            "import hashlib, sys; sys.stdout.write(hashlib.sha1(sys.argv[1].encode()).hexdigest()[:16])",
            engine_path,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    format!(
        ".exact.ovlock.{safe}.{}",
        String::from_utf8(out.stdout).unwrap()
    )
}

#[test]
fn sidecar_name_helper_reproduces_the_fact_sheet_example() {
    assert_eq!(
        sidecar_name("/local/default/resources/new file.md"),
        ".exact.ovlock.new_file.md.77ed9eafed6a3362"
    );
}

#[test]
fn exact_sidecars_map_back_to_their_target() {
    let env = TestEnv::new();
    let resources = viking(&env).join("default/resources");
    put(&resources.join("new file.md"), "a resource");
    let exact = put_old(
        &resources.join(".exact.ovlock.new_file.md.77ed9eafed6a3362"),
        token_aged(3600, 'E'),
        60,
    );
    // A tree lock on a file is a sidecar too, marked T: the kind is the token's.
    put(&viking(&env).join("acme/docs/plan.md"), "plan");
    let tree_on_file = put(
        &viking(&env)
            .join("acme/docs")
            .join(sidecar_name("/local/acme/docs/plan.md")),
        token_aged(3600, 'T'),
    );
    // One at the top of the tree locks an account's directory.
    fs::create_dir_all(viking(&env).join("newacct")).unwrap();
    let account = put(
        &viking(&env).join(sidecar_name("/local/newacct")),
        token_aged(3600, 'E'),
    );
    // Names outside ASCII: the engine hashes the UTF-8 bytes of the path.
    put(&resources.join("résumé 2.md"), "cv");
    let unicode = put(
        &resources.join(sidecar_name("/local/default/resources/résumé 2.md")),
        token_aged(3600, 'E'),
    );
    // The hash matches no entry: an exact lock on a path that does not exist.
    let missing = put(
        &resources.join(sidecar_name("/local/default/resources/gone.md")),
        token_aged(3600, 'E'),
    );

    let r = env.status();
    r.expect(2, "stale", vec![]);
    let e = entry(&r.dir, &exact);
    assert_eq!(e["uri"], "viking://resources/new file.md", "{e:#}");
    assert_eq!(e["account"], "default", "{e:#}");
    assert_eq!(e["kind"], "exact", "{e:#}");
    assert_eq!(e["owner"], LEASE, "{e:#}");
    let e = entry(&r.dir, &tree_on_file);
    assert_eq!(e["uri"], "viking://docs/plan.md", "{e:#}");
    assert_eq!(e["account"], "acme", "{e:#}");
    assert_eq!(e["kind"], "tree", "{e:#}");
    let e = entry(&r.dir, &account);
    assert_eq!(e["uri"], "viking://", "{e:#}");
    assert_eq!(e["account"], "newacct", "{e:#}");
    let e = entry(&r.dir, &unicode);
    assert_eq!(e["uri"], "viking://resources/résumé 2.md", "{e:#}");
    let e = entry(&r.dir, &missing);
    assert_eq!(e["uri"], Value::Null, "{e:#}");
    assert_eq!(e["account"], "default", "{e:#}");
    assert_eq!(e["kind"], "exact", "{e:#}");
    assert_eq!(e["state"], "stale", "{e:#}");
    assert!(
        r.text.contains("viking://resources/new file.md"),
        "{}",
        r.text
    );
}

#[test]
fn accounts_come_from_the_first_directory_below_viking() {
    let env = TestEnv::new();
    let acme = put_old(&tree_lock(&env, "acme/proj"), CORRUPT, 60);
    let whole_account = put_old(&tree_lock(&env, "acme"), CORRUPT, 60);
    let everything = put_old(&viking(&env).join(".path.ovlock"), CORRUPT, 60);

    let r = env.status();
    r.expect(2, "stale", vec![]);
    let e = entry(&r.dir, &acme);
    assert_eq!(
        (&e["account"], &e["uri"]),
        (&json!("acme"), &json!("viking://proj"))
    );
    let e = entry(&r.dir, &whole_account);
    assert_eq!(
        (&e["account"], &e["uri"]),
        (&json!("acme"), &json!("viking://"))
    );
    let e = entry(&r.dir, &everything);
    assert_eq!(
        (&e["account"], &e["uri"]),
        (&Value::Null, &Value::Null),
        "{e:#}"
    );
    assert_eq!(e["state"], "stale", "{e:#}");
    assert_eq!(path_locks(&r.dir).len(), 3, "{}", ctx(&r));
}

// ---------------------------------------------------------------------------
// lock_expire_secs, from ov.conf

/// Rewrites the lease at `file` as refreshed 45 s ago, just before each run,
/// so that a slow machine cannot age it past 60 s.
fn status_of_45s_lease(env: &TestEnv, file: &Path, extra: &[&str]) -> Report {
    put(file, token_aged(45, 'T'));
    env.status_with(extra)
}

#[test]
fn lock_expire_secs_from_ov_conf_keeps_a_45s_lease_held() {
    let env = TestEnv::new();
    let server = server(&env);
    let file = tree_lock(&env, "default/resources");
    let config = expire_conf(&env, 60);

    let r = status_of_45s_lease(&env, &file, &["--config", s(&config)]);
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(judged(&r.dir, &file).0, "held", "{}", ctx(&r));
    assert_eq!(r.dir["path_lock_expire_seconds"], 60.0, "{}", ctx(&r));
    assert_eq!(
        r.dir["path_lock_expire_source"],
        json!({"key": "storage.agfs.pathlock.lock_expire_secs", "config_file": s(&config)})
    );
    assert!(
        r.text.contains("storage.agfs.pathlock.lock_expire_secs"),
        "the text does not say where the value came from:\n{}",
        r.text
    );

    // The current key wins over the deprecated one.
    let both = conf(
        &env,
        "both.conf",
        json!({"agfs": {"pathlock": {"lock_expire_secs": 60}},
               "transaction": {"lock_expire": 10}}),
    );
    let r = status_of_45s_lease(&env, &file, &["--config", s(&both)]);
    assert_eq!(judged(&r.dir, &file).0, "held", "{}", ctx(&r));
    assert_eq!(r.dir["path_lock_expire_seconds"], 60.0);
    assert_eq!(
        r.dir["path_lock_expire_source"]["key"],
        "storage.agfs.pathlock.lock_expire_secs"
    );
}

#[test]
fn deprecated_transaction_lock_expire_is_used_from_the_environment_config() {
    let env = TestEnv::new();
    let server = server(&env);
    let file = tree_lock(&env, "default/resources");
    let config = conf(&env, "ov.conf", json!({"transaction": {"lock_expire": 60}}));

    put(&file, token_aged(45, 'T'));
    let run = run_cmd(
        env.command(&["status", "--json", &env.ws_str()])
            .env("OPENVIKING_CONFIG_FILE", &config),
    );
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(owner_pids(&dir), [server.pid()]);
    assert_eq!(judged(&dir, &file).0, "held", "{dir:#}");
    assert_eq!(dir["path_lock_expire_seconds"], 60.0, "{dir:#}");
    assert_eq!(
        dir["path_lock_expire_source"],
        json!({"key": "storage.transaction.lock_expire", "config_file": s(&config)})
    );
}

#[test]
fn without_a_config_a_45s_lease_beside_a_live_server_is_unknown_and_kept() {
    let env = TestEnv::new();
    let server = server(&env);
    let file = tree_lock(&env, "default/resources");

    // No ov.conf names this workspace: its server may set a longer
    // lock_expire_secs than OpenViking's default, so 45 s proves nothing.
    let r = status_of_45s_lease(&env, &file, &[]);
    r.expect(1, "held", vec![server.pid()]);
    let (state, reason) = judged(&r.dir, &file);
    assert_eq!(state, "unknown", "{}", ctx(&r));
    assert!(reason.contains("--config"), "{reason}");
    assert_eq!(r.dir["path_lock_expire_seconds"], 30.0);
    assert_eq!(
        r.dir["path_lock_expire_source"],
        json!({"key": null, "config_file": null})
    );
    assert!(r.text.contains("OpenViking's default"), "{}", r.text);
    let cleared = env.run(&["clear-stale", "--json", &env.ws_str()]);
    assert_eq!(strings(&cleared.dir()["removed"]), Vec::<String>::new());
    assert!(file.exists());

    // An ov.conf that names the workspace and sets nothing: 30 s is the
    // server's own, and the lease is stale.
    let config = conf(&env, "ov.conf", json!({}));
    let r = env.status_with(&["--config", s(&config)]);
    let (state, reason) = judged(&r.dir, &file);
    assert_eq!(state, "stale", "{}", ctx(&r));
    assert!(reason.contains("30s"), "{reason}");
}

#[test]
fn a_lock_expire_openviking_refuses_is_a_warning_not_a_crash() {
    for (key, value) in [
        ("current", json!(0)),
        ("current", json!("abc")),
        ("deprecated", json!("abc")),
    ] {
        let env = TestEnv::new();
        let server = server(&env);
        let file = put(&tree_lock(&env, "default/resources"), token_aged(45, 'T'));
        let storage = match key {
            "current" => json!({"agfs": {"pathlock": {"lock_expire_secs": value}}}),
            _ => json!({"transaction": {"lock_expire": value}}),
        };
        let config = conf(&env, "ov.conf", storage);

        let r = env.status_with(&["--config", s(&config)]);
        let what = format!("{key} = {value}\n{}", ctx(&r));
        r.expect(1, "held", vec![server.pid()]);
        assert_eq!(r.dir["path_lock_expire_seconds"], Value::Null, "{what}");
        assert!(
            r.warnings().contains("refuses") && r.warnings().contains(&value.to_string()),
            "{what}"
        );
        assert_ne!(
            judged(&r.dir, &file).0,
            "stale",
            "a lease's age cannot be weighed without lock_expire_secs: {what}"
        );
        let check = env.run(&["check", "--config", s(&config), &env.ws_str()]);
        assert_eq!(check.code, 1, "{check:?}");
        assert!(!check.stderr.contains("panicked"), "{check:?}");
    }
}

// ---------------------------------------------------------------------------
// Tokens that are not files here

#[test]
fn tokens_kept_elsewhere_are_not_looked_for() {
    for (storage, store) in [
        (
            json!({"agfs": {"pathlock": {"provider": "memory"}}}),
            "provider memory",
        ),
        (
            json!({"agfs": {"pathlock": {"provider": "cache"}}}),
            "provider cache",
        ),
        (json!({"agfs": {"backend": "s3"}}), "backend s3"),
    ] {
        let env = TestEnv::new();
        // Left by a server that once kept its tokens in files: not this one's.
        put_old(&tree_lock(&env, "default/resources"), CORRUPT, 60);
        let config = conf(&env, "ov.conf", storage);

        let r = env.status_with(&["--config", s(&config)]);
        let what = format!("{store}\n{}", ctx(&r));
        r.expect(0, "free", vec![]);
        assert_eq!(r.dir["path_lock_search"]["state"], "not_local", "{what}");
        assert_eq!(r.dir["path_lock_search"]["store"], store, "{what}");
        assert_eq!(path_locks(&r.dir).len(), 0, "{what}");
        assert!(
            r.text.contains("the tokens are not files on this host") && r.text.contains(store),
            "{what}"
        );
        assert!(!r.text.contains(".path.ovlock"), "{what}");
    }
}

// ---------------------------------------------------------------------------
// Symlinks and special files

#[test]
fn a_symlinked_lock_file_is_never_followed() {
    let env = TestEnv::new();
    // A lease left behind: followed, it would be read, judged stale and removed.
    let target = put(&env.root().join("outside/token"), token_aged(3600, 'T'));
    let link = tree_lock(&env, "default/resources");
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let target_before = file_state(&target);

    let r = env.status();
    let e = entry(&r.dir, &link);
    assert_eq!(e["state"], "unknown", "{}", ctx(&r));
    assert!(
        e["reason"].as_str().unwrap().contains("symbolic link"),
        "{e:#}"
    );
    assert_eq!(e["owner"], Value::Null, "its target was read: {e:#}");
    assert_ne!(r.verdict(), "stale", "{}", ctx(&r));

    let run = clear_json(&env, &[]);
    assert_eq!(
        strings(&run.dir()["removed"]),
        Vec::<String>::new(),
        "{run:?}"
    );
    assert_eq!(file_state(&target), target_before, "the target was touched");
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn a_symlinked_tree_is_not_followed() {
    let env = TestEnv::new();
    let real = env.root().join("real");
    let target = put_old(&real.join("default/resources/.path.ovlock"), CORRUPT, 3600);
    std::os::unix::fs::symlink(&real, viking(&env)).unwrap();
    let target_before = file_state(&target);

    let r = env.status();
    r.expect(0, "free", vec![]);
    assert_eq!(
        r.dir["path_lock_search"]["state"],
        "tree_not_a_directory",
        "{}",
        ctx(&r)
    );
    assert_eq!(path_locks(&r.dir).len(), 0, "{}", ctx(&r));
    assert!(
        r.warnings().contains("symbolic link") && r.warnings().contains("viking"),
        "{}",
        ctx(&r)
    );

    let run = clear_json(&env, &[]);
    assert_eq!(
        strings(&run.dir()["removed"]),
        Vec::<String>::new(),
        "{run:?}"
    );
    assert_eq!(file_state(&target), target_before);
}

#[test]
fn a_symlinked_directory_inside_the_tree_is_not_entered() {
    let env = TestEnv::new();
    let outside = put_old(&env.root().join("outside/sub/.path.ovlock"), CORRUPT, 3600);
    fs::create_dir_all(viking(&env).join("default")).unwrap();
    std::os::unix::fs::symlink(
        env.root().join("outside/sub"),
        viking(&env).join("default/linked"),
    )
    .unwrap();
    let real = put_old(&tree_lock(&env, "default/resources"), CORRUPT, 60);
    let outside_before = file_state(&outside);

    let r = env.status();
    r.expect(2, "stale", vec![]);
    assert_eq!(listed(&r.dir), [s(&real)], "{}", ctx(&r));
    assert!(!r.text.contains("linked"), "{}", r.text);

    let run = clear_json(&env, &[]);
    assert_eq!(strings(&run.dir()["removed"]), [s(&real)], "{run:?}");
    assert_eq!(file_state(&outside), outside_before);
}

#[test]
fn a_fifo_lock_file_does_not_block() {
    let env = TestEnv::new();
    let fifo = mkfifo(&tree_lock(&env, "default/resources"));
    let limit = Duration::from_secs(20);

    for sub in ["check", "status", "who", "clear-stale"] {
        let run = run_cmd_within(&mut env.command(&[sub, "--json", &env.ws_str()]), limit);
        let dir = run.dir();
        let e = entry(&dir, &fifo);
        assert_eq!(e["state"], "unknown", "{sub}: {e:#}");
        assert!(
            e["reason"].as_str().unwrap().contains("FIFO"),
            "{sub}: {e:#}"
        );
        assert_ne!(run.code, 2, "{sub}: nothing is known to be stale: {run:?}");
    }
    let text = run_cmd_within(&mut env.command(&["check", &env.ws_str()]), limit);
    assert!(text.stdout.contains("cannot be judged"), "{text:?}");
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
}

// ---------------------------------------------------------------------------
// Hostile bytes

#[test]
fn hostile_bytes_in_tokens_and_names_are_escaped_in_text_and_exact_in_json() {
    let env = TestEnv::new();
    let mut server = server(&env);
    let hostile_dir = "evil\n\x1b[31mdir";
    let hostile_owner = "\x1b]0;pwned\x07\x1b[31mlease\r";
    // A held lease whose id and directory carry escapes, and a stale token of
    // control bytes and a lone C1 CSI byte whose lock type is ESC, which the
    // reason quotes.
    let held = put(
        &tree_lock(&env, &format!("default/{hostile_dir}")),
        token_of(hostile_owner, 0, 'T'),
    );
    let stale = put_old(
        &tree_lock(&env, &format!("default/{hostile_dir}/sub")),
        b"\x1b[2J\x1b[31mabc\x08\x9b:17:\x1b",
        60,
    );

    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    let e = entry(&r.dir, &held);
    assert_eq!(e["path"], s(&held), "{e:#}");
    assert_eq!(e["uri"], format!("viking://{hostile_dir}"), "{e:#}");
    assert_eq!(e["owner"], hostile_owner, "{e:#}");
    assert_eq!(e["state"], "held", "{e:#}");
    let e = entry(&r.dir, &stale);
    assert_eq!(e["path"], s(&stale), "{e:#}");
    assert_eq!(e["uri"], format!("viking://{hostile_dir}/sub"), "{e:#}");
    assert_eq!(e["state"], "stale", "{e:#}");
    assert!(
        e["reason"].as_str().unwrap().contains("lock type '\x1b'"),
        "{e:#}"
    );

    let escaped = r"evil\n\x1b[31mdir";
    let outputs = texts(&env);
    for (sub, text) in &outputs {
        assert!(
            !has_raw_control(text),
            "{sub} printed raw control bytes:\n{text:?}"
        );
    }
    let status = &outputs[0].1;
    for what in [escaped, r"lock type '\x1b'"] {
        assert!(
            status.contains(what),
            "status does not show {what} escaped:\n{status}"
        );
    }
    let who = &outputs[2].1;
    assert!(
        who.lines()
            .any(|l| l.contains("Leases") && l.contains(escaped)),
        "who does not list the held lease, escaped:\n{who}"
    );
    let dry = &outputs[3].1;
    assert!(
        dry.contains(&format!(r"{escaped}/sub/.path.ovlock")),
        "clear-stale --dry-run does not name the stale file, escaped:\n{dry}"
    );

    let run = clear_json(&env, &[]);
    assert_eq!(strings(&run.dir()["removed"]), [s(&stale)], "{run:?}");
    assert!(held.exists());

    // Without its owner the lease is left behind, and the first reason of
    // every subcommand names its directory.
    server.kill();
    for (sub, text) in texts(&env) {
        assert!(
            !has_raw_control(&text),
            "{sub} printed raw control bytes:\n{text:?}"
        );
        assert!(
            text.contains(&format!("viking://{escaped}")),
            "{sub} does not name the lease's directory, escaped:\n{text}"
        );
    }
}

/// The text (stdout and stderr) of status, check, who and clear-stale
/// --dry-run on the data directory.
fn texts(env: &TestEnv) -> Vec<(&'static str, String)> {
    let ws = env.ws_str();
    [
        ("status", &["status"][..]),
        ("check", &["check"][..]),
        ("who", &["who"][..]),
        ("clear-stale --dry-run", &["clear-stale", "--dry-run"][..]),
    ]
    .into_iter()
    .map(|(name, args)| {
        let mut full = args.to_vec();
        full.extend(["--color", "never", &ws]);
        let run = env.run(&full);
        (name, format!("{}{}", run.stdout, run.stderr))
    })
    .collect()
}

// ---------------------------------------------------------------------------
// What clear-stale removes, and what nothing else changes

/// A tree with one of each kind of path lock (and the storage's own files),
/// none of which may change under a read-only subcommand.
fn rich_tree(env: &TestEnv) {
    let v = viking(env);
    put_old(&v.join("default/corrupt/.path.ovlock"), CORRUPT, 60);
    put(
        &v.join("default/expired/.path.ovlock"),
        token_aged(3600, 'T'),
    );
    put(&v.join("default/fresh/.path.ovlock"), token_aged(0, 'T'));
    put(
        &v.join("default/future/.path.ovlock"),
        token_aged(-86_400, 'T'),
    );
    put(&v.join("default/empty/.path.ovlock"), "");
    put_old(&v.join("default/legacy/.path.ovlock"), b"OVE1\x00\x01", 60);
    put(&v.join("default/resources/new file.md"), "text");
    put(
        &v.join("default/resources/.exact.ovlock.new_file.md.77ed9eafed6a3362"),
        token_aged(3600, 'E'),
    );
    put(&v.join(".path.ovlock"), token_aged(3600, 'T'));
    put_old(&v.join("default/evil\n\x1b[31m/.path.ovlock"), CORRUPT, 60);
    let outside = put_old(&env.root().join("outside/token"), CORRUPT, 3600);
    fs::create_dir_all(v.join("default/link")).unwrap();
    std::os::unix::fs::symlink(&outside, v.join("default/link/.path.ovlock")).unwrap();
    mkfifo(&v.join("default/fifo/.path.ovlock"));
    put_old(&env.ws().join("vectordb/context/store/LOCK"), "", 3600);
    put_old(&env.ws().join("_system/queue/queue.db"), "SQLite", 3600);
    put_old(&env.ws().join("_system/queue/queue.db-wal"), CORRUPT, 3600);
    put_old(&env.ws().join("_system/queue/queue.db-shm"), "", 3600);
}

#[test]
fn read_only_subcommands_change_nothing() {
    let env = TestEnv::new();
    rich_tree(&env);
    let ws = env.ws_str();
    let runs: &[&[&str]] = &[
        &["status"],
        &["check"],
        &["who"],
        &["status", "--json"],
        &["check", "--json"],
        &["who", "--json"],
        &["clear-stale", "--dry-run"],
        &["clear-stale", "--dry-run", "--json"],
    ];
    let run_all = |owned: bool| {
        let before = snapshot(env.root());
        for args in runs {
            let mut full = args.to_vec();
            full.push(&ws);
            let run = env.run(&full);
            assert!(
                run.stdout.contains("path lock") || run.stdout.contains("path_locks"),
                "{args:?} (owned: {owned}) did not look at the path locks: {run:?}"
            );
            assert_eq!(
                snapshot(env.root()),
                before,
                "{args:?} (owned: {owned}) changed the tree"
            );
        }
    };
    run_all(false);
    let _server = server(&env);
    run_all(true);
}

#[test]
fn clear_stale_json_lists_what_it_removes_and_never_touches_other_lock_like_files() {
    let env = TestEnv::new();
    let v = viking(&env);
    let corrupt = put_old(&v.join("default/corrupt/.path.ovlock"), CORRUPT, 60);
    let expired = put(
        &v.join("default/expired/.path.ovlock"),
        token_aged(3600, 'T'),
    );
    let sidecar = put(
        &v.join("default/resources/.exact.ovlock.gone.md.0123456789abcdef"),
        token_aged(3600, 'E'),
    );
    // Lock-like files that are not path locks, however stale they look.
    let keep: Vec<PathBuf> = vec![
        put_old(&env.lock_path(), "", 3600),
        put_old(&env.ws().join("vectordb/x/store/LOCK"), "", 3600),
        put_old(&env.ws().join("_system/queue/queue.db"), "SQLite", 3600),
        put_old(&env.ws().join("_system/queue/queue.db-wal"), CORRUPT, 3600),
        put_old(&env.ws().join("_system/queue/queue.db-shm"), CORRUPT, 3600),
        put_old(&env.ws().join("vectordb/.path.ovlock"), CORRUPT, 3600),
        put_old(&v.join("default/corrupt/.path.ovlock.bak"), CORRUPT, 3600),
    ];
    let kept_before: Vec<_> = keep.iter().map(|p| file_state(p)).collect();
    let want = sorted(vec![
        s(&corrupt).into(),
        s(&expired).into(),
        s(&sidecar).into(),
    ]);

    let dry = clear_json(&env, &["--dry-run"]);
    let dir = dry.dir();
    assert_eq!(sorted(strings(&dir["would_remove"])), want, "{dir:#}");
    assert_eq!(strings(&dir["removed"]), Vec::<String>::new(), "{dir:#}");
    assert!(corrupt.exists() && expired.exists() && sidecar.exists());

    let run = clear_json(&env, &[]);
    assert_eq!(run.code, 0, "free once cleared: {run:?}");
    let dir = run.dir();
    assert_eq!(sorted(strings(&dir["removed"])), want, "{dir:#}");
    assert_eq!(
        strings(&dir["would_remove"]),
        Vec::<String>::new(),
        "{dir:#}"
    );
    assert_eq!(dir["failed"], json!([]), "{dir:#}");
    for path in &want {
        assert!(!Path::new(path).exists(), "{path} is still there");
        assert!(Path::new(path).is_absolute(), "{path}");
    }
    let kept_after: Vec<_> = keep.iter().map(|p| file_state(p)).collect();
    assert_eq!(
        kept_after, kept_before,
        "a file that is no path lock was touched"
    );
    // The directories stay too.
    assert!(v.join("default/corrupt").is_dir() && v.join("default/resources").is_dir());

    let again = clear_json(&env, &[]);
    assert_eq!(
        strings(&again.dir()["removed"]),
        Vec::<String>::new(),
        "{again:?}"
    );
}

#[test]
fn check_counts_stale_path_locks_behind_another_reason() {
    let env = TestEnv::new();
    let server = server(&env);
    put_old(&tree_lock(&env, "default/a"), CORRUPT, 60);
    put(&tree_lock(&env, "default/b"), token_aged(3600, 'T'));
    put(&tree_lock(&env, "default/c"), token_aged(0, 'T'));

    let run = check_line(&env);
    assert_eq!(run.code, 1, "{run:?}");
    let line = run.stdout.trim_end();
    assert_eq!(run.stdout.lines().count(), 1, "{run:?}");
    assert!(names_pid(line, server.pid()), "{line}");
    assert!(line.ends_with("(2 stale path locks)"), "{line}");

    // Once stale path locks are the first reason, they are not counted twice.
    drop(server);
    let run = check_line(&env);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(!run.stdout.contains("(3 stale path locks)"), "{run:?}");
    assert!(run.stdout.contains("3 path locks"), "{run:?}");
}

#[test]
fn ten_thousand_path_locks_stay_readable() {
    const DIRS: usize = 100;
    const PER_DIR: usize = 100;
    let env = TestEnv::new();
    // A day's lock_expire_secs: the held leases cannot age out during the test.
    let config = expire_conf(&env, 86_400);
    let server = server(&env);
    let fresh = token_aged(0, 'E');
    let old = token_aged(2 * 86_400, 'E');
    for d in 0..DIRS {
        let dir = viking(&env).join(format!("default/d{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..PER_DIR {
            let n = d * PER_DIR + f;
            let token = if n % 2 == 0 { &fresh } else { &old };
            fs::write(dir.join(format!(".exact.ovlock.f{f}.md.{n:016x}")), token).unwrap();
        }
    }

    let r = env.status_with(&["--config", s(&config)]);
    r.expect(1, "held", vec![server.pid()]);
    let all = path_locks(&r.dir);
    assert_eq!(all.len(), DIRS * PER_DIR, "JSON lists every one");
    let count = |state: &str| all.iter().filter(|p| p["state"] == state).count();
    assert_eq!((count("held"), count("stale")), (5_000, 5_000));
    let lines = r.text.lines().count();
    assert!(lines < 100, "status printed {lines} lines:\n{}", r.text);
    assert!(r.text.contains("and 4980 more"), "{}", r.text);
    assert!(r.text.contains("5000 held"), "{}", r.text);

    let run = env.run(&["check", "--config", s(&config), &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout.trim_end().ends_with("(5000 stale path locks)"),
        "{run:?}"
    );

    let who = env.run(&[
        "who",
        "--color",
        "never",
        "--config",
        s(&config),
        &env.ws_str(),
    ]);
    assert!(who.stdout.lines().count() < 100, "{}", who.stdout);
    assert!(who.stdout.contains("4980 more"), "{}", who.stdout);
}
