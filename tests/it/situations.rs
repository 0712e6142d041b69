//! Real situations, made in temporary directories with real processes and
//! real locks, judged by the built binary.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::*;

#[test]
fn child_holding_flock_is_the_owner() {
    let env = TestEnv::new();
    let holder = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let pid = holder.pid();

    let r = env.status();
    r.expect(1, "held", vec![pid]);
    assert_eq!(r.owner(pid)["protocol"], "flock");
    assert_eq!(r.owner(pid)["protocols"], serde_json::json!(["flock"]));
    let lock = r.lock("flock");
    assert_eq!(lock["present"], true);
    assert_eq!(lock["held"], true);
    assert_eq!(lock["pid"], pid);
    assert_eq!(lock["path"], env.lock_path().to_str().unwrap());
    assert_eq!(r.dir["source"], "argument");
    assert_eq!(r.dir["exists"], true);
    // The owner is described from the process itself.
    let cmdline = strings(&r.owner(pid)["cmdline"]).join(" ");
    assert!(cmdline.contains(SERVER_TAG), "{cmdline}");

    // Every subcommand prints the same JSON document.
    for sub in ["check", "who", "clear-stale"] {
        let run = env.run(&[sub, "--json", &env.ws_str()]);
        let dir = run.dir();
        assert_eq!(dir["verdict"], "held", "{sub}: {dir:#}");
        assert_eq!(owner_pids(&dir), [pid], "{sub}: {dir:#}");
        assert_eq!(dir["locks"], r.dir["locks"], "{sub}");
    }

    let check = env.run(&["check", "--color", "never", &env.ws_str()]);
    assert_eq!(check.code, 1, "{check:?}");
    assert!(names_pid(&check.stdout, pid), "{check:?}");
    assert!(check.stdout.contains("held"), "{check:?}");

    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!(
        (who.code, who.stdout.clone()),
        (0, format!("{pid}\n")),
        "{who:?}"
    );
    let who = env.run(&["who", "--color", "never", &env.ws_str()]);
    assert_eq!(who.code, 0, "{who:?}");
    assert!(who.stdout.contains(&format!("PID {pid}")), "{who:?}");
}

#[test]
fn flock_inherited_by_a_forked_child_names_the_child() {
    let env = TestEnv::new();
    // holder.py takes the lock, forks and exits; spawn_holder reaps the parent.
    let child = spawn_holder("fork-flock", &env.lock_path(), SERVER_TAG);
    let pid = child.pid();

    let parent = child.parent_pid().unwrap();
    assert!(!is_running(parent));

    let r = env.status();
    r.expect(1, "held", vec![pid]);
    assert_eq!(r.owner(pid)["protocol"], "flock");
    assert_eq!(r.lock("flock")["held"], true);
    assert_eq!(r.lock("flock")["pid"], pid);
    // The kernel still records the parent; the report says what happened.
    assert!(names_pid(&r.reasons(), parent), "{}", r.reasons());

    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!(
        (who.code, who.stdout.clone()),
        (0, format!("{pid}\n")),
        "{who:?}"
    );
}

#[test]
fn unheld_lock_file_is_free_and_stays() {
    let env = TestEnv::new();
    // A server that held the lock and exited leaves the file behind, unheld.
    let mut server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    server.kill();
    assert!(env.lock_path().exists());

    let r = env.status();
    r.expect(0, "free", vec![]);
    assert_eq!(r.lock("flock")["present"], true);
    assert_eq!(r.lock("flock")["held"], false);
    r.assert_reason("not held");

    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!((who.code, who.stdout.as_str()), (1, ""), "{who:?}");
    assert!(
        env.lock_path().exists(),
        "the lock file must never be removed"
    );
}

#[test]
fn pid_file_naming_a_live_openviking_process_is_held() {
    let env = TestEnv::new();
    let server = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    let pid = server.pid();
    assert_eq!(fs::read_to_string(env.pid_path()).unwrap(), pid.to_string());

    let r = env.status();
    r.expect(1, "held", vec![pid]);
    assert_eq!(r.owner(pid)["protocol"], "pidfile");
    let lock = r.lock("pidfile");
    assert_eq!(lock["held"], true);
    assert_eq!(lock["pid"], pid);
    assert_eq!(lock["content"], pid.to_string());
    r.assert_reason(&format!("PID {pid}"));
}

#[test]
fn pid_file_naming_a_dead_pid_is_stale() {
    let env = TestEnv::new();
    let pid = dead_pid();
    fs::write(env.pid_path(), pid.to_string()).unwrap();
    set_mtime(&env.pid_path(), ago(60));

    let r = env.status();
    r.expect(2, "stale", vec![]);
    r.assert_reason(&format!("PID {pid} has exited"));
    assert_eq!(r.lock("pidfile")["held"], false);
    assert_eq!(r.lock("pidfile")["pid"], pid);
    assert!(names_pid(&r.text, pid), "{}", r.text);
    assert!(
        r.text.contains("clear-stale"),
        "the fix names clear-stale:\n{}",
        r.text
    );
    assert!(env.pid_path().exists(), "status removes nothing");
}

#[test]
fn pid_file_naming_an_unrelated_process_is_stale() {
    let env = TestEnv::new();
    let sleeper = spawn_sleep();
    let pid = sleeper.pid();
    // Written after the process started: only its identity gives it away.
    fs::write(env.pid_path(), pid.to_string()).unwrap();

    let r = env.status();
    r.expect(2, "stale", vec![]);
    let reasons = r.reasons();
    assert!(
        reasons.contains(&format!("PID {pid} now belongs to sleep")),
        "{reasons}"
    );
    assert!(reasons.contains("not OpenViking"), "{reasons}");
    assert!(names_pid(&r.text, pid), "{}", r.text);
}

#[test]
fn pid_file_older_than_its_process_is_stale() {
    let env = TestEnv::new();
    let server = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    let pid = server.pid();
    // The PID was written long before this process started: a recycled PID.
    set_mtime(&env.pid_path(), after_boot_but_long_ago());

    let r = env.status();
    r.expect(2, "stale", vec![]);
    r.assert_reason("started after the lock was written");
    r.assert_reason(&format!("PID {pid}"));
}

#[test]
fn pid_file_older_than_the_boot_is_stale() {
    let env = TestEnv::new();
    let server = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    let pid = server.pid();
    set_mtime(
        &env.pid_path(),
        boot_time() - std::time::Duration::from_secs(600),
    );

    let r = env.status();
    r.expect(2, "stale", vec![]);
    r.assert_reason("before the last boot");
    r.assert_reason(&format!("PID {pid}"));
}

#[test]
fn both_protocols_held_by_different_processes_is_contended() {
    let env = TestEnv::new();
    let new_server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let old_server = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    let (a, b) = (new_server.pid(), old_server.pid());

    let r = env.status();
    r.expect(3, "contended", vec![a, b]);
    assert_eq!(r.owner(a)["protocol"], "flock");
    assert_eq!(r.owner(b)["protocol"], "pidfile");
    for pid in [a, b] {
        assert!(r.text.contains(&format!("kill {pid}")), "{}", r.text);
    }

    let check = env.run(&["check", &env.ws_str()]);
    assert_eq!(check.code, 3, "{check:?}");

    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!(who.code, 0, "{who:?}");
    let mut want = vec![a, b];
    want.sort_unstable();
    let got: Vec<u32> = who.stdout.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(got, want, "{who:?}");
}

#[test]
fn one_process_holding_both_protocols_is_held_once() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let pid = server.pid();
    fs::write(env.pid_path(), pid.to_string()).unwrap();

    let r = env.status();
    r.expect(1, "held", vec![pid]);
    assert_eq!(
        r.owner(pid)["protocols"],
        serde_json::json!(["flock", "pidfile"])
    );
}

#[test]
fn empty_pid_file_being_written_is_unknown_then_stale() {
    let env = TestEnv::new();
    let young = (0..20).find_map(|_| {
        fs::write(env.pid_path(), "").unwrap();
        let written = std::time::Instant::now();
        let r = env.status();
        let who = env.run(&["who", "--pid", &env.ws_str()]);
        // A sample counts only if ovlock looked while the file was young (2 s).
        (written.elapsed() < std::time::Duration::from_millis(1500)).then_some((r, who))
    });
    let (r, who) = young.expect("ovlock never ran within 1.5 s of the write");
    r.expect(4, "unknown", vec![]);
    r.assert_reason("empty");
    assert_eq!((who.code, who.stdout.as_str()), (4, ""), "{who:?}");

    set_mtime(&env.pid_path(), ago(10));
    let r = env.status();
    r.expect(2, "stale", vec![]);
    r.assert_reason("empty");
    let who = env.run(&["who", "--pid", &env.ws_str()]);
    assert_eq!((who.code, who.stdout.as_str()), (1, ""), "{who:?}");
}

#[test]
fn pid_file_naming_an_unreaped_server_is_stale() {
    let env = TestEnv::new();
    let mut server = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    let pid = server.pid();
    server.kill_leaving_zombie();

    let r = env.status();
    r.expect(2, "stale", vec![]);
    r.assert_reason(&format!("PID {pid}"));
    r.assert_reason("exited");
}

#[test]
fn symlinked_data_directory_is_judged_at_its_target() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let link = env.root().join("link");
    std::os::unix::fs::symlink(env.ws(), &link).unwrap();

    let run = env.run(&["status", "--json", link.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["path"], link.to_str().unwrap(), "{dir:#}");
    assert_eq!(dir["resolved_path"], env.ws_str(), "{dir:#}");
    assert_eq!(owner_pids(&dir), [server.pid()]);
}

#[test]
fn lock_paths_that_are_not_regular_files_are_unknown_and_never_opened() {
    let env = TestEnv::new();
    let ws = env.ws_str();
    let server = spawn_holder("pidfile", &env.root().join("elsewhere.pid"), SERVER_TAG);

    // A symlink to a file naming a live server: not followed.
    std::os::unix::fs::symlink(env.root().join("elsewhere.pid"), env.pid_path()).unwrap();
    let r = env.status();
    r.expect(4, "unknown", vec![]);
    assert_eq!(r.lock("pidfile")["kind"], "symlink", "{:#}", r.dir);
    assert_eq!(
        r.lock("pidfile")["pid"],
        serde_json::Value::Null,
        "{:#}",
        r.dir
    );
    assert!(!names_pid(&r.text, server.pid()), "{}", r.text);
    let clear = env.run(&["clear-stale", &ws]);
    assert_eq!(clear.code, 4, "{clear:?}");
    assert!(fs::symlink_metadata(env.pid_path()).is_ok(), "kept");
    fs::remove_file(env.pid_path()).unwrap();

    // A FIFO: opening it would block until a writer came.
    mkfifo(&env.pid_path());
    for args in [&["status", "--json", &ws][..], &["clear-stale", &ws]] {
        let run = run_cmd_within(&mut env.command(args), std::time::Duration::from_secs(20));
        assert_eq!(run.code, 4, "{args:?}: {run:?}");
    }
    assert!(fs::symlink_metadata(env.pid_path()).is_ok(), "kept");
    fs::remove_file(env.pid_path()).unwrap();

    // A directory where the flock file should be.
    fs::create_dir(env.lock_path()).unwrap();
    let r = env.status();
    r.expect(4, "unknown", vec![]);
    assert_eq!(r.lock("flock")["kind"], "directory", "{:#}", r.dir);
}

#[test]
fn match_makes_another_process_an_owner() {
    let env = TestEnv::new();
    let server = spawn_holder("pidfile", &env.pid_path(), "vikingish-7f3a");
    let pid = server.pid();

    let without = env.status();
    without.expect(2, "stale", vec![]);
    without.assert_reason("not OpenViking");

    let with = env.status_with(&["--match", "VIKINGISH-7F3A"]);
    with.expect(1, "held", vec![pid]);
    assert_eq!(with.owner(pid)["protocol"], "pidfile");
}

#[test]
fn missing_directory_is_free_and_not_created() {
    let env = TestEnv::new();
    let missing = env.root().join("not-there");
    let missing_s = missing.to_str().unwrap();
    for sub in ["status", "check", "who", "clear-stale"] {
        let run = env.run(&[sub, "--json", missing_s]);
        let dir = run.dir();
        assert_eq!(dir["exists"], false, "{sub}: {dir:#}");
        assert_eq!(dir["verdict"], "free", "{sub}: {dir:#}");
        assert_eq!(dir["path"], missing_s, "{sub}: {dir:#}");
        let want = if sub == "who" { 1 } else { 0 };
        assert_eq!(run.code, want, "{sub}: {run:?}");
        assert!(!missing.exists(), "{sub} created {}", missing.display());
    }
    let text = env.run(&["status", "--color", "never", missing_s]);
    assert!(text.stdout.contains("does not exist"), "{text:?}");
    assert!(!missing.exists());
}

/// With several directories the exit code answers "may a server start on
/// every one?": held (1) outranks stale (2), so a script that starts a
/// server on 0 or 2 never starts one beside a live server.
#[test]
fn several_directories_exit_with_whether_a_server_may_start_on_all() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let stale = env.root().join("stale");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join(PIDFILE), dead_pid().to_string()).unwrap();
    let free = env.root().join("free");

    let run = env.run(&[
        "check",
        "--json",
        free.to_str().unwrap(),
        &env.ws_str(),
        stale.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["exit_code"], 1, "{doc:#}");
    let verdicts: Vec<&str> = doc["data_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["free", "held", "stale"]);
    let codes: Vec<u64> = doc["data_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["exit_code"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [0, 1, 2], "each directory keeps its own code");
    assert_eq!(owner_pids(&doc["data_dirs"][1]), [server.pid()]);

    let run = env.run(&[
        "check",
        "-q",
        stale.to_str().unwrap(),
        free.to_str().unwrap(),
    ]);
    assert_eq!(
        run.code, 2,
        "stale and free: a server may start once the file is cleared"
    );

    // Unknown outranks everything: a FIFO where the pid file should be.
    let odd = env.root().join("odd");
    fs::create_dir(&odd).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        odd.join(PIDFILE),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let run = env.run(&["check", "-q", &env.ws_str(), odd.to_str().unwrap()]);
    assert_eq!(run.code, 4, "unknown outranks held: {run:?}");
}

#[test]
fn escape_sequences_in_a_pid_file_are_never_printed_raw() {
    let env = TestEnv::new();
    fs::write(env.pid_path(), "12\x1b[31mred\x1b[0m").unwrap();
    set_mtime(&env.pid_path(), ago(60));
    let ws = env.ws_str();

    for args in [
        &["status", "--color", "never", &ws][..],
        &["check", "--color", "never", &ws],
        &["who", "--color", "never", &ws],
        &["clear-stale", "--dry-run", "--color", "never", &ws],
    ] {
        let run = env.run(args);
        assert!(!has_raw_control(&run.stdout), "{args:?}: {run:?}");
        assert!(!has_raw_control(&run.stderr), "{args:?}: {run:?}");
    }
    let r = env.status();
    assert_eq!(r.verdict(), "stale");
    assert!(
        r.text.contains(r"12\x1b[31mred\x1b[0m"),
        "the content is shown escaped:\n{}",
        r.text
    );
    // JSON carries the content faithfully (serde escapes it as \u001b).
    assert_eq!(r.lock("pidfile")["content"], "12\x1b[31mred\x1b[0m");
}

#[test]
fn escape_sequences_in_an_owners_command_line_are_never_printed_raw() {
    let env = TestEnv::new();
    // A terminal title sequence, ended by BEL, in the owner's argv.
    let tag = "openviking-\x1b]0;pwned\x07-server";
    let server = spawn_holder("flock", &env.lock_path(), tag);
    let ws = env.ws_str();
    for args in [
        &["status", "--color", "never", &ws][..],
        &["who", "--color", "never", &ws],
    ] {
        let run = env.run(args);
        assert_eq!(run.code, if args[0] == "who" { 0 } else { 1 }, "{run:?}");
        assert!(names_pid(&run.stdout, server.pid()), "{run:?}");
        assert!(!has_raw_control(&run.stdout), "{args:?}: {run:?}");
    }
    let who = env.run(&["who", "--color", "never", &ws]);
    assert!(who.stdout.contains(r"\x1b]0;pwned\x07"), "{who:?}");
    let r = env.status();
    assert!(
        strings(&r.owner(server.pid())["cmdline"]).contains(&tag.to_string()),
        "{:#}",
        r.dir
    );
}

#[test]
fn relative_data_directory_is_taken_against_the_current_directory() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    // TestEnv runs ovlock in its root, the parent of ws/.
    let run = env.run(&["status", "--json", "ws"]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["path"], env.ws_str(), "{dir:#}");
    assert_eq!(owner_pids(&dir), [server.pid()]);
}

#[test]
fn data_directory_that_is_a_file_is_unknown() {
    let env = TestEnv::new();
    let file = env.root().join("afile");
    fs::write(&file, "").unwrap();
    let run = env.run(&["check", "--json", file.to_str().unwrap()]);
    assert_eq!(run.code, 4, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "unknown", "{dir:#}");
    assert!(
        strings(&dir["reasons"])
            .join("\n")
            .contains("not a directory"),
        "{dir:#}"
    );
}

/// ovlock run as an unprivileged user cannot read a root server's
/// descriptors, but must still see the server as the owner.
#[test]
#[cfg_attr(
    ovlock_test_no_root,
    ignore = "needs root and setpriv to run ovlock as another user (probed by build.rs)"
)]
fn an_unprivileged_user_still_sees_a_root_server() {
    let env = TestEnv::new();
    open_to_others(&env);
    let flock_server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let pid_server = spawn_holder("pidfile", &env.pid_path(), SERVER_TAG);
    fs::set_permissions(env.pid_path(), fs::Permissions::from_mode(0o644)).unwrap();

    let run = run_as_nobody(&env, &["status", "--json", &env.ws_str()]);
    assert_eq!(run.code, 3, "{run:?}");
    let mut got = owner_pids(&run.dir());
    got.sort_unstable();
    let mut want = vec![flock_server.pid(), pid_server.pid()];
    want.sort_unstable();
    assert_eq!(got, want, "{:#}", run.dir());
}

/// An unprivileged ovlock cannot name the process that inherited a root
/// server's flock, but the directory is still held, and `who` must not
/// answer "no owner" (exit 1) for it: a script doing `who --pid || start`
/// would start a second server.
#[test]
#[cfg_attr(
    ovlock_test_no_root,
    ignore = "needs root and setpriv to run ovlock as another user (probed by build.rs)"
)]
fn an_unprivileged_user_sees_an_inherited_flock_as_held() {
    let env = TestEnv::new();
    open_to_others(&env);
    let _server = spawn_holder("fork-flock", &env.lock_path(), SERVER_TAG);

    let run = run_as_nobody(&env, &["check", "--json", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "held", "{dir:#}");
    assert_eq!(dir["locks"][0]["held"], true, "{dir:#}");
    assert!(
        !dir["warnings"].as_array().unwrap().is_empty(),
        "says what it could not see: {dir:#}"
    );

    let who = run_as_nobody(&env, &["who", "--pid", &env.ws_str()]);
    assert_eq!(who.stdout, "", "{who:?}");
    assert_eq!(
        who.code, 4,
        "held by someone ovlock cannot name is not \"no owner\": {who:?}"
    );
}
