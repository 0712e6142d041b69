//! Turning judgements into output: human tables, one-line summaries, JSON,
//! metrics. Renderers build strings; `main` writes them, and
//! `render::textfile` writes the metrics where node_exporter reads them.

mod dir_locks;
pub mod escape;
#[cfg(test)]
mod golden;
pub mod human;
pub mod json;
pub mod metrics;
pub mod names;
pub mod shell;
pub mod terminal_chars;
pub mod textfile;
pub mod timefmt;
pub mod words;

use std::time::Duration;

use colored::{ColoredString, Colorize};

use crate::judge::{Finding, Judgement, PathLockState, Verdict};
use crate::survey::report::{DirReport, POLL, Wait};

/// What `check --wait` waits for, for its caller's terminal.
pub fn waiting_for(reports: &[DirReport], limit: Duration) -> String {
    let owned: Vec<String> = unreleased(reports)
        .map(|(path, state)| format!("{path} ({state})"))
        .collect();
    format!(
        "waiting up to {} for {} to be released (looking every {} ms)",
        crate::render::timefmt::short(limit),
        owned.join(", "),
        POLL.as_millis()
    )
}

/// What `check --wait` says when the time ran out.
pub fn still_after(reports: &[DirReport], wait: &Wait) -> String {
    let after = crate::render::timefmt::short(wait.limit);
    let owned: Vec<String> = unreleased(reports)
        .map(|(path, state)| format!("{path} is still {state} after {after}"))
        .collect();
    owned.join("; ")
}

/// Each directory that is not released, with its verdict and owners:
/// `held by PID 42`.
fn unreleased(reports: &[DirReport]) -> impl Iterator<Item = (String, String)> + '_ {
    reports
        .iter()
        .filter(|r| !r.judgement.verdict.released())
        .map(|r| {
            let state = format!(
                "{}{}",
                names::verdict(r.judgement.verdict),
                owner_pids(&r.judgement)
            );
            (r.facts.workspace.path.display().to_string(), state)
        })
}

/// When to colour: `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    /// On a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    Auto,
    Always,
    Never,
}

/// Decides once whether to colour, from `--color` and the environment.
pub fn set_color(choice: Color, stdout_is_terminal: bool, env: impl Fn(&str) -> Option<String>) {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    let on = match choice {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            !set("NO_COLOR")
                && (env("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0")
                    || stdout_is_terminal)
        }
    };
    colored::control::set_override(on);
}

/// The verdict word, coloured by how urgent it is.
pub fn verdict_word(verdict: Verdict) -> ColoredString {
    paint(verdict, names::verdict(verdict))
}

/// `word` in the verdict's colour.
pub fn paint(verdict: Verdict, word: &str) -> ColoredString {
    match verdict {
        Verdict::Free => word.green().bold(),
        Verdict::Held => word.yellow().bold(),
        Verdict::Stale => word.cyan().bold(),
        Verdict::Contended => word.red().bold(),
        Verdict::Unknown => word.magenta().bold(),
    }
}

/// `by PID 42` or `by PIDs 42, 50`, or nothing.
pub fn owner_pids(judgement: &Judgement) -> String {
    let pids: Vec<String> = judgement
        .owners
        .iter()
        .map(|o| o.process.pid.to_string())
        .collect();
    match pids.len() {
        0 => String::new(),
        1 => format!(" by PID {}", pids[0]),
        _ => format!(" by PIDs {}", pids.join(", ")),
    }
}

/// ` (2 stale path locks, 1 that cannot be judged)`: what the first reason
/// does not count already.
fn stale_path_locks(j: &Judgement) -> String {
    let count = |state| j.path_locks.iter().filter(|p| p.state == state).count();
    let mut parts = Vec::new();
    match (count(PathLockState::Stale), j.reasons.first()) {
        (0, _) | (_, Some(Finding::StalePathLocks { .. })) => {}
        (1, _) => parts.push("1 stale path lock".to_string()),
        (n, _) => parts.push(format!("{n} stale path locks")),
    }
    match count(PathLockState::Unknown) {
        0 => {}
        1 if parts.is_empty() => parts.push("1 path lock that cannot be judged".to_string()),
        n if parts.is_empty() => parts.push(format!("{n} path locks that cannot be judged")),
        n => parts.push(format!("{n} that cannot be judged")),
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// `check`: one line a directory.
pub fn check_lines(reports: &[DirReport]) -> String {
    reports
        .iter()
        .map(|r| {
            let mut line = format!(
                "{}: {}{}: {}{}\n",
                escape::path(&r.facts.workspace.path),
                verdict_word(r.judgement.verdict),
                owner_pids(&r.judgement),
                escape::text(&words::first_reason(&r.facts, &r.judgement)),
                stale_path_locks(&r.judgement)
            );
            // Only with `check --ask`: a line under it for each server asked.
            for server in &r.servers {
                line.push_str(&format!(
                    "  server of PID {}: {}\n",
                    server.pid,
                    escape::text(&words::server(server))
                ));
            }
            line
        })
        .collect()
}

/// `who --pid`: each owner's PID once, a line each, for `kill`.
pub fn pid_lines(reports: &[DirReport]) -> String {
    let mut pids: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.judgement.owners.iter().map(|o| o.process.pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.iter().map(|pid| format!("{pid}\n")).collect()
}
