//! ovlock: who holds an OpenViking data directory, whether a leftover lock is
//! stale, and what to do about it.
//!
//! Data flows one way: resolve (workspace) → inspect → judge → render → exit code.

mod clear;
mod cli;
mod completions;
mod exit_code;
mod fsread;
mod inspect;
mod judge;
mod layout;
mod ovconf;
mod pidfile;
mod render;
mod report;
mod terminal_chars;
mod timefmt;
mod workspace;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use exit_code::ExitCode;
use inspect::{Processes, Survey};
use judge::Policy;
use report::DirReport;
use workspace::Workspace;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // --help and --version are not errors.
            return if err.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Success
            }
            .into();
        }
    };
    render::set_color(cli.global.color, std::io::stdout().is_terminal(), |name| {
        std::env::var(name).ok()
    });
    match run(&cli) {
        Ok(code) => code.into(),
        Err(err) => {
            let message = format!("{err:#}");
            // Not eprintln!: a closed stderr must not turn an error into a panic.
            let _ = writeln!(
                std::io::stderr(),
                "ovlock: {}",
                render::escape::text(&message)
            );
            // A script reading JSON gets a document it can parse, not nothing.
            if cli.global.json && !cli.global.quiet {
                let _ = emit(&render::json::error(&message));
            }
            ExitCode::Unknown.into()
        }
    }
}

fn run(cli: &Cli) -> Result<ExitCode> {
    let global = &cli.global;
    let dirs = match &cli.command {
        Command::Completions { shell } => {
            emit(&completions::script(*shell))?;
            return Ok(ExitCode::Success);
        }
        Command::Who(args) if args.all => return who_all(cli, args.pid),
        Command::Status(args) | Command::Who(cli::WhoArgs { dirs: args, .. }) => &args.dirs,
        Command::Check(args) => &args.dirs.dirs,
        Command::ClearStale(args) => &args.dirs.dirs,
    };
    let workspace::Resolved {
        workspaces,
        warnings,
    } = workspace::resolve(
        dirs,
        &workspace::Env::from_process(global.config.as_deref())?,
    )?;
    if !global.quiet {
        for warning in &warnings {
            let _ = writeln!(
                std::io::stderr(),
                "ovlock: warning: {}",
                render::escape::text(warning)
            );
        }
    }
    let policy = Policy::new(&global.matches);

    let mut run = Run {
        workspaces: &workspaces,
        policy: &policy,
        processes: Processes::new(),
    };
    let mut waited = None;
    let reports = match &cli.command {
        Command::Check(args) => {
            let scan = if args.scan {
                Scan::Always
            } else {
                Scan::IfNeeded
            };
            match args.wait {
                Some(limit) => {
                    let talk = !global.quiet && std::io::stderr().is_terminal();
                    let (reports, wait) = run.wait_for_release(scan, limit, talk);
                    if wait.timed_out && !global.quiet {
                        let _ = writeln!(
                            std::io::stderr(),
                            "ovlock: {}",
                            render::escape::text(&render::still_after(&reports, &wait))
                        );
                    }
                    waited = Some(wait);
                    reports
                }
                None => run.survey(scan),
            }
        }
        Command::ClearStale(args) => {
            let before = run.survey(Scan::IfNeeded);
            let removals: Vec<_> = before
                .iter()
                .map(|report| {
                    clear::clear(&report.facts, &policy, &mut run.processes, args.dry_run)
                })
                .collect();
            let mut after = run.survey(Scan::IfNeeded);
            for (report, removals) in after.iter_mut().zip(removals) {
                report.removals = Some(removals);
            }
            after
        }
        _ => run.survey(Scan::Always),
    };

    let code = match &cli.command {
        Command::Who(_) => who_exit_code(&reports),
        _ => ExitCode::of_all(reports.iter().map(|r| r.judgement.verdict)),
    };
    if !global.quiet {
        let out = match &cli.command {
            _ if global.json => render::json::render(&reports, None, code, waited.as_ref()),
            Command::Status(_) => render::human::status(&reports),
            Command::Check(_) => render::check_lines(&reports),
            Command::ClearStale(_) => render::human::clear_stale(&reports),
            Command::Who(args) if args.pid => pid_lines(&reports),
            Command::Who(_) => render::human::who(&reports),
            // Printed, and returned from, above.
            Command::Completions { .. } => String::new(),
        };
        emit(&out)?;
    }
    Ok(code)
}

/// `who --all`: every OpenViking process on the machine and the data
/// directories its open files belong to, each judged as `who` judges it.
fn who_all(cli: &Cli, pid_only: bool) -> Result<ExitCode> {
    let global = &cli.global;
    let policy = Policy::new(&global.matches);
    let mut processes = Processes::new();
    let found = inspect::usage::discover(&mut processes, |p| policy.is_openviking(p))
        .map_err(anyhow::Error::msg)?;
    let mut dirs: Vec<PathBuf> = found.iter().flat_map(|f| f.dirs.iter().cloned()).collect();
    dirs.sort();
    dirs.dedup();
    let workspaces = workspace::discovered(dirs);
    let mut run = Run {
        workspaces: &workspaces,
        policy: &policy,
        processes,
    };
    let reports = run.survey(Scan::Always);
    let host = inspect::Host::current();
    let hidden = host.hidepid.as_deref().filter(|_| !host.privileged());
    // With --pid, what counts is the owners printed: nothing printed is
    // "none" only where nothing stood in the way of seeing one.
    let code = if pid_only {
        let unsure = hidden.is_some()
            || found
                .iter()
                .any(|f| f.unreadable || f.other_mount_namespace)
            || reports.iter().any(|r| !r.judgement.verdict.released());
        match who_exit_code(&reports) {
            ExitCode::NoneFound if unsure => ExitCode::Unknown,
            code => code,
        }
    } else if !found.is_empty() {
        ExitCode::Found
    } else if hidden.is_some() {
        ExitCode::Unknown
    } else {
        ExitCode::NoneFound
    };
    if !global.quiet {
        emit(&if global.json {
            render::json::render(&reports, Some(&found), code, None)
        } else if pid_only {
            // The owners only, as `who --pid` prints: not every process that
            // merely looks like OpenViking, for `kill $(ovlock who --all --pid)`.
            pid_lines(&reports)
        } else {
            render::human::who_all(&found, &reports, hidden)
        })?;
    }
    Ok(code)
}

/// Whether a survey scans every process for the users of each directory.
#[derive(Clone, Copy)]
enum Scan {
    Always,
    /// Only for the directories whose answer needs it (`judge::needs_scan`).
    IfNeeded,
}

/// What every survey of one run shares.
struct Run<'a> {
    workspaces: &'a [Workspace],
    policy: &'a Policy,
    processes: Processes,
}

impl Run<'_> {
    /// Inspects every directory, scans every process once if needed, and judges.
    fn survey(&mut self, scan: Scan) -> Vec<DirReport> {
        let survey = Survey::now();
        let mut all: Vec<inspect::Facts> = self
            .workspaces
            .iter()
            .map(|w| inspect::inspect(w, &mut self.processes, &survey))
            .collect();
        let policy = self.policy;
        let scanned = all
            .iter_mut()
            .filter(|f| matches!(scan, Scan::Always) || judge::needs_scan(f, policy));
        inspect::usage::attach(scanned, &mut self.processes);
        all.into_iter()
            .map(|facts| DirReport {
                judgement: judge::judge(&facts, self.policy),
                facts,
                removals: None,
            })
            .collect()
    }

    /// Surveys every [`report::POLL`] until every directory is free or
    /// stale, or `limit` has passed; with `talk`, says on stderr what it
    /// waits for whenever that changes.
    fn wait_for_release(
        &mut self,
        scan: Scan,
        limit: Duration,
        talk: bool,
    ) -> (Vec<DirReport>, report::Wait) {
        let start = Instant::now();
        // A wait longer than the clock can count is a wait without end.
        let deadline = start.checked_add(limit);
        let mut told = String::new();
        loop {
            let reports = self.survey(scan);
            let released = reports.iter().all(|r| r.judgement.verdict.released());
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let timed_out = !released && left.is_some_and(|left| left.is_zero());
            if released || timed_out {
                let wait = report::Wait {
                    limit,
                    waited: start.elapsed(),
                    timed_out,
                };
                return (reports, wait);
            }
            if talk {
                let now = render::waiting_for(&reports, limit);
                if now != told {
                    let _ = writeln!(std::io::stderr(), "ovlock: {}", render::escape::text(&now));
                    told = now;
                }
            }
            std::thread::sleep(left.map_or(report::POLL, |left| left.min(report::POLL)));
        }
    }
}

/// `who`: 0 when an owner was found, 1 when there is none, 4 when it could not
/// be told (as pgrep). A held lock whose holder could not be identified is not "none".
fn who_exit_code(reports: &[DirReport]) -> ExitCode {
    if reports.iter().any(|r| !r.judgement.owners.is_empty()) {
        ExitCode::Found
    } else if reports.iter().all(|r| r.judgement.verdict.released()) {
        ExitCode::NoneFound
    } else {
        ExitCode::Unknown
    }
}

fn pid_lines(reports: &[DirReport]) -> String {
    let mut pids: Vec<u32> = reports
        .iter()
        .flat_map(|r| r.judgement.owners.iter().map(|o| o.process.pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids.iter().map(|pid| format!("{pid}\n")).collect()
}

/// Writes to stdout. A reader that went away (`ovlock status | head -1`)
/// ends the output quietly; any other failure (a full disk) is an error.
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(err).context("cannot write the output"))
        }
        _ => Ok(()),
    }
}
