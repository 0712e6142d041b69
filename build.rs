//! Two jobs, once per build.
//!
//! First, it embeds what the binary reports of its own build (`--version
//! --verbose`, every JSON document): the target triple, and the git commit
//! the source was checked out at. Release builds need this most (a package,
//! a static binary), so it runs for every profile and under CI too. A build
//! from a source tarball knows the commit only if `cargo package` recorded it
//! in `.cargo_vcs_info.json`; otherwise the commit is left unknown, never
//! guessed (a tarball unpacked inside another repository must not report
//! that repository's commit).
//!
//! Second, it probes this machine for what some tests need (root, unshare,
//! bindfs, gdb, groff, mknod, promtool, node_exporter) and emits a cfg for
//! each thing it lacks. Those tests carry
//! `#[cfg_attr(ovlock_test_no_X, ignore = "...")]`, so `cargo test` reports
//! them as ignored instead of passing having checked
//! nothing; when they do run, they assert that what they need works.
//!
//! The probes are cheap and harmless (no mounts outside a throwaway
//! namespace, no network), and fail soft: any error means "not available".
//! They do not affect the ovlock binary, and only debug builds (those
//! `cargo test` makes) probe at all.
//!
//! Under CI=true none of the `no_X` cfgs is emitted: CI must have everything,
//! and a test whose tool is missing fails there. Two facts about the machine
//! that no one can install (pid_max at Linux's limit, PID 1 looking like
//! OpenViking) are emitted under CI too.
//!
//! The result is cached until build.rs, CI, PATH or the checked-out commit
//! changes, so the probes can be stale, but never dishonestly: a tool
//! installed after the build leaves its tests ignored (visible in the
//! summary; `touch build.rs` to probe again), and a tool removed after the
//! build makes its tests fail (visible too). Neither gives a false pass.
//! The commit is never stale: a new commit, a checkout or a `git gc` that
//! packs the refs runs build.rs again.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Not root, no setpriv(1), or no user nobody in this user namespace: no
/// other user to run ovlock as.
const NO_ROOT: &str = "ovlock_test_no_root";
/// `unshare --pid --fork --mount-proc` does not work (it needs root).
const NO_UNSHARE: &str = "ovlock_test_no_unshare";
/// No bindfs, or no /dev/fuse: no FUSE mount to stand in for NFS.
const NO_BINDFS: &str = "ovlock_test_no_bindfs";
/// No gdb, or ptrace is forbidden.
const NO_GDB: &str = "ovlock_test_no_gdb";
/// No groff: the man pages' rendering cannot be checked.
const NO_GROFF: &str = "ovlock_test_no_groff";
/// mknod(1) may not make a character device (no CAP_MKNOD, or a user namespace).
const NO_MKNOD: &str = "ovlock_test_no_mknod";
/// Not root, or no cgroup2 hierarchy mounted writable: no systemd-like
/// service cgroup to start a server in.
const NO_CGROUP2: &str = "ovlock_test_no_cgroup2";
/// No promtool (Debian's `prometheus` package) to lint the metrics.
const NO_PROMTOOL: &str = "ovlock_test_no_promtool";
/// No node_exporter (Debian's `prometheus-node-exporter`) to serve the textfile.
const NO_NODE_EXPORTER: &str = "ovlock_test_no_node_exporter";
/// pid_max is within 1000 of Linux's limit: no PID lies above it.
const PID_MAX_AT_LIMIT: &str = "ovlock_test_pid_max_at_limit";
/// PID 1 looks like OpenViking (ovlock runs inside its container).
const PID1_IS_OPENVIKING: &str = "ovlock_test_pid1_is_openviking";

/// The user the tests run ovlock as (setpriv --reuid=65534).
const NOBODY: u64 = 65534;

/// Linux's highest pid_max (PID_MAX_LIMIT on 64-bit).
const LINUX_PID_LIMIT: u64 = 4_194_304;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=PATH");
    embed_build_info();
    for name in [
        NO_ROOT,
        NO_UNSHARE,
        NO_BINDFS,
        NO_GDB,
        NO_GROFF,
        NO_MKNOD,
        NO_CGROUP2,
        NO_PROMTOOL,
        NO_NODE_EXPORTER,
        PID_MAX_AT_LIMIT,
        PID1_IS_OPENVIKING,
    ] {
        println!("cargo::rustc-check-cfg=cfg({name})");
    }

    let mut emit = Vec::new();
    // Release builds (cargo install, a package) probe nothing: no process
    // is started on a machine that only wants the binary. Tests built with
    // --release then run whatever the machine lacks, and fail, visibly.
    let probe = std::env::var("PROFILE").as_deref() == Ok("debug")
        && std::env::var("CI").as_deref() != Ok("true");
    if probe {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let root = euid(&status) == Some(0);
        if !(root && on_path("setpriv") && uid_mapped(NOBODY)) {
            emit.push(NO_ROOT);
        }
        if !(root && on_path("unshare") && unshare_works()) {
            emit.push(NO_UNSHARE);
        }
        if !(on_path("bindfs") && Path::new("/dev/fuse").exists()) {
            emit.push(NO_BINDFS);
        }
        if !(on_path("gdb") && ptrace_allowed(&status)) {
            emit.push(NO_GDB);
        }
        if !on_path("groff") {
            emit.push(NO_GROFF);
        }
        if !(on_path("mknod") && has_capability(&status, 27) && !in_user_namespace()) {
            emit.push(NO_MKNOD);
        }
        if !(root && cgroup2_writable()) {
            emit.push(NO_CGROUP2);
        }
        if !on_path("promtool") {
            emit.push(NO_PROMTOOL);
        }
        // Debian names the binary prometheus-node-exporter; upstream, node_exporter.
        if !(on_path("prometheus-node-exporter") || on_path("node_exporter")) {
            emit.push(NO_NODE_EXPORTER);
        }
    }
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if pid_max.is_none_or(|max| max + 1000 > LINUX_PID_LIMIT) {
        emit.push(PID_MAX_AT_LIMIT);
    }
    if pid1_looks_like_openviking() {
        emit.push(PID1_IS_OPENVIKING);
    }
    for name in emit {
        println!("cargo::rustc-cfg={name}");
    }
}

/// The effective UID, from the `Uid:` line of /proc/self/status.
fn euid(status: &str) -> Option<u32> {
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Whether capability number `bit` is in the `CapEff:` mask.
fn has_capability(status: &str, bit: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << bit) != 0)
}

/// Whether this process is in a user namespace other than the initial one,
/// where even root may not make device nodes.
fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"]
}

/// Whether `uid` exists in this user namespace (its /proc/self/uid_map
/// lines are "first-inside first-outside count").
fn uid_mapped(uid: u64) -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    map.lines().any(|line| {
        let n: Vec<u64> = line
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        matches!(n[..], [inside, _, count] if inside <= uid && uid - inside < count)
    })
}

/// Whether Yama lets gdb trace the child it starts (scope 3 forbids all
/// tracing; scope 2 asks for CAP_SYS_PTRACE, capability 19).
fn ptrace_allowed(status: &str) -> bool {
    match std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope") {
        Ok(scope) => match scope.trim() {
            "3" => false,
            "2" => has_capability(status, 19),
            _ => true,
        },
        Err(_) => true,
    }
}

/// Whether a cgroup2 hierarchy is mounted read-write (from the mount
/// options in /proc/self/mountinfo; nothing is created to find out).
fn cgroup2_writable() -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    mounts.lines().any(|line| {
        line.split_once(" - ").is_some_and(|(mount, sup)| {
            sup.starts_with("cgroup2 ")
                && mount
                    .split(' ')
                    .nth(5)
                    .is_some_and(|options| options.split(',').any(|o| o == "rw"))
        })
    })
}

/// Whether an executable file `name` is in a directory of PATH.
fn on_path(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(name)))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(_path: &Path) -> bool {
    false
}

/// Whether `unshare --pid --fork --mount-proc true` succeeds within 10 s
/// (its namespaces, and the /proc mounted in them, go when it exits).
fn unshare_works() -> bool {
    let Ok(mut child) = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child", "--mount-proc", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status.success(),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Whether PID 1's name or command line contains "openviking" (as the test
/// of PID 1 checks); true when they cannot be read, since that test could
/// not run either.
fn pid1_looks_like_openviking() -> bool {
    let Ok(comm) = std::fs::read_to_string("/proc/1/comm") else {
        return true;
    };
    let cmdline = std::fs::read("/proc/1/cmdline").unwrap_or_default();
    (comm + &String::from_utf8_lossy(&cmdline))
        .to_lowercase()
        .contains("openviking")
}

/// Sets OVLOCK_TARGET and OVLOCK_GIT_COMMIT for `src/build_info.rs`, each
/// empty when unknown (so the builder's environment cannot leak in), and
/// asks cargo to run build.rs again when the checked-out commit changes.
fn embed_build_info() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-env=OVLOCK_TARGET={target}");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = packaged_commit(&dir)
        .or_else(|| checked_out_commit(&dir))
        .unwrap_or_default();
    println!("cargo::rustc-env=OVLOCK_GIT_COMMIT={commit}");
}

/// The commit `cargo package` recorded in `.cargo_vcs_info.json`, for a
/// build from a crate tarball (`"sha1": "..."` in its `git` object).
fn packaged_commit(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let rest = info.split_once("\"sha1\"")?.1;
    let value = rest.split_once('"')?.1.split_once('"')?.0;
    is_commit(value).then(|| value.to_string())
}

/// HEAD's commit, if `dir` is the top of a git work tree (not merely inside
/// another repository), with the files that change when HEAD moves declared
/// to cargo. None when git is missing or says anything unexpected.
fn checked_out_commit(dir: &Path) -> Option<String> {
    let out = git(
        dir,
        &[
            "rev-parse",
            "--show-toplevel",
            "HEAD",
            "--symbolic-full-name",
            "HEAD",
        ],
    )?;
    let mut lines = out.lines();
    let (top, commit, head_ref) = (lines.next()?, lines.next()?, lines.next()?);
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(top), dir) || !is_commit(commit) {
        return None;
    }
    // HEAD names the branch (or, detached, the commit); the branch's commit
    // is in its loose ref file, or in packed-refs once `git gc` packed it.
    // A path that does not exist is not declared: cargo would then run
    // build.rs on every build.
    let mut tracked = vec!["HEAD", "packed-refs"];
    if head_ref.starts_with("refs/") {
        tracked.push(head_ref);
    }
    let mut args = vec!["rev-parse"];
    for name in &tracked {
        args.extend(["--git-path", name]);
    }
    for path in git(dir, &args)?.lines() {
        let path = dir.join(path);
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    Some(commit.to_string())
}

/// A full SHA-1 or SHA-256 object name.
fn is_commit(text: &str) -> bool {
    matches!(text.len(), 40 | 64) && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// What `git -C dir ARGS` prints, if it succeeds.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()
}
