//! `ovlock metrics` (issue 11) with the real tools: each verdict made for
//! real and read back from the exposition, promtool's linter over every one
//! of them and over hostile directory names, a real node_exporter serving
//! the textfile on 127.0.0.1, a reader that parses every version of the
//! textfile while ovlock rewrites it, the failures to write it, and the
//! capabilities contrib/systemd/ovlock-metrics.service gives the scan.
//!
//! The exposition is parsed strictly (`support::prometheus::parse`), so that
//! a file cut short, a label escaped wrongly or a family without its HELP
//! and TYPE fails a test rather than being skipped over.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::prometheus::{Exposition, family_of, parse};
use crate::support::*;

// ---------------------------------------------------------------------------
// The exposition, read

impl Exposition {
    fn dir_value(&self, name: &str, dir: &str) -> f64 {
        self.value(name, &[("data_dir", dir)])
    }

    /// The verdict whose sample is 1 (and checks the other four are 0).
    fn verdict(&self, dir: &str) -> String {
        let mut on = Vec::new();
        for v in VERDICTS {
            match self.value("ovlock_verdict", &[("data_dir", dir), ("verdict", v)]) {
                1.0 => on.push(v),
                0.0 => {}
                other => panic!("ovlock_verdict {dir} {v} is {other}, not 0 or 1"),
            }
        }
        assert_eq!(on.len(), 1, "{dir}: verdicts at 1: {on:?}");
        on[0].to_string()
    }

    fn path_locks(&self, dir: &str, state: &str) -> f64 {
        self.value("ovlock_path_locks", &[("data_dir", dir), ("state", state)])
    }
}

const VERDICTS: [&str; 5] = ["free", "held", "stale", "contended", "unknown"];
const PATH_LOCK_STATES: [&str; 3] = ["held", "stale", "unknown"];

/// The families of the contract with one sample per directory.
const PER_DIR: [&str; 6] = [
    "ovlock_owners",
    "ovlock_stale_locks",
    "ovlock_oldest_path_lock_seconds",
    "ovlock_storage_users",
    "ovlock_path_lock_expire_seconds",
    "ovlock_path_locks",
];
/// The families of the contract with one sample per run, and no label.
const PER_RUN: [&str; 3] = [
    "ovlock_uninspected_processes",
    "ovlock_last_run_timestamp_seconds",
    "ovlock_run_duration_seconds",
];

/// Every family of the contract is there, a gauge with HELP, with a sample
/// for each of `dirs` and for no other directory: all five verdicts and all
/// three path-lock states included, and the build.
fn check_families(x: &Exposition, dirs: &[String]) {
    let want: Vec<&String> = {
        let mut d: Vec<&String> = dirs.iter().collect();
        d.sort();
        d
    };
    for name in x.samples.iter().map(|s| family_of(&s.name)) {
        if name.starts_with("ovlock_") {
            assert_eq!(
                x.types.get(name).map(String::as_str),
                Some("gauge"),
                "{name}"
            );
            assert!(
                x.help.get(name).is_some_and(|h| !h.is_empty()),
                "{name} has no HELP"
            );
        }
    }
    let dirs_of = |name: &str, per_dir: usize| {
        let samples = x.of(name);
        assert!(x.types.contains_key(name), "no family {name}");
        let mut seen: Vec<&String> = samples.iter().map(|s| &s.labels["data_dir"]).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, want, "{name}: the directories");
        assert_eq!(samples.len(), dirs.len() * per_dir, "{name}: {samples:#?}");
    };
    dirs_of("ovlock_verdict", VERDICTS.len());
    for d in dirs {
        let _ = x.verdict(d);
        for state in PATH_LOCK_STATES {
            let n = x.path_locks(d, state);
            assert!(n >= 0.0 && n.fract() == 0.0, "{d} {state}: {n}");
        }
    }
    for name in PER_DIR {
        let per = if name == "ovlock_path_locks" {
            PATH_LOCK_STATES.len()
        } else {
            1
        };
        dirs_of(name, per);
    }
    for name in PER_RUN {
        let v = x.value(name, &[]);
        assert!(v.is_finite() && v >= 0.0, "{name} {v}");
    }
    assert_eq!(
        x.value(
            "ovlock_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

// ---------------------------------------------------------------------------
// Running it

/// `ovlock metrics ARGS`: exit 0, nothing on stderr, and stdout parsed.
fn metrics(env: &TestEnv, args: &[&str]) -> (String, Exposition) {
    let mut all = vec!["metrics"];
    all.extend_from_slice(args);
    let run = env.run(&all);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
    let x = parse(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.stdout));
    (run.stdout, x)
}

/// `promtool check metrics` on `text`: it must parse and lint clean, with
/// nothing to say.
fn promtool_check(text: &str, what: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run promtool ({e}); {PROBED}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {what}: {}\n{}{}\n--- the metrics ---\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
}

// ---------------------------------------------------------------------------
// Situations, made for real

/// A lease token as OpenViking writes one, refreshed `ago` before now.
fn token(ago: Duration) -> String {
    let ns = (SystemTime::now() - ago)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("5b3c1d2e-metrics-test:{ns}:T")
}

/// A tree lease on `viking://{dir}` of the default account, freshly written.
fn lease(ws: &Path, dir: &str) -> PathBuf {
    let d = ws.join("viking/default").join(dir);
    fs::create_dir_all(&d).unwrap();
    let file = d.join(".path.ovlock");
    fs::write(&file, token(Duration::ZERO)).unwrap();
    file
}

/// One verdict made for real, with what must stay alive for it.
struct Situation {
    env: TestEnv,
    verdict: &'static str,
    _keep: Vec<Proc>,
    /// When the held lease was written, if there is one.
    lease_written: Option<Instant>,
}

/// Nothing there at all.
fn free() -> Situation {
    Situation {
        env: TestEnv::new(),
        verdict: "free",
        _keep: vec![],
        lease_written: None,
    }
}

/// A server holding .openviking.lock, a lease it holds in the storage
/// tree, and a shell-like process whose current directory it is.
fn held() -> Situation {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let onlooker = spawn_sleep_in(&env.ws());
    let written = Instant::now();
    lease(&env.ws(), "resources/docs");
    Situation {
        env,
        verdict: "held",
        _keep: vec![server, onlooker],
        lease_written: Some(written),
    }
}

/// A pid file of a process that has exited, and a lease nothing refreshes.
fn stale() -> Situation {
    let env = TestEnv::new();
    fs::write(env.pid_path(), dead_pid().to_string()).unwrap();
    set_mtime(&env.pid_path(), ago(60));
    lease(&env.ws(), "resources");
    Situation {
        env,
        verdict: "stale",
        _keep: vec![],
        lease_written: None,
    }
}

/// A new server holding .openviking.lock and an old one with its pid file.
fn contended() -> Situation {
    let env = TestEnv::new();
    let new = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let old = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    Situation {
        env,
        verdict: "contended",
        _keep: vec![new, old],
        lease_written: None,
    }
}

/// A FIFO where .openviking.lock should be, and one where a path lock is.
fn unknown() -> Situation {
    let env = TestEnv::new();
    mkfifo(&env.lock_path());
    let d = env.ws().join("viking/default/resources");
    fs::create_dir_all(&d).unwrap();
    mkfifo(&d.join(".path.ovlock"));
    Situation {
        env,
        verdict: "unknown",
        _keep: vec![],
        lease_written: None,
    }
}

const SITUATIONS: [fn() -> Situation; 5] = [free, held, stale, contended, unknown];

/// Runs `metrics` on the situation's directory, checks the whole exposition
/// and the verdict, and returns it.
fn measure(s: &Situation) -> (String, Exposition) {
    let ws = s.env.ws_str();
    let (text, x) = metrics(&s.env, &[&ws]);
    check_families(&x, std::slice::from_ref(&ws));
    assert_eq!(x.verdict(&ws), s.verdict, "{text}");
    (text, x)
}

#[test]
fn free_directory_has_nothing_to_count() {
    let s = free();
    let (text, x) = measure(&s);
    let ws = s.env.ws_str();
    for name in [
        "ovlock_owners",
        "ovlock_stale_locks",
        "ovlock_oldest_path_lock_seconds",
        "ovlock_storage_users",
    ] {
        assert_eq!(x.dir_value(name, &ws), 0.0, "{name}\n{text}");
    }
    for state in PATH_LOCK_STATES {
        assert_eq!(x.path_locks(&ws, state), 0.0, "{state}\n{text}");
    }
    assert_eq!(
        x.dir_value("ovlock_path_lock_expire_seconds", &ws),
        30.0,
        "OpenViking's default lock_expire_secs\n{text}"
    );
}

#[test]
fn held_directory_counts_its_owner_its_lease_and_its_onlooker() {
    let s = held();
    let (text, x) = measure(&s);
    let ws = s.env.ws_str();
    assert_eq!(x.dir_value("ovlock_owners", &ws), 1.0, "{text}");
    assert_eq!(x.dir_value("ovlock_stale_locks", &ws), 0.0, "{text}");
    assert_eq!(x.path_locks(&ws, "held"), 1.0, "{text}");
    assert_eq!(x.path_locks(&ws, "stale"), 0.0, "{text}");
    assert_eq!(x.path_locks(&ws, "unknown"), 0.0, "{text}");
    assert_eq!(
        x.dir_value("ovlock_storage_users", &ws),
        1.0,
        "the sleep in it\n{text}"
    );
    // Its age comes from the file's creation time, where the filesystem
    // keeps one (0 where it does not): never more than since it was made.
    let age = x.dir_value("ovlock_oldest_path_lock_seconds", &ws);
    let since = s.lease_written.unwrap().elapsed().as_secs_f64();
    assert!(
        (0.0..=since).contains(&age),
        "{age} s, written {since} s ago\n{text}"
    );
}

#[test]
fn stale_directory_counts_its_pid_file_and_its_path_lock() {
    let s = stale();
    let (text, x) = measure(&s);
    let ws = s.env.ws_str();
    assert_eq!(x.dir_value("ovlock_owners", &ws), 0.0, "{text}");
    assert_eq!(
        x.dir_value("ovlock_stale_locks", &ws),
        2.0,
        "the pid file and the lease\n{text}"
    );
    assert_eq!(x.path_locks(&ws, "stale"), 1.0, "{text}");
    assert_eq!(x.path_locks(&ws, "held"), 0.0, "{text}");
    assert_eq!(
        x.dir_value("ovlock_oldest_path_lock_seconds", &ws),
        0.0,
        "no lease is held\n{text}"
    );
}

#[test]
fn stale_path_lock_alone_makes_a_stale_directory() {
    let env = TestEnv::new();
    lease(&env.ws(), "resources");
    let ws = env.ws_str();
    let (text, x) = metrics(&env, &[&ws]);
    check_families(&x, std::slice::from_ref(&ws));
    assert_eq!(x.verdict(&ws), "stale", "{text}");
    assert_eq!(x.dir_value("ovlock_stale_locks", &ws), 1.0, "{text}");
    assert_eq!(x.path_locks(&ws, "stale"), 1.0, "{text}");
}

#[test]
fn contended_directory_counts_both_owners() {
    let s = contended();
    let (text, x) = measure(&s);
    assert_eq!(x.dir_value("ovlock_owners", &s.env.ws_str()), 2.0, "{text}");
}

#[test]
fn unknown_directory_counts_its_undecided_path_lock() {
    let s = unknown();
    let (text, x) = measure(&s);
    let ws = s.env.ws_str();
    assert_eq!(x.dir_value("ovlock_owners", &ws), 0.0, "{text}");
    assert_eq!(x.path_locks(&ws, "unknown"), 1.0, "{text}");
}

#[test]
fn several_directories_are_one_exposition_with_a_verdict_each() {
    let situations: Vec<Situation> = SITUATIONS.iter().map(|make| make()).collect();
    let dirs: Vec<String> = situations.iter().map(|s| s.env.ws_str()).collect();
    let args: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let (text, x) = metrics(&situations[0].env, &args);
    check_families(&x, &dirs);
    for s in &situations {
        assert_eq!(x.verdict(&s.env.ws_str()), s.verdict, "{text}");
    }
    // One survey, and its duration is a plausible one.
    let took = x.value("ovlock_run_duration_seconds", &[]);
    assert!(took > 0.0 && took < 60.0, "{took}");
}

#[test]
fn last_run_timestamp_is_the_time_of_the_run() {
    let env = TestEnv::new();
    let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (_, x) = metrics(&env, &[&env.ws_str()]);
    let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let at = x.value("ovlock_last_run_timestamp_seconds", &[]);
    // Seconds, not milliseconds: the alert compares it with time().
    assert!(
        (before.as_secs_f64() - 1.0..=after.as_secs_f64() + 1.0).contains(&at),
        "{at} not within {before:?}..{after:?}"
    );
}

#[test]
fn all_adds_a_directory_in_use_that_was_not_named() {
    let env = TestEnv::new();
    let _server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let named = TestEnv::new();
    let (text, x) = metrics(&env, &["--all", &named.ws_str()]);
    assert_eq!(x.verdict(&env.ws_str()), "held", "{text}");
    assert_eq!(x.verdict(&named.ws_str()), "free", "{text}");
    assert_eq!(x.dir_value("ovlock_owners", &env.ws_str()), 1.0, "{text}");
}

#[test]
#[cfg_attr(
    ovlock_test_no_promtool,
    ignore = "needs promtool, from Debian's prometheus package (probed by build.rs)"
)]
fn promtool_passes_the_metrics_of_every_verdict() {
    for make in SITUATIONS {
        let s = make();
        let (text, _) = measure(&s);
        promtool_check(&text, s.verdict);
    }
    // And of all five at once.
    let situations: Vec<Situation> = SITUATIONS.iter().map(|make| make()).collect();
    let dirs: Vec<String> = situations.iter().map(|s| s.env.ws_str()).collect();
    let args: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let (text, _) = metrics(&situations[0].env, &args);
    promtool_check(&text, "all five verdicts");
}

#[test]
fn the_parser_here_is_as_strict_as_the_format() {
    // A parser that accepted what the format forbids would let the tests
    // above pass on broken output.
    assert!(parse("a{d=\"x\\qy\"} 1\n").is_err());
    assert!(parse("a{d=\"x\ny\"} 1\n").is_err());
    assert!(parse("a{d=\"x\"} 1").is_err(), "no final newline");
    assert!(parse("a{d=\"x\",verd").is_err());
    assert!(parse("# TYPE a gauge\na 1\n# TYPE a gauge\n").is_err());
    let x = parse("# TYPE a gauge\na{d=\"q\\\"b\\\\c\\nd\"} 1\n").unwrap();
    assert_eq!(x.samples[0].labels["d"], "q\"b\\c\nd");
}

// ---------------------------------------------------------------------------
// Hostile directory names

/// Names a directory may have that the format must escape or carry: a
/// quote, backslashes (one at the end), a newline, UTF-8 of several widths,
/// an escape sequence, a tab, and the format's own punctuation.
const HOSTILE: [&str; 7] = [
    "quote\"in",
    "back\\slash\\",
    "new\nline",
    "utf8 é 日本 🦀",
    "esc\x1b[31mred\x1b[0m",
    "tab\tin",
    "punct}{=,\" 1",
];

/// The hostile directories, made in `env`'s root.
fn hostile_dirs(env: &TestEnv) -> Vec<String> {
    HOSTILE
        .iter()
        .map(|name| {
            let dir = env.root().join(name);
            fs::create_dir(&dir).unwrap();
            dir.to_str().unwrap().to_string()
        })
        .collect()
}

#[test]
fn hostile_directory_names_are_escaped_and_read_back_whole() {
    let env = TestEnv::new();
    let dirs = hostile_dirs(&env);
    let _server = spawn_holder("flock", &Path::new(&dirs[0]).join(LOCK), SERVER_TAG);
    let args: Vec<&str> = dirs.iter().map(String::as_str).collect();
    // Each label, unescaped by the strict parser, is the path as given.
    let (text, x) = metrics(&env, &args);
    check_families(&x, &dirs);
    assert_eq!(x.verdict(&dirs[0]), "held", "{text}");
    assert_eq!(x.dir_value("ovlock_owners", &dirs[0]), 1.0, "{text}");
    for d in &dirs[1..] {
        assert_eq!(x.verdict(d), "free", "{d:?}\n{text}");
    }
}

#[test]
#[cfg_attr(
    ovlock_test_no_promtool,
    ignore = "needs promtool, from Debian's prometheus package (probed by build.rs)"
)]
fn promtool_passes_the_metrics_of_hostile_directory_names() {
    let env = TestEnv::new();
    let dirs = hostile_dirs(&env);
    let args: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let (text, _) = metrics(&env, &args);
    promtool_check(&text, "hostile names");
}

/// A label must be UTF-8: bytes that are not are spelled `\xNN`, so that
/// node_exporter does not drop one of two such series as a duplicate.
#[test]
fn directories_whose_names_are_not_utf8_keep_distinct_labels() {
    let env = TestEnv::new();
    let dirs: Vec<PathBuf> = [&b"bad\xff"[..], b"bad\xfe"]
        .iter()
        .map(|name| {
            let dir = env.root().join(OsStr::from_bytes(name));
            fs::create_dir(&dir).unwrap();
            dir
        })
        .collect();
    let args: Vec<&OsStr> = dirs.iter().map(|d| d.as_os_str()).collect();
    let mut all: Vec<&OsStr> = vec![OsStr::new("metrics")];
    all.extend(args);
    let run = env.run(&all);
    assert_eq!(run.code, 0, "{run:?}");
    let x = parse(&run.stdout).unwrap();
    let mut labels: Vec<&String> = x
        .of("ovlock_owners")
        .iter()
        .map(|s| &s.labels["data_dir"])
        .collect();
    labels.dedup();
    assert_eq!(labels.len(), 2, "one series each:\n{}", run.stdout);
}

// ---------------------------------------------------------------------------
// The textfile

/// `ovlock metrics --textfile FILE ARGS`: exit 0, nothing on stdout.
fn write_textfile(env: &TestEnv, file: &Path, args: &[&str]) {
    let mut all = vec!["metrics", "--textfile", file.to_str().unwrap()];
    all.extend_from_slice(args);
    let run = env.run(&all);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn textfile_is_the_exposition_readable_by_others_with_nothing_beside_it() {
    let s = held();
    let dir = s.env.root().join("textfile");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("ovlock.prom");
    let ws = s.env.ws_str();
    write_textfile(&s.env, &file, &[&ws]);
    let x = parse(&fs::read_to_string(&file).unwrap()).unwrap();
    check_families(&x, std::slice::from_ref(&ws));
    assert_eq!(x.verdict(&ws), "held");
    assert_eq!(names_in(&dir), ["ovlock.prom"]);
    // node_exporter runs as another user, and must read it.
    let mode = fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o044, 0o044, "{mode:o}");
    // Again, over the first.
    write_textfile(&s.env, &file, &[&ws]);
    assert_eq!(names_in(&dir), ["ovlock.prom"]);
}

#[test]
fn textfile_that_cannot_be_written_exits_4_naming_it_and_leaves_nothing() {
    let env = TestEnv::new();
    let ws = env.ws_str();
    let plain_file = env.root().join("plain");
    fs::write(&plain_file, "not a directory").unwrap();
    let a_directory = env.root().join("is-a-dir.prom");
    fs::create_dir(&a_directory).unwrap();
    let cases = [
        env.root().join("absent/ovlock.prom"),
        plain_file.join("ovlock.prom"),
        // Written beside it, then the rename fails: the temporary must go.
        a_directory.clone(),
    ];
    let before = names_in(env.root());
    for file in &cases {
        let run = env.run(&["metrics", "--textfile", file.to_str().unwrap(), &ws]);
        assert_eq!(run.code, 4, "{file:?}: {run:?}");
        assert!(
            run.stderr.contains(file.to_str().unwrap()),
            "the message names {file:?}: {run:?}"
        );
        assert!(run.stdout.is_empty(), "{run:?}");
        assert_eq!(names_in(env.root()), before, "{file:?} left something");
    }
    assert!(names_in(&a_directory).is_empty());
    assert_eq!(fs::read_to_string(&plain_file).unwrap(), "not a directory");
}

#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root, setpriv and user nobody")]
fn textfile_in_a_directory_another_user_owns_exits_4_and_keeps_the_old_file() {
    let env = TestEnv::new();
    open_to_others(&env);
    let dir = env.root().join("textfile");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.join("ovlock.prom");
    fs::write(&file, "# the previous run's\n").unwrap();
    let run = run_as_nobody(
        &env,
        &[
            "metrics",
            "--textfile",
            file.to_str().unwrap(),
            &env.ws_str(),
        ],
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains(file.to_str().unwrap()), "{run:?}");
    assert_eq!(names_in(&dir), ["ovlock.prom"]);
    assert_eq!(fs::read_to_string(&file).unwrap(), "# the previous run's\n");
}

/// Reads `file` over and over until `done`, parsing every version in full
/// and checking it has every family of `dirs`; returns how many it read.
fn read_every_version(file: &Path, dirs: &[String], done: &AtomicBool) -> usize {
    let mut reads = 0;
    loop {
        let finished = done.load(Ordering::Acquire);
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file:?}: {e}"));
        let x = parse(&text).unwrap_or_else(|e| panic!("read {reads}: {e}\n{text}"));
        check_families(&x, dirs);
        reads += 1;
        if finished {
            return reads;
        }
    }
}

#[test]
fn a_reader_never_sees_a_partial_textfile_while_it_is_rewritten() {
    // Every verdict, and enough more directories that the file is tens of
    // kilobytes: more than one write of a careless writer.
    let situations: Vec<Situation> = SITUATIONS.iter().map(|make| make()).collect();
    let env = &situations[0].env;
    let mut dirs: Vec<String> = situations.iter().map(|s| s.env.ws_str()).collect();
    for n in 0..20 {
        let more = env.root().join(format!("more-{n}"));
        fs::create_dir(&more).unwrap();
        dirs.push(more.to_str().unwrap().to_string());
    }
    let dir = env.root().join("textfile");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("ovlock.prom");
    let args: Vec<&str> = dirs.iter().map(String::as_str).collect();
    write_textfile(env, &file, &args);
    assert!(fs::metadata(&file).unwrap().len() > 16 * 1024);

    let done = AtomicBool::new(false);
    let reads = std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_every_version(&file, &dirs, &done));
        let writer = scope.spawn(|| {
            for _ in 0..20 {
                write_textfile(env, &file, &args);
            }
        });
        let written = writer.join();
        done.store(true, Ordering::Release);
        let reads = reader.join();
        written.unwrap();
        reads.unwrap()
    });
    assert!(reads > 0);
    assert_eq!(names_in(&dir), ["ovlock.prom"], "a temporary file was left");
}

// ---------------------------------------------------------------------------
// A real node_exporter

/// A node_exporter serving only its textfile collector, on 127.0.0.1 at a
/// free port; killed and reaped when dropped.
struct NodeExporter {
    child: Child,
    port: u16,
}

impl Drop for NodeExporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_exporter_binary() -> &'static str {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    if on_path("prometheus-node-exporter") {
        "prometheus-node-exporter"
    } else if on_path("node_exporter") {
        "node_exporter"
    } else {
        panic!("no prometheus-node-exporter or node_exporter on PATH; {PROBED}")
    }
}

impl NodeExporter {
    /// Starts it on `textfile_dir` and waits until it answers a scrape. A
    /// port taken between choosing it and binding it makes it exit: then it
    /// starts again on another. Its log goes to a file beside the directory
    /// (a pipe nobody drains could fill and stop it).
    fn start(textfile_dir: &Path) -> NodeExporter {
        let log_path = textfile_dir.with_extension("node_exporter.log");
        for _ in 0..10 {
            let log = fs::File::create(&log_path).unwrap();
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(node_exporter_binary())
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .arg("--collector.disable-defaults")
                .arg("--collector.textfile")
                .arg(format!(
                    "--collector.textfile.directory={}",
                    textfile_dir.display()
                ))
                .arg("--web.disable-exporter-metrics")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("start node_exporter: {e}"));
            let mut exporter = NodeExporter { child, port };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if exporter.try_scrape().is_some() {
                    return exporter;
                }
                if let Some(status) = exporter.child.try_wait().unwrap() {
                    let err = fs::read_to_string(&log_path).unwrap_or_default();
                    assert!(
                        err.contains("address already in use"),
                        "node_exporter exited ({status}): {err}"
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node_exporter did not answer on 127.0.0.1:{port} within 30 s"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("no free port for node_exporter in 10 tries")
    }

    /// GET /metrics: the body, if it answered 200.
    fn try_scrape(&self) -> Option<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        // HTTP/1.0: no chunking, and the server closes at the end.
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.lines().next()?;
        (status.starts_with("HTTP/1.") && status.split(' ').nth(1) == Some("200"))
            .then(|| body.to_string())
    }

    fn scrape(&self) -> Exposition {
        let body = self.try_scrape().expect("node_exporter answers");
        parse(&body).unwrap_or_else(|e| panic!("node_exporter's /metrics: {e}\n{body}"))
    }
}

/// node_exporter read every textfile, without an error.
fn assert_textfile_read(x: &Exposition, file_name: &str) {
    assert_eq!(x.value("node_textfile_scrape_error", &[]), 0.0, "{x:#?}");
    assert!(
        x.of("node_textfile_mtime_seconds")
            .iter()
            .any(|s| s.labels.get("file").is_some_and(|f| f.ends_with(file_name))),
        "node_exporter lists {file_name}: {:#?}",
        x.of("node_textfile_mtime_seconds")
    );
}

#[test]
#[cfg_attr(
    ovlock_test_no_node_exporter,
    ignore = "needs node_exporter, from Debian's prometheus-node-exporter (probed by build.rs)"
)]
fn node_exporter_serves_the_textfile_and_each_rewrite_of_it() {
    let env = TestEnv::new();
    let mut server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let hostile = hostile_dirs(&env);
    let mut dirs = vec![env.ws_str()];
    dirs.extend(hostile.iter().cloned());
    let args: Vec<&str> = dirs.iter().map(String::as_str).collect();
    let textfiles = env.root().join("textfile");
    fs::create_dir(&textfiles).unwrap();
    let file = textfiles.join("ovlock.prom");
    write_textfile(&env, &file, &args);

    let exporter = NodeExporter::start(&textfiles);
    let x = exporter.scrape();
    assert_textfile_read(&x, "ovlock.prom");
    check_families(&x, &dirs);
    let ws = env.ws_str();
    assert_eq!(x.verdict(&ws), "held");
    assert_eq!(x.dir_value("ovlock_owners", &ws), 1.0);
    for d in &hostile {
        assert_eq!(x.verdict(d), "free", "{d:?}");
    }

    // The server goes; the next run says so, and the next scrape serves it.
    server.kill();
    write_textfile(&env, &file, &args);
    let x = exporter.scrape();
    assert_textfile_read(&x, "ovlock.prom");
    assert_eq!(x.verdict(&ws), "free");
    assert_eq!(x.dir_value("ovlock_owners", &ws), 0.0);
    assert_eq!(names_in(&textfiles), ["ovlock.prom"]);
}

#[test]
#[cfg_attr(
    ovlock_test_no_node_exporter,
    ignore = "needs node_exporter, from Debian's prometheus-node-exporter (probed by build.rs)"
)]
fn node_exporter_follows_the_symlink_the_systemd_unit_is_installed_with() {
    // As contrib/systemd/ovlock-metrics.service lays it out: the file in
    // the service's state directory, a symlink to it in the textfile
    // directory. Each run renames a new file into place, and node_exporter
    // must read the new one through the same symlink.
    let s = contended();
    let state = s.env.root().join("state");
    let textfiles = s.env.root().join("textfile");
    fs::create_dir(&state).unwrap();
    fs::create_dir(&textfiles).unwrap();
    let file = state.join("ovlock.prom");
    let ws = s.env.ws_str();
    write_textfile(&s.env, &file, &[&ws]);
    std::os::unix::fs::symlink(&file, textfiles.join("ovlock.prom")).unwrap();

    let exporter = NodeExporter::start(&textfiles);
    let x = exporter.scrape();
    assert_textfile_read(&x, "ovlock.prom");
    assert_eq!(x.verdict(&ws), "contended");
    assert_eq!(x.dir_value("ovlock_owners", &ws), 2.0);

    drop(s._keep);
    write_textfile(&s.env, &file, &[&ws]);
    let x = exporter.scrape();
    assert_textfile_read(&x, "ovlock.prom");
    assert_ne!(x.verdict(&ws), "contended");
    assert_eq!(x.dir_value("ovlock_owners", &ws), 0.0);
}

// ---------------------------------------------------------------------------
// The capabilities the systemd unit gives the scan

const UNIT_CAPS: [&str; 2] = ["sys_ptrace", "dac_read_search"];

/// Parses the stdout of a run as another user.
fn exposition_of(run: &Run) -> Exposition {
    assert_eq!(run.code, 0, "{run:?}");
    parse(&run.stdout).unwrap_or_else(|e| panic!("{e}\n{}", run.stdout))
}

#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root, setpriv and user nobody")]
fn with_the_units_capabilities_another_user_sees_a_private_directory_as_root_does() {
    let env = TestEnv::new();
    open_to_others(&env);
    let _server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    // Only its owner (root) may enter it, as a server's data directory often is.
    fs::set_permissions(env.ws(), fs::Permissions::from_mode(0o700)).unwrap();
    let ws = env.ws_str();
    let args = ["metrics", ws.as_str()];

    let root = metrics(&env, &[&ws]).1;
    assert_eq!(root.verdict(&ws), "held");

    let with = exposition_of(&run_as_nobody_with_caps(&env, &UNIT_CAPS, &args));
    assert_eq!(with.verdict(&ws), "held");
    assert_eq!(with.dir_value("ovlock_owners", &ws), 1.0);

    // Without CAP_DAC_READ_SEARCH it may not look inside.
    let without_dac = exposition_of(&run_as_nobody_with_caps(&env, &["sys_ptrace"], &args));
    assert_eq!(without_dac.verdict(&ws), "unknown");
    let plain = exposition_of(&run_as_nobody(&env, &args));
    assert_eq!(plain.verdict(&ws), "unknown");

    // Without CAP_SYS_PTRACE, root's processes (the server among them) go
    // uninspected: many more than with it.
    let without_ptrace = exposition_of(&run_as_nobody_with_caps(&env, &["dac_read_search"], &args));
    let uninspected = |x: &Exposition| x.value("ovlock_uninspected_processes", &[]);
    assert!(
        uninspected(&without_ptrace) > uninspected(&with),
        "without CAP_SYS_PTRACE {} uninspected, with it {}",
        uninspected(&without_ptrace),
        uninspected(&with)
    );
}

#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root, setpriv and user nobody")]
fn without_cap_sys_ptrace_a_skip_process_lock_workspace_is_unknown() {
    let env = TestEnv::new();
    open_to_others(&env);
    let ws = env.ws_str();
    let config = env.root().join("ov.conf");
    fs::write(
        &config,
        serde_json::json!({"storage": {"workspace": ws, "skip_process_lock": true}}).to_string(),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    // A root process that looks like OpenViking and uses nothing here: only
    // its open files can tell that it does not use the workspace.
    let _lookalike = spawn_holder("idle", &env.root().join("unused"), SERVER_TAG);
    let args = ["--config", config.to_str().unwrap(), "metrics", ws.as_str()];

    let with = exposition_of(&run_as_nobody_with_caps(&env, &UNIT_CAPS, &args));
    assert_eq!(with.verdict(&ws), "free");
    let without = exposition_of(&run_as_nobody_with_caps(&env, &["dac_read_search"], &args));
    assert_eq!(without.verdict(&ws), "unknown");
    assert!(without.value("ovlock_uninspected_processes", &[]) >= 1.0);
}
