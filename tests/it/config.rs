//! Which directory ovlock inspects when none is named: ov.conf found as
//! OpenViking finds it, read as OpenViking reads it. $HOME is always a
//! temporary directory, so the machine's own ~/.openviking/ov.conf is never read.

use std::fs;
use std::path::Path;

use crate::support::*;

fn write_conf(path: &Path, text: &[u8]) {
    fs::write(path, text).unwrap();
}

#[test]
fn env_config_with_a_variable_names_the_workspace() {
    let env = TestEnv::new();
    let conf = env.root().join("ov.conf");
    write_conf(
        &conf,
        br#"{"server": {"port": 1933}, "storage": {"workspace": "${OVLOCK_TEST_ROOT}/ws"}}"#,
    );
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);

    let run = run_cmd(
        env.command(&["status", "--json"])
            .env("OPENVIKING_CONFIG_FILE", &conf)
            .env("OVLOCK_TEST_ROOT", env.root()),
    );
    assert_eq!(run.code, 1, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["path"], env.ws_str(), "{dir:#}");
    assert_eq!(dir["source"], "config", "{dir:#}");
    assert_eq!(dir["config_file"], conf.to_str().unwrap(), "{dir:#}");
    assert_eq!(dir["verdict"], "held", "{dir:#}");
    assert_eq!(owner_pids(&dir), [server.pid()]);

    let text = run_text(&env, &conf);
    assert!(text.contains(conf.to_str().unwrap()), "{text}");
    assert!(text.contains("OPENVIKING_CONFIG_FILE"), "{text}");
    assert!(names_pid(&text, server.pid()), "{text}");
}

fn run_text(env: &TestEnv, conf: &Path) -> String {
    let run = run_cmd(
        env.command(&["status", "--color", "never"])
            .env("OPENVIKING_CONFIG_FILE", conf)
            .env("OVLOCK_TEST_ROOT", env.root()),
    );
    run.stdout
}

#[test]
fn unset_variable_stays_as_written_and_is_warned_about() {
    let env = TestEnv::new();
    let conf = env.root().join("ov.conf");
    write_conf(
        &conf,
        br#"{"storage": {"workspace": "${OVLOCK_UNSET_VAR}/ws"}, "n": "$OVLOCK_UNSET_VAR$1"}"#,
    );
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--json"];
        args.extend_from_slice(extra);
        run_cmd(
            env.command(&args)
                .env("OPENVIKING_CONFIG_FILE", &conf)
                .env_remove("OVLOCK_UNSET_VAR"),
        )
    };
    let run = status(&[]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    // Relative to the current directory, as OpenViking takes it.
    let want = env.root().join("${OVLOCK_UNSET_VAR}/ws");
    assert_eq!(dir["path"], want.to_str().unwrap(), "{dir:#}");
    assert_eq!(dir["exists"], false);
    // Once, however often it is used; `$1` is not a variable.
    assert_eq!(
        run.stderr,
        format!(
            "ovlock: warning: config file {}: $OVLOCK_UNSET_VAR is not set, \
             so it stays as written (OpenViking does the same)\n",
            conf.display()
        ),
        "{run:?}"
    );

    let run = status(&["--quiet"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{run:?}");
}

#[test]
fn invalid_json_after_expansion_says_so() {
    let env = TestEnv::new();
    let conf = env.root().join("ov.conf");
    write_conf(
        &conf,
        br#"{"storage": {"workspace": "$OVLOCK_TEST_DIR", "skip_process_lock": false}}"#,
    );
    let run = run_cmd(
        env.command(&["check"])
            .env("OPENVIKING_CONFIG_FILE", &conf)
            .env("OVLOCK_TEST_DIR", r#"a", "b"#),
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "ovlock: config file {} is not valid JSON after expanding variables \
             ($OVLOCK_TEST_DIR) at line 1, column 35: expected `:`\n",
            conf.display()
        ),
        "{run:?}"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}

#[test]
fn config_flag_wins_over_the_environment_and_may_have_a_bom() {
    let env = TestEnv::new();
    let conf = env.root().join("bom.conf");
    let mut text = b"\xEF\xBB\xBF".to_vec();
    text.extend_from_slice(
        format!(r#"{{"storage": {{"workspace": "{}"}}}}"#, env.ws_str()).as_bytes(),
    );
    write_conf(&conf, &text);
    let decoy = env.root().join("decoy.conf");
    write_conf(
        &decoy,
        br#"{"storage": {"workspace": "/nonexistent-decoy"}}"#,
    );

    let run = run_cmd(
        env.command(&["check", "--json", "--config", conf.to_str().unwrap()])
            .env("OPENVIKING_CONFIG_FILE", &decoy),
    );
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["path"], env.ws_str(), "{dir:#}");
    assert_eq!(dir["source"], "config");
    assert_eq!(dir["config_file"], conf.to_str().unwrap());
    assert_eq!(dir["exists"], true);
}

#[test]
fn home_config_is_found_and_tilde_expanded() {
    let env = TestEnv::new();
    fs::create_dir(env.home().join(".openviking")).unwrap();
    let conf = env.home().join(".openviking/ov.conf");
    write_conf(&conf, br#"{"storage": {"workspace": "~/ovdata"}}"#);
    let run = env.run(&["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(
        dir["path"],
        env.home().join("ovdata").to_str().unwrap(),
        "{dir:#}"
    );
    assert_eq!(dir["source"], "config");
    assert_eq!(dir["config_file"], conf.to_str().unwrap());
}

#[test]
fn missing_config_file_is_an_error_naming_it() {
    let env = TestEnv::new();
    let missing = env.root().join("no-such.conf");
    let run = env.run(&["status", "--config", missing.to_str().unwrap()]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains(missing.to_str().unwrap()), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");

    let run = run_env_config(&env, &missing, &["check"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains(missing.to_str().unwrap()), "{run:?}");
}

fn run_env_config(env: &TestEnv, conf: &Path, args: &[&str]) -> Run {
    run_cmd(env.command(args).env("OPENVIKING_CONFIG_FILE", conf))
}

#[test]
fn invalid_json_is_an_error_naming_file_and_line() {
    let env = TestEnv::new();
    let conf = env.root().join("broken.conf");
    write_conf(
        &conf,
        b"{\n  \"storage\": {\n    \"workspace\": ,\n  }\n}\n",
    );
    for args in [&["status"][..], &["check", "--json"], &["who", "--pid"]] {
        let run = run_env_config(&env, &conf, args);
        assert_eq!(run.code, 4, "{args:?}: {run:?}");
        assert!(run.stderr.contains(conf.to_str().unwrap()), "{run:?}");
        assert!(run.stderr.contains("line 3"), "{run:?}");
    }
}

#[test]
fn skip_process_lock_gives_a_warning() {
    let env = TestEnv::new();
    let conf = env.root().join("ov.conf");
    write_conf(
        &conf,
        format!(
            r#"{{"storage": {{"workspace": "{}", "skip_process_lock": true}}}}"#,
            env.ws_str()
        )
        .as_bytes(),
    );
    let run = run_env_config(&env, &conf, &["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let warnings = strings(&run.dir()["warnings"]).join("\n");
    assert!(warnings.contains("skip_process_lock"), "{warnings}");

    let text = run_env_config(&env, &conf, &["status", "--color", "never"]);
    assert!(text.stdout.contains("skip_process_lock"), "{text:?}");
}

#[test]
fn no_directory_and_no_config_means_data_in_the_current_directory() {
    let env = TestEnv::new();
    assert!(
        !Path::new("/etc/openviking/ov.conf").exists(),
        "this machine has /etc/openviking/ov.conf, which ovlock would rightly read"
    );
    let run = env.run(&["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(
        dir["path"],
        env.root().join("data").to_str().unwrap(),
        "{dir:#}"
    );
    assert_eq!(dir["source"], "default");
    assert_eq!(dir["config_file"], serde_json::Value::Null);
    assert_eq!(dir["exists"], false);
    assert_eq!(dir["verdict"], "free");
    assert!(
        !env.root().join("data").exists(),
        "status must not create it"
    );

    // Run from elsewhere, the default follows the current directory.
    let other = env.root().join("elsewhere");
    fs::create_dir_all(other.join("data")).unwrap();
    let run = run_cmd(env.command(&["check", "--json"]).current_dir(&other));
    let dir = run.dir();
    assert_eq!(dir["path"], other.join("data").to_str().unwrap(), "{dir:#}");
    assert_eq!(dir["exists"], true);
}

#[test]
fn config_without_workspace_means_the_default_and_names_the_file() {
    let env = TestEnv::new();
    let conf = env.root().join("ov.conf");
    write_conf(&conf, br#"{"server": {"port": 1933}}"#);
    let run = run_env_config(&env, &conf, &["status", "--json"]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["path"], env.root().join("data").to_str().unwrap());
    assert_eq!(dir["source"], "default");
    assert_eq!(dir["config_file"], conf.to_str().unwrap());
}

/// A broken `$OPENVIKING_CONFIG_FILE` does not stop a look at the directories
/// named, but it is not passed over in silence.
#[test]
fn arguments_ignore_a_broken_env_config_but_warn() {
    let env = TestEnv::new();
    let conf = env.root().join("broken.conf");
    write_conf(&conf, b"not json");
    let missing = env.root().join("missing.conf");
    let cases = [
        (
            &conf,
            format!(
                "config file {} is not valid JSON at line 1, column 2: expected ident",
                conf.display()
            ),
        ),
        (
            &missing,
            format!(
                "config file {} (from $OPENVIKING_CONFIG_FILE) does not exist",
                missing.display()
            ),
        ),
    ];
    for (file, why) in cases {
        let run = run_env_config(&env, file, &["status", "--json", &env.ws_str()]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(run.dir()["source"], "argument");
        assert_eq!(
            run.stderr,
            format!(
                "ovlock: warning: $OPENVIKING_CONFIG_FILE names {}, which could not be used: \
                 {why}; its storage.skip_process_lock is not applied\n",
                file.display()
            ),
            "{run:?}"
        );
    }
}

#[test]
fn a_directory_named_twice_is_checked_once() {
    let env = TestEnv::new();
    std::os::unix::fs::symlink("ws", env.root().join("link")).unwrap();
    let run = env.run(&["check", "--color", "never", "ws", "ws", "./ws", "link"]);
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].starts_with(&format!("{}: ", env.ws_str())),
        "{run:?}"
    );

    let run = env.run(&["status", "--json", "ws", "missing", "./missing", "ws/"]);
    let dirs = run.json()["data_dirs"].clone();
    let paths: Vec<&str> = dirs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    let missing = env.root().join("missing");
    assert_eq!(paths, [env.ws_str().as_str(), missing.to_str().unwrap()]);
}

/// A config typed with --config must exist even when directories are named,
/// and its skip_process_lock holds for its own workspace among them.
#[test]
fn a_config_flag_with_directories_is_checked_and_its_skip_flag_applies() {
    let env = TestEnv::new();
    let missing = env.root().join("missing.conf");
    let run = env.run(&[
        "check",
        "--config",
        missing.to_str().unwrap(),
        &env.ws_str(),
    ]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(run.stderr.contains("missing.conf"), "{run:?}");

    let conf = env.root().join("ov.conf");
    let text =
        serde_json::json!({"storage": {"workspace": env.ws_str(), "skip_process_lock": true}})
            .to_string();
    write_conf(&conf, text.as_bytes());
    let run = env.run(&[
        "check",
        "--json",
        "--config",
        conf.to_str().unwrap(),
        &env.ws_str(),
    ]);
    let dir = run.dir();
    assert!(
        strings(&dir["warnings"])
            .join("\n")
            .contains("skip_process_lock"),
        "{dir:#}"
    );
    assert_eq!(dir["scanned"], true, "{dir:#}");
}
