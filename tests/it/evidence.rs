//! The kernel's locks on a data directory's storage files name a live owner
//! on `check`'s fast path, without a scan: a server that let go of its flock
//! while it shuts down, one whose `.openviking.lock` was deleted under it,
//! and servers started with `skip_process_lock`. Each situation is made for
//! real: user.py holds RocksDB-style POSIX locks and real SQLite databases.

use std::fs;
use std::process::Stdio;

use crate::support::*;
use serde_json::{Value, json};

const QUEUE_DB: &str = "_system/queue/queue.db";
const STORE_LOCK: &str = "vectordb/context/store/LOCK";

/// A server as 0.5.2 runs one: the flock, RocksDB's lock, the SQLite queue.
fn server_actions() -> Value {
    json!([["flock", LOCK], ["lockf", STORE_LOCK], ["sqlite", QUEUE_DB]])
}

/// A server shutting down: it has let go of the flock, not of its storage.
fn shutting_down_actions() -> Value {
    let mut actions = server_actions();
    actions
        .as_array_mut()
        .unwrap()
        .push(json!(["unflock", LOCK]));
    actions
}

/// A server that has let go of `.openviking.lock` while shutting down but
/// still holds its storage is held, and `check` says so without a scan.
#[test]
fn a_server_that_let_go_of_its_flock_but_holds_its_storage_is_held() {
    let env = TestEnv::new();
    let server = spawn_user(&env.ws(), SERVER_TAG, shutting_down_actions());

    let r = env.examine("check", &[]);
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(r.dir["scanned"], false, "{:#}", r.dir);
    assert_eq!(r.lock("flock")["held"], false, "{:#}", r.dir);
    r.assert_reason("has let go of .openviking.lock");
    assert_eq!(r.owner(server.pid())["protocols"], json!(["storage"]));
    assert!(r.text.contains(STORE_LOCK), "{}", r.text);
}

/// `check --wait` waits for such a server: it times out while the storage
/// is held, saying so on stderr, and returns free once the server is gone.
#[test]
fn check_wait_waits_for_the_storage_too() {
    let env = TestEnv::new();
    let mut server = spawn_user(&env.ws(), SERVER_TAG, shutting_down_actions());

    let run = env.run(&["check", "--wait", "0.3", "--json", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    let doc = run.json();
    assert_eq!(doc["exit_code"], 1, "{doc:#}");
    assert_eq!(doc["wait"]["timed_out"], true, "{doc:#}");
    assert_eq!(doc["wait"]["limit_seconds"], 0.3, "{doc:#}");
    assert!(doc["wait"]["waited_seconds"].as_f64().unwrap() >= 0.3);
    assert!(
        run.stderr.contains("still held by PID") && names_pid(&run.stderr, server.pid()),
        "{run:?}"
    );
    let quiet = env.run(&["check", "-q", "--wait", "0.2", &env.ws_str()]);
    assert_eq!((quiet.code, quiet.stderr.as_str()), (1, ""), "{quiet:?}");

    let check = env
        .command(&["check", "--wait", "30", "--json", &env.ws_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_until_polling(check.id()),
        "check --wait never slept between two polls"
    );
    server.stop();
    let out = check.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["wait"]["timed_out"], false, "{doc:#}");
    assert_eq!(doc["data_dirs"][0]["verdict"], "free", "{doc:#}");
    // Not on a terminal: nothing on stderr while it waited.
    assert!(out.stderr.is_empty(), "{out:?}");
}

/// On a terminal, `check --wait` says what it waits for (script(1) gives
/// it one).
#[test]
fn check_wait_says_what_it_waits_for_on_a_terminal() {
    let env = TestEnv::new();
    let server = spawn_user(&env.ws(), SERVER_TAG, server_actions());
    let command = format!(
        "{} check --color never --wait 0.3 {}",
        env!("CARGO_BIN_EXE_ovlock"),
        env.ws_str()
    );
    let run = run_cmd(
        std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .current_dir(env.root())
            .env("HOME", env.home())
            .stdin(Stdio::null()),
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stdout.contains("waiting up to 300ms for"), "{run:?}");
    assert!(names_pid(&run.stdout, server.pid()), "{run:?}");
    assert!(run.stdout.contains("still held by PID"), "{run:?}");
}

/// `.openviking.lock` deleted under a live server: it still holds the flock,
/// on an inode no new server can reach. Held, and the reason and the fixes
/// say what happened and that it must be restarted.
#[test]
fn a_lock_file_deleted_under_its_server_is_held() {
    let env = TestEnv::new();
    let server = spawn_user(&env.ws(), SERVER_TAG, server_actions());
    fs::remove_file(env.lock_path()).unwrap();

    let r = env.examine("check", &[]);
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(r.dir["scanned"], false, "{:#}", r.dir);
    // The text and the JSON agree: nothing at the path, and held.
    let lock = r.lock("flock");
    assert_eq!(
        (&lock["present"], &lock["held"], &lock["pid"]),
        (&json!(false), &json!(true), &json!(server.pid())),
        "{lock:#}"
    );
    r.assert_reason("that was deleted under it");
    let status = env.status();
    status.expect(1, "held", vec![server.pid()]);
    let fixes = strings(&status.dir["fixes"]).join("\n");
    assert!(
        fixes.contains(&format!("Restart PID {}", server.pid())),
        "{fixes}"
    );
    assert!(
        status.text.contains(&format!(
            "deleted, but PID {} still holds the flock",
            server.pid()
        )),
        "{}",
        status.text
    );
    assert!(
        !status.reasons().contains("skip_process_lock"),
        "{}",
        status.reasons()
    );
    // Never recreated or accesses by a look.
    assert!(!env.lock_path().exists());
}

/// Two servers started with skip_process_lock on one directory, as an MCP
/// host starts them: contended, with or without their config, and without
/// a scan. The second one cannot take RocksDB's lock, but keeps the queue.
#[test]
fn two_skip_lock_servers_are_contended_with_or_without_their_config() {
    let env = TestEnv::new();
    let a = spawn_user(
        &env.ws(),
        SERVER_TAG,
        json!([["lockf", STORE_LOCK], ["sqlite", QUEUE_DB]]),
    );
    let b = spawn_user(&env.ws(), SERVER_TAG, json!([["sqlite", QUEUE_DB]]));

    let r = env.examine("check", &[]);
    r.expect(3, "contended", vec![a.pid(), b.pid()]);
    assert_eq!(r.dir["scanned"], false, "{:#}", r.dir);

    let conf = env.root().join("skip.conf");
    fs::write(
        &conf,
        json!({"storage": {"workspace": env.ws_str(), "skip_process_lock": true}}).to_string(),
    )
    .unwrap();
    let run = env.run(&["--config", conf.to_str().unwrap(), "check", "--json"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.dir()["verdict"], "contended");
}

/// A worker of a server that holds a storage lock itself is part of that
/// server, not a second owner, on the fast path too: its parents are read.
#[test]
fn a_worker_holding_storage_is_part_of_its_server_without_a_scan() {
    let env = TestEnv::new();
    let server = spawn_user(
        &env.ws(),
        SERVER_TAG,
        json!([["flock", LOCK], ["fork", [["lockf", STORE_LOCK]]]]),
    );
    let r = env.examine("check", &[]);
    r.expect(1, "held", vec![server.pid()]);
    assert_eq!(r.dir["scanned"], false, "{:#}", r.dir);
    assert_eq!(
        r.owner(server.pid())["workers"],
        json!(server.workers()),
        "{:#}",
        r.dir
    );
}

/// A storage lock held by something that is not OpenViking (an sqlite3
/// shell, a backup) does not own the directory: free, with a warning.
#[test]
fn a_storage_lock_of_another_program_is_not_an_owner() {
    let env = TestEnv::new();
    let other = spawn_user(&env.ws(), PLAIN_TAG, json!([["lockf", STORE_LOCK]]));
    let r = env.examine("check", &[]);
    r.expect(0, "free", vec![]);
    assert!(
        r.warnings().contains("does not look like OpenViking")
            && names_pid(&r.warnings(), other.pid()),
        "{}",
        r.warnings()
    );
}

/// Every JSON document carries the process's exit status at its top.
#[test]
fn every_json_document_carries_the_exit_code() {
    let env = TestEnv::new();
    for (args, code) in [
        (vec!["who", "--json"], 1),
        (vec!["check", "--json"], 0),
        (vec!["status", "--json"], 0),
        (vec!["clear-stale", "--json"], 0),
    ] {
        let mut args = args;
        let ws = env.ws_str();
        args.push(&ws);
        let run = env.run(&args);
        assert_eq!(run.code, code, "{args:?}: {run:?}");
        assert_eq!(run.json()["exit_code"], code, "{args:?}: {run:?}");
    }
    let server = spawn_user(&env.ws(), SERVER_TAG, server_actions());
    let run = env.run(&["who", "--json", &env.ws_str()]);
    assert_eq!((run.code, run.json()["exit_code"].clone()), (0, json!(0)));
    drop(server);
    let broken = env.root().join("broken.conf");
    fs::write(&broken, "{").unwrap();
    let run = env.run(&["--config", broken.to_str().unwrap(), "who", "--json"]);
    assert_eq!((run.code, run.json()["exit_code"].clone()), (4, json!(4)));
}

/// With no config and no ./data, status names the servers that run on other
/// data directories, and points at `who --all`.
#[test]
fn the_default_directory_points_at_servers_elsewhere() {
    let env = TestEnv::new();
    let server = spawn_user(&env.ws(), SERVER_TAG, server_actions());
    let run = env.run(&["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["source"], "default", "{dir:#}");
    let warnings = strings(&dir["warnings"]).join("\n");
    assert!(
        warnings.contains(&env.ws_str()) && names_pid(&warnings, server.pid()),
        "{dir:#}"
    );
    assert!(
        strings(&dir["fixes"])[0].contains("ovlock who --all"),
        "{dir:#}"
    );
    let text = env.run(&["status", "--color", "never"]).stdout;
    assert!(!text.contains("Nothing: OpenViking can start"), "{text}");
    assert!(text.contains(&env.ws_str()), "{text}");

    // An existing directory named on purpose is not second-guessed; one
    // that does not exist is, as the default is.
    let named = env.root().join("named");
    let warned = |env: &TestEnv| {
        let run = env.run(&["status", "--json", named.to_str().unwrap()]);
        strings(&run.dir()["warnings"])
            .join("\n")
            .contains(&env.ws_str())
    };
    assert!(warned(&env), "a missing directory points elsewhere");
    fs::create_dir(&named).unwrap();
    assert!(!warned(&env), "an existing directory is taken as meant");
}

/// A parent of a data directory is not owned by the servers of the data
/// directory inside it: their files are that directory's. `check` and
/// `check --scan` agree.
#[test]
fn a_parent_of_a_data_directory_is_not_owned_by_its_servers() {
    let env = TestEnv::new();
    let server = spawn_user(&env.ws(), SERVER_TAG, server_actions());
    let parent = env.root().to_str().unwrap().to_string();
    for extra in [&[][..], &["--scan"][..]] {
        let r = env.run(&[&["check", "--json"][..], extra, &[parent.as_str()][..]].concat());
        assert_eq!(r.code, 0, "{extra:?}: {r:?}");
        assert_eq!(owner_pids(&r.dir()), Vec::<u32>::new(), "{extra:?}");
    }
    let r = env.examine("check", &[]);
    r.expect(1, "held", vec![server.pid()]);
}

/// An SQLite reader whose command line names the queue by a relative path
/// (or a `file:` URI) under a directory called `openviking-...` is not an
/// OpenViking server: only the server owns the directory.
#[test]
fn a_reader_that_names_the_directory_relatively_is_not_an_owner() {
    let env = TestEnv::new();
    let ws = env.root().join("openviking-ws");
    fs::create_dir(&ws).unwrap();
    let server = spawn_user(&ws, SERVER_TAG, server_actions());
    for name in [
        format!("openviking-ws/{QUEUE_DB}"),
        format!("file:openviking-ws/{QUEUE_DB}?mode=ro"),
    ] {
        let mut cmd = std::process::Command::new(python());
        cmd.args([
            "-c",
            "import os, sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1], uri=sys.argv[1].startswith('file:'))\n\
             db.execute('BEGIN'); db.execute('SELECT count(*) FROM sqlite_master').fetchall()\n\
             print('ready', os.getpid(), flush=True); sys.stdin.read()",
            &name,
        ])
        .current_dir(env.root());
        let reader = spawn_ready(cmd, false, "an SQLite reader");
        let run = env.run(&["check", "--json", ws.to_str().unwrap()]);
        assert_eq!(run.code, 1, "{name}: {run:?}");
        assert_eq!(owner_pids(&run.dir()), [server.pid()], "{name}: {run:?}");
        drop(reader);
    }
}
