//! The command line itself: usage errors, quiet mode, waiting, colour.

use std::io::Read;
use std::process::Stdio;

use crate::support::*;

#[test]
fn usage_errors_exit_64() {
    let env = TestEnv::new();
    let ws = env.ws_str();
    let cases: &[&[&str]] = &[
        &[],
        &["--no-such-flag", "status"],
        &["status", "--no-such-flag", &ws],
        &["check", "--wait", "abc", &ws],
        &["check", "--wait", "-1", &ws],
        &["frobnicate"],
        &["status", "--color", "sometimes", &ws],
        &["completions", "tcsh"],
        // Options alone, with no subcommand and no --version.
        &["--json"],
        &["--verbose"],
        &["--verbose", "status", &ws],
    ];
    for args in cases {
        let run = env.run(args);
        assert_eq!(run.code, 64, "{args:?}: {run:?}");
        assert!(!run.stderr.is_empty(), "{args:?} says why: {run:?}");
        assert!(run.stdout.is_empty(), "{args:?}: {run:?}");
    }
    let run = env.run(&["check", "--wait", "abc", &ws]);
    assert!(run.stderr.contains("abc"), "{run:?}");
}

#[test]
fn help_and_version_exit_0() {
    let env = TestEnv::new();
    for args in [
        &["--help"][..],
        &["-h"],
        &["status", "--help"],
        &["check", "--help"],
        &["help", "who"],
        &["--version"],
    ] {
        let run = env.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(!run.stdout.is_empty(), "{args:?}: {run:?}");
    }
    let help = env.run(&["--help"]).stdout;
    for word in ["status", "check", "who", "clear-stale", "completions", "64"] {
        assert!(help.contains(word), "--help mentions {word}:\n{help}");
    }
}

/// `--version` prints the version alone, as clap did; `--verbose` adds the
/// commit and the target, in either order of the two flags.
#[test]
fn version_and_verbose_version() {
    let env = TestEnv::new();
    let version = env!("CARGO_PKG_VERSION");
    for args in [&["--version"][..], &["-V"]] {
        let run = env.run(args);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (0, format!("ovlock {version}\n").as_str(), ""),
            "{args:?}"
        );
    }
    for args in [&["--version", "--verbose"][..], &["--verbose", "-V"]] {
        let run = env.run(args);
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines[0], format!("ovlock {version}"), "{run:?}");
        let commit = lines[1].strip_prefix("commit: ").expect("a commit line");
        // Built by cargo from this git checkout: the commit is known (CI
        // builds a clone); only a tarball build may not know it.
        if std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".git")
            .exists()
        {
            assert!(
                commit.len() >= 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                "{run:?}"
            );
        }
        let target = lines[2].strip_prefix("target: ").expect("a target line");
        assert!(target.contains("-linux-"), "{run:?}");
        assert_eq!(lines.len(), 3, "{run:?}");
    }
}

/// Every JSON document names the build that made it, at the top level,
/// as `--version --verbose` does.
#[test]
fn json_documents_name_the_build() {
    let env = TestEnv::new();
    let verbose = env.run(&["--version", "--verbose"]).stdout;
    let line = |key: &str| {
        verbose
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .to_string()
    };
    let missing = env.root().join("missing.conf");
    for args in [
        vec!["--json".to_string(), "status".into(), env.ws_str()],
        vec![
            "--json".to_string(),
            "--config".into(),
            missing.display().to_string(),
            "check".into(),
        ],
    ] {
        let run = env.run(&args);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one document");
        assert_eq!(doc["schema_version"], 1, "{args:?}");
        assert_eq!(doc["ovlock_version"], env!("CARGO_PKG_VERSION"), "{args:?}");
        assert_eq!(doc["target"], line("target: "), "{args:?}");
        match doc["git_commit"].as_str() {
            Some(commit) => assert_eq!(commit, line("commit: "), "{args:?}"),
            None => assert!(line("commit: ").starts_with("unknown"), "{args:?}"),
        }
    }
}

/// Each subcommand's help lists its exit codes, and says what the help of
/// --wait and --config promise.
#[test]
fn each_subcommand_help_lists_its_exit_codes() {
    let env = TestEnv::new();
    // Help is wrapped to the terminal: compare with the line breaks undone.
    let help_of = |sub: &str| -> String {
        let text = env.run(&[sub, "--help"]).stdout;
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    for sub in ["status", "check", "clear-stale"] {
        let help = help_of(sub);
        for words in [
            "0 free",
            "1 held",
            "2 stale",
            "3 contended",
            "4 unknown",
            "4, 3, 1, 2, 0",
        ] {
            assert!(
                help.contains(words),
                "{sub} --help lacks {words:?}:\n{help}"
            );
        }
    }
    let help = env.run(&["who", "--help"]).stdout;
    for words in [
        "0 an owner was found",
        "1 there is none",
        "could not identify",
    ] {
        assert!(help.contains(words), "who --help lacks {words:?}:\n{help}");
    }
    let help = help_of("check");
    for words in ["every 0.2 s", "At the deadline", "with DATA_DIRs too"] {
        assert!(
            help.contains(words),
            "check --help lacks {words:?}:\n{help}"
        );
    }
}

#[test]
fn quiet_prints_nothing_and_keeps_the_exit_code() {
    let env = TestEnv::new();
    let ws = env.ws_str();
    let run = env.run(&["check", "-q", &ws]);
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "", "")
    );

    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    for args in [
        &["check", "-q", &ws][..],
        &["check", "--quiet", "--json", &ws],
        &["status", "-q", &ws],
        &["-q", "check", &ws],
    ] {
        let run = env.run(args);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (1, "", ""),
            "{args:?}"
        );
    }
    let run = env.run(&["who", "-q", &ws]);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:?}");
    drop(server);

    std::fs::write(env.pid_path(), dead_pid().to_string()).unwrap();
    let run = env.run(&["check", "-q", &ws]);
    assert_eq!((run.code, run.stdout.as_str()), (2, ""), "{run:?}");
}

#[test]
fn wait_on_a_held_directory_times_out_held() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let run = env.run(&["check", "--wait", "0.5", "--color", "never", &env.ws_str()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(names_pid(&run.stdout, server.pid()), "{run:?}");
    assert!(env.lock_path().exists());
}

#[test]
fn wait_returns_free_once_the_holder_is_killed() {
    let env = TestEnv::new();
    let mut server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);

    let mut check = env
        .command(&["check", "--wait", "30", "--json", &env.ws_str()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn ovlock check --wait");
    // Kill the holder only once ovlock has surveyed and is sleeping before its
    // next poll; without /proc/PID/wchan, right after spawning.
    if !wait_until_polling(check.id()) {
        eprintln!("note: /proc/PID/wchan never showed ovlock polling; killing the holder now");
    }
    server.kill();

    let mut out = String::new();
    check
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = check.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["data_dirs"][0]["verdict"], "free", "{doc:#}");
    assert_eq!(doc["data_dirs"][0]["locks"][0]["held"], false, "{doc:#}");
    assert!(env.lock_path().exists());
}

#[test]
fn wait_outlasts_a_pid_file_being_written() {
    let env = TestEnv::new();
    // Empty and brand new: an acquisition in progress (unknown). Nobody
    // finishes it, so it turns stale after OpenViking's grace, and the wait ends.
    std::fs::write(env.pid_path(), "").unwrap();
    let run = env.run(&["check", "--wait", "20", "--color", "never", &env.ws_str()]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stdout.contains("stale"), "{run:?}");
}

#[test]
fn wait_stops_at_a_stale_pid_file() {
    let env = TestEnv::new();
    let pid = dead_pid();
    std::fs::write(env.pid_path(), pid.to_string()).unwrap();
    // Stale counts as released: a long wait returns at once with exit 2.
    let run = env.run(&["check", "--wait", "30", &env.ws_str()]);
    assert_eq!(run.code, 2, "{run:?}");
}

#[test]
fn color_follows_the_flag_and_the_environment() {
    let env = TestEnv::new();
    let _server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let ws = env.ws_str();

    let always = env.run(&["status", "--color", "always", &ws]);
    assert_eq!(always.code, 1);
    assert!(has_escape(&always.stdout), "{always:?}");
    let check = env.run(&["check", "--color", "always", &ws]);
    assert!(has_escape(&check.stdout), "{check:?}");

    let never = env.run(&["status", "--color", "never", &ws]);
    assert_eq!(never.code, 1);
    assert!(!has_escape(&never.stdout), "{never:?}");

    // auto, on a pipe: CLICOLOR_FORCE forces colour, NO_COLOR wins over it.
    let forced = run_cmd(env.command(&["status", &ws]).env("CLICOLOR_FORCE", "1"));
    assert!(has_escape(&forced.stdout), "{forced:?}");
    let no_color = run_cmd(
        env.command(&["status", &ws])
            .env("CLICOLOR_FORCE", "1")
            .env("NO_COLOR", "1"),
    );
    assert!(!has_escape(&no_color.stdout), "{no_color:?}");
    let piped = env.run(&["status", &ws]);
    assert!(!has_escape(&piped.stdout), "{piped:?}");

    // JSON is never coloured.
    let json = env.run(&["status", "--json", "--color", "always", &ws]);
    assert!(!has_escape(&json.stdout), "{json:?}");
    json.json();
}

#[test]
fn completions_are_generated_for_every_shell() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let run = env.run(&["completions", shell]);
        assert_eq!(run.code, 0, "{shell}: {run:?}");
        assert!(run.stdout.contains("clear-stale"), "{shell}: {run:?}");
    }
}
