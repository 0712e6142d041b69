//! What ovlock cannot read is never taken for "nothing there": a root
//! without CAP_SYS_PTRACE (a systemd CapabilityBoundingSet=, a debug
//! container), made for real with setpriv; /proc mounted with hidepid=2,
//! made for real in a mount and PID namespace of the test's own; and an
//! unprivileged `who --all`.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::*;
use serde_json::json;

/// ovlock as root, but with CAP_SYS_PTRACE dropped from its bounding set,
/// as `CapabilityBoundingSet=~CAP_SYS_PTRACE` does: it may not read the
/// descriptors of processes with more capabilities than it has.
fn run_without_ptrace(env: &TestEnv, args: &[&str]) -> Run {
    let mut cmd = Command::new("setpriv");
    cmd.arg("--bounding-set=-sys_ptrace")
        .arg(env!("CARGO_BIN_EXE_ovlock"))
        .args(args)
        .current_dir(env.root())
        .env("HOME", env.home())
        .env_remove("OPENVIKING_CONFIG_FILE")
        .stdin(std::process::Stdio::null());
    run_cmd(&mut cmd)
}

#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root and setpriv")]
fn without_cap_sys_ptrace_a_live_flock_holder_is_its_owner() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    for sub in ["check", "status", "who"] {
        let run = run_without_ptrace(&env, &[sub, "--json", &env.ws_str()]);
        let want = if sub == "who" { 0 } else { 1 };
        assert_eq!(run.code, want, "{sub}: {run:?}");
        let dir = run.dir();
        assert_eq!(dir["verdict"], "held", "{sub}: {dir:#}");
        assert_eq!(owner_pids(&dir), [server.pid()], "{sub}: {dir:#}");
        assert_eq!(dir["locks"][0]["pid"], server.pid(), "{dir:#}");
        let warnings = strings(&dir["warnings"]).join("\n");
        assert!(warnings.contains("could not be read"), "{dir:#}");
    }
    let status = run_without_ptrace(&env, &["status", "--json", &env.ws_str()]).dir();
    assert!(
        status["uninspected"].as_u64().unwrap() > 0,
        "the holder's descriptors are not readable, and that is counted: {status:#}"
    );
    let text = run_without_ptrace(&env, &["status", "--color", "never", &env.ws_str()]);
    assert!(!text.stdout.contains("(exited)"), "{}", text.stdout);
    assert!(names_pid(&text.stdout, server.pid()), "{}", text.stdout);
}

/// A server in a PID namespace (a container) whose pid file holds its PID
/// there, and which holds no storage lock: only its descriptors could tie
/// it to the directory. Without CAP_SYS_PTRACE they cannot be read, so
/// clear-stale must keep the file and say why, never call it stale.
#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root and setpriv")]
#[cfg_attr(ovlock_test_no_unshare, ignore = "needs unshare --pid --fork")]
fn without_cap_sys_ptrace_clear_stale_keeps_a_container_servers_pid_file() {
    let env = TestEnv::new();
    let mut cmd = Command::new("unshare");
    cmd.args(["--pid", "--fork", "--kill-child"])
        .arg(python())
        .arg(user_script())
        .arg(SERVER_TAG);
    let ns = spawn_user_cmd(
        cmd,
        &env.ws(),
        json!([["fork", [["pidfile", PIDFILE], ["cwd", "."]]]]),
    );
    let ns_pid = ns.workers()[0];
    assert_eq!(
        fs::read_to_string(env.pid_path()).unwrap(),
        ns_pid.to_string()
    );

    let run = run_without_ptrace(&env, &["clear-stale", "--json", &env.ws_str()]);
    assert!(
        env.pid_path().exists(),
        "a live server's pid file was removed: {run:?}"
    );
    assert_eq!(run.code, 4, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["verdict"], "unknown", "{dir:#}");
    assert_eq!(dir["removed"], json!([]), "{dir:#}");
    let reasons = strings(&dir["reasons"]).join("\n");
    assert!(
        reasons.contains("inside its own PID namespace") && reasons.contains("CAP_SYS_PTRACE"),
        "{reasons}"
    );
    // With the capability, the server is found and owns the file.
    let run = run_cmd(
        env.command(&["status", "--json", &env.ws_str()])
            .env_remove("OPENVIKING_CONFIG_FILE"),
    );
    assert_eq!(run.code, 1, "{run:?}");
}

/// A copy of ovlock that user nobody may run, and the shell line that runs
/// it as nobody.
fn as_nobody(env: &TestEnv) -> String {
    use std::os::unix::fs::PermissionsExt;
    let copy = env.root().join("ovlock-nobody");
    fs::copy(env!("CARGO_BIN_EXE_ovlock"), &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "setpriv --reuid=65534 --regid=65534 --clear-groups {}",
        copy.display()
    )
}

/// /proc mounted with hidepid=2 hides root's processes from nobody: not
/// listed, no /proc entry at all. A root server's flock is still in
/// /proc/locks, and kill(2) still finds the PID: held, never free, never
/// "exited"; the hidepid option is named; a hidden live owner's pid file is
/// kept. All of it inside a mount and PID namespace of the test's own, with
/// its own /proc, so the machine's /proc is never accesses.
#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root and setpriv")]
#[cfg_attr(ovlock_test_no_unshare, ignore = "needs unshare --pid --mount")]
fn under_hidepid_a_hidden_live_holder_is_held_and_its_pid_file_kept() {
    let env = TestEnv::new();
    open_to_others(&env);
    let old = env.root().join("old");
    fs::create_dir(&old).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
    let out = |name: &str| env.root().join(name);
    let nobody = as_nobody(&env);
    let holder = |mode: &str, path: &Path, ready: &Path| {
        format!(
            "(sleep 1000 | HOLDER_PATH={} {} {} {mode} {SERVER_TAG} > {}) &\n\
             until grep -q ready {}; do sleep 0.01; done\n",
            path.display(),
            python().display(),
            holder_script().display(),
            ready.display(),
            ready.display()
        )
    };
    let run_as = |args: &str, name: &str| {
        format!(
            "{nobody} {args} > {} 2>&1; echo $? > {}.code\n",
            out(name).display(),
            out(name).display()
        )
    };
    let script = [
        "mount -t proc -o hidepid=2 proc /proc || exit 99\n".to_string(),
        holder("flock", &env.lock_path(), &out("flock.ready")),
        holder("pidfile", &old.join(PIDFILE), &out("pidfile.ready")),
        run_as(&format!("check --json {}", env.ws_str()), "check"),
        run_as(&format!("status --json {}", env.ws_str()), "status"),
        run_as(
            &format!("status --color never {}", env.ws_str()),
            "status.txt",
        ),
        run_as(&format!("clear-stale --json {}", old.display()), "clear"),
        run_as("who --all --color never", "whoall"),
    ]
    .concat();
    let status = Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "--propagation", "private"])
        .args(["sh", "-c", &script])
        .stdin(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the namespace script failed: {status}");
    let read = |name: &str| fs::read_to_string(out(name)).unwrap();
    let code = |name: &str| read(&format!("{name}.code")).trim().parse::<i32>().unwrap();
    let pid_of = |name: &str| -> u32 {
        read(name)
            .trim()
            .strip_prefix("ready ")
            .unwrap()
            .parse()
            .unwrap()
    };
    let flock_pid = pid_of("flock.ready");

    assert_eq!(code("check"), 1, "{}", read("check"));
    let check: serde_json::Value = serde_json::from_str(&read("check")).unwrap();
    let dir = &check["data_dirs"][0];
    assert_eq!(dir["verdict"], "held", "{dir:#}");
    assert_eq!(dir["locks"][0]["held"], true, "{dir:#}");
    assert_eq!(dir["locks"][0]["pid"], flock_pid, "{dir:#}");

    assert_eq!(code("status"), 1, "{}", read("status"));
    let status: serde_json::Value = serde_json::from_str(&read("status")).unwrap();
    let warnings = strings(&status["data_dirs"][0]["warnings"]).join("\n");
    assert!(warnings.contains("hidepid="), "{warnings}");
    let text = read("status.txt");
    assert!(!text.contains("(exited)"), "{text}");
    assert!(names_pid(&text, flock_pid), "{text}");

    assert_eq!(code("whoall"), 4, "{}", read("whoall"));
    assert!(
        read("whoall").contains("no OpenViking process is visible")
            && read("whoall").contains("hidepid="),
        "{}",
        read("whoall")
    );
    assert!(text.contains("which could not be identified"), "{text}");

    assert_eq!(code("clear"), 4, "{}", read("clear"));
    assert!(
        old.join(PIDFILE).exists(),
        "a hidden live owner's pid file was removed"
    );
    assert_eq!(
        fs::read_to_string(old.join(PIDFILE)).unwrap(),
        pid_of("pidfile.ready").to_string()
    );
}

/// Unprivileged, `who --all` cannot read a root server's descriptors or
/// namespace links: it says "not readable", not "container", and `--pid`
/// exits 4 with nothing printed, so `kill $(...)` never runs bare.
#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root and setpriv")]
fn who_all_as_nobody_says_what_it_could_not_read() {
    let env = TestEnv::new();
    open_to_others(&env);
    let _server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let run = run_as_nobody(&env, &["who", "--all", "--color", "never"]);
    assert_eq!(run.code, 0, "it found an OpenViking process: {run:?}");
    assert!(run.stdout.contains("not readable"), "{}", run.stdout);
    assert!(!run.stdout.contains("container"), "{}", run.stdout);

    let run = run_as_nobody(&env, &["who", "--all", "--pid"]);
    assert_eq!(run.stdout, "", "{run:?}");
    assert_eq!(
        run.code, 4,
        "nothing printed, and it could not tell: {run:?}"
    );
}

/// Without CAP_SYS_PTRACE, a lock file deleted under its server cannot be
/// seen among the server's descriptors; the kernel still shows the server's
/// flock on some other file. Held, said to be most likely that, and never
/// blamed on skip_process_lock.
#[test]
#[cfg_attr(ovlock_test_no_root, ignore = "needs root and setpriv")]
fn without_cap_sys_ptrace_a_deleted_lock_file_is_still_suspected() {
    let env = TestEnv::new();
    let server = spawn_user(
        &env.ws(),
        SERVER_TAG,
        json!([["flock", LOCK], ["lockf", "vectordb/context/store/LOCK"]]),
    );
    fs::remove_file(env.lock_path()).unwrap();
    let run = run_without_ptrace(&env, &["status", "--json", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(owner_pids(&dir), [server.pid()], "{dir:#}");
    let reasons = strings(&dir["reasons"]).join("\n");
    assert!(
        reasons.contains("most likely a .openviking.lock deleted under it"),
        "{reasons}"
    );
    assert!(!reasons.contains("skip_process_lock"), "{reasons}");
    let fixes = strings(&dir["fixes"]).join("\n");
    assert!(
        fixes.contains(&format!("Restart PID {}", server.pid())),
        "{fixes}"
    );
}
