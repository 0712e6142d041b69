//! The command line: the clap types here, with no behaviour (the help texts
//! take their exit codes from `exit_code::TABLE`), and beside them what is
//! made from them: the resolved options, completions, man pages, and the
//! build's version information.

pub mod build_info;
pub mod completions;
// Made from the clap definition by a test, and committed under man/.
#[cfg(test)]
mod man;
pub mod options;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::Shell;

use crate::exit_code;

/// `ovlock --help`: the codes of every subcommand, a paragraph a group.
fn all_codes() -> String {
    let mut text = "Exit codes, by subcommand:".to_string();
    for group in exit_code::TABLE {
        text += &format!("\n\n{}: {}.", group.heading, exit_code::summary(group));
        if group.subcommands.len() > 1 {
            text += &format!("\n\n{}", exit_code::several_directories());
        }
    }
    text
}

/// A subcommand's `--help`: its codes, then what else decides them.
fn codes_of(subcommand: &str) -> String {
    let group = exit_code::group(subcommand);
    let mut text = format!("{}: {}.", group.lead, exit_code::summary(group));
    if group.subcommands.len() > 1 {
        text += &format!("\n\n{}", exit_code::several_directories());
    }
    let note = match subcommand {
        "check" => Some(exit_code::AFTER_WAITING),
        "clear-stale" => Some(exit_code::AFTER_CLEARING),
        _ => None,
    };
    if let Some(note) = note {
        text += &format!("\n\n{note}");
    }
    text
}

/// Who holds an OpenViking data directory, is its lock stale, and what to do.
// clap's own --version flag exits as soon as it is parsed, before a
// --verbose after it is seen, so ovlock has its own: the subcommand is then
// optional to clap, and `options` makes its absence a usage error.
#[derive(Debug, Parser)]
#[command(
    name = "ovlock",
    version,
    about,
    after_help = all_codes(),
    disable_version_flag = true,
    arg_required_else_help = true,
    override_usage = "ovlock [OPTIONS] <COMMAND>\n       ovlock --version [--verbose]"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub global: GlobalArgs,

    /// Print the version and exit.
    #[arg(short = 'V', long)]
    pub version: bool,

    /// With --version: also the git commit and the target it was built for.
    #[arg(long, requires = "version")]
    pub verbose: bool,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Print one JSON document (schema_version 1) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// When to colour the output.
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto, global = true, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Print nothing; only the exit code speaks.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// The ov.conf to read: storage.workspace when no DATA_DIR is given, and
    /// storage.skip_process_lock for its workspace, with DATA_DIRs too
    /// [default: $OPENVIKING_CONFIG_FILE, ~/.openviking/ov.conf, /etc/openviking/ov.conf].
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Also accept a process whose name, exe or command line contains SUBSTRING
    /// (case-insensitive) as OpenViking, besides "openviking".
    #[arg(long = "match", global = true, value_name = "SUBSTRING")]
    pub matches: Vec<String>,

    /// Do not ask the owners' OpenViking servers over HTTP on loopback
    /// (status, who and metrics ask them by default; check only with --ask).
    #[arg(long, global = true)]
    pub no_ask: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set (CLICOLOR_FORCE forces it).
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Full report: lock files, owners, verdict, reasons and what to do.
    #[command(after_help = codes_of("status"))]
    Status(DirArgs),

    /// One line per directory; the exit code is the verdict.
    #[command(after_help = codes_of("check"))]
    Check(CheckArgs),

    /// The processes that own the directory.
    #[command(after_help = codes_of("who"))]
    Who(WhoArgs),

    /// Remove stale .openviking.pid files and path locks (never .openviking.lock).
    #[command(after_help = codes_of("clear-stale"))]
    ClearStale(ClearArgs),

    /// Prometheus metrics of the directories, in the text format that
    /// node_exporter's textfile collector reads.
    #[command(after_help = codes_of("metrics"))]
    Metrics(MetricsArgs),

    /// Print a shell completion script.
    #[command(after_help = codes_of("completions"))]
    Completions {
        /// The shell to generate completions for.
        shell: Shell,
    },
}

#[derive(Debug, Args)]
pub struct DirArgs {
    /// OpenViking data directories [default: storage.workspace from ov.conf, else ./data].
    #[arg(value_name = "DATA_DIR")]
    pub dirs: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub target: DirArgs,

    /// Also scan every process for users of the directory, as status does
    /// (otherwise only when the answer needs it).
    #[arg(long)]
    pub scan: bool,

    /// Look again every 0.2 s until every directory is free or stale, for at
    /// most SECONDS. At the deadline it exits with the verdict then, and says
    /// on stderr what still holds it (unless -q); on a terminal it also says
    /// what it waits for.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
    pub wait: Option<Duration>,

    /// Also ask each owner's OpenViking server on loopback whether it
    /// answers, as status does (adds at most about 2 s).
    #[arg(long, conflicts_with = "no_ask")]
    pub ask: bool,
}

#[derive(Debug, Args)]
pub struct WhoArgs {
    #[command(flatten)]
    pub target: DirArgs,

    /// Print only the owners' PIDs, one per line.
    #[arg(long)]
    pub pid: bool,

    /// Every OpenViking process on the machine, with the data directories
    /// its open files belong to.
    #[arg(long, conflicts_with = "dirs")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    #[command(flatten)]
    pub target: DirArgs,

    /// Say what would be removed, and remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub target: DirArgs,

    /// Also every data directory that `who --all` finds in use (without
    /// DATA_DIR, the default ./data is then left out unless ov.conf names it).
    #[arg(long)]
    pub all: bool,

    /// Write to FILE instead of stdout, atomically: a temporary file beside
    /// it (named *.tmp, which node_exporter ignores), synced, then renamed.
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,
}

/// A non-negative number of seconds, fractions allowed.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("expected a number of seconds such as 30 or 0.5, not {text:?}"))
}
