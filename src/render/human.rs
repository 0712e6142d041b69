//! Human-readable reports: `status`, `who` and `clear-stale`, with tables
//! fitted to the terminal and every untrusted string escaped.

use std::fmt::Write;
use std::time::SystemTime;

use colored::Colorize;
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ColumnConstraint, ContentArrangement, Table};

use super::words::{self, Worded, describe_access, relative};
use super::{escape, names, owner_pids, paint, shell, verdict_word};
use crate::clear::Outcome;
use crate::inspect::path_locks::{LockFileRead, PathLocks};
use crate::inspect::server::ServerFacts;
use crate::inspect::usage::RunningServer;
use crate::inspect::{DirState, Facts, LOCK_NAME, LockFile, PID_NAME, PathAccess, ProcessInfo};
use crate::judge::{
    Finding, JudgedPathLock, Judgement, Owner, PathLockState, PidFileVerdict, Protocol, Verdict,
};
use crate::render::timefmt;
use crate::survey::report::DirReport;
use crate::workspace::Source;

/// `status`: the full report for every directory.
pub fn status(reports: &[DirReport]) -> String {
    let mut out = String::new();
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        header(&mut out, report);
        section(&mut out, "Lock files");
        out.push_str(&lock_table(&report.facts, &report.judgement).to_string());
        out.push('\n');
        if !report.judgement.owners.is_empty() {
            section(&mut out, "Owners");
            out.push_str(&owner_table(&report.judgement, report.facts.host.now).to_string());
            out.push('\n');
        }
        if !report.judgement.other_users.is_empty() {
            section(&mut out, "Also using it (not owners)");
            out.push_str(&other_users_table(report).to_string());
            out.push('\n');
        }
        path_locks(&mut out, report);
        footer(&mut out, &Worded::of(&report.facts, &report.judgement));
    }
    out
}

/// `who`: each owner in detail.
pub fn who(reports: &[DirReport]) -> String {
    let mut out = String::new();
    for (i, report) in reports.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let j = &report.judgement;
        let worded = Worded::of(&report.facts, j);
        let path = escape::path(&report.facts.workspace.path);
        if j.owners.is_empty() {
            let what = match j.verdict {
                Verdict::Held | Verdict::Contended => {
                    "owned by a process that could not be identified"
                }
                Verdict::Unknown => "cannot tell who owns it",
                _ => "no owner",
            };
            let _ = writeln!(
                out,
                "{path}: {what} ({}: {})",
                verdict_word(j.verdict),
                escape::text(&worded.reasons[0])
            );
            for fix in &worded.fixes {
                let _ = writeln!(out, "  {}", escape::command(fix));
            }
            continue;
        }
        let _ = writeln!(out, "{path}: {}{}", verdict_word(j.verdict), owner_pids(j));
        for owner in &j.owners {
            let protocols: Vec<&str> = owner.protocols.iter().map(|p| protocol_file(*p)).collect();
            let _ = writeln!(
                out,
                "\n{} {} {}",
                format!("PID {}", owner.process.pid).bold(),
                escape::text(&owner.process.name),
                format!("(owns it through {})", protocols.join(" and ")).dimmed()
            );
            out.push_str(&owner_detail(owner, report).to_string());
            out.push('\n');
        }
        if j.owners.len() > 1 {
            leases_of_several(&mut out, report);
        }
        if !j.other_users.is_empty() {
            let _ = writeln!(out, "\n{}", "Also using it (not owners)".bold());
            out.push_str(&other_users_table(report).to_string());
            out.push('\n');
        }
        for warning in &worded.warnings {
            let _ = writeln!(out, "{} {}", "warning:".yellow(), escape::text(warning));
        }
    }
    out
}

/// `who --all`: every OpenViking process with its data directories, then a
/// line for each directory.
/// `hidden` is the `hidepid=` option that hides other users' processes.
pub fn who_all(
    found: &[RunningServer],
    servers: &[ServerFacts],
    reports: &[DirReport],
    hidden: Option<&str>,
) -> String {
    match (found.is_empty(), hidden) {
        (true, None) => return "no OpenViking process is running\n".to_string(),
        (true, Some(option)) => {
            return format!(
                "no OpenViking process is visible: /proc is mounted with {option}, which hides \
                 other users' processes; run as root to see them\n"
            );
        }
        _ => {}
    }
    let mut table = new_table(
        &[
            ("PID", Col::Fit),
            ("User", Col::Wrap),
            ("Name", Col::Wrap),
            ("Data directories", Col::Wrap),
            ("Server", Col::Wrap),
            ("Command", Col::Wrap),
        ],
        true,
    );
    for f in found {
        let server = servers.iter().find(|s| s.pid == f.process.pid).map_or_else(
            || "not asked".to_string(),
            |s| escape::text(&words::server(s)),
        );
        let p = &f.process;
        let dirs = match (f.dirs.is_empty(), f.unreadable) {
            _ if f.other_mount_namespace => {
                "? (in another mount namespace: a container)".to_string()
            }
            (true, true) => "? (not readable: run as root, with CAP_SYS_PTRACE)".to_string(),
            (true, false) => "none open".to_string(),
            (false, _) => f
                .dirs
                .iter()
                .map(|d| escape::path(d))
                .collect::<Vec<_>>()
                .join("\n"),
        };
        table.add_row([
            p.pid.to_string(),
            escape::text(p.user.as_deref().unwrap_or("?")),
            escape::text(&p.name),
            dirs,
            server,
            abbreviate(command_line(p), 72),
        ]);
    }
    let mut out = format!("{table}\n");
    if !reports.is_empty() {
        out.push('\n');
        out.push_str(&super::check_lines(reports));
    }
    out
}

/// `clear-stale`: what was removed (or would be), then the verdict now.
pub fn clear_stale(reports: &[DirReport]) -> String {
    let mut out = String::new();
    for report in reports {
        let path = escape::path(&report.facts.workspace.path);
        for removal in report.removals.iter().flatten() {
            let file = escape::path(&removal.path);
            let reason = escape::text(&words::removal_reason(&removal.reason, &report.facts));
            let _ = match &removal.outcome {
                Outcome::Removed => writeln!(out, "removed {file}: {reason}"),
                Outcome::WouldRemove => writeln!(out, "would remove {file}: {reason}"),
                Outcome::Kept(why) => {
                    writeln!(out, "kept {file}: {}", escape::text(&words::kept(why)))
                }
                Outcome::Failed(err) => writeln!(
                    out,
                    "{} could not remove {file} ({reason}): {}",
                    "error:".red(),
                    escape::text(err)
                ),
            };
        }
        let j = &report.judgement;
        let kept = match &j.pid_file {
            PidFileVerdict::Owned { pid, .. } => format!("; kept {PID_NAME} (PID {pid} is alive)"),
            PidFileVerdict::BeingWritten => format!("; kept {PID_NAME}: it is being written"),
            // The reason already says why, when the pid file decided the verdict.
            PidFileVerdict::Unknown(why)
                if j.reasons.first() == Some(&Finding::PidFileUndecided(why.clone())) =>
            {
                format!("; kept {PID_NAME}")
            }
            PidFileVerdict::Unknown(why) => format!(
                "; kept {PID_NAME}: {}",
                escape::text(&words::pid_doubt(why, &report.facts.host))
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{path}: {}{}: {}{kept}",
            verdict_word(j.verdict),
            owner_pids(j),
            escape::text(&words::first_reason(&report.facts, j))
        );
    }
    out
}

fn header(out: &mut String, report: &DirReport) {
    let facts = &report.facts;
    let j = &report.judgement;
    let _ = writeln!(out, "{}", escape::path(&facts.workspace.path).bold());
    let _ = writeln!(
        out,
        "  source    {}",
        escape::text(&describe_source(&facts.workspace.source))
    );
    if let DirState::Present { resolved } = &facts.dir {
        if *resolved != facts.workspace.path {
            let _ = writeln!(out, "  resolved  {}", escape::path(resolved));
        }
    }
    let _ = writeln!(
        out,
        "  verdict   {}: {}",
        paint(j.verdict, &names::verdict(j.verdict).to_uppercase()),
        escape::text(&words::first_reason(facts, j))
    );
    for server in &report.servers {
        let _ = writeln!(
            out,
            "  server    PID {}: {}",
            server.pid,
            escape::text(&words::server(server))
        );
    }
}

fn footer(out: &mut String, j: &Worded) {
    // The first reason stands in the header already.
    if j.reasons.len() > 1 {
        section(out, "Why");
        for reason in &j.reasons[1..] {
            let _ = writeln!(out, "  - {}", escape::text(reason));
        }
    }
    if !j.warnings.is_empty() {
        section(out, "Warnings");
        for warning in &j.warnings {
            let _ = writeln!(out, "  ! {}", escape::text(warning).yellow());
        }
    }
    section(out, "What to do");
    if j.fixes.is_empty() {
        let _ = writeln!(out, "  Nothing: OpenViking can start on this directory.");
    }
    for (i, fix) in j.fixes.iter().enumerate() {
        let _ = writeln!(out, "  {}. {}", i + 1, escape::command(fix));
    }
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{}", title.bold());
}

pub fn describe_source(source: &Source) -> String {
    match source {
        Source::Argument => "command-line argument".to_string(),
        Source::Discovered => "found among the open files of an OpenViking process".to_string(),
        Source::Config { file, via } => {
            format!(
                "storage.workspace in {} (found via {})",
                file.display(),
                via.describe()
            )
        }
        Source::Default { config: None } => "default ./data (no ov.conf found)".to_string(),
        Source::Default {
            config: Some((file, _)),
        } => {
            format!(
                "default ./data ({} sets no storage.workspace)",
                file.display()
            )
        }
    }
}

/// How a column behaves when the terminal is narrow.
#[derive(Clone, Copy)]
enum Col {
    /// Short (a PID, a duration): never wraps.
    Fit,
    /// Long (a command, a reason): wraps to fit.
    Wrap,
    /// Shown only on a terminal of 100 columns or more, and in pipes.
    Wide,
}

/// A table fitted to the terminal width, which comfy-table reads.
fn new_table(columns: &[(&str, Col)], header: bool) -> Table {
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    // Golden tests set the width they render for, whatever terminal runs them.
    #[cfg(test)]
    if let Some(width) = tests_width::get() {
        table.force_no_tty();
        if width > 0 {
            table.set_width(width);
        }
    }
    if header {
        table.set_header(columns.iter().map(|(title, _)| *title).collect::<Vec<_>>());
    }
    let narrow = table.width().is_some_and(|width| width < 100);
    for (i, (_, col)) in columns.iter().enumerate() {
        let constraint = match col {
            Col::Fit => ColumnConstraint::ContentWidth,
            Col::Wrap => continue,
            Col::Wide if narrow => ColumnConstraint::Hidden,
            Col::Wide => ColumnConstraint::ContentWidth,
        };
        if let Some(column) = table.column_mut(i) {
            column.set_constraint(constraint);
        }
    }
    table
}

fn lock_table(facts: &Facts, j: &Judgement) -> Table {
    let mut table = new_table(
        &[
            ("File", Col::Fit),
            ("Protocol", Col::Wide),
            ("State", Col::Wrap),
            ("PID", Col::Fit),
            ("Content", Col::Wrap),
            ("Modified", Col::Fit),
        ],
        true,
    );
    let flock = super::dir_locks::flock(facts, j);
    row(
        &mut table,
        facts,
        LOCK_NAME,
        "flock (0.4.21+)",
        flock.words,
        flock.pid_words,
        &facts.lock_file,
    );
    let pid_file = super::dir_locks::pid_file(facts, j);
    row(
        &mut table,
        facts,
        PID_NAME,
        "pid file (<= 0.4.20)",
        pid_file.words,
        pid_file.pid_words,
        &facts.pid_file,
    );
    table
}

fn row(
    table: &mut Table,
    facts: &Facts,
    name: &str,
    protocol: &str,
    state: String,
    pid: String,
    file: &LockFile,
) {
    let (content, modified) = match file {
        LockFile::Present {
            stat,
            content,
            truncated,
        } => {
            let content = match content {
                Ok(c) if c.is_empty() => "(empty)".to_string(),
                // A PID is short; anything longer is shown in part.
                Ok(c) => abbreviate(
                    format!("{}{}", escape::bytes(c), if *truncated { "…" } else { "" }),
                    24,
                ),
                Err(err) => format!("unreadable: {err}"),
            };
            let modified = stat
                .modified
                .map(|m| timefmt::ago(m, facts.host.now))
                .unwrap_or_default();
            (content, modified)
        }
        _ => (String::new(), String::new()),
    };
    table.add_row([
        name.to_string(),
        protocol.to_string(),
        escape::text(&state),
        pid,
        content,
        modified,
    ]);
}

fn owner_table(j: &Judgement, now: SystemTime) -> Table {
    let mut table = new_table(
        &[
            ("PID", Col::Fit),
            ("User", Col::Wrap),
            ("Name", Col::Wrap),
            ("Via", Col::Fit),
            ("Started", Col::Wide),
            ("Running for", Col::Fit),
            ("Command", Col::Wrap),
        ],
        true,
    );
    for owner in &j.owners {
        let p = &owner.process;
        let protocols: Vec<&str> = owner
            .protocols
            .iter()
            .map(|p| names::protocol(*p).text)
            .collect();
        table.add_row([
            p.pid.to_string(),
            escape::text(p.user.as_deref().unwrap_or("?")),
            escape::text(&p.name),
            protocols.join(", "),
            p.started.and_then(timefmt::rfc3339).unwrap_or_default(),
            p.started
                .and_then(|s| now.duration_since(s).ok())
                .map(timefmt::short)
                .unwrap_or_default(),
            // The table stays readable; `who` shows the whole command.
            abbreviate(command_line(p), 72),
        ]);
    }
    table
}

/// `who`'s table for one owner: the process, where it came from, what it touches.
fn owner_detail(owner: &Owner, report: &DirReport) -> Table {
    let mut table = process_table(&owner.process, report.facts.host.now);
    if let Some(ns_pid) = owner.ns_pid {
        table.add_row(["PID in its namespace".to_string(), ns_pid.to_string()]);
    }
    if !owner.ancestry.is_empty() {
        let chain: Vec<String> = owner
            .ancestry
            .iter()
            .map(|a| format!("{} ({})", escape::text(&a.name), a.pid))
            .collect();
        table.add_row(["Launched by".to_string(), chain.join(" < ")]);
    }
    if !owner.files.is_empty() {
        table.add_row([
            "Files".to_string(),
            file_lines(&owner.files, &report.facts.resolved_dir),
        ]);
    }
    if !owner.workers.is_empty() {
        let workers: Vec<String> = owner.workers.iter().map(u32::to_string).collect();
        table.add_row(["Workers".to_string(), workers.join(", ")]);
    }
    if let Some(server) = report.servers.iter().find(|s| s.pid == owner.process.pid) {
        table.add_row(["Server".to_string(), escape::text(&words::server(server))]);
    }
    // Tokens name no process: the leases are the owner's only when it is the only one.
    if let [_] = report.judgement.owners.as_slice() {
        if let Some(leases) = lease_lines(report) {
            table.add_row(["Leases".to_string(), leases]);
        }
    }
    table
}

/// The held leases, one a line with their ages, or None when there are none.
fn lease_lines(report: &DirReport) -> Option<String> {
    const SHOWN: usize = 20;
    let now = report.facts.host.now;
    let held: Vec<&JudgedPathLock> = report
        .judgement
        .path_locks
        .iter()
        .filter(|p| p.state == PathLockState::Held)
        .collect();
    if held.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = held
        .iter()
        .take(SHOWN)
        .map(|p| {
            let mut ages = Vec::new();
            if let Some(at) = p.lease().and_then(|l| l.refreshed_at) {
                ages.push(format!("refreshed {}", timefmt::ago(at, now)));
            }
            if let Some(born) = held_since(p) {
                ages.push(format!("held for {}", timefmt::short(born)));
            }
            let place = escape::text(&words::locked_place(p));
            if ages.is_empty() {
                place
            } else {
                format!("{place} ({})", ages.join(", "))
            }
        })
        .collect();
    if held.len() > SHOWN {
        lines.push(format!("and {} more", held.len() - SHOWN));
    }
    Some(lines.join("\n"))
}

/// How long a lease has been held, as far as its file's creation time tells.
fn held_since(p: &JudgedPathLock) -> Option<std::time::Duration> {
    let LockFileRead::Read { meta, .. } = &p.file.read else {
        return None;
    };
    crate::judge::held_for(meta.born?, &p.context)
}

/// `who` with several owners: the held leases, which belong to one of them.
fn leases_of_several(out: &mut String, report: &DirReport) {
    if let Some(leases) = lease_lines(report) {
        let _ = writeln!(
            out,
            "\n{}\n{leases}",
            "Held leases (tokens name no process: each is one owner's)".bold()
        );
    }
}

/// `status`'s "Path locks" section: every stale or undecided one with what
/// it blocks and why, the held ones summed up unless they are few, and
/// where the tokens are when they are not files.
fn path_locks(out: &mut String, report: &DirReport) {
    const ROWS: usize = 20;
    const HELD_ROWS: usize = 5;
    let facts = &report.facts;
    let settings = &facts.workspace.path_locks;
    let expire = match &settings.lock_expire.value {
        Ok(expire) => format!(
            "lock_expire_secs {}, {}",
            timefmt::short(*expire),
            words::setting_source(&settings.lock_expire.source)
        ),
        Err(_) => "lock_expire_secs refused".to_string(),
    };
    let walk = match &facts.path_locks {
        PathLocks::NoTree | PathLocks::TreeNotADirectory(_) | PathLocks::NotDetermined => return,
        PathLocks::NotLocal(not_local) => {
            section(out, "Path locks");
            let _ = writeln!(
                out,
                "  none on disk: with {} the tokens are not files on this host",
                names::not_local(*not_local)
            );
            return;
        }
        PathLocks::Walked(walk) => walk,
    };
    section(out, &format!("Path locks ({expire})"));
    let locks = &report.judgement.path_locks;
    if locks.is_empty() {
        let _ = writeln!(
            out,
            "  none in {} ({} searched)",
            escape::path(&walk.tree),
            plural(walk.dirs as usize, "directory", "directories")
        );
        return;
    }
    let held = locks
        .iter()
        .filter(|p| p.state == PathLockState::Held)
        .count();
    let mut shown: Vec<&JudgedPathLock> = locks
        .iter()
        .filter(|p| p.state != PathLockState::Held || held <= HELD_ROWS)
        .collect();
    // What needs doing first: stale, then undecided, then held.
    shown.sort_by_key(|p| match p.state {
        PathLockState::Stale => 0,
        PathLockState::Unknown => 1,
        PathLockState::Held => 2,
    });
    let mut table = new_table(
        &[
            ("Locks", Col::Wrap),
            ("State", Col::Fit),
            ("Why", Col::Wrap),
            ("File", Col::Wrap),
        ],
        true,
    );
    for p in shown.iter().take(ROWS) {
        table.add_row([
            escape::text(&words::locked_place(p)),
            names::path_lock_state(p.state).to_string(),
            escape::text(&words::path_lock_reason(p, facts)),
            escape::path(relative(&facts.resolved_dir, &p.file.path)),
        ]);
    }
    let _ = writeln!(out, "{table}");
    if shown.len() > ROWS {
        let _ = writeln!(
            out,
            "  and {} more (ovlock --json status lists every one)",
            shown.len() - ROWS
        );
    }
    if held > HELD_ROWS {
        let _ = writeln!(
            out,
            "  and {held} held, each refreshed or written within lock_expire_secs"
        );
    }
}

/// `1 directory`, `3 directories`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn other_users_table(report: &DirReport) -> Table {
    let mut table = new_table(
        &[
            ("PID", Col::Fit),
            ("User", Col::Wrap),
            ("Name", Col::Wrap),
            ("Files", Col::Wrap),
        ],
        true,
    );
    for other in &report.judgement.other_users {
        let p = &other.process;
        table.add_row([
            p.pid.to_string(),
            escape::text(p.user.as_deref().unwrap_or("?")),
            escape::text(&p.name),
            file_lines(&other.files, &report.facts.resolved_dir),
        ]);
    }
    table
}

/// One line a file, relative to the directory, with how it is used.
fn file_lines(files: &[PathAccess], dir: &std::path::Path) -> String {
    let lines: Vec<String> = files
        .iter()
        .map(|t| {
            format!(
                "{} ({})",
                escape::path(relative(dir, &t.path)),
                describe_access(t)
            )
        })
        .collect();
    lines.join("\n")
}

fn process_table(p: &ProcessInfo, now: SystemTime) -> Table {
    let mut table = new_table(&[("", Col::Fit), ("", Col::Wrap)], false);
    let unknown = || "?".to_string();
    let started = p
        .started
        .and_then(|s| {
            Some(format!(
                "{} ({})",
                timefmt::rfc3339(s)?,
                timefmt::ago(s, now)
            ))
        })
        .unwrap_or_else(unknown);
    let rows = [
        (
            "PPID",
            p.ppid.map(|v| v.to_string()).unwrap_or_else(unknown),
        ),
        ("User", escape::text(p.user.as_deref().unwrap_or("?"))),
        (
            "Exe",
            p.exe.as_deref().map(escape::path).unwrap_or_else(unknown),
        ),
        ("Command", command_line(p)),
        (
            "Cwd",
            p.cwd.as_deref().map(escape::path).unwrap_or_else(unknown),
        ),
        ("Started", started),
        ("Memory", p.memory.map(mebibytes).unwrap_or_else(unknown)),
    ];
    for (key, value) in rows {
        table.add_row([key.to_string(), value]);
    }
    table
}

fn protocol_file(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Flock => LOCK_NAME,
        Protocol::PidFile => PID_NAME,
        Protocol::Storage => "its open storage files, with no lock file",
    }
}

/// The command line as a shell would need it typed, escaped for the terminal;
/// a process without one (a kernel thread) shows its name in brackets, as ps does.
fn command_line(p: &ProcessInfo) -> String {
    if p.cmdline.is_empty() {
        return escape::text(&format!("[{}]", p.name));
    }
    let words: Vec<String> = p
        .cmdline
        .iter()
        .map(|arg| escape::command(&shell::quote(arg)))
        .collect();
    words.join(" ")
}

/// At most `max` characters, the cut marked with an ellipsis.
fn abbreviate(text: String, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text.chars().count() > max => format!("{}…", &text[..cut]),
        _ => text,
    }
}

fn mebibytes(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The terminal width golden tests render for (0: none, as in a pipe).
#[cfg(test)]
pub(super) mod tests_width {
    use std::cell::Cell;

    thread_local! {
        static WIDTH: Cell<Option<u16>> = const { Cell::new(None) };
    }

    pub fn set(width: u16) {
        WIDTH.with(|w| w.set(Some(width)));
    }

    pub fn get() -> Option<u16> {
        WIDTH.with(Cell::get)
    }
}
