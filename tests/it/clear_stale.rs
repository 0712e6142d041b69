//! clear-stale removes exactly the stale `.openviking.pid`, and the read-only
//! subcommands change nothing at all.

use std::fs;

use crate::support::*;

fn write_dead_pid_file(env: &TestEnv) -> u32 {
    let pid = dead_pid();
    fs::write(env.pid_path(), pid.to_string()).unwrap();
    set_mtime(&env.pid_path(), ago(60));
    pid
}

fn removed(r: &Report, key: &str) -> Vec<String> {
    strings(&r.dir[key])
}

#[test]
fn removes_a_stale_pid_file() {
    let env = TestEnv::new();
    let pid = write_dead_pid_file(&env);

    let run = env.run(&["clear-stale", "--json", &env.ws_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "free", "{dir:#}");
    assert_eq!(strings(&dir["removed"]), [env.pid_path().to_str().unwrap()]);
    assert_eq!(strings(&dir["would_remove"]), Vec::<String>::new());
    assert!(!env.pid_path().exists(), "the stale pid file is gone");
    assert_eq!(
        fs::read_dir(env.ws()).unwrap().count(),
        0,
        "nothing else was created"
    );

    // The text names the file and why; a second run has nothing to do.
    fs::write(env.pid_path(), pid.to_string()).unwrap();
    set_mtime(&env.pid_path(), ago(60));
    let text = env.run(&["clear-stale", "--color", "never", &env.ws_str()]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(text.stdout.contains("removed"), "{text:?}");
    assert!(text.stdout.contains(PIDFILE), "{text:?}");
    assert!(names_pid(&text.stdout, pid), "{text:?}");
    let again = env.run(&["clear-stale", "--json", &env.ws_str()]);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(strings(&again.dir()["removed"]), Vec::<String>::new());
}

#[test]
fn keeps_a_live_owners_pid_file() {
    let env = TestEnv::new();
    let server = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    let before = fs::read(env.pid_path()).unwrap();

    let r = env.examine("clear-stale", &[]);
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(removed(&r, "removed"), Vec::<String>::new());
    assert_eq!(fs::read(env.pid_path()).unwrap(), before);
}

#[test]
fn keeps_a_pid_file_being_written() {
    let env = TestEnv::new();
    let young = (0..20).find_map(|_| {
        fs::write(env.pid_path(), "").unwrap();
        let written = std::time::Instant::now();
        let run = env.run(&["clear-stale", "--json", &env.ws_str()]);
        // A sample counts only if ovlock looked while the file was young (2 s).
        (written.elapsed() < std::time::Duration::from_millis(1500)).then_some(run)
    });
    let run = young.expect("ovlock never ran within 1.5 s of the write");
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(strings(&run.dir()["removed"]), Vec::<String>::new());
    assert!(env.pid_path().exists());
}

#[test]
fn never_removes_an_unheld_lock_file() {
    let env = TestEnv::new();
    let mut server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    server.kill();
    write_dead_pid_file(&env);

    let r = env.examine("clear-stale", &[]);
    // The text run found the pid file already gone: only the JSON run removed it.
    r.expect(0, "free", vec![]);
    assert_eq!(removed(&r, "removed"), [env.pid_path().to_str().unwrap()]);
    assert!(
        env.lock_path().exists(),
        ".openviking.lock must never be removed"
    );
    assert!(!env.pid_path().exists());
}

#[test]
fn never_removes_a_held_lock_file() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);

    let r = env.examine("clear-stale", &[]);
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(removed(&r, "removed"), Vec::<String>::new());
    assert!(env.lock_path().exists());
}

#[test]
fn removes_a_stale_pid_file_next_to_a_live_flock_holder() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    write_dead_pid_file(&env);

    let run = env.run(&["clear-stale", "--json", &env.ws_str()]);
    assert_eq!(run.code, 1, "held after clearing: {run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "held");
    assert_eq!(owner_pids(&dir), [server.pid()]);
    assert_eq!(strings(&dir["removed"]), [env.pid_path().to_str().unwrap()]);
    assert!(!env.pid_path().exists());
    assert!(env.lock_path().exists());
}

#[test]
fn dry_run_removes_nothing_and_says_what_it_would_remove() {
    let env = TestEnv::new();
    let pid = write_dead_pid_file(&env);
    let before = snapshot(&env.ws());

    for flag in ["--dry-run", "-n"] {
        let run = env.run(&["clear-stale", flag, "--json", &env.ws_str()]);
        assert_eq!(run.code, 2, "still stale: {run:?}");
        let dir = run.dir();
        assert_eq!(dir["verdict"], "stale");
        assert_eq!(
            strings(&dir["would_remove"]),
            [env.pid_path().to_str().unwrap()]
        );
        assert_eq!(strings(&dir["removed"]), Vec::<String>::new());
    }
    let text = env.run(&[
        "clear-stale",
        "--dry-run",
        "--color",
        "never",
        &env.ws_str(),
    ]);
    assert_eq!(text.code, 2, "{text:?}");
    assert!(text.stdout.contains("would remove"), "{text:?}");
    assert!(names_pid(&text.stdout, pid), "{text:?}");
    assert_eq!(snapshot(&env.ws()), before);
}

#[test]
fn read_only_subcommands_change_nothing() {
    let env = TestEnv::new();
    let _server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    write_dead_pid_file(&env);
    fs::create_dir(env.ws().join("vectordb")).unwrap();
    fs::write(env.ws().join("vectordb/LOCK"), "").unwrap();
    let before = snapshot(&env.ws());

    let ws = env.ws_str();
    let runs: &[&[&str]] = &[
        &["status", &ws],
        &["status", "--json", &ws],
        &["check", &ws],
        &["check", "--json", &ws],
        &["check", "--wait", "0", &ws],
        &["who", &ws],
        &["who", "--pid", &ws],
        &["who", "--json", &ws],
        &["clear-stale", "--dry-run", &ws],
        &["clear-stale", "-n", "--json", &ws],
    ];
    for args in runs {
        let run = env.run(args);
        assert!(
            [0, 1].contains(&run.code),
            "{args:?} exited {}: {run:?}",
            run.code
        );
        assert_eq!(
            snapshot(&env.ws()),
            before,
            "{args:?} changed the directory"
        );
    }
}

#[test]
fn read_only_subcommands_change_nothing_in_a_stale_directory() {
    let env = TestEnv::new();
    fs::write(env.lock_path(), "").unwrap();
    fs::write(env.pid_path(), "not a pid").unwrap();
    set_mtime(&env.pid_path(), ago(60));
    let before = snapshot(&env.ws());

    let ws = env.ws_str();
    for sub in ["status", "check", "who"] {
        let run = env.run(&[sub, &ws]);
        let want = if sub == "who" { 1 } else { 2 };
        assert_eq!(run.code, want, "{sub}: {run:?}");
        assert_eq!(snapshot(&env.ws()), before, "{sub} changed the directory");
    }
}

/// A pid file that a killed clear-stale left moved aside is reported, so a
/// lock it held is not lost without a word, and the directory is not free.
#[test]
fn a_pid_file_left_aside_by_an_interrupted_run_is_reported() {
    let env = TestEnv::new();
    let aside = env.ws().join(".openviking.pid.ovlock-clearing-4242-1");
    fs::write(&aside, "4242").unwrap();
    let r = env.status();
    r.expect(4, "unknown", vec![]);
    assert!(
        r.reasons().contains(aside.to_str().unwrap())
            && r.reasons().contains("interrupted clear-stale"),
        "{}",
        r.reasons()
    );
    assert!(r.text.contains("interrupted clear-stale"), "{}", r.text);
}

/// Read-only subcommands leave even access times alone (O_NOATIME, as root):
/// a directory and lock files last read two days ago stay that way.
#[test]
fn read_only_subcommands_leave_access_times_alone() {
    let env = TestEnv::new();
    fs::write(env.pid_path(), "1").unwrap();
    fs::write(env.lock_path(), "").unwrap();
    let two_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86_400);
    let paths = [env.ws(), env.pid_path(), env.lock_path()];
    for path in &paths {
        let times = fs::FileTimes::new().set_accessed(two_days_ago);
        fs::File::open(path).unwrap().set_times(times).unwrap();
    }
    let accessed = || -> Vec<_> {
        paths
            .iter()
            .map(|p| fs::metadata(p).unwrap().accessed().unwrap())
            .collect()
    };
    let before = accessed();
    for args in [
        &["status"][..],
        &["check"],
        &["who"],
        &["clear-stale", "--dry-run"],
    ] {
        let mut args = args.to_vec();
        let ws = env.ws_str();
        args.push(&ws);
        env.run(&args);
    }
    assert_eq!(accessed(), before);
}
