//! Test harness for ovlock's integration tests, in the spirit of fd's
//! tests/testenv: a fresh temporary directory per test, real processes that
//! hold real locks (tests/it/support/holder.py), and a runner that returns the
//! exit code, the output and the parsed JSON.
//!
//! Synchronisation is by readiness lines and process state, never by sleeping
//! for a guessed time.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

pub mod prometheus;
mod schema;
pub use schema::{assert_fits_schema, schema_errors};

pub const LOCK: &str = ".openviking.lock";
pub const PIDFILE: &str = ".openviking.pid";

/// A command-line tag that makes a helper process look like an OpenViking server.
pub const SERVER_TAG: &str = "openviking-server";
/// A command-line tag that does not.
pub const PLAIN_TAG: &str = "plain-holder";

/// Installs a helper script in the temporary directory and returns its path.
/// Helpers run from there so that a checkout path containing "openviking"
/// cannot make every helper look like OpenViking. The copy is named by the
/// script's content, shared by concurrent test binaries, and written
/// atomically.
pub fn install_script(stem: &str, source: &str) -> PathBuf {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in source.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    let path = std::env::temp_dir().join(format!("ovlock-test-{stem}-{hash:016x}.py"));
    assert!(
        !path.to_string_lossy().to_lowercase().contains("openviking"),
        "the temporary directory {} contains \"openviking\", so every helper would look \
         like OpenViking; set TMPDIR elsewhere",
        path.display()
    );
    if fs::read_to_string(&path).ok().as_deref() != Some(source) {
        let partial = path.with_extension(format!("{}.tmp", std::process::id()));
        fs::write(&partial, source).expect("write a helper script");
        fs::rename(&partial, &path).expect("install a helper script");
    }
    path
}

/// holder.py, installed (see [`install_script`]).
pub fn holder_script() -> &'static Path {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| install_script("holder", include_str!("holder.py")))
}

/// The real Python interpreter (not a pyenv-style shim, which would be slower
/// and might add a process in between).
pub fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .stdin(Stdio::null())
            .output()
            .expect("python3 must be installed to run these tests");
        assert!(out.status.success(), "python3 failed: {out:?}");
        let exe = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(
            !exe.to_string_lossy().to_lowercase().contains("openviking"),
            "python lives under a path containing \"openviking\" ({}), so every helper would \
             look like OpenViking",
            exe.display()
        );
        exe
    })
}

/// One test's world: a temporary root holding the data directory `ws/` and a
/// `home/` that ovlock sees as $HOME, so the machine's ~/.openviking/ov.conf
/// cannot interfere.
pub struct TestEnv {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let tmp = tempfile::Builder::new()
            .prefix("ovlock-test-")
            .tempdir()
            .expect("temporary directory");
        // ovlock reports resolved paths; compare against the same.
        let root = fs::canonicalize(tmp.path()).unwrap();
        fs::create_dir(root.join("ws")).unwrap();
        fs::create_dir(root.join("home")).unwrap();
        TestEnv { _tmp: tmp, root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The data directory (exists, empty at first).
    pub fn ws(&self) -> PathBuf {
        self.root.join("ws")
    }

    pub fn ws_str(&self) -> String {
        self.ws().to_str().unwrap().to_string()
    }

    pub fn lock_path(&self) -> PathBuf {
        self.ws().join(LOCK)
    }

    pub fn pid_path(&self) -> PathBuf {
        self.ws().join(PIDFILE)
    }

    pub fn home(&self) -> PathBuf {
        self.root.join("home")
    }

    /// ovlock with `args`, run in the test root with a clean environment.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ovlock"));
        cmd.args(args)
            .current_dir(&self.root)
            .env("HOME", self.home())
            .env_remove("OPENVIKING_CONFIG_FILE")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("CLICOLOR")
            .stdin(Stdio::null());
        cmd
    }

    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        run_cmd(&mut self.command(args))
    }

    /// Runs `SUBCOMMAND --json DIR` and `SUBCOMMAND DIR` on the data directory,
    /// checks they agree on the exit code, and returns both.
    pub fn examine(&self, subcommand: &str, extra: &[&str]) -> Report {
        let ws = self.ws_str();
        let mut json_args = vec![subcommand, "--json"];
        json_args.extend_from_slice(extra);
        json_args.push(&ws);
        let json = self.run(&json_args);
        let mut human_args = vec![subcommand, "--color", "never"];
        human_args.extend_from_slice(extra);
        human_args.push(&ws);
        let human = self.run(&human_args);
        assert_eq!(
            json.code, human.code,
            "--json and text disagree on the exit code\njson: {json:?}\ntext: {human:?}"
        );
        assert_eq!(
            json.json()["exit_code"],
            json.code,
            "the document's exit_code is not the process's: {json:?}"
        );
        Report {
            code: json.code,
            dir: json.dir(),
            text: human.stdout,
        }
    }

    /// `status` on the data directory, as JSON and as text.
    pub fn status(&self) -> Report {
        self.examine("status", &[])
    }

    pub fn status_with(&self, extra: &[&str]) -> Report {
        self.examine("status", extra)
    }
}

/// Makes a FIFO at `path`, and its directories; opening it for reading
/// would block until a writer came.
pub fn mkfifo(path: &Path) -> PathBuf {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o644),
    )
    .unwrap();
    path.to_path_buf()
}

/// Asserts that `reasons` (one a line, as a report's) say `words`, showing
/// them all if they do not.
#[track_caller]
pub fn assert_reason(reasons: &str, words: &str) {
    assert!(reasons.contains(words), "{reasons}");
}

/// What one ovlock run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run_cmd(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run ovlock");
    Run {
        code: out
            .status
            .code()
            .unwrap_or_else(|| panic!("ovlock died by a signal: {out:?}")),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs `cmd`, killing it and failing the test if it has not finished
/// within `limit` (for situations where a wrong implementation would hang).
/// Its output is read while it runs: a child that fills a pipe nobody reads
/// blocks in write(2), which would look like the hang this looks for.
pub fn run_cmd_within(cmd: &mut Command, limit: Duration) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ovlock");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ovlock did not finish within {limit:?}: it blocked");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code().expect("exit code"),
        stdout: String::from_utf8(stdout.join().unwrap()).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr.join().unwrap()).expect("stderr is UTF-8"),
    }
}

impl Run {
    /// The JSON document, checked for its schema version and against the
    /// schema.
    pub fn json(&self) -> Value {
        let doc: Value = serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"));
        assert_eq!(doc["schema_version"], 1, "{doc:#}");
        assert_fits_schema(&doc);
        doc
    }

    /// The single data_dirs entry.
    pub fn dir(&self) -> Value {
        let doc = self.json();
        let dirs = doc["data_dirs"].as_array().expect("data_dirs is an array");
        assert_eq!(dirs.len(), 1, "{doc:#}");
        dirs[0].clone()
    }
}

/// One directory's report, as JSON and as the text of the same subcommand.
#[derive(Debug)]
pub struct Report {
    pub code: i32,
    pub dir: Value,
    pub text: String,
}

impl Report {
    pub fn verdict(&self) -> &str {
        self.dir["verdict"].as_str().expect("verdict is a string")
    }

    pub fn owner_pids(&self) -> Vec<u32> {
        owner_pids(&self.dir)
    }

    /// The owner with this PID.
    pub fn owner(&self, pid: u32) -> &Value {
        self.dir["owners"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["pid"] == pid)
            .unwrap_or_else(|| panic!("no owner with PID {pid}: {:#}", self.dir))
    }

    /// All reasons, one a line.
    pub fn reasons(&self) -> String {
        strings(&self.dir["reasons"]).join("\n")
    }

    /// Asserts that a reason says `words`, showing every reason if none does.
    #[track_caller]
    pub fn assert_reason(&self, words: &str) {
        assert_reason(&self.reasons(), words);
    }

    pub fn warnings(&self) -> String {
        strings(&self.dir["warnings"]).join("\n")
    }

    /// The lock entry for "flock" or "pidfile".
    pub fn lock(&self, protocol: &str) -> &Value {
        self.dir["locks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["protocol"] == protocol)
            .unwrap_or_else(|| panic!("no {protocol} lock entry: {:#}", self.dir))
    }

    /// Asserts the exit code, the JSON verdict and exit_code, and the owners.
    pub fn expect(&self, code: i32, verdict: &str, mut owners: Vec<u32>) {
        let ctx = || format!("{:#}\n--- text ---\n{}", self.dir, self.text);
        assert_eq!(self.code, code, "exit code\n{}", ctx());
        assert_eq!(self.verdict(), verdict, "verdict\n{}", ctx());
        assert_eq!(self.dir["exit_code"], code, "JSON exit_code\n{}", ctx());
        let mut got = self.owner_pids();
        got.sort_unstable();
        owners.sort_unstable();
        assert_eq!(got, owners, "owner PIDs\n{}", ctx());
        for pid in owners {
            assert!(
                names_pid(&self.text, pid),
                "the text output does not name PID {pid}:\n{}",
                self.text
            );
        }
    }
}

pub fn owner_pids(dir: &Value) -> Vec<u32> {
    dir["owners"]
        .as_array()
        .expect("owners is an array")
        .iter()
        .map(|o| o["pid"].as_u64().expect("pid is a number") as u32)
        .collect()
}

pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().expect("a string").to_string())
        .collect()
}

/// Whether `text` contains `n` as a whole number (not part of a longer one).
pub fn names_number(text: &str, n: u32) -> bool {
    text.split(|c: char| !c.is_ascii_digit())
        .any(|token| token == n.to_string())
}

/// Whether some line of `text` speaks of a PID and names `pid` ("by PID 42",
/// "by PIDs 42, 50", "PID 42 has exited"), so a timestamp or a temporary
/// directory's name that happens to contain the number does not count.
pub fn names_pid(text: &str, pid: u32) -> bool {
    text.lines()
        .any(|line| line.contains("PID") && names_number(line, pid))
}

/// Whether ESC appears anywhere (colour, or a raw escape sequence).
pub fn has_escape(text: &str) -> bool {
    text.contains('\x1b')
}

/// Whether any control character but a newline appears: what a terminal
/// would act on instead of showing.
pub fn has_raw_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

// ---------------------------------------------------------------------------
// Processes

/// A helper process, killed (and reaped, when it is our child) when dropped.
pub struct Proc {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: u32,
    /// For `fork-flock`: the process that took the lock, forked and exited.
    parent: Option<u32>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// For `fork-flock`: the PID of the exited process that took the lock.
    pub fn parent_pid(&self) -> Option<u32> {
        self.parent
    }

    /// Kills our child but leaves it unreaped: a zombie until dropped.
    pub fn kill_leaving_zombie(&mut self) {
        self.stdin = None;
        kill_pid(self.pid);
        let pid = self.pid;
        wait_until(Duration::from_secs(10), || !is_running(pid));
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "a zombie remains"
        );
    }

    /// Kills the process and, when it is our child, reaps it: afterwards it no
    /// longer exists, not even as a zombie.
    pub fn kill(&mut self) {
        self.stdin = None;
        match self.child.take() {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {
                // Orphaned (its parent was our child and exited): not ours to
                // reap, so wait until it is at least dead.
                kill_pid(self.pid);
                wait_until(Duration::from_secs(10), || !is_running(self.pid));
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        match self.child.take() {
            Some(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => kill_pid(self.pid),
        }
    }
}

fn kill_pid(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Whether `pid` exists and has not exited (a zombie counts as not running).
pub fn is_running(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.trim().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

/// Polls `cond` until it holds; panics after `limit`. For waiting on a state
/// the test cannot be told about directly, never as a guessed delay.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts holder.py in `mode` on `path` with a command-line `tag`, and waits
/// for its "ready <pid>" line.
pub fn spawn_holder(mode: &str, path: &Path, tag: &str) -> Proc {
    let mut cmd = Command::new(python());
    cmd.arg(holder_script())
        .args([mode, tag])
        .env("HOLDER_PATH", path);
    spawn_ready(
        cmd,
        mode == "fork-flock",
        &format!("holder.py {mode} {}", path.display()),
    )
}

/// Starts a child that prints "ready <pid>" once it holds what it should and
/// then blocks until its stdin closes. With `forks`, the ready line comes from
/// a forked child and the parent exits on its own; it is reaped here, so only
/// the child remains.
pub fn spawn_ready(mut cmd: Command, forks: bool, what: &str) -> Proc {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let Some(pid) = line
        .strip_prefix("ready ")
        .and_then(|p| p.trim().parse::<u32>().ok())
    else {
        let _ = child.kill();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        let _ = child.wait();
        panic!("{what} did not get ready: {line:?}\n{err}");
    };
    if forks {
        // The parent exits by itself; reap it, so only the forked child holds
        // the lock and the parent is gone for good.
        let status = child.wait().unwrap();
        assert!(status.success(), "holder parent: {status}");
        assert_ne!(
            pid,
            child.id(),
            "the ready line must come from the forked child"
        );
        assert!(!is_running(child.id()));
        Proc {
            child: None,
            stdin,
            pid,
            parent: Some(child.id()),
        }
    } else {
        assert_eq!(pid, child.id(), "{what} reported another PID");
        Proc {
            child: Some(child),
            stdin,
            pid,
            parent: None,
        }
    }
}

/// A process that holds nothing and does not look like OpenViking: `sleep`.
pub fn spawn_sleep() -> Proc {
    spawn_sleep_in(&std::env::temp_dir())
}

/// The PID of a process that ran, exited and was reaped.
pub fn dead_pid() -> u32 {
    let mut child = Command::new("true").stdin(Stdio::null()).spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    pid
}

// ---------------------------------------------------------------------------
// Files and times

pub fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(when))
        .unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

pub fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// The last boot, from /proc/stat `btime`.
pub fn boot_time() -> SystemTime {
    let stat = fs::read_to_string("/proc/stat").unwrap();
    let secs: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .expect("btime in /proc/stat")
        .trim()
        .parse()
        .unwrap();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A time after the last boot but well before now (an hour ago, or half-way
/// since boot on a machine that booted less than two hours ago).
pub fn after_boot_but_long_ago() -> SystemTime {
    let now = SystemTime::now();
    let since_boot = now.duration_since(boot_time()).unwrap();
    assert!(
        since_boot > Duration::from_secs(20),
        "the machine booted {since_boot:?} ago; too recently for this test"
    );
    now - (since_boot / 2).min(Duration::from_secs(3600))
}

/// One entry of a directory listing: everything that would show a change.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: PathBuf,
    pub ino: u64,
    pub mode: u32,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
    pub size: u64,
    pub content: Option<Vec<u8>>,
}

/// The directory itself and everything below it, without following symlinks.
pub fn snapshot(dir: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn walk(base: &Path, path: &Path, out: &mut Vec<Entry>) {
    let meta = fs::symlink_metadata(path).unwrap();
    out.push(Entry {
        name: path.strip_prefix(base).unwrap().to_path_buf(),
        ino: meta.ino(),
        mode: meta.mode(),
        mtime: (meta.mtime(), meta.mtime_nsec()),
        ctime: (meta.ctime(), meta.ctime_nsec()),
        size: meta.size(),
        content: meta.is_file().then(|| fs::read(path).unwrap()),
    });
    if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            walk(base, &entry.unwrap().path(), out);
        }
    }
}

/// Waits until `pid` (an `ovlock check --wait` run) sleeps between two polls,
/// as /proc/PID/wchan shows, so that it has surveyed at least once. Returns
/// false when that was not seen within 10 s (a kernel that hides wchan, or
/// the process already exited).
pub fn wait_until_polling(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let wchan = fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default();
        if wchan.contains("nanosleep") {
            return true;
        }
        if !is_running(pid) || Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------------------
// Processes that use a data directory (tests/it/support/user.py)

/// user.py, installed (see [`install_script`]).
pub fn user_script() -> &'static Path {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| install_script("user", include_str!("user.py")))
}

/// A process started by a test that uses a data directory, and the workers
/// it started. Dropping it closes its stdin, so that it kills and reaps its
/// workers and exits, and reaps it; it is killed if it does not exit.
pub struct UserProc {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: u32,
    /// The numbers of its ready line: its PID as it sees it (in its own PID
    /// namespace), then its workers' PIDs.
    reported: Vec<u32>,
}

impl UserProc {
    /// The PID of the process the test started.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The PID it reported for itself: another number inside another PID namespace.
    pub fn reported_pid(&self) -> u32 {
        self.reported[0]
    }

    /// Its workers' PIDs, forked or spawned, in the order it started them.
    pub fn workers(&self) -> &[u32] {
        &self.reported[1..]
    }

    /// Stops it and its workers, and reaps it.
    pub fn stop(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Normally gone with it; a worker that outlived it is killed.
        for &worker in &self.reported[1..] {
            if is_running(worker) {
                kill_pid(worker);
            }
        }
    }
}

impl Drop for UserProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts user.py with `tag` in its command line, doing `actions` (a JSON
/// list, see user.py) under `dir`, and waits for its ready line.
pub fn spawn_user(dir: &Path, tag: &str, actions: Value) -> UserProc {
    let mut cmd = Command::new(python());
    cmd.arg(user_script()).arg(tag);
    spawn_user_cmd(cmd, dir, actions)
}

/// Runs `cmd`, which must end up running user.py (possibly through a
/// wrapper such as unshare), with `dir` and `actions` in its environment,
/// and waits for the ready line. The ready PID is not checked against the
/// child's: a wrapper stands in between.
pub fn spawn_user_cmd(mut cmd: Command, dir: &Path, actions: Value) -> UserProc {
    let what = format!("{cmd:?} {actions}");
    let mut child = cmd
        .env("USER_DIR", dir)
        .env("USER_ACTIONS", actions.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let stdin = child.stdin.take();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let reported: Option<Vec<u32>> = line
        .strip_prefix("ready ")
        .map(|rest| rest.split_whitespace().map(|p| p.parse().ok()).collect())
        .and_then(|pids: Option<Vec<u32>>| pids.filter(|p| !p.is_empty()));
    let Some(reported) = reported else {
        let _ = child.kill();
        let mut err = String::new();
        let _ = child.stderr.take().unwrap().read_to_string(&mut err);
        let _ = child.wait();
        panic!("{what} did not get ready: {line:?}\n{err}");
    };
    UserProc {
        pid: child.id(),
        child: Some(child),
        stdin,
        reported,
    }
}

/// The parent PID of `pid`, from /proc/PID/stat.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The live children of `pid` (found by scanning /proc).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out: Vec<u32> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| parent_of(p) == Some(pid) && is_running(p))
        .collect();
    out.sort_unstable();
    out
}

/// The `NSpid:` line of /proc/PID/status: its PID in each namespace, outermost first.
pub fn ns_pids_of(pid: u32) -> Vec<u32> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|v| {
            v.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Runs the built ovlock as user nobody (65534) through setpriv(1), from a
/// copy in the test root (the build directory may sit under a home that
/// other users cannot enter).
pub fn run_as_nobody(env: &TestEnv, args: &[&str]) -> Run {
    run_as_nobody_with_caps(env, &[], args)
}

/// [`run_as_nobody`], keeping the capabilities `caps` (setpriv's names, such
/// as `sys_ptrace`) as ambient ones, and no others: as a systemd service
/// with `User=` and `AmbientCapabilities=` runs. With none, exactly
/// [`run_as_nobody`].
pub fn run_as_nobody_with_caps(env: &TestEnv, caps: &[&str], args: &[&str]) -> Run {
    use std::os::unix::fs::PermissionsExt;
    let copy = env.root().join("ovlock-copy");
    if !copy.exists() {
        fs::copy(env!("CARGO_BIN_EXE_ovlock"), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut attempts = 0;
    loop {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
        if !caps.is_empty() {
            let set: String = caps.iter().map(|c| format!(",+{c}")).collect();
            cmd.arg(format!("--inh-caps=-all{set}"))
                .arg(format!("--ambient-caps=-all{set}"))
                .arg(format!("--bounding-set=-all{set}"))
                .arg("--no-new-privs");
        }
        cmd.arg(&copy)
            .args(args)
            .current_dir(env.root())
            .env("HOME", env.home())
            .env_remove("OPENVIKING_CONFIG_FILE")
            .stdin(Stdio::null());
        let run = run_cmd(&mut cmd);
        // A process forked by another test thread while the copy was open
        // for writing keeps it "busy" until that process execs.
        attempts += 1;
        if run.stderr.contains("Text file busy") && attempts < 50 {
            std::thread::yield_now();
            continue;
        }
        return run;
    }
}

/// Said by a test that found missing what it needs: build.rs probes for it
/// once per build and marks the test ignored where it is missing, so either
/// the machine changed since the build or the probe was wrong.
pub const PROBED: &str = "build.rs, which marks this test ignored where that is missing, \
                          found it at build time (or CI=true requires it); after a change \
                          to the machine, `touch build.rs` to probe again";

/// Makes the test root and data directory (and everything in it) readable by
/// other users. Needs root, to become another user (tests that call it are
/// marked `#[cfg_attr(ovlock_test_no_root, ignore)]`).
pub fn open_to_others(env: &TestEnv) {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        rustix::process::geteuid().is_root(),
        "not root, so there is no other user to become; {PROBED}"
    );
    for dir in [env.root(), &env.ws()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// `sleep` started with `dir` as its current directory: a shell-like process
/// that holds nothing and does not look like OpenViking.
pub fn spawn_sleep_in(dir: &Path) -> Proc {
    let child = Command::new("sleep")
        .arg("1000")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    let pid = child.id();
    wait_until(Duration::from_secs(10), || {
        fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    Proc {
        child: Some(child),
        stdin: None,
        pid,
        parent: None,
    }
}

/// `tail -f FILE`, once it has the file open.
pub fn spawn_tail(file: &Path) -> Proc {
    let child = Command::new("tail")
        .arg("-f")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tail");
    let pid = child.id();
    wait_until(Duration::from_secs(10), || {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(Result::ok)
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == file))
        })
    });
    Proc {
        child: Some(child),
        stdin: None,
        pid,
        parent: None,
    }
}

/// How many processes this test process cannot read in full, as ovlock's
/// scan counts them: not kernel threads, and not the processes whose every
/// descriptor link reads. Even root may be refused some (a sandbox's init
/// of another user namespace), and a scan must count them, not skip them.
pub fn unreadable_processes() -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let flags = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit(')')
                        .next()?
                        .split_whitespace()
                        .nth(6)?
                        .parse::<u64>()
                        .ok()
                });
            let kernel_thread = flags.is_some_and(|f| f & 0x0020_0000 != 0);
            let denied = |err: std::io::Error| err.kind() == std::io::ErrorKind::PermissionDenied;
            let unreadable = match fs::read_dir(format!("/proc/{pid}/fd")) {
                Err(err) => denied(err),
                Ok(fds) => fds
                    .filter_map(Result::ok)
                    .any(|fd| fs::read_link(fd.path()).is_err_and(denied)),
            };
            !kernel_thread && unreadable
        })
        .count()
}
