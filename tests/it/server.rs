//! Asking the owner's server: a fake OpenViking server (support/server.py)
//! that holds the flock and listens on loopback, answering well or badly.
//! Whatever it answers, the verdict stays what the locks say, within the
//! deadline, with a one-line reason.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

const KEY: &str = "k3y-that-must-never-show";

fn server_script() -> &'static Path {
    static SCRIPT: OnceLock<PathBuf> = OnceLock::new();
    SCRIPT.get_or_init(|| install_script("server", include_str!("support/server.py")))
}

/// server.py, running: killed when dropped.
struct Server {
    child: Child,
    _stdin: ChildStdin,
    pid: u32,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts server.py in `mode` on the data directory's lock, binding `host`,
/// logging what it is sent to `log`; waits for its ready line.
fn spawn_server(env: &TestEnv, mode: &str, host: &str, log: &Path) -> Server {
    let mut child = Command::new(python())
        .arg(server_script())
        .args([mode, SERVER_TAG])
        .env("HOLDER_PATH", env.lock_path())
        .env("SERVER_HOST", host)
        .env("SERVER_KEY", KEY)
        .env("SERVER_LOG", log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server.py");
    let stdin = child.stdin.take().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let numbers: Vec<u32> = line
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("server.py {mode} did not get ready: {line:?}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(numbers[0], child.id());
    Server {
        child,
        _stdin: stdin,
        pid: numbers[0],
        port: numbers[1] as u16,
    }
}

/// `status` with `extra`, as JSON and text, within a limit that a hang would pass.
fn status(env: &TestEnv, extra: &[&str]) -> (Value, String, Duration) {
    let started = Instant::now();
    let mut json_args = vec!["status", "--json"];
    json_args.extend_from_slice(extra);
    let ws = env.ws_str();
    json_args.push(&ws);
    let json = run_cmd_within(&mut env.command(&json_args), Duration::from_secs(20));
    let took = started.elapsed();
    let mut text_args = vec!["status", "--color", "never"];
    text_args.extend_from_slice(extra);
    text_args.push(&ws);
    let text = run_cmd_within(&mut env.command(&text_args), Duration::from_secs(20));
    assert_eq!(json.code, 1, "held, whatever the server says: {json:?}");
    assert_eq!(text.code, 1, "held, whatever the server says: {text:?}");
    (json.dir(), text.stdout, took)
}

fn server_of(dir: &Value) -> &Value {
    &dir["owners"][0]["server"]
}

/// The Server line of the text, which must be one line.
fn server_line(text: &str) -> &str {
    text.lines()
        .find(|l| l.trim_start().starts_with("server "))
        .unwrap_or_else(|| panic!("no server line:\n{text}"))
}

#[test]
fn an_answering_server_shows_its_version_and_health() {
    let env = TestEnv::new();
    let log = env.root().join("requests");
    let server = spawn_server(&env, "ok", "127.0.0.1", &log);
    let (dir, text, _) = status(&env, &[]);
    assert_eq!(dir["verdict"], "held");
    let s = server_of(&dir);
    assert_eq!(s["state"], "answering", "{dir:#}");
    assert_eq!(s["answering"], true);
    assert_eq!(s["healthy"], true);
    assert_eq!(s["version"], "0.5.2");
    assert_eq!(s["address"], format!("127.0.0.1:{}", server.port));
    assert_eq!(s["address_source"], "socket");
    let line = server_line(&text);
    assert!(line.contains(&format!("PID {}", server.pid)), "{line}");
    assert!(line.contains("OpenViking 0.5.2, healthy"), "{line}");
    // /health first, then the system observer; no key where none is configured.
    let sent = fs::read_to_string(&log).unwrap();
    assert!(sent.starts_with("GET /health HTTP/1.1"), "{sent}");
    assert!(
        sent.contains("GET /api/v1/observer/system HTTP/1.1"),
        "{sent}"
    );
    assert!(!sent.to_lowercase().contains("x-api-key"), "{sent}");
}

#[test]
fn an_unhealthy_server_names_its_errors() {
    let env = TestEnv::new();
    let _server = spawn_server(&env, "unhealthy", "127.0.0.1", &env.root().join("log"));
    let (dir, text, _) = status(&env, &[]);
    let s = server_of(&dir);
    assert_eq!(s["state"], "unhealthy", "{dir:#}");
    assert_eq!(s["errors"][0], "models has errors");
    assert!(
        server_line(&text).contains("unhealthy: models has errors"),
        "{text}"
    );
}

#[test]
fn wildcard_listeners_are_asked_on_loopback() {
    for (host, asked) in [("0.0.0.0", "127.0.0.1"), ("::", "[::1]")] {
        if host == "::" && std::net::TcpListener::bind("[::1]:0").is_err() {
            // No IPv6 here: nothing to bind :: to.
            continue;
        }
        let env = TestEnv::new();
        let server = spawn_server(&env, "ok", host, &env.root().join("log"));
        let (dir, _, _) = status(&env, &[]);
        let s = server_of(&dir);
        assert_eq!(s["address"], format!("{asked}:{}", server.port), "{dir:#}");
        let listening = if host == "::" { "[::]" } else { host };
        assert_eq!(s["listening"], format!("{listening}:{}", server.port));
        assert_eq!(s["state"], "answering");
    }
}

/// Each hostile listener: a clear one-line reason within the deadline, no
/// hang, the exit code unchanged.
#[test]
fn hostile_listeners_get_a_reason_within_the_deadline() {
    let cases = [
        (
            "silent",
            "silent",
            "did not answer within 1s (hung or overloaded)",
        ),
        ("random", "not_openviking", "not HTTP"),
        ("huge", "not_openviking", "longer than 64 KiB"),
        ("drip", "silent", "within 1s (hung or overloaded)"),
        ("html", "not_openviking", "an HTML page"),
        (
            "redirect",
            "not_openviking",
            "a redirect (302) to http://192.0.2.1/health, not followed",
        ),
    ];
    for (mode, state, words) in cases {
        let env = TestEnv::new();
        let _server = spawn_server(&env, mode, "127.0.0.1", &env.root().join("log"));
        let (dir, text, took) = status(&env, &[]);
        let s = server_of(&dir);
        assert_eq!(s["state"], state, "{mode}: {dir:#}");
        assert_eq!(s["answering"], false, "{mode}");
        assert!(
            s["reason"].as_str().unwrap().contains(words),
            "{mode}: {s:#}"
        );
        assert!(server_line(&text).contains(words), "{mode}: {text}");
        assert!(!has_raw_control(&text), "{mode}: {text:?}");
        // One request's deadline, and some room for a loaded machine.
        assert!(took < Duration::from_secs(4), "{mode} took {took:?}");
    }
}

#[test]
fn a_server_that_does_not_answer_gets_a_restart_fix_not_a_deletion() {
    let env = TestEnv::new();
    let server = spawn_server(&env, "silent", "127.0.0.1", &env.root().join("log"));
    let (dir, _, _) = status(&env, &[]);
    let first = dir["fixes"][0].as_str().unwrap();
    assert!(first.contains("does not answer"), "{first}");
    assert!(first.contains(&format!("kill {}", server.pid)), "{first}");
    assert!(first.contains("do not delete .openviking.lock"), "{first}");
}

#[test]
fn the_key_from_ov_conf_is_sent_and_never_shown() {
    let env = TestEnv::new();
    let log = env.root().join("log");
    let _server = spawn_server(&env, "key", "127.0.0.1", &log);
    let conf = env.root().join("ov.conf");
    let body = serde_json::json!({
        "storage": {"workspace": env.ws_str()},
        "server": {"auth_mode": "api_key", "root_api_key": KEY},
    });
    fs::write(&conf, body.to_string()).unwrap();
    let conf = conf.to_str().unwrap();
    let (dir, text, _) = status(&env, &["--config", conf]);
    assert_eq!(server_of(&dir)["state"], "answering", "{dir:#}");
    assert_eq!(server_of(&dir)["auth_mode"], "api_key");
    assert!(fs::read_to_string(&log).unwrap().contains(KEY));
    assert!(!text.contains(KEY) && !dir.to_string().contains(KEY));
    for args in [
        vec!["who", "--config", conf],
        vec!["who", "--json", "--config", conf],
        vec!["metrics", "--config", conf],
        vec!["check", "--ask", "--json", "--config", conf],
        vec!["who", "--all"],
    ] {
        let run = env.run(&args);
        assert!(
            !run.stdout.contains(KEY) && !run.stderr.contains(KEY),
            "{args:?} showed the key: {run:?}"
        );
    }
}

#[test]
fn a_server_that_wants_a_key_says_so_and_takes_one_from_the_environment() {
    let env = TestEnv::new();
    let _server = spawn_server(&env, "key", "127.0.0.1", &env.root().join("log"));
    let (dir, _, _) = status(&env, &[]);
    assert_eq!(server_of(&dir)["state"], "needs_key", "{dir:#}");
    assert!(
        dir["fixes"].to_string().contains("OPENVIKING_API_KEY"),
        "{dir:#}"
    );
    let run = run_cmd(
        env.command(&["status", "--json", &env.ws_str()])
            .env("OPENVIKING_API_KEY", KEY),
    );
    assert_eq!(run.code, 1);
    assert_eq!(server_of(&run.dir())["state"], "answering", "{run:?}");
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY));
    // A wrong key is refused, and not shown either.
    let run = run_cmd(
        env.command(&["status", "--color", "never", &env.ws_str()])
            .env("OPENVIKING_API_KEY", "wrong-key-1234"),
    );
    assert!(
        run.stdout.contains("refused the API key ovlock sent (401)"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("wrong-key-1234"));
}

#[test]
fn check_stays_offline_unless_asked_and_no_ask_turns_asking_off() {
    let env = TestEnv::new();
    let log = env.root().join("log");
    let _server = spawn_server(&env, "ok", "127.0.0.1", &log);
    let ws = env.ws_str();
    for args in [
        vec!["check", "--json", &ws],
        vec!["status", "--no-ask", "--json", &ws],
        vec!["--no-ask", "who", "--json", &ws],
        vec!["metrics", "--no-ask", &ws],
    ] {
        let run = env.run(&args);
        assert!(!log.exists(), "{args:?} asked the server: {run:?}");
        assert!(
            !run.stdout.contains("\"server\""),
            "{args:?}: {}",
            run.stdout
        );
    }
    let run = env.run(&["check", "--ask", &ws]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("OpenViking 0.5.2, healthy"), "{run:?}");
    assert!(log.exists());
}

/// A reader that cannot see the owner's sockets asks the port ov.conf
/// names, says so, and meets a port that nothing listens on any more.
#[test]
#[cfg_attr(ovlock_test_no_root, ignore)]
fn without_its_sockets_the_configured_port_is_asked_and_may_be_closed() {
    let env = TestEnv::new();
    open_to_others(&env);
    let _server = spawn_server(&env, "nolisten", "127.0.0.1", &env.root().join("log"));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = env.root().join("ov.conf");
    let body = serde_json::json!({
        "storage": {"workspace": env.ws_str()},
        "server": {"port": closed},
    });
    fs::write(&conf, body.to_string()).unwrap();
    let args = [
        "status",
        "--json",
        "--config",
        conf.to_str().unwrap(),
        &env.ws_str(),
    ];
    // Without the privilege to scan, a /proc/locks that keeps changing while
    // it is read (a busy host) leaves the verdict unknown and no owner to
    // ask: look again until the table held still.
    let mut run = run_as_nobody(&env, &args);
    for _ in 0..50 {
        if run.code != 4 {
            break;
        }
        run = run_as_nobody(&env, &args);
    }
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    let s = server_of(&dir);
    assert_eq!(s["state"], "refused", "{dir:#}");
    assert_eq!(s["address_source"], "config");
    assert_eq!(s["address"], format!("127.0.0.1:{closed}"));
    assert!(
        s["reason"].as_str().unwrap().contains("server.port in"),
        "{s:#}"
    );
}

#[test]
fn metrics_say_whether_each_owners_server_answers() {
    let env = TestEnv::new();
    let server = spawn_server(&env, "ok", "127.0.0.1", &env.root().join("log"));
    let run = env.run(&["metrics", &env.ws_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    let labels = format!("data_dir=\"{}\",pid=\"{}\"", env.ws_str(), server.pid);
    for line in [
        format!("ovlock_server_answering{{{labels}}} 1"),
        format!("ovlock_server_healthy{{{labels}}} 1"),
        format!(
            "ovlock_server_info{{{labels},address=\"127.0.0.1:{}\",version=\"0.5.2\",auth_mode=\"dev\"}} 1",
            server.port
        ),
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "no {line}:\n{}",
            run.stdout
        );
    }
    drop(server);

    let env = TestEnv::new();
    let server = spawn_server(&env, "silent", "127.0.0.1", &env.root().join("log"));
    let run = env.run(&["metrics", &env.ws_str()]);
    assert_eq!(run.code, 0, "{run:?}");
    let line = format!(
        "ovlock_server_answering{{data_dir=\"{}\",pid=\"{}\"}} 0",
        env.ws_str(),
        server.pid
    );
    assert!(
        run.stdout.lines().any(|l| l == line),
        "no {line}:\n{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("ovlock_server_healthy{"),
        "{}",
        run.stdout
    );
}

#[test]
fn who_all_shows_each_servers_address_and_whether_it_answers() {
    let env = TestEnv::new();
    let server = spawn_server(&env, "ok", "127.0.0.1", &env.root().join("log"));
    let run = env.run(&["who", "--all", "--json"]);
    let doc = run.json();
    let found = doc["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"] == server.pid)
        .unwrap_or_else(|| panic!("PID {} not found: {doc:#}", server.pid));
    assert_eq!(found["server"]["state"], "answering", "{found:#}");
    assert_eq!(
        found["server"]["address"],
        format!("127.0.0.1:{}", server.port)
    );
    let text = env.run(&["who", "--all", "--color", "never"]).stdout;
    let address = format!("127.0.0.1:{} (from its socket): answers", server.port);
    assert!(text.contains(&address), "{text}");
    let off = env.run(&["who", "--all", "--no-ask", "--json"]).json();
    assert!(
        !off.to_string().contains("\"state\":\"answering\""),
        "{off:#}"
    );
}

/// A real openviking-server 0.5.2 (the path to its `openviking-server` in
/// $OVLOCK_TEST_OPENVIKING_SERVER; .ci/run installs one): answering with
/// its version, with auth_mode api_key and the key from ov.conf shown
/// nowhere, SIGSTOPped (does not answer within the deadline, still held),
/// then SIGCONTed (answers again).
#[test]
fn a_real_openviking_server() {
    let Some(server) = std::env::var_os("OVLOCK_TEST_OPENVIKING_SERVER") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but OVLOCK_TEST_OPENVIKING_SERVER is not set: .ci/run installs \
             openviking==0.5.2 and sets it"
        );
        eprintln!("skipped: OVLOCK_TEST_OPENVIKING_SERVER is not set");
        return;
    };
    let env = TestEnv::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = env.root().join("ov.conf");
    let body = serde_json::json!({
        "storage": {"workspace": env.ws_str()},
        "server": {"host": "127.0.0.1", "port": port, "auth_mode": "api_key", "root_api_key": KEY},
    });
    fs::write(&conf, body.to_string()).unwrap();
    let log = fs::File::create(env.root().join("server.log")).unwrap();
    let child = Command::new(&server)
        .arg("--config")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start openviking-server");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let _guard = Kill(child);
    // It is ready when it answers: there is no line to wait for.
    wait_until(Duration::from_secs(300), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let conf = conf.to_str().unwrap();
    let (dir, text, _) = status(&env, &["--config", conf]);
    let s = server_of(&dir);
    assert_eq!(s["version"], "0.5.2", "{dir:#}");
    assert_eq!(s["auth_mode"], "api_key");
    assert_eq!(s["answering"], true);
    assert!(!text.contains(KEY) && !dir.to_string().contains(KEY));
    let signal = |sig| {
        rustix::process::kill_process(rustix::process::Pid::from_raw(pid as i32).unwrap(), sig)
            .unwrap()
    };
    signal(rustix::process::Signal::STOP);
    let (dir, _, took) = status(&env, &["--config", conf]);
    signal(rustix::process::Signal::CONT);
    assert_eq!(server_of(&dir)["state"], "silent", "{dir:#}");
    assert!(took < Duration::from_secs(4), "{took:?}");
    let (dir, _, _) = status(&env, &["--config", conf]);
    assert_eq!(server_of(&dir)["answering"], true, "{dir:#}");
}
