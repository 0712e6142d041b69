//! ovlock: who holds an OpenViking data directory, whether a leftover lock is
//! stale, and what to do about it.
//!
//! Data flows one way: resolve (workspace) → inspect → judge → render → exit code.

mod clear;
mod cli;
mod exit_code;
mod inspect;
mod judge;
mod openviking;
mod render;
mod survey;
mod workspace;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;

use cli::Cli;
use cli::options::{Options, Task};
use exit_code::{ExitCode, WhoAllSeen, WhoSeen};
use inspect::Processes;
use judge::Policy;
use survey::report::{self, DirReport};
use survey::{Scan, Surveyor};

fn main() -> std::process::ExitCode {
    let opts = match Cli::try_parse().and_then(Options::try_from) {
        Ok(opts) => opts,
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
    render::set_color(opts.color, std::io::stdout().is_terminal(), |name| {
        std::env::var(name).ok()
    });
    let done = match &opts.task {
        Task::Status { dirs } => status(&opts, dirs),
        Task::Check { dirs, scan, wait } => check(&opts, dirs, *scan, *wait),
        Task::Who { dirs, pid } => who(&opts, dirs, *pid),
        Task::WhoAll { pid } => who_all(&opts, *pid),
        Task::ClearStale { dirs, dry_run } => clear_stale(&opts, dirs, *dry_run),
        Task::Metrics {
            dirs,
            all,
            textfile,
        } => metrics(&opts, dirs, *all, textfile.as_deref()),
        Task::Completions(shell) => {
            emit(&cli::completions::script(*shell)).map(|()| ExitCode::Success)
        }
        Task::Version { verbose } => {
            emit(&cli::build_info::version_text(*verbose)).map(|()| ExitCode::Success)
        }
    };
    match done {
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
            if opts.json && !opts.quiet {
                let _ = emit(&render::json::error(&message));
            }
            ExitCode::Unknown.into()
        }
    }
}

/// `status`: the full report, after a scan of every process.
fn status(opts: &Options, dirs: &[PathBuf]) -> Result<ExitCode> {
    let mut surveyor = Surveyor::new(opts, dirs)?;
    let reports = surveyor.survey(Scan::Always);
    let code = ExitCode::of_all(reports.iter().map(|r| r.judgement.verdict));
    output(opts, &reports, code, None, render::human::status)?;
    Ok(code)
}

/// `check`: a line a directory, scanning only where the answer needs it,
/// and with `--wait`, until every directory is released.
fn check(
    opts: &Options,
    dirs: &[PathBuf],
    scan_all: bool,
    wait: Option<Duration>,
) -> Result<ExitCode> {
    let mut surveyor = Surveyor::new(opts, dirs)?;
    let scan = if scan_all {
        Scan::Always
    } else {
        Scan::IfNeeded
    };
    let (reports, waited) = match wait {
        Some(limit) => {
            let talk = !opts.quiet && std::io::stderr().is_terminal();
            let (reports, wait) = surveyor.wait_for_release(scan, limit, talk);
            if wait.timed_out && !opts.quiet {
                let _ = writeln!(
                    std::io::stderr(),
                    "ovlock: {}",
                    render::escape::text(&render::still_after(&reports, &wait))
                );
            }
            (reports, Some(wait))
        }
        None => (surveyor.survey(scan), None),
    };
    let code = ExitCode::of_all(reports.iter().map(|r| r.judgement.verdict));
    output(opts, &reports, code, waited.as_ref(), render::check_lines)?;
    Ok(code)
}

/// `who`: each owner in detail, or with `--pid` their PIDs alone.
fn who(opts: &Options, dirs: &[PathBuf], pid_only: bool) -> Result<ExitCode> {
    let mut surveyor = Surveyor::new(opts, dirs)?;
    let reports = surveyor.survey(Scan::Always);
    let code = ExitCode::of_who(who_seen(&reports));
    if pid_only {
        output(opts, &reports, code, None, render::pid_lines)?;
    } else {
        output(opts, &reports, code, None, render::human::who)?;
    }
    Ok(code)
}

/// `clear-stale`: judge, remove what is stale, and report the verdict after.
fn clear_stale(opts: &Options, dirs: &[PathBuf], dry_run: bool) -> Result<ExitCode> {
    let mut surveyor = Surveyor::new(opts, dirs)?;
    let before = surveyor.survey(Scan::IfNeeded);
    let removals: Vec<_> = before
        .iter()
        .map(|report| {
            clear::clear(
                &report.facts,
                &report.judgement,
                &surveyor.policy,
                &mut surveyor.processes,
                dry_run,
            )
        })
        .collect();
    let mut after = surveyor.survey(Scan::IfNeeded);
    for (report, removals) in after.iter_mut().zip(removals) {
        report.removals = Some(removals);
    }
    let code = ExitCode::of_all(after.iter().map(|r| r.judgement.verdict));
    output(opts, &after, code, None, render::human::clear_stale)?;
    Ok(code)
}

/// Prints the reports as JSON or with `text`, unless `--quiet`.
fn output(
    opts: &Options,
    reports: &[DirReport],
    code: ExitCode,
    waited: Option<&report::Wait>,
    text: fn(&[DirReport]) -> String,
) -> Result<()> {
    if opts.quiet {
        return Ok(());
    }
    emit(&if opts.json {
        render::json::render(reports, None, code, waited)
    } else {
        text(reports)
    })
}

/// `who --all`: every OpenViking process on the machine and the data
/// directories its open files belong to, each judged as `who` judges it.
fn who_all(opts: &Options, pid_only: bool) -> Result<ExitCode> {
    let policy = Policy::new(&opts.markers);
    let mut processes = Processes::new();
    let found = inspect::usage::discover(&mut processes, |p| policy.is_openviking(p));
    let mut dirs: Vec<PathBuf> = found.iter().flat_map(|f| f.dirs.iter().cloned()).collect();
    dirs.sort();
    dirs.dedup();
    // Asked below, with the processes that own no directory, in one budget.
    let mut surveyor = Surveyor {
        workspaces: workspace::discovered(dirs),
        policy,
        processes,
        ask: false,
    };
    let mut reports = surveyor.survey(Scan::Always);
    let mut servers = Vec::new();
    if opts.ask {
        let asker = Surveyor::asker();
        surveyor.ask_servers(&mut reports, &asker);
        servers = found
            .iter()
            .map(|f| {
                let pid = f.process.pid;
                reports
                    .iter()
                    .flat_map(|r| &r.servers)
                    .find(|s| s.pid == pid)
                    .cloned()
                    .unwrap_or_else(|| asker.ask(pid, &Default::default(), None))
            })
            .collect();
    }
    let host = inspect::Host::current();
    let hidden = host.hidden_by();
    let code = ExitCode::of_who_all(WhoAllSeen {
        pid_only,
        openviking: !found.is_empty(),
        hidden: hidden.is_some(),
        unreadable: found
            .iter()
            .any(|f| f.unreadable || f.other_mount_namespace),
        owners: who_seen(&reports),
    });
    if !opts.quiet {
        emit(&if opts.json {
            render::json::render(&reports, Some((&found, &servers)), code, None)
        } else if pid_only {
            // The owners only, as `who --pid` prints: not every process that
            // merely looks like OpenViking, for `kill $(ovlock who --all --pid)`.
            render::pid_lines(&reports)
        } else {
            render::human::who_all(&found, &servers, &reports, hidden)
        })?;
    }
    Ok(code)
}

/// `metrics`: one survey as `status` makes, as Prometheus gauges, on stdout
/// or written atomically for node_exporter. Findings are data: the run
/// succeeds whatever they say, and fails only when they cannot be written.
fn metrics(
    opts: &Options,
    dirs: &[PathBuf],
    all: bool,
    textfile: Option<&std::path::Path>,
) -> Result<ExitCode> {
    let started = Instant::now();
    let mut surveyor = Surveyor::new(opts, dirs)?;
    if all {
        // A default ./data that no config names is a guess, not a directory in use.
        if dirs.is_empty() {
            surveyor
                .workspaces
                .retain(|w| !matches!(w.source, workspace::Source::Default { .. }));
        }
        let policy = &surveyor.policy;
        let found = inspect::usage::discover(&mut surveyor.processes, |p| policy.is_openviking(p));
        let mut extra: Vec<PathBuf> = found
            .into_iter()
            .flat_map(|f| f.dirs)
            .filter(|d| !surveyor.workspaces.iter().any(|w| w.path == *d))
            .collect();
        extra.sort();
        extra.dedup();
        surveyor.workspaces.extend(workspace::discovered(extra));
    }
    let reports = surveyor.survey(Scan::Always);
    let run = render::metrics::Run {
        finished: std::time::SystemTime::now(),
        took: started.elapsed(),
    };
    let text = render::metrics::render(&reports, &run);
    match textfile {
        Some(path) => render::textfile::write_atomically(path, &text)?,
        None if opts.quiet => {}
        None => emit(&text)?,
    }
    Ok(ExitCode::Success)
}

/// What `who`'s exit code needs to know of the reports.
fn who_seen(reports: &[DirReport]) -> WhoSeen {
    WhoSeen {
        owner: reports.iter().any(|r| !r.judgement.owners.is_empty()),
        all_released: reports.iter().all(|r| r.judgement.verdict.released()),
    }
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
