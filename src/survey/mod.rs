//! One survey of the directories of a run: inspect each, scan the processes
//! where the answer needs it, judge, and ask the servers.

pub mod report;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::cli::options::Options;
use crate::inspect::{self, Processes, Survey};
use crate::judge::{self, Policy};
use crate::workspace::{self, Workspace};
use crate::{openviking, render};
use report::DirReport;

/// Whether a survey scans every process for the users of each directory.
#[derive(Clone, Copy)]
pub enum Scan {
    Always,
    /// Only for the directories whose answer needs it (`judge::needs_scan`).
    IfNeeded,
}

/// What every survey of one run shares: the directories, the rules, and
/// the process reader.
pub struct Surveyor {
    pub workspaces: Vec<Workspace>,
    pub policy: Policy,
    pub processes: Processes,
    /// Ask each OpenViking owner's server how it is.
    pub ask: bool,
}

impl Surveyor {
    /// The directories named (or configured), with the warnings their
    /// resolution gave said on stderr.
    pub fn new(opts: &Options, dirs: &[PathBuf]) -> Result<Surveyor> {
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
    pub fn survey(&mut self, scan: Scan) -> Vec<DirReport> {
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
    pub fn asker() -> inspect::server::Asker {
        let env_key = std::env::var("OPENVIKING_API_KEY")
            .ok()
            .and_then(openviking::ovconf::Secret::new);
        inspect::server::Asker::new(env_key)
    }

    /// Asks the server of every OpenViking owner; what they answer adds
    /// fixes, never a verdict.
    pub fn ask_servers(&self, reports: &mut [DirReport], asker: &inspect::server::Asker) {
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
    pub fn wait_for_release(
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
