//! Hostile input (issue 5): a catalogue of bad things at the lock paths, in
//! pid files, in process names, in directory names and in ov.conf, each made
//! for real in a fresh temporary directory. For each, ovlock must give a
//! clear answer or a clear error that names the path and what it found;
//! never hang, never panic, never follow a symlink, never let a control
//! character reach the terminal raw; and JSON must stay valid, carrying such
//! characters as JSON escapes. A sweep then runs every subcommand over every
//! input and checks that none panics and every exit code is a documented one.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// How long any one run may take before it counts as hung. Generous: this
/// catches a blocked open or read, not slowness.
const LIMIT: Duration = Duration::from_secs(60);

/// Exit codes documented for `status`, `check` and `clear-stale`.
const VERDICT_CODES: &[i32] = &[0, 1, 2, 3, 4];
/// Exit codes documented for `who` (0 owner found, 1 none, 4 cannot tell).
const WHO_CODES: &[i32] = &[0, 1, 4];

// ---------------------------------------------------------------------------
// Inputs

/// One catalogue input, made in a test's temporary directory.
struct Input {
    /// What names it on the command line, after the subcommand: a DATA_DIR,
    /// or `--config FILE`.
    target: Vec<OsString>,
    /// The path the output must name.
    named: PathBuf,
    /// Run ovlock as user nobody (65534) instead of root.
    as_nobody: bool,
    /// A PID that must appear in no output (a symlink target's content).
    secret_pid: Option<u32>,
    /// What must live as long as the input: processes, a bound socket.
    _keep: Vec<Box<dyn std::any::Any + Send>>,
}

impl Input {
    fn dir(path: PathBuf) -> Input {
        Input {
            target: vec![path.clone().into_os_string()],
            named: path,
            as_nobody: false,
            secret_pid: None,
            _keep: Vec::new(),
        }
    }

    /// The data directory of `env`, with `named` as the path to look for.
    fn in_ws(env: &TestEnv, named: PathBuf) -> Input {
        Input {
            named,
            ..Input::dir(env.ws())
        }
    }

    fn config(file: PathBuf) -> Input {
        Input {
            target: vec!["--config".into(), file.clone().into_os_string()],
            named: file,
            as_nobody: false,
            secret_pid: None,
            _keep: Vec::new(),
        }
    }

    fn keep(mut self, thing: impl std::any::Any + Send) -> Input {
        self._keep.push(Box::new(thing));
        self
    }
}

type Build = fn(&TestEnv) -> Input;

/// What a catalogue input needs of the machine, beyond what every test
/// needs. Each need has its own sweep, ignored where build.rs found it
/// missing, so that a machine without it shows ignored tests rather than a
/// sweep that passed over fewer inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Needs {
    Nothing,
    /// CAP_MKNOD, for a device node.
    Mknod,
    /// Root, to run ovlock as user nobody.
    Root,
    /// A pid_max below Linux's limit, for a PID above it.
    PidBelowLimit,
}

/// A catalogue entry's maker, which may capture what it writes, and what it
/// needs of the machine.
struct Maker {
    needs: Needs,
    make: Box<dyn Fn(&TestEnv) -> Input + Sync>,
}

/// A file written long enough ago that it cannot be one being written now.
fn old_file(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
    set_mtime(path, ago(60));
}

fn pid_content(content: &[u8]) -> impl Fn(&TestEnv) -> Input + Sync + use<> {
    let content = content.to_vec();
    move |env| {
        old_file(&env.pid_path(), &content);
        Input::in_ws(env, env.pid_path())
    }
}

fn fifo_at(env: &TestEnv, name: &str) -> Input {
    let path = env.ws().join(name);
    mkfifo(&path);
    Input::in_ws(env, path)
}

fn socket_at(env: &TestEnv, name: &str) -> Input {
    let path = env.ws().join(name);
    let listener = UnixListener::bind(&path).unwrap();
    Input::in_ws(env, path).keep(listener)
}

fn directory_at(env: &TestEnv, name: &str) -> Input {
    let path = env.ws().join(name);
    fs::create_dir(&path).unwrap();
    fs::write(path.join("inside"), "12345").unwrap();
    Input::in_ws(env, path)
}

/// A character device like /dev/null (1:3), made with mknod(1). Needs
/// CAP_MKNOD (tests that use it are marked
/// `#[cfg_attr(ovlock_test_no_mknod, ignore)]`).
fn device_at(env: &TestEnv, name: &str) -> Input {
    let path = env.ws().join(name);
    let made = Command::new("mknod")
        .arg(&path)
        .args(["c", "1", "3"])
        .stdin(Stdio::null())
        .output();
    assert!(
        made.as_ref().is_ok_and(|o| o.status.success()),
        "mknod could not make a character device here ({made:?}); {PROBED}"
    );
    Input::in_ws(env, path)
}

/// A symlink to a regular file outside the directory that names a live,
/// OpenViking-looking process; for `.openviking.lock`, that process also
/// holds a flock on the target. Following the link would find an owner.
fn symlink_at(env: &TestEnv, name: &str) -> Input {
    let path = env.ws().join(name);
    let target = env.root().join(format!("target-of{name}"));
    let holder = if name == LOCK {
        spawn_holder("flock", &target, SERVER_TAG)
    } else {
        spawn_holder("idle", &target, SERVER_TAG)
    };
    // Rewritten in place: a flock taken on this inode stays.
    fs::write(&target, holder.pid().to_string()).unwrap();
    symlink(&target, &path).unwrap();
    let mut input = Input::in_ws(env, path).keep(holder);
    input.secret_pid = Some(fs::read_to_string(&target).unwrap().parse().unwrap());
    input
}

fn dangling_symlink_at(env: &TestEnv, name: &str) -> Input {
    let path = env.ws().join(name);
    symlink(env.root().join("nothing-here"), &path).unwrap();
    Input::in_ws(env, path)
}

fn huge_pid_file(env: &TestEnv) -> Input {
    old_file(&env.pid_path(), &vec![b'7'; 10 << 20]);
    Input::in_ws(env, env.pid_path())
}

fn sparse_pid_file(env: &TestEnv) -> Input {
    let file = fs::File::create(env.pid_path()).unwrap();
    file.set_len(1 << 40).unwrap();
    file.set_modified(ago(60)).unwrap();
    Input::in_ws(env, env.pid_path())
}

/// Every byte value once: NUL, C0 controls, ESC, DEL, and bytes that are
/// not UTF-8 (among them 0x9b, the one-byte CSI).
fn binary_pid_file(env: &TestEnv) -> Input {
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    old_file(&env.pid_path(), &bytes);
    Input::in_ws(env, env.pid_path())
}

/// Terminal escape sequences in UTF-8 text: set the window title (OSC),
/// clear the screen (CSI), a C1 CSI (U+009B), DEL.
const ESCAPES: &str = "\x1b]0;pwned\x07\x1b[2J\u{9b}31m\x7f";

fn escapes_pid_file(env: &TestEnv) -> Input {
    old_file(&env.pid_path(), ESCAPES.as_bytes());
    Input::in_ws(env, env.pid_path())
}

/// The same as raw bytes: 0x9b alone (the one-byte CSI) is not UTF-8.
fn raw_c1_pid_file(env: &TestEnv) -> Input {
    old_file(&env.pid_path(), b"\x9b31m\x1b[2J\x9b2J");
    Input::in_ws(env, env.pid_path())
}

fn pid_max() -> u64 {
    fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A PID above this machine's pid_max but within Linux's limit: no process
/// can have it.
fn above_pid_max() -> Option<u32> {
    let pid = pid_max() + 1000;
    (pid <= 4_194_304).then_some(pid as u32)
}

/// [`above_pid_max`], failing the test where there is none.
fn pid_above_pid_max_here() -> u32 {
    above_pid_max().unwrap_or_else(|| {
        panic!(
            "pid_max ({}) is within 1000 of Linux's limit here, so no PID lies above it; \
             build.rs, which marks this test ignored then, saw a lower pid_max at build \
             time; `touch build.rs` to probe again",
            pid_max()
        )
    })
}

/// A PID file naming a PID above pid_max (tests that use it are marked
/// `#[cfg_attr(ovlock_test_pid_max_at_limit, ignore)]`).
fn pid_above_pid_max(env: &TestEnv) -> Input {
    let pid = pid_above_pid_max_here();
    old_file(&env.pid_path(), pid.to_string().as_bytes());
    Input::in_ws(env, env.pid_path())
}

/// evil.py, installed like every helper (see `install_script`).
fn evil_script() -> &'static Path {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| install_script("evil", include_str!("support/evil.py")))
}

/// The name (comm) the hostile processes give themselves: OSC, BEL, a C1
/// CSI. The kernel keeps 15 bytes.
const EVIL_COMM: &[u8] = b"\x1b]0;pwn\x07\xc2\x9bx";

/// A process with escape sequences in its name and command line (and bytes
/// that are not UTF-8), writing its PID to `pid_path` if given.
fn spawn_evil(pid_path: Option<&Path>, openviking: bool) -> Proc {
    let mut cmd = Command::new(python());
    cmd.arg(evil_script())
        .arg(if openviking {
            "openviking-server\x1b]0;pwned\x07"
        } else {
            "worker\x1b]0;pwned\x07"
        })
        .arg("\x1b[2J\u{9b}31m\x7f")
        .arg(OsStr::from_bytes(b"--path=\xff\xfe\x9b2J"))
        .env(
            "EVIL_COMM",
            EVIL_COMM
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
        );
    if let Some(path) = pid_path {
        cmd.env("HOLDER_PATH", path);
    }
    spawn_ready(cmd, false, "evil.py")
}

fn evil_owner(env: &TestEnv) -> Input {
    let owner = spawn_evil(Some(&env.pid_path()), true);
    Input::in_ws(env, env.pid_path()).keep(owner)
}

fn evil_stranger(env: &TestEnv) -> Input {
    let stranger = spawn_evil(None, false);
    fs::write(env.pid_path(), stranger.pid().to_string()).unwrap();
    Input::in_ws(env, env.pid_path()).keep(stranger)
}

fn dir_is_a_file(env: &TestEnv) -> Input {
    let path = env.root().join("a-file");
    fs::write(&path, "12345").unwrap();
    Input::dir(path)
}

/// A data directory with mode 000, seen by user nobody.
fn unreadable_dir(env: &TestEnv) -> Input {
    open_to_others(env);
    old_file(&env.pid_path(), dead_pid().to_string().as_bytes());
    fs::set_permissions(env.ws(), fs::Permissions::from_mode(0o000)).unwrap();
    let mut input = Input::dir(env.ws());
    input.as_nobody = true;
    input
}

/// A pid file of root's with mode 0600 in a directory anyone may read,
/// seen by user nobody.
fn foreign_pid_file(env: &TestEnv) -> Input {
    open_to_others(env);
    old_file(&env.pid_path(), dead_pid().to_string().as_bytes());
    fs::set_permissions(env.pid_path(), fs::Permissions::from_mode(0o600)).unwrap();
    let mut input = Input::in_ws(env, env.pid_path());
    input.as_nobody = true;
    input
}

/// A data directory with a stale pid file, under a hostile name.
fn named_dir(env: &TestEnv, name: &[u8]) -> Input {
    let path = env.root().join(OsStr::from_bytes(name));
    fs::create_dir(&path).unwrap();
    old_file(&path.join(PIDFILE), dead_pid().to_string().as_bytes());
    Input::dir(path)
}

const SPACE_NEWLINE: &[u8] = b"ws with space\nand newline";
const NOT_UTF8: &[u8] = b"ws-\xff\xfe";
const ESCAPED_NAME: &[u8] = b"ws-\x1b]0;pwned\x07\x1b[2J";

fn conf(env: &TestEnv, name: &str, text: &[u8]) -> PathBuf {
    let path = env.root().join(name);
    fs::write(&path, text).unwrap();
    path
}

fn malformed_conf(env: &TestEnv) -> Input {
    let path = conf(
        env,
        "ov.conf",
        b"{\n  \"storage\": {\n    \"workspace\": ,\n  }\n}\n",
    );
    Input::config(path)
}

fn huge_conf(env: &TestEnv) -> Input {
    let mut text = br#"{"storage": {"workspace": "ws"}, "padding": ""#.to_vec();
    text.extend(std::iter::repeat_n(b'x', 5 << 20));
    text.extend_from_slice(b"\"}");
    let path = conf(env, "ov.conf", &text);
    Input::config(path)
}

fn bom_conf(env: &TestEnv) -> Input {
    let mut text = b"\xEF\xBB\xBF".to_vec();
    text.extend_from_slice(
        format!(r#"{{"storage": {{"workspace": "{}"}}}}"#, env.ws_str()).as_bytes(),
    );
    let path = conf(env, "ov.conf", &text);
    let mut input = Input::config(path);
    input.named = env.ws();
    input
}

const UNSET: &str = "OVLOCK_HOSTILE_UNSET_VARIABLE";

fn unset_var_conf(env: &TestEnv) -> Input {
    let text = format!(r#"{{"storage": {{"workspace": "${{{UNSET}}}/ws-$UNSET_TOO"}}}}"#);
    let path = conf(env, "ov.conf", text.as_bytes());
    let mut input = Input::config(path);
    input.named = env.root().join(format!("${{{UNSET}}}/ws-$UNSET_TOO"));
    input
}

fn fifo_conf(env: &TestEnv) -> Input {
    let path = env.root().join("ov.conf");
    mkfifo(&path);
    Input::config(path)
}

fn directory_conf(env: &TestEnv) -> Input {
    let path = env.root().join("ov.conf");
    fs::create_dir(&path).unwrap();
    Input::config(path)
}

/// A config whose workspace carries escape sequences (as JSON escapes).
fn escaped_workspace_conf(env: &TestEnv) -> Input {
    let path = conf(
        env,
        "ov.conf",
        br#"{"storage": {"workspace": "ws-\u001b]0;pwned\u0007\u001b[2J"}}"#,
    );
    let mut input = Input::config(path);
    input.named = env.root().join("ws-\x1b]0;pwned\x07\x1b[2J");
    input
}

/// A malformed config whose own name carries escape sequences: the error
/// message names it.
fn escaped_name_conf(env: &TestEnv) -> Input {
    let path = conf(env, "ov\x1b]0;pwned\x07\x1b[2J.conf", b"{\"storage\": [}");
    Input::config(path)
}

/// Every input, by name. Each builder runs in a fresh test directory.
fn catalogue() -> Vec<(&'static str, Maker)> {
    fn b(f: Build) -> Maker {
        needs(Needs::Nothing, f)
    }
    fn needs(needs: Needs, f: Build) -> Maker {
        Maker {
            needs,
            make: Box::new(f),
        }
    }
    let mut all: Vec<(&'static str, Maker)> = vec![
        ("lock: fifo", b(|e| fifo_at(e, LOCK))),
        ("pid: fifo", b(|e| fifo_at(e, PIDFILE))),
        ("lock: socket", b(|e| socket_at(e, LOCK))),
        ("pid: socket", b(|e| socket_at(e, PIDFILE))),
        ("lock: directory", b(|e| directory_at(e, LOCK))),
        ("pid: directory", b(|e| directory_at(e, PIDFILE))),
        (
            "lock: char device",
            needs(Needs::Mknod, |e| device_at(e, LOCK)),
        ),
        (
            "pid: char device",
            needs(Needs::Mknod, |e| device_at(e, PIDFILE)),
        ),
        ("lock: symlink to a held file", b(|e| symlink_at(e, LOCK))),
        ("pid: symlink to a live PID", b(|e| symlink_at(e, PIDFILE))),
        (
            "lock: dangling symlink",
            b(|e| dangling_symlink_at(e, LOCK)),
        ),
        (
            "pid: dangling symlink",
            b(|e| dangling_symlink_at(e, PIDFILE)),
        ),
        ("pid: 10 MiB", b(huge_pid_file)),
        ("pid: sparse 1 TiB", b(sparse_pid_file)),
        ("pid: every byte", b(binary_pid_file)),
        ("pid: escape sequences", b(escapes_pid_file)),
        ("pid: raw C1 bytes", b(raw_c1_pid_file)),
        (
            "pid: above pid_max",
            needs(Needs::PidBelowLimit, pid_above_pid_max),
        ),
        ("process: hostile owner", b(evil_owner)),
        ("process: hostile stranger", b(evil_stranger)),
        ("dir: a regular file", b(dir_is_a_file)),
        (
            "dir: unreadable, as nobody",
            needs(Needs::Root, unreadable_dir),
        ),
        (
            "pid: root's 0600, as nobody",
            needs(Needs::Root, foreign_pid_file),
        ),
        ("dir: space and newline", b(|e| named_dir(e, SPACE_NEWLINE))),
        ("dir: not UTF-8", b(|e| named_dir(e, NOT_UTF8))),
        ("dir: escape sequences", b(|e| named_dir(e, ESCAPED_NAME))),
        ("conf: malformed", b(malformed_conf)),
        ("conf: 5 MiB", b(huge_conf)),
        ("conf: BOM", b(bom_conf)),
        ("conf: unset variables", b(unset_var_conf)),
        ("conf: fifo", b(fifo_conf)),
        ("conf: directory", b(directory_conf)),
        ("conf: escaped workspace", b(escaped_workspace_conf)),
        ("conf: escaped name", b(escaped_name_conf)),
    ];
    for (name, content) in PID_VALUES {
        all.push((
            name,
            Maker {
                needs: Needs::Nothing,
                make: Box::new(pid_content(content)),
            },
        ));
    }
    all.push((
        "pid: NUL bytes",
        Maker {
            needs: Needs::Nothing,
            make: Box::new(pid_content(b"12\x0034\x00")),
        },
    ));
    all
}

/// Pid-file contents that are numbers of a kind, or almost.
const PID_VALUES: &[(&str, &[u8])] = &[
    ("pid: -1", b"-1"),
    ("pid: +5", b"+5"),
    ("pid: 0", b"0"),
    ("pid: 1", b"1"),
    ("pid: 4194305", b"4194305"),
    ("pid: 99999999999999999999999", b"99999999999999999999999"),
];

// ---------------------------------------------------------------------------
// Running and checking

/// `ovlock ARGS` as root or as nobody, within [`LIMIT`].
fn ovlock(env: &TestEnv, input: &Input, args: &[&str]) -> Run {
    let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
    all.extend(input.target.iter().cloned());
    if !input.as_nobody {
        return run_cmd_within(&mut env.command(&all), LIMIT);
    }
    let copy = env.root().join("ovlock-copy");
    if !copy.exists() {
        fs::copy(env!("CARGO_BIN_EXE_ovlock"), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    }
    for _ in 0..50 {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&copy)
            .args(&all)
            .current_dir(env.root())
            .env("HOME", env.home())
            .env_remove("OPENVIKING_CONFIG_FILE")
            .stdin(Stdio::null());
        let run = run_cmd_within(&mut cmd, LIMIT);
        // Another test thread's fork may hold the fresh copy open for a moment.
        if !run.stderr.contains("Text file busy") {
            return run;
        }
        std::thread::yield_now();
    }
    panic!("the copy of ovlock stayed busy");
}

/// Every way this run's output could be unsafe or broken; empty when clean.
/// With `strict`, JSON must carry every control character as an escape,
/// C1 controls and DEL included.
fn problems(run: &Run, json: bool, codes: &[i32], strict: bool) -> Vec<String> {
    let mut found = Vec::new();
    if run.stderr.contains("panicked") {
        found.push("stderr shows a panic".to_string());
    }
    if !codes.contains(&run.code) {
        found.push(format!("exit code {} is not one of {codes:?}", run.code));
    }
    if has_raw_control(&run.stderr) {
        found.push("stderr holds a raw control character".to_string());
    }
    if json {
        match serde_json::from_str::<Value>(&run.stdout) {
            Err(err) => found.push(format!("stdout is not JSON: {err}")),
            Ok(doc) => found.extend(
                schema_errors(&doc)
                    .into_iter()
                    .map(|e| format!("the JSON does not fit the schema: {e}")),
            ),
        }
        if strict && has_raw_control(&run.stdout) {
            let raw: Vec<String> = run
                .stdout
                .chars()
                .filter(|&c| c.is_control() && c != '\n')
                .map(|c| format!("U+{:04X}", c as u32))
                .collect();
            found.push(format!(
                "the JSON holds raw control characters, not JSON escapes: {}",
                raw.join(" ")
            ));
        }
    } else if has_raw_control(&run.stdout) {
        found.push("the text holds a raw control character".to_string());
    }
    found
}

fn assert_clean(run: &Run, json: bool, codes: &[i32]) {
    let found = problems(run, json, codes, true);
    assert!(found.is_empty(), "{}\n{run:#?}", found.join("\n"));
}

/// One subcommand's answer, as JSON and as text, which agree on the exit code.
struct Seen {
    code: i32,
    doc: Value,
    text: String,
    stderr: String,
}

impl Seen {
    fn dir(&self) -> &Value {
        &self.doc["data_dirs"][0]
    }

    fn reasons(&self) -> String {
        strings(&self.dir()["reasons"]).join("\n")
    }

    /// Asserts that a reason says `words`, showing every reason if none does.
    #[track_caller]
    fn assert_reason(&self, words: &str) {
        assert_reason(&self.reasons(), words);
    }

    fn fixes(&self) -> String {
        strings(&self.dir()["fixes"]).join("\n")
    }

    fn lock(&self, protocol: &str) -> &Value {
        self.dir()["locks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["protocol"] == protocol)
            .unwrap_or_else(|| panic!("no {protocol} entry: {:#}", self.doc))
    }
}

/// Runs `SUBCOMMAND... --json` and `SUBCOMMAND... --color never` on the input,
/// checks both are clean and agree, and returns them.
fn see(env: &TestEnv, input: &Input, sub: &[&str]) -> Seen {
    let codes = if sub[0] == "who" {
        WHO_CODES
    } else {
        VERDICT_CODES
    };
    let mut json_args = sub.to_vec();
    json_args.push("--json");
    let json = ovlock(env, input, &json_args);
    assert_clean(&json, true, codes);
    let mut text_args = sub.to_vec();
    text_args.extend(["--color", "never"]);
    let text = ovlock(env, input, &text_args);
    assert_clean(&text, false, codes);
    assert_eq!(
        json.code, text.code,
        "--json and text disagree\n{json:#?}\n{text:#?}"
    );
    Seen {
        code: json.code,
        doc: serde_json::from_str(&json.stdout).unwrap(),
        text: text.stdout,
        stderr: text.stderr,
    }
}

/// The path as ovlock shows it on a terminal: control characters and bytes
/// that are not UTF-8 escaped.
fn shown(path: &Path) -> String {
    let mut out = String::new();
    for chunk in path.as_os_str().as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x80 && c.is_control() => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The text names the path (in full, or as its directory and its file name,
/// as the lock table does) and says what is there; so do the reasons.
fn assert_names(seen: &Seen, path: &Path, what: &str) {
    let full = shown(path);
    let parts = path
        .parent()
        .zip(path.file_name())
        .is_some_and(|(dir, name)| {
            seen.text.contains(&shown(dir)) && seen.text.contains(&shown(Path::new(name)))
        });
    assert!(
        (seen.text.contains(&full) || parts) && seen.text.contains(what),
        "the text does not name {full} and {what:?}:\n{}",
        seen.text
    );
    let reasons = seen.reasons();
    assert!(
        reasons.contains(what),
        "the reasons do not say {what:?}: {reasons}"
    );
}

// ---------------------------------------------------------------------------
// Not a regular file at a lock path

/// Something other than a regular file at a lock path: `unknown` (4) from
/// every subcommand, named with its path and kind, never opened or removed.
fn not_a_regular_file(name: &str, make: fn(&TestEnv, &str) -> Input, kind: &str, what: &str) {
    let env = TestEnv::new();
    let input = make(&env, name);
    let path = env.ws().join(name);
    let protocol = if name == LOCK { "flock" } else { "pidfile" };
    for sub in [
        &["status"][..],
        &["check"],
        &["check", "--scan"],
        &["clear-stale"],
    ] {
        let seen = see(&env, &input, sub);
        assert_eq!(seen.code, 4, "{sub:?}: {}", seen.text);
        assert_eq!(seen.dir()["verdict"], "unknown", "{sub:?}");
        assert_names(&seen, &path, what);
        let lock = seen.lock(protocol);
        assert_eq!(lock["present"], true, "{lock:#}");
        assert_eq!(lock["kind"], kind, "{lock:#}");
        assert_eq!(lock["content"], Value::Null, "{lock:#}");
        assert_eq!(seen.dir()["owners"], serde_json::json!([]), "{sub:?}");
        if let Some(pid) = input.secret_pid {
            assert!(
                !names_number(&seen.text, pid) && !names_number(&seen.doc.to_string(), pid),
                "{sub:?}: the symlink was followed: PID {pid} appears\n{}\n{:#}",
                seen.text,
                seen.doc
            );
        }
        assert_eq!(seen.stderr, "", "{sub:?}");
    }
    let who = see(&env, &input, &["who"]);
    assert_eq!(who.code, 4, "who: {}", who.text);
    assert_names(&who, &path, what);
    let pids = ovlock(&env, &input, &["who", "--pid"]);
    assert_clean(&pids, false, WHO_CODES);
    assert_eq!((pids.code, pids.stdout.as_str()), (4, ""), "{pids:?}");

    // clear-stale removed nothing: the thing is still there, as it was.
    let kind_now = fs::symlink_metadata(&path).unwrap().file_type();
    assert_eq!(
        fsread_kind(kind_now),
        kind,
        "clear-stale changed {}",
        path.display()
    );
    let removed = ovlock(&env, &input, &["clear-stale", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&removed.stdout).unwrap()["data_dirs"][0]["removed"],
        serde_json::json!([])
    );
}

fn fsread_kind(t: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_symlink() {
        "symlink"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() {
        "char_device"
    } else if t.is_dir() {
        "directory"
    } else {
        "regular"
    }
}

#[test]
fn fifo_at_the_lock_does_not_block() {
    not_a_regular_file(LOCK, fifo_at, "fifo", "FIFO");
}

#[test]
fn fifo_at_the_pid_file_does_not_block() {
    not_a_regular_file(PIDFILE, fifo_at, "fifo", "FIFO");
}

#[test]
fn socket_at_the_lock() {
    not_a_regular_file(LOCK, socket_at, "socket", "a socket");
}

#[test]
fn socket_at_the_pid_file() {
    not_a_regular_file(PIDFILE, socket_at, "socket", "a socket");
}

#[test]
fn directory_at_the_lock() {
    not_a_regular_file(LOCK, directory_at, "directory", "a directory");
}

#[test]
fn directory_at_the_pid_file() {
    not_a_regular_file(PIDFILE, directory_at, "directory", "a directory");
}

#[test]
#[cfg_attr(
    ovlock_test_no_mknod,
    ignore = "needs CAP_MKNOD to make a device node (probed by build.rs)"
)]
fn device_at_the_lock() {
    not_a_regular_file(LOCK, device_at, "char_device", "a character device");
}

#[test]
#[cfg_attr(
    ovlock_test_no_mknod,
    ignore = "needs CAP_MKNOD to make a device node (probed by build.rs)"
)]
fn device_at_the_pid_file() {
    not_a_regular_file(PIDFILE, device_at, "char_device", "a character device");
}

#[test]
fn dangling_symlink_at_the_lock() {
    not_a_regular_file(LOCK, dangling_symlink_at, "symlink", "a symbolic link");
}

#[test]
fn dangling_symlink_at_the_pid_file() {
    not_a_regular_file(PIDFILE, dangling_symlink_at, "symlink", "a symbolic link");
}

/// A symlink is never followed: the live, OpenViking-looking process its
/// target names (and, for the lock, holds a flock on) is no owner, the
/// target's content is shown nowhere, and clear-stale removes neither the
/// link nor the target.
fn symlink_never_followed(name: &str) {
    not_a_regular_file(name, symlink_at, "symlink", "a symbolic link");
    let env = TestEnv::new();
    let input = symlink_at(&env, name);
    let target = fs::read_link(env.ws().join(name)).unwrap();
    let before = fs::read(&target).unwrap();
    for args in [&["clear-stale"][..], &["clear-stale", "--json"]] {
        let run = ovlock(&env, &input, args);
        assert_clean(&run, args.len() > 1, VERDICT_CODES);
        assert_eq!(run.code, 4, "{run:?}");
    }
    assert_eq!(fs::read(&target).unwrap(), before, "the target changed");
    assert!(
        fs::symlink_metadata(env.ws().join(name))
            .unwrap()
            .is_symlink(),
        "the symlink was removed"
    );
}

#[test]
fn symlink_at_the_lock_is_never_followed() {
    symlink_never_followed(LOCK);
}

#[test]
fn symlink_at_the_pid_file_is_never_followed() {
    symlink_never_followed(PIDFILE);
}

// ---------------------------------------------------------------------------
// Huge, sparse, binary and hostile pid files

/// A pid file far larger than a PID: ovlock reads at most a few hundred
/// bytes, says it is too long, and calls it stale (it is old).
fn too_long(build: fn(&TestEnv) -> Input, size: u64) {
    let env = TestEnv::new();
    let input = build(&env);
    for sub in [&["status"][..], &["check"]] {
        let seen = see(&env, &input, sub);
        assert_eq!(seen.code, 2, "{sub:?}: {}", seen.text);
        assert_eq!(seen.dir()["verdict"], "stale");
        let why = format!("{size} bytes long, far too long");
        seen.assert_reason(&why);
        assert_names(&seen, &env.pid_path(), &why);
        let lock = seen.lock("pidfile");
        assert_eq!(lock["size"], size, "{lock:#}");
        let content = lock["content"].as_str().unwrap();
        assert!(content.len() <= 1024, "it read {} bytes", content.len());
    }
    let run = ovlock(&env, &input, &["clear-stale", "--json"]);
    assert_clean(&run, true, VERDICT_CODES);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!env.pid_path().exists());
}

#[test]
fn huge_pid_file_is_too_long_and_stale() {
    too_long(huge_pid_file, 10 << 20);
}

#[test]
fn sparse_terabyte_pid_file_is_too_long_and_stale() {
    too_long(sparse_pid_file, 1 << 40);
}

/// Every byte value: the DEL byte (0x7f) must reach the JSON as an escape too.
#[test]
fn binary_pid_file_is_stale_and_shown_escaped() {
    let env = TestEnv::new();
    let input = binary_pid_file(&env);
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.code, 2, "{}", seen.text);
    seen.assert_reason("it is not text");
    assert_names(&seen, &env.pid_path(), "not text");
    // The content column starts with the first bytes, escaped.
    assert!(seen.text.contains("\\xff\\xfe"), "{}", seen.text);
    assert_eq!(seen.lock("pidfile")["size"], 256);
}

#[test]
fn nul_bytes_in_the_pid_file_are_not_a_number() {
    let env = TestEnv::new();
    let input = pid_content(b"12\x0034\x00")(&env);
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.code, 2, "{}", seen.text);
    seen.assert_reason("not a number");
    assert!(seen.text.contains("12\\x0034\\x00"), "{}", seen.text);
    assert_eq!(seen.lock("pidfile")["content"], "12\u{0}34\u{0}");
}

/// Terminal escapes in a pid file, C1 controls (U+009B is a one-character
/// CSI) and DEL included, are escaped in the text and carried as JSON
/// escapes in `--json`, which serde_json alone does only up to U+001F.
#[test]
fn escape_sequences_in_the_pid_file_never_reach_the_terminal() {
    let env = TestEnv::new();
    let input = escapes_pid_file(&env);
    // The text output first, on its own: the JSON check in `see` fails.
    let text = ovlock(&env, &input, &["status", "--color", "never"]);
    assert_clean(&text, false, VERDICT_CODES);
    assert_eq!(text.code, 2, "{text:?}");
    // The content column shows the first characters, escaped.
    assert!(
        text.stdout.contains("\\x1b]0;pwned\\x07\\x1b[2J"),
        "{}",
        text.stdout
    );
    // With colour, only ovlock's own colour sequences (SGR) remain.
    let coloured = ovlock(&env, &input, &["status", "--color", "always"]);
    assert!(
        !has_raw_control(&strip_sgr(&coloured.stdout)),
        "{}",
        coloured.stdout
    );
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.lock("pidfile")["content"], ESCAPES);
    seen.assert_reason("not a number");
}

#[test]
fn raw_c1_bytes_in_the_pid_file_are_shown_escaped() {
    let env = TestEnv::new();
    let input = raw_c1_pid_file(&env);
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.code, 2, "{}", seen.text);
    seen.assert_reason("not text");
    assert!(seen.text.contains("\\x9b31m\\x1b[2J"), "{}", seen.text);
}

/// ovlock's own colour: `ESC [ digits ; ... m`.
fn strip_sgr(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(after.len());
        if after[end..].starts_with('m') {
            rest = &after[end + 1..];
        } else {
            out.push_str("\x1b[");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The same for a process whose name (comm) is "\x1b]0;pwn\x07\u{9b}x" and
/// whose arguments hold "\x1b[2J\u{9b}31m\x7f", in `who` and `who --json`.
#[test]
fn escape_sequences_in_a_process_name_and_command_line_never_reach_the_terminal() {
    let env = TestEnv::new();
    let input = evil_owner(&env);
    let owner: u32 = fs::read_to_string(env.pid_path()).unwrap().parse().unwrap();
    for sub in [&["status"][..], &["who"], &["check"]] {
        let text = ovlock(&env, &input, &[sub, &["--color", "never"]].concat());
        assert_clean(&text, false, VERDICT_CODES);
        assert!(names_pid(&text.stdout, owner), "{sub:?}: {}", text.stdout);
    }
    let who = ovlock(&env, &input, &["who", "--color", "never"]);
    assert!(
        who.stdout.contains("\\x1b]0;pwn\\x07\\u{9b}x"),
        "{}",
        who.stdout
    );
    // The command line, shell-quoted: $'...' with the bytes escaped.
    assert!(
        who.stdout.contains("$'\\x1b[2J\\xc2\\x9b31m\\x7f'"),
        "{}",
        who.stdout
    );
    // who --all takes no directory: it finds the process among all others.
    let all = run_cmd_within(
        &mut env.command(&["who", "--all", "--color", "never"]),
        LIMIT,
    );
    assert_clean(&all, false, WHO_CODES);
    assert!(
        all.stdout.contains("\\x1b]0;pwn\\x07\\u{9b}x"),
        "{}",
        all.stdout
    );

    // A process that is not OpenViking, named by the pid file: the reason
    // that calls the file stale names it.
    let env2 = TestEnv::new();
    let input2 = evil_stranger(&env2);
    let text = ovlock(&env2, &input2, &["check", "--color", "never"]);
    assert_clean(&text, false, VERDICT_CODES);
    assert_eq!(text.code, 2, "{text:?}");
    assert!(text.stdout.contains("\\x1b]0;pwn\\x07"), "{}", text.stdout);

    for (env, input, sub) in [
        (&env, &input, "status"),
        (&env, &input, "who"),
        (&env2, &input2, "check"),
    ] {
        let seen = see(env, input, &[sub]);
        let dir = seen.dir();
        if let Some(o) = dir["owners"].as_array().unwrap().first() {
            assert_eq!(o["name"], String::from_utf8_lossy(EVIL_COMM).as_ref());
            assert!(
                strings(&o["cmdline"])
                    .iter()
                    .any(|a| a == "\x1b[2J\u{9b}31m\x7f")
            );
        }
    }
    let all = run_cmd_within(&mut env.command(&["who", "--all", "--json"]), LIMIT);
    assert_clean(&all, true, WHO_CODES);
}

// ---------------------------------------------------------------------------
// Numbers that are not PIDs, and PIDs that are not OpenViking

fn pid_file_check(content: &[u8]) -> (TestEnv, Seen) {
    let env = TestEnv::new();
    let input = pid_content(content)(&env);
    let seen = see(&env, &input, &["status"]);
    assert_eq!(
        seen.code,
        2,
        "{:?}: {}",
        String::from_utf8_lossy(content),
        seen.text
    );
    assert_eq!(seen.dir()["verdict"], "stale");
    assert_names(&seen, &env.pid_path(), "left over");
    let run = ovlock(&env, &input, &["clear-stale", "--json"]);
    assert_clean(&run, true, VERDICT_CODES);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!env.pid_path().exists());
    (env, seen)
}

#[test]
fn signs_and_zero_are_no_pid() {
    for content in [&b"-1"[..], b"0", b"-0", b"+0"] {
        let (_env, seen) = pid_file_check(content);
        assert!(
            seen.reasons().contains("not a positive number"),
            "{:?}: {}",
            String::from_utf8_lossy(content),
            seen.reasons()
        );
        assert_eq!(seen.lock("pidfile")["pid"], Value::Null);
    }
}

/// "+5" is PID 5, as Python's int() reads it: a kernel thread or nothing,
/// never OpenViking here.
#[test]
fn a_plus_sign_is_read_as_python_reads_it() {
    let (_env, seen) = pid_file_check(b"+5");
    assert_eq!(seen.lock("pidfile")["pid"], 5);
    assert!(names_pid(&seen.reasons(), 5), "{}", seen.reasons());
}

/// PID 1 is alive, but it is not OpenViking here: stale, and the reason names it.
#[test]
#[cfg_attr(
    ovlock_test_pid1_is_openviking,
    ignore = "PID 1 looks like OpenViking here (probed by build.rs)"
)]
fn pid_1_is_not_openviking() {
    let comm = fs::read_to_string("/proc/1/comm").unwrap();
    let cmdline = fs::read("/proc/1/cmdline").unwrap_or_default();
    assert!(
        !(comm.clone() + &String::from_utf8_lossy(&cmdline))
            .to_lowercase()
            .contains("openviking"),
        "PID 1 ({}) looks like OpenViking here, so there is nothing to test; build.rs, \
         which marks this test ignored then, did not see it at build time; \
         `touch build.rs` to probe again",
        comm.trim()
    );
    let (_env, seen) = pid_file_check(b"1");
    let reasons = seen.reasons();
    // Named as ovlock names processes (by its comm, as a rule).
    let named = reasons
        .split_once("PID 1 now belongs to ")
        .and_then(|(_, rest)| rest.split_once(", which is not OpenViking"))
        .map(|(name, _)| name.to_string());
    assert!(
        named.as_deref().is_some_and(|n| !n.is_empty()),
        "PID 1 ({}) is not named: {reasons}",
        comm.trim()
    );
}

#[test]
#[cfg_attr(
    ovlock_test_pid_max_at_limit,
    ignore = "pid_max is Linux's limit here: no PID lies above it (probed by build.rs)"
)]
fn a_pid_above_pid_max_has_exited() {
    let pid = pid_above_pid_max_here();
    let (_env, seen) = pid_file_check(pid.to_string().as_bytes());
    seen.assert_reason(&format!("PID {pid} has exited"));
}

#[test]
fn numbers_beyond_any_pid_are_too_large() {
    for content in [
        &b"4194305"[..],
        b"99999999999999999999999",
        b"18446744073709551617",
    ] {
        let (_env, seen) = pid_file_check(content);
        seen.assert_reason("too large to be a PID");
        assert_eq!(seen.lock("pidfile")["pid"], Value::Null);
    }
}

// ---------------------------------------------------------------------------
// Data directories

#[test]
fn a_data_directory_that_is_a_file() {
    let env = TestEnv::new();
    let input = dir_is_a_file(&env);
    for sub in [&["status"][..], &["check"], &["clear-stale"], &["who"]] {
        let seen = see(&env, &input, sub);
        assert_eq!(seen.code, 4, "{sub:?}: {}", seen.text);
        assert_names(&seen, &input.named, "is a regular file, not a directory");
    }
    assert_eq!(fs::read_to_string(&input.named).unwrap(), "12345");
}

/// Unprivileged on a directory it may not enter: unknown (4), and a hint
/// that root may see more.
#[test]
#[cfg_attr(
    ovlock_test_no_root,
    ignore = "needs root and setpriv to run ovlock as another user (probed by build.rs)"
)]
fn an_unreadable_data_directory_as_nobody() {
    let env = TestEnv::new();
    let input = unreadable_dir(&env);
    for sub in [&["status"][..], &["check"], &["clear-stale"], &["who"]] {
        let seen = see(&env, &input, sub);
        assert_eq!(seen.code, 4, "{sub:?}: {}", seen.text);
        assert_names(&seen, &env.ws(), "permission denied");
        // The hint: in the fixes, which status and who print (check and
        // clear-stale print one line: the verdict and its first reason).
        assert!(
            seen.fixes().contains("as root"),
            "{sub:?}: {}",
            seen.fixes()
        );
        if matches!(sub[0], "status" | "who") {
            assert!(seen.text.contains("as root"), "{sub:?}: {}", seen.text);
        }
    }
    let pids = ovlock(&env, &input, &["who", "--pid"]);
    assert_eq!((pids.code, pids.stdout.as_str()), (4, ""), "{pids:?}");
    fs::set_permissions(env.ws(), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        env.pid_path().exists(),
        "nobody removed a file it could not see"
    );
}

/// A pid file of another user's that nobody may read: unknown (4), named,
/// with a hint that root may see more; never removed.
#[test]
#[cfg_attr(
    ovlock_test_no_root,
    ignore = "needs root and setpriv to run ovlock as another user (probed by build.rs)"
)]
fn a_pid_file_of_another_user_as_nobody() {
    let env = TestEnv::new();
    let input = foreign_pid_file(&env);
    for sub in [&["status"][..], &["check"], &["clear-stale"], &["who"]] {
        let seen = see(&env, &input, sub);
        assert_eq!(seen.code, 4, "{sub:?}: {}", seen.text);
        assert_names(&seen, &env.pid_path(), "Permission denied");
        // The hint: in the fixes, which status and who print (check and
        // clear-stale print one line: the verdict and its first reason).
        assert!(
            seen.fixes().contains("as root"),
            "{sub:?}: {}",
            seen.fixes()
        );
        if matches!(sub[0], "status" | "who") {
            assert!(seen.text.contains("as root"), "{sub:?}: {}", seen.text);
        }
    }
    assert!(env.pid_path().exists());
}

/// Hostile directory names: the path is shown escaped in text, exactly in
/// JSON (where it is UTF-8), and the suggested command names exactly this
/// directory when pasted into a shell.
fn hostile_name(name: &[u8]) {
    let env = TestEnv::new();
    let input = named_dir(&env, name);
    let path = input.named.clone();
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.code, 2, "{}", seen.text);
    assert!(seen.text.contains(&shown(&path)), "{}", seen.text);
    if let Some(utf8) = path.to_str() {
        assert_eq!(seen.dir()["path"], utf8);
    }
    // The fix, pasted into bash, names exactly this directory.
    let fix = strings(&seen.dir()["fixes"])
        .into_iter()
        .find_map(|f| {
            f.split_once("ovlock clear-stale ")
                .map(|(_, q)| q.to_string())
        })
        .unwrap_or_else(|| panic!("no clear-stale fix: {}", seen.fixes()));
    let echoed = Command::new("bash")
        .args(["-c", &format!("printf '%s' {fix}")])
        .output()
        .unwrap();
    assert_eq!(
        echoed.stdout,
        path.as_os_str().as_bytes(),
        "the fix does not name the directory: {fix}"
    );
    let check = ovlock(&env, &input, &["check", "--color", "never"]);
    assert!(check.stdout.starts_with(&shown(&path)), "{}", check.stdout);
    let cleared = ovlock(&env, &input, &["clear-stale", "--color", "never"]);
    assert_clean(&cleared, false, VERDICT_CODES);
    assert_eq!(cleared.code, 0, "{cleared:?}");
    assert!(!path.join(PIDFILE).exists());
}

#[test]
fn a_data_directory_named_with_spaces_and_a_newline() {
    hostile_name(SPACE_NEWLINE);
}

#[test]
fn a_data_directory_named_with_bytes_that_are_not_utf8() {
    hostile_name(NOT_UTF8);
}

#[test]
fn a_data_directory_named_with_escape_sequences() {
    hostile_name(ESCAPED_NAME);
}

// ---------------------------------------------------------------------------
// ov.conf

/// A config that stops ovlock: exit 4, one message on stderr that names the
/// file, and with --json still a document.
fn config_error(build: fn(&TestEnv) -> Input, what: &str) -> Seen {
    let env = TestEnv::new();
    let input = build(&env);
    let seen = see(&env, &input, &["check"]);
    assert_eq!(seen.code, 4, "{seen:?}", seen = seen.stderr);
    let name = shown(&input.named);
    assert!(
        seen.stderr.contains(&name) && seen.stderr.contains(what),
        "stderr does not name {name} and {what:?}: {}",
        seen.stderr
    );
    assert_eq!(seen.text, "");
    let error = seen.doc["error"].as_str().unwrap_or_default();
    assert!(error.contains(what), "{:#}", seen.doc);
    assert_eq!(seen.doc["exit_code"], 4);
    seen
}

#[test]
fn a_malformed_config_names_the_file_and_the_line() {
    config_error(malformed_conf, "not valid JSON at line 3, column");
}

#[test]
fn a_huge_config_is_too_large() {
    config_error(huge_conf, "larger than 4 MiB");
}

#[test]
fn a_config_that_is_a_fifo_does_not_block() {
    config_error(fifo_conf, "FIFO");
}

#[test]
fn a_config_that_is_a_directory() {
    config_error(directory_conf, "directory");
}

#[test]
fn a_malformed_config_with_escape_sequences_in_its_name() {
    config_error(escaped_name_conf, "not valid JSON");
}

#[test]
fn a_config_with_a_bom_is_read() {
    let env = TestEnv::new();
    let input = bom_conf(&env);
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.code, 0, "{}", seen.text);
    assert_eq!(seen.dir()["path"], env.ws_str());
    assert_eq!(seen.dir()["source"], "config");
}

#[test]
fn unset_variables_in_the_config_stay_as_written() {
    let env = TestEnv::new();
    let input = unset_var_conf(&env);
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.code, 0, "{}", seen.text);
    assert_eq!(seen.dir()["path"], input.named.to_str().unwrap());
    assert!(
        seen.text.contains(input.named.to_str().unwrap()),
        "{}",
        seen.text
    );
}

#[test]
fn escape_sequences_in_the_configured_workspace_are_shown_escaped() {
    let env = TestEnv::new();
    let input = escaped_workspace_conf(&env);
    let seen = see(&env, &input, &["status"]);
    assert_eq!(seen.code, 0, "{}", seen.text);
    assert!(seen.text.contains(&shown(&input.named)), "{}", seen.text);
    assert_eq!(seen.dir()["path"], input.named.to_str().unwrap());
}

// ---------------------------------------------------------------------------
// Pipes

/// Reads the first line of ovlock's output, then closes the pipe (as
/// `| head -1` does) and waits: ovlock must end quietly.
fn first_line_only(env: &TestEnv, args: &[OsString]) -> (String, i32, String) {
    let mut child = env
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    let code = status
        .code()
        .unwrap_or_else(|| panic!("ovlock was killed by a signal: {status}"));
    (first, code, stderr)
}

#[test]
fn status_piped_into_head_ends_quietly() {
    let env = TestEnv::new();
    old_file(&env.pid_path(), dead_pid().to_string().as_bytes());
    let (first, code, stderr) = first_line_only(
        &env,
        &[
            "status".into(),
            "--color".into(),
            "never".into(),
            env.ws().into(),
        ],
    );
    assert_eq!(first.trim_end(), env.ws_str());
    assert_eq!((code, stderr.as_str()), (2, ""));

    // Output far larger than a pipe's buffer, so the write really fails
    // after the reader has gone.
    let many: Vec<OsString> = (0..200)
        .map(|i| env.root().join(format!("missing-{i}")).into_os_string())
        .collect();
    for args in [
        vec!["status", "--color", "never"],
        vec!["status", "--json"],
        vec!["check", "--color", "never"],
        vec!["who", "--color", "never"],
        vec!["clear-stale", "--dry-run"],
    ] {
        let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
        all.extend(many.iter().cloned());
        let (first, code, stderr) = first_line_only(&env, &all);
        assert!(!first.is_empty(), "{args:?}");
        assert_eq!(stderr, "", "{args:?}");
        let codes = if args[0] == "who" {
            WHO_CODES
        } else {
            VERDICT_CODES
        };
        assert!(codes.contains(&code), "{args:?}: exit code {code}");
    }
}

// ---------------------------------------------------------------------------
// The sweep

/// The subcommands of the sweep, each with its documented exit codes.
const SUBCOMMANDS: &[(&[&str], &[i32])] = &[
    (&["status"], VERDICT_CODES),
    (&["check"], VERDICT_CODES),
    (&["check", "--scan"], VERDICT_CODES),
    (&["who"], WHO_CODES),
    (&["who", "--pid"], WHO_CODES),
    (&["clear-stale", "--dry-run"], VERDICT_CODES),
    (&["clear-stale"], VERDICT_CODES),
];

/// Every subcommand, with and without --json, over every catalogue input
/// that needs nothing of the machine (the others have their sweeps below):
/// stderr never shows a panic, the exit code is always a documented one,
/// the JSON always parses and the text holds no raw control character.
/// (Whether JSON escapes C1 controls is checked by the tests above.)
#[test]
fn sweep_every_subcommand_over_every_input() {
    sweep(Needs::Nothing);
}

/// The sweep over the device nodes.
#[test]
#[cfg_attr(
    ovlock_test_no_mknod,
    ignore = "needs CAP_MKNOD to make a device node (probed by build.rs)"
)]
fn sweep_every_subcommand_over_the_device_nodes() {
    sweep(Needs::Mknod);
}

/// The sweep over the inputs seen as user nobody.
#[test]
#[cfg_attr(
    ovlock_test_no_root,
    ignore = "needs root and setpriv to run ovlock as another user (probed by build.rs)"
)]
fn sweep_every_subcommand_over_the_inputs_seen_as_nobody() {
    sweep(Needs::Root);
}

/// The sweep over a PID above pid_max.
#[test]
#[cfg_attr(
    ovlock_test_pid_max_at_limit,
    ignore = "pid_max is Linux's limit here: no PID lies above it (probed by build.rs)"
)]
fn sweep_every_subcommand_over_a_pid_above_pid_max() {
    sweep(Needs::PidBelowLimit);
}

/// The sweep over the catalogue inputs that need `needs`.
fn sweep(needs: Needs) {
    let catalogue: Vec<_> = catalogue()
        .into_iter()
        .filter(|(_, maker)| maker.needs == needs)
        .collect();
    assert!(!catalogue.is_empty(), "no input needs {needs:?}");
    let found = Mutex::new(Vec::<String>::new());
    let built = Mutex::new(Vec::<&str>::new());
    let next = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut n = next.lock().unwrap();
                        *n += 1;
                        *n - 1
                    };
                    let Some((name, maker)) = catalogue.get(i) else {
                        return;
                    };
                    let env = TestEnv::new();
                    let input = (maker.make)(&env);
                    built.lock().unwrap().push(name);
                    let mut runs: Vec<(Vec<&str>, &[i32], bool)> = Vec::new();
                    for (sub, codes) in SUBCOMMANDS {
                        for json in [true, false] {
                            let mut args = sub.to_vec();
                            args.extend(if json {
                                &["--json"][..]
                            } else {
                                &["--color", "never"]
                            });
                            runs.push((args, codes, json));
                        }
                    }
                    for (args, codes, json) in runs {
                        let run = ovlock(&env, &input, &args);
                        let mut bad = problems(&run, json, codes, false);
                        if let Some(pid) = input.secret_pid {
                            if names_number(&run.stdout, pid) {
                                bad.push(format!("the symlink's target was read: PID {pid} shown"));
                            }
                        }
                        if !bad.is_empty() {
                            found
                                .lock()
                                .unwrap()
                                .push(format!("{name}: {args:?}: {}\n{run:?}", bad.join("; ")));
                        }
                    }
                    // who --all takes no directory: it looks at every process.
                    for json in [true, false] {
                        let args: &[&str] = if json {
                            &["who", "--all", "--json"]
                        } else {
                            &["who", "--all", "--color", "never"]
                        };
                        let run = run_cmd_within(&mut env.command(args), LIMIT);
                        let bad = problems(&run, json, WHO_CODES, false);
                        if !bad.is_empty() {
                            found
                                .lock()
                                .unwrap()
                                .push(format!("{name}: {args:?}: {}\n{run:?}", bad.join("; ")));
                        }
                    }
                }
            });
        }
    });
    let found = found.into_inner().unwrap();
    assert!(
        found.is_empty(),
        "{} problems:\n{}",
        found.len(),
        found.join("\n\n")
    );
    // Every input was made: a builder that cannot make its input fails.
    let built = built.into_inner().unwrap();
    assert!(
        built.len() == catalogue.len(),
        "only {} of {} inputs were made: {built:?}",
        built.len(),
        catalogue.len()
    );
}
