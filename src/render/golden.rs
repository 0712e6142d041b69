//! Golden tests of the human renderer: every situation of the judge's fact
//! table, rendered as `status`, `who` and `check` would print it, in a pipe
//! (no terminal: tables at their natural width) and on an 80-column
//! terminal, and compared with the snapshots in `snapshots/` (insta). A change to what a
//! person reads shows up as a diff to review: `cargo insta review`, or
//! `INSTA_UPDATE=always cargo test` to accept. The same situations as JSON
//! are checked against docs/ovlock.schema.json.

use std::path::PathBuf;

use crate::judge::tests::{
    base, cases, flock_held, lease, path_lock, process, server, with_path_locks,
};
use crate::judge::{Policy, judge};
use crate::survey::report::DirReport;

fn report(facts: crate::inspect::Facts) -> DirReport {
    DirReport {
        judgement: judge(&facts, &Policy::new(&[])),
        facts,
        removals: None,
        servers: Vec::new(),
    }
}

/// What a person reads for one situation, every subcommand's text.
fn rendered(reports: &[DirReport]) -> String {
    format!(
        "$ ovlock check\n{}\n$ ovlock status\n{}\n$ ovlock who\n{}",
        super::check_lines(reports),
        super::human::status(reports),
        super::human::who(reports)
    )
}

#[test]
fn every_situation_of_the_judges_table() {
    colored::control::set_override(false);
    for (width, suffix) in [(0, ""), (80, "__80_columns")] {
        super::human::tests_width::set(width);
        for case in cases() {
            let name = case.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            insta::assert_snapshot!(format!("{name}{suffix}"), rendered(&[report(case.facts)]));
        }
    }
}

/// Names and paths that carry escape sequences, newlines, backslashes and
/// bidirectional overrides are shown escaped, never raw.
#[test]
fn hostile_names_and_paths() {
    colored::control::set_override(false);
    super::human::tests_width::set(0);
    let mut facts = base();
    let path = PathBuf::from("/srv/ov/da\nta\x1b[2J\\n\u{202e}");
    facts.workspace.path = path.clone();
    facts.dir = crate::inspect::DirState::Present {
        resolved: path.clone(),
    };
    facts.resolved_dir = path;
    let mut evil = process(66, "ov\x1b]0;pwned\x07", 1_800_000_000);
    evil.cmdline = vec!["openviking-server".into(), "--x=\u{9b}31m".into()];
    let shown = rendered(&[report(flock_held(facts, &[evil], 66))]);
    assert!(
        !shown
            .chars()
            .any(|c| c != '\n' && crate::render::terminal_chars::is_unsafe(c)),
        "{shown:?}"
    );
    insta::assert_snapshot!(shown);
}

/// Ten thousand path locks, half of them stale, stay a screenful.
#[test]
fn ten_thousand_path_locks() {
    colored::control::set_override(false);
    super::human::tests_width::set(0);
    const T0: u64 = 1_800_000_000;
    let files = (0..10_000)
        .map(|i| {
            let rel = format!("resources/d{i:05}/.path.ovlock");
            if i % 2 == 0 {
                path_lock(&rel, lease(T0), T0)
            } else {
                path_lock(&rel, lease(T0 + 3_599), T0 + 3_599)
            }
        })
        .collect();
    let facts = with_path_locks(flock_held(base(), &[server(50)], 50), files);
    let shown = rendered(&[report(facts)]);
    assert!(shown.lines().count() < 120, "{}", shown.lines().count());
    insta::assert_snapshot!(shown);
}

/// The JSON of every situation, and of an error, fits docs/ovlock.schema.json.
#[test]
fn every_situation_as_json_fits_the_schema() {
    let schema = serde_json::from_str(include_str!("../../docs/ovlock.schema.json"))
        .expect("the schema is JSON");
    let validator = jsonschema::draft202012::new(&schema).expect("the schema is valid");
    let mut documents = vec![("an error".to_string(), super::json::error("no such file"))];
    for case in cases() {
        let report = report(case.facts);
        let code = crate::exit_code::ExitCode::of(report.judgement.verdict);
        documents.push((
            case.name.to_string(),
            super::json::render(&[report], None, code, None),
        ));
    }
    for (name, text) in documents {
        let doc: serde_json::Value = serde_json::from_str(&text).expect("the document is JSON");
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}:\n{}\n{text}", errors.join("\n"));
    }
}

/// The Server line of each kind of answer, and the task named behind a
/// stuck lease with the command that cancels it.
#[test]
fn server_lines() {
    use crate::inspect::server::{Answer, Asked, Health, NotAsked, ServerFacts, Task, Via};
    colored::control::set_override(false);
    super::human::tests_width::set(0);
    let stuck = cases()
        .into_iter()
        .find(|c| c.name == "a live server with a stale path lock and a stuck lease")
        .unwrap()
        .facts;
    let address: std::net::SocketAddr = "127.0.0.1:1933".parse().unwrap();
    let asked = |answer: Answer| {
        Ok(Asked {
            address,
            via: Via::Socket {
                listening: "0.0.0.0:1933".parse().unwrap(),
            },
            answer,
        })
    };
    let healthy = Health {
        version: Some("0.5.2".into()),
        healthy: Some(true),
        auth_mode: Some("api_key".into()),
        system_healthy: Some(true),
        errors: Some(Ok(Vec::new())),
    };
    let task = |id: &str, resource: &str, owner: Option<&str>| Task {
        id: id.into(),
        task_type: Some("add_resource".into()),
        status: Some("running".into()),
        stage: Some("semantic".into()),
        resource: Some(resource.into()),
        created_at: None,
        running_secs: Some(7_300),
        owner_ids: owner.into_iter().map(String::from).collect(),
    };
    // A name, what the server was asked and answered, and its tasks.
    type Situation<'a> = (&'a str, Result<Asked, NotAsked>, Option<Vec<Task>>);
    let situations: Vec<Situation> = vec![
        ("answering", asked(Answer::Answered(healthy.clone())), None),
        (
            "unhealthy",
            asked(Answer::Answered(Health {
                system_healthy: Some(false),
                errors: Some(Ok(vec!["models has errors".into()])),
                ..healthy.clone()
            })),
            None,
        ),
        ("silent", asked(Answer::Silent), None),
        (
            "needs a key",
            asked(Answer::NeedsKey {
                status: 401,
                key_sent: false,
            }),
            None,
        ),
        (
            "hostile answer",
            asked(Answer::NotOpenViking(
                "a redirect (302) to http://evil\x1b[2J/, not followed".into(),
            )),
            None,
        ),
        (
            "not asked",
            Err(NotAsked::NotOnLoopback(vec![
                "192.0.2.7:1933".parse().unwrap(),
            ])),
            None,
        ),
        (
            "task by owner_id",
            asked(Answer::Answered(healthy.clone())),
            Some(vec![
                task(
                    "t-1",
                    "viking://resources/other",
                    Some("5d0c9a3e-1f2b-4c6d-8e9f-0a1b2c3d4e5f"),
                ),
                task("t-2", "viking://resources/a.md.dir", None),
            ]),
        ),
        (
            "task probably",
            asked(Answer::Answered(healthy)),
            Some(vec![
                task("t-2", "viking://resources/a.md.dir/part", None),
                task("t-3", "viking://resources/a.md.dirt", None),
            ]),
        ),
    ];
    let mut shown = String::new();
    for (name, asked, tasks) in situations {
        let mut r = report(stuck.clone());
        r.servers = vec![ServerFacts {
            pid: 50,
            asked,
            tasks: tasks.map(Ok),
        }];
        crate::judge::server::apply(&r.servers, &mut r.judgement);
        shown.push_str(&format!("=== {name}\n{}\n", rendered(&[r])));
    }
    assert!(
        !shown
            .chars()
            .any(|c| c != '\n' && crate::render::terminal_chars::is_unsafe(c)),
        "{shown:?}"
    );
    insta::assert_snapshot!(shown);
}
