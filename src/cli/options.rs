//! What the command line asks for, resolved once from the clap types in
//! `cli`: everything past `main` reads this, and no clap type reaches the
//! work (as ripgrep turns its low-level arguments into high-level ones).

use std::path::PathBuf;
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::{self, Cli, Command};
use crate::render::Color;

/// One run's options.
pub struct Options {
    pub task: Task,
    /// One JSON document instead of text.
    pub json: bool,
    /// Nothing on stdout; the exit code speaks.
    pub quiet: bool,
    pub color: Color,
    /// `--config`: the ov.conf to read.
    pub config: Option<PathBuf>,
    /// `--match`: more substrings that mark a process as OpenViking.
    pub markers: Vec<String>,
    /// Ask the owners' servers how they are: by default for status, who
    /// and metrics, for check only with `--ask`; never with `--no-ask`.
    pub ask: bool,
}

/// The subcommand, with what it was given.
pub enum Task {
    Status {
        dirs: Vec<PathBuf>,
    },
    Check {
        dirs: Vec<PathBuf>,
        /// Scan every process even where the answer does not need it.
        scan: bool,
        /// `--wait`: how long to wait for every directory to be released.
        wait: Option<Duration>,
    },
    Who {
        dirs: Vec<PathBuf>,
        /// Only the owners' PIDs.
        pid: bool,
    },
    /// `who --all`.
    WhoAll {
        pid: bool,
    },
    ClearStale {
        dirs: Vec<PathBuf>,
        dry_run: bool,
    },
    Metrics {
        dirs: Vec<PathBuf>,
        /// Also every data directory in use by an OpenViking process.
        all: bool,
        /// Where to write them instead of stdout.
        textfile: Option<PathBuf>,
    },
    Completions(Shell),
    /// `--version`, and with `--verbose` the commit and target too.
    Version {
        verbose: bool,
    },
}

impl TryFrom<Cli> for Options {
    type Error = clap::Error;

    /// Fails only for options without a subcommand (`ovlock --json`):
    /// clap cannot require one, since `--version` stands alone.
    fn try_from(cli: Cli) -> Result<Options, clap::Error> {
        let ask = !cli.global.no_ask
            && match &cli.command {
                Some(Command::Check(args)) => args.ask,
                Some(Command::Status(_) | Command::Who(_) | Command::Metrics(_)) => true,
                _ => false,
            };
        let task = match cli.command {
            // As with clap's own flag, --version wins over a subcommand beside it.
            _ if cli.version => Task::Version {
                verbose: cli.verbose,
            },
            None => {
                return Err(Cli::command().error(
                    clap::error::ErrorKind::MissingSubcommand,
                    "a subcommand is required: status, check, who, clear-stale, metrics or completions",
                ));
            }
            Some(Command::Status(args)) => Task::Status { dirs: args.dirs },
            Some(Command::Check(args)) => Task::Check {
                dirs: args.target.dirs,
                scan: args.scan,
                wait: args.wait,
            },
            Some(Command::Who(args)) if args.all => Task::WhoAll { pid: args.pid },
            Some(Command::Who(args)) => Task::Who {
                dirs: args.target.dirs,
                pid: args.pid,
            },
            Some(Command::ClearStale(args)) => Task::ClearStale {
                dirs: args.target.dirs,
                dry_run: args.dry_run,
            },
            Some(Command::Metrics(args)) => Task::Metrics {
                dirs: args.target.dirs,
                all: args.all,
                textfile: args.textfile,
            },
            Some(Command::Completions { shell }) => Task::Completions(shell),
        };
        let global = cli.global;
        Ok(Options {
            task,
            json: global.json,
            quiet: global.quiet,
            color: match global.color {
                cli::ColorChoice::Auto => Color::Auto,
                cli::ColorChoice::Always => Color::Always,
                cli::ColorChoice::Never => Color::Never,
            },
            config: global.config,
            markers: global.matches,
            ask,
        })
    }
}
