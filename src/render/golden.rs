//! Golden tests of the human renderer: every situation of the judge's fact
//! table, rendered as `status`, `who` and `check` would print it, in a pipe
//! (no terminal: tables at their natural width) and on an 80-column
//! terminal, and compared with the snapshots in `snapshots/` (insta). A change to what a
//! person reads shows up as a diff to review: `cargo insta review`, or
//! `INSTA_UPDATE=always cargo test` to accept.

use std::path::PathBuf;

use crate::judge::tests::{
    base, cases, flock_held, lease, path_lock, process, server, with_path_locks,
};
use crate::judge::{Policy, judge};
use crate::report::DirReport;

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
            .any(|c| c != '\n' && crate::terminal_chars::is_unsafe(c)),
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
