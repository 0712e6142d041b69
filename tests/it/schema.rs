//! Every kind of `--json` document fits docs/ovlock.schema.json: each
//! subcommand that prints one, on a held, a stale and a missing directory,
//! several directories at once, and the document of an error. (`Run::json`
//! checks every other test's documents against the schema too.)

use std::fs;

use crate::support::*;

/// A directory held by a live server, one with a stale pid file, and one
/// that does not exist: between them, owners, lock entries of every state,
/// and fixes.
struct Three {
    env: TestEnv,
    stale: String,
    missing: String,
    _server: Proc,
}

fn three() -> Three {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let stale = env.root().join("stale");
    fs::create_dir(&stale).unwrap();
    fs::write(stale.join(PIDFILE), dead_pid().to_string()).unwrap();
    set_mtime(&stale.join(PIDFILE), ago(60));
    let missing = env.root().join("missing").to_str().unwrap().to_string();
    Three {
        stale: stale.to_str().unwrap().to_string(),
        missing,
        env,
        _server: server,
    }
}

#[test]
fn every_subcommand_on_several_directories() {
    let t = three();
    let ws = t.env.ws_str();
    for args in [
        &["status", "--json"][..],
        &["check", "--json"],
        &["check", "--json", "--scan"],
        &["who", "--json"],
        &["clear-stale", "--json", "--dry-run"],
    ] {
        let mut args = args.to_vec();
        args.extend([ws.as_str(), t.stale.as_str(), t.missing.as_str()]);
        let run = t.env.run(&args);
        let doc = run.json();
        assert_eq!(doc["data_dirs"].as_array().unwrap().len(), 3, "{args:?}");
        assert_eq!(doc["exit_code"], run.code, "{args:?}");
    }
    let run = t.env.run(&["clear-stale", "--json", &t.stale]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.dir()["removed"].as_array().unwrap().len(), 1);
}

#[test]
fn one_directory_each_way() {
    let t = three();
    for dir in [t.env.ws_str(), t.stale.clone(), t.missing.clone()] {
        for sub in ["status", "check", "who", "clear-stale"] {
            t.env.run(&[sub, "--json", &dir]).json();
        }
    }
}

#[test]
fn who_all_and_check_wait() {
    let t = three();
    let all = t.env.run(&["who", "--all", "--json"]).json();
    assert!(all["processes"].is_array(), "{all:#}");
    let waited = t
        .env
        .run(&["check", "--json", "--wait", "0.3", &t.env.ws_str()])
        .json();
    assert_eq!(waited["wait"]["timed_out"], true, "{waited:#}");
}

#[test]
fn the_document_of_an_error() {
    let env = TestEnv::new();
    let conf = env.root().join("broken.conf");
    fs::write(&conf, "{ not json").unwrap();
    let run = env.run(&["status", "--json", "--config", conf.to_str().unwrap()]);
    assert_eq!(run.code, 4, "{run:?}");
    let doc = run.json();
    assert!(doc["error"].is_string(), "{doc:#}");
}
