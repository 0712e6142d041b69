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
mod timefmt;
mod workspace;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;

use cli::Cli;
use cli::options::{Options, Task};
use exit_code::ExitCode;
use inspect::{Processes, Survey};
use judge::Policy;
use survey::report::{self, DirReport};
use workspace::Workspace;

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
    let code = who_exit_code(&reports);
    if pid_only {
        output(opts, &reports, code, None, pid_lines)?;
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
        ExitCode::RunningServer
    } else if hidden.is_some() {
        ExitCode::Unknown
    } else {
        ExitCode::NoneFound
    };
    if !opts.quiet {
        emit(&if opts.json {
            render::json::render(&reports, Some((&found, &servers)), code, None)
        } else if pid_only {
            // The owners only, as `who --pid` prints: not every process that
            // merely looks like OpenViking, for `kill $(ovlock who --all --pid)`.
            pid_lines(&reports)
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

/// Whether a survey scans every process for the users of each directory.
#[derive(Clone, Copy)]
enum Scan {
    Always,
    /// Only for the directories whose answer needs it (`judge::needs_scan`).
    IfNeeded,
}

/// What every survey of one run shares: the directories, the rules, and
/// the process reader.
struct Surveyor {
    workspaces: Vec<Workspace>,
    policy: Policy,
    processes: Processes,
    /// Ask each OpenViking owner's server how it is.
    ask: bool,
}

impl Surveyor {
    /// The directories named (or configured), with the warnings their
    /// resolution gave said on stderr.
    fn new(opts: &Options, dirs: &[PathBuf]) -> Result<Surveyor> {
        let workspace::Resolved {
            workspaces,
            warnings,
        } = workspace::resolve(dirs, &workspace::Env::from_process(opts.config.as_deref()))?;
        if !opts.quiet {
            for warning in &warnings {
                let _ = writeln!(
                    std::io::stderr(),
                    "ovlock: warning: {}",
                    render::escape::text(warning)
                );
            }
        }
        Ok(Surveyor {
            workspaces,
            policy: Policy::new(&opts.markers),
            processes: Processes::new(),
            ask: opts.ask,
        })
    }

    /// Inspects every directory, scans every process once if needed, and judges.
    fn survey(&mut self, scan: Scan) -> Vec<DirReport> {
        let survey = Survey::now();
        let mut all: Vec<inspect::Facts> = self
            .workspaces
            .iter()
            .map(|w| inspect::inspect(w, &mut self.processes, &survey))
            .collect();
        let policy = &self.policy;
        let scanned = all
            .iter_mut()
            .filter(|f| matches!(scan, Scan::Always) || judge::needs_scan(f, policy));
        inspect::usage::attach(scanned, &mut self.processes);
        let mut reports: Vec<DirReport> = all
            .into_iter()
            .map(|facts| DirReport {
                judgement: judge::judge(&facts, &self.policy),
                facts,
                removals: None,
                servers: Vec::new(),
            })
            .collect();
        if self.ask {
            self.ask_servers(&mut reports, &Surveyor::asker());
        }
        reports
    }

    /// What asks the servers of one survey, within one budget, with the
    /// key of the environment for servers whose ov.conf gives none.
    fn asker() -> inspect::server::Asker {
        let env_key = std::env::var("OPENVIKING_API_KEY")
            .ok()
            .and_then(openviking::ovconf::Secret::new);
        inspect::server::Asker::new(env_key)
    }

    /// Asks the server of every OpenViking owner; what they answer adds
    /// fixes, never a verdict.
    fn ask_servers(&self, reports: &mut [DirReport], asker: &inspect::server::Asker) {
        for report in reports {
            let workspace = &report.facts.workspace;
            let file = workspace.path_locks.described_by.clone();
            report.servers = report
                .judgement
                .owners
                .iter()
                .filter(|o| self.policy.is_openviking(&o.process))
                .map(|o| asker.ask(o.process.pid, &workspace.server, file.clone()))
                .collect();
            // The tasks behind stuck leases, from a server that answered.
            if report
                .judgement
                .path_locks
                .iter()
                .any(|p| p.stuck_for.is_some())
            {
                for server in &mut report.servers {
                    if let Ok(asked) = &server.asked {
                        if matches!(asked.answer, inspect::server::Answer::Answered(_)) {
                            server.tasks = asker.tasks(asked.address, &workspace.server);
                        }
                    }
                }
            }
            judge::server::apply(&report.servers, &mut report.judgement);
        }
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
        ExitCode::RunningServer
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
