//! Manual pages: ovlock(1) and one page for each subcommand, made from the
//! clap definition (so the synopsis and the options are never out of date)
//! and the sections clap does not know: a longer description, EXIT STATUS
//! (from `exit_code::TABLE`), FILES, ENVIRONMENT, EXAMPLES and SEE ALSO,
//! written here.
//!
//! The pages are committed under man/ for packagers (the Debian package
//! installs them). As with the completion scripts, a test fails when they
//! differ from what this source makes; `OVLOCK_UPDATE_MAN=1` makes it write
//! them instead. Only tests compile this module: the binary carries no
//! generator and no hidden subcommand, and clap_mangen is a dev-dependency.

use std::path::Path;

use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Inline, Roff, bold, italic, roman};

use crate::cli::Cli;
use crate::exit_code;

/// The command that rewrites the committed pages.
const REGENERATE: &str = "OVLOCK_UPDATE_MAN=1 cargo test --bin ovlock man::";

/// An exit status and what it means.
type Code = (u8, String);

/// What one page adds to what clap knows.
struct Page {
    /// The subcommand, or None for ovlock(1) itself.
    sub: Option<&'static str>,
    /// DESCRIPTION, one paragraph an entry, in place of clap's one line.
    description: &'static [&'static str],
    /// EXIT STATUS: each code and its meaning, in groups under a heading
    /// where a page describes several subcommands, then paragraphs.
    exit: Vec<(Option<&'static str>, Vec<Code>)>,
    exit_notes: Vec<String>,
    /// Whether it reads ov.conf and the data directories (all but
    /// `completions`), and so has FILES and ENVIRONMENT.
    reads_directories: bool,
    /// FILES beyond the common ones.
    files: &'static [(&'static str, &'static str)],
    /// EXAMPLES: what it does, then the command.
    examples: &'static [(&'static str, &'static str)],
}

/// Every page: ovlock(1), then the subcommands in the order of `--help`.
fn pages() -> Vec<Page> {
    vec![
        Page {
            sub: None,
            description: OVLOCK_DESCRIPTION,
            exit: exit_code::TABLE
                .iter()
                .map(|g| (Some(g.heading), codes(g)))
                .collect(),
            exit_notes: notes(&[
                &exit_code::several_directories(),
                exit_code::AFTER_WAITING,
                exit_code::AFTER_CLEARING,
                JSON_ON_ERROR,
            ]),
            reads_directories: true,
            files: &[],
            examples: &[
                (
                    "The full report on the workspace that ov.conf configures (else ./data):",
                    "ovlock status",
                ),
                (
                    "One line per directory; the exit status says whether a server may start \
                     on every one of them:",
                    "ovlock check /srv/ov/data /srv/ov/old",
                ),
                (
                    "A CI pre-flight: clear what crashed runs left behind, and fail with the \
                     full report if anything live owns the workspace:",
                    "ovlock clear-stale -q ./data || { ovlock status ./data; exit 1; }",
                ),
                (
                    "In a systemd unit, before the server starts on the same config:",
                    "ExecStartPre=/usr/bin/ovlock clear-stale --config /etc/openviking/ov.conf",
                ),
                (
                    "Each directory's verdict, from the JSON document:",
                    r#"ovlock --json check | jq -r '.data_dirs[] | "\(.verdict) \(.path)"'"#,
                ),
            ],
        },
        Page {
            sub: Some("status"),
            description: &[
                "The full report for each directory: where its path came from, each lock file \
                 (present or not, held or not, its PID, content and age), each owner, the other \
                 processes that use the directory, the path locks of the storage tree, the \
                 verdict, the reasons, and numbered fixes that use the real PIDs and paths.",
                "status always scans every process for the users of the directory. The tables \
                 are fitted to the width of the terminal. It creates nothing and changes \
                 nothing, not even the access times of the lock files where the kernel allows \
                 that.",
            ],
            exit: codes_of("status"),
            exit_notes: notes(&[&exit_code::several_directories(), JSON_ON_ERROR]),
            reads_directories: true,
            files: &[],
            examples: &[
                (
                    "The workspace of the config a server is started with:",
                    "ovlock status --config /etc/openviking/ov.conf",
                ),
                (
                    "The same as one JSON document, and the exit code it carries:",
                    "ovlock --json status /srv/ov/data | jq .exit_code",
                ),
            ],
        },
        Page {
            sub: Some("check"),
            description: &[
                "One line for each directory: the verdict, the owner's PID if there is one, \
                 and a short reason. The exit status is the verdict. With -q nothing is \
                 printed on stdout (errors still go to stderr), for scripts and \
                 ExecStartPre= lines.",
                "check reads the lock files, the kernel's locks on the storage files, and the \
                 processes they name. It scans every process only when the answer needs it: \
                 the process that took the flock is gone, a lock on a storage file names no \
                 live process, the pid file is about to be called stale (its owner may run in \
                 a container), or the config says skip_process_lock. --scan scans anyway, as \
                 status does.",
                "--wait SECONDS looks again every 0.2 s until every directory is free or \
                 stale, for rolling restarts: a server that has let go of .openviking.lock \
                 while it shuts down, but still holds its storage, is still held. When the \
                 time runs out, check exits with the verdict then, and says on stderr what \
                 still holds it, unless -q.",
            ],
            exit: codes_of("check"),
            exit_notes: notes(&[
                &exit_code::several_directories(),
                exit_code::AFTER_WAITING,
                JSON_ON_ERROR,
            ]),
            reads_directories: true,
            files: &[],
            examples: &[
                (
                    "Whether a server may start on the directory (0 or 2):",
                    "ovlock check -q /srv/ov/data; echo $?",
                ),
                (
                    "In a systemd unit: wait up to 30 s for an older server to let go, and \
                     go on when the directory is free (0) or stale (2):",
                    "ExecStartPre=/bin/sh -c '/usr/bin/ovlock check -q --wait 30 \
                     --config /etc/openviking/ov.conf; s=$?; [ $s -eq 0 ] || [ $s -eq 2 ]'",
                ),
            ],
        },
        Page {
            sub: Some("who"),
            description: &[
                "Each owner in detail: PID, PPID, user, executable, the full command line, \
                 current directory, start time, memory, the chain of parents that launched \
                 it, the files it holds under the directory, its workers, and the path-lock \
                 leases held in the storage tree. The processes that use the directory \
                 without owning it come after.",
                "--pid prints only the owners' PIDs, one per line, without duplicates. --all \
                 lists every OpenViking process on the machine with the data directories its \
                 open files belong to. A user name that cannot be looked up (no /etc/passwd, \
                 as in a minimal container) is shown as the numeric UID.",
            ],
            exit: codes_of("who"),
            exit_notes: notes(&[
                "The codes follow pgrep(1). With --all --pid, nothing printed is 1 only where \
                 nothing stood in the way of seeing an owner; processes that could not be \
                 read make it 4.",
                JSON_ON_ERROR,
            ]),
            reads_directories: true,
            files: &[],
            examples: &[
                ("Who owns the directory:", "ovlock who /srv/ov/data"),
                (
                    "Every OpenViking process on the machine, and where it keeps its data:",
                    "ovlock who --all",
                ),
            ],
        },
        Page {
            sub: Some("clear-stale"),
            description: &[
                "Removes the .openviking.pid files and path locks that are stale, and says \
                 why each one went. Each file is judged on its own: a leftover pid file of a \
                 dead process is removed even while a .openviking.lock holder owns the \
                 directory (the exit status then says held). A file whose owner is alive, or \
                 cannot be judged, is never removed, and neither is .openviking.lock, which \
                 OpenViking relies on never being unlinked.",
                "A pid file is first renamed aside atomically, and unlinked only if it is \
                 still exactly the file judged and is judged stale again; anything else is \
                 put back. A path lock is unlinked under OpenViking's own OFD write lock, only \
                 if its bytes are those judged and are judged stale again. Concurrent runs \
                 are harmless. -n, --dry-run only says what would go.",
            ],
            exit: codes_of("clear-stale"),
            exit_notes: notes(&[
                exit_code::AFTER_CLEARING,
                &exit_code::several_directories(),
                JSON_ON_ERROR,
            ]),
            reads_directories: true,
            files: &[],
            examples: &[
                (
                    "What would be removed, and why:",
                    "ovlock clear-stale --dry-run /srv/ov/old",
                ),
                (
                    "A container entrypoint: clear what the previous run left, and refuse to \
                     start beside a live server:",
                    "ovlock clear-stale -q || { ovlock status >&2; exit 1; }",
                ),
            ],
        },
        Page {
            sub: Some("metrics"),
            description: &[
                "Prints the directories' state as Prometheus metrics, in the text exposition \
                 format that node_exporter's textfile collector reads. It makes one survey, \
                 as status does. Every family is a gauge; the verdict is ovlock_verdict, with \
                 all five verdicts always present.",
                "--all adds every data directory that who --all finds in use (and, without \
                 DATA_DIR, leaves out the default ./data unless an ov.conf names it). \
                 --textfile FILE writes to FILE instead of stdout, atomically: to a dot file \
                 beside it ending in .tmp, which node_exporter does not read, synced, then \
                 renamed over FILE.",
            ],
            exit: codes_of("metrics"),
            exit_notes: Vec::new(),
            reads_directories: true,
            files: &[(
                "FILE, .FILE.PID.tmp",
                "With --textfile: the file written, and the temporary file beside it that is \
                 renamed over it.",
            )],
            examples: &[
                (
                    "For node_exporter's textfile collector, as Debian's \
                     prometheus-node-exporter sets it up:",
                    "ovlock metrics --all --textfile /var/lib/prometheus/node-exporter/ovlock.prom",
                ),
                (
                    "The verdict alone:",
                    "ovlock metrics | grep '^ovlock_verdict'",
                ),
            ],
        },
        Page {
            sub: Some("completions"),
            description: &[
                "Prints the completion script for bash, zsh, fish, powershell or elvish on \
                 stdout. The Debian package installs those for bash, zsh and fish already; \
                 the scripts are also in completions/ in the source.",
            ],
            exit: codes_of("completions"),
            exit_notes: Vec::new(),
            reads_directories: false,
            files: &[],
            examples: &[
                (
                    "For one user's bash:",
                    "ovlock completions bash > ~/.local/share/bash-completion/completions/ovlock",
                ),
                (
                    "For one user's fish:",
                    "ovlock completions fish > ~/.config/fish/completions/ovlock.fish",
                ),
            ],
        },
    ]
}

const OVLOCK_DESCRIPTION: &[&str] = &[
    "ovlock tells who holds an OpenViking data directory, whether a leftover lock is stale, \
     who else uses the storage, and what to do about it. It can also clear stale locks, and it \
     never touches a live one.",
    "OpenViking uses two lock protocols, and ovlock reads both. Up to 0.4.20 a server writes \
     its PID as text into .openviking.pid, which outlives a crash. From 0.4.21 it holds \
     flock(LOCK_EX) on .openviking.lock, an empty file that stays after the server exits, by \
     design. Inside its storage tree viking/, OpenViking also keeps path locks, one small file \
     for each locked directory or file (.path.ovlock, .exact.ovlock.*). ovlock also reads the \
     kernel's locks on the storage files, and the open files of every process, to find servers \
     that took no lock.",
    "Each directory gets a verdict: free (nothing owns it), held (one live server owns it), \
     stale (nothing owns it, and a stale .openviking.pid or path lock remains), contended (two \
     or more servers own it) or unknown (it cannot be decided). Facts that could not be read \
     outrank free and stale: ovlock never says free on a guess.",
    "Every subcommand but completions takes zero or more DATA_DIR arguments. With none, ovlock \
     finds the directory as OpenViking does: the ov.conf that --config names, else \
     $OPENVIKING_CONFIG_FILE, else ~/.openviking/ov.conf, else /etc/openviking/ov.conf, and \
     its storage.workspace; with no config file, or no such key, ./data. It is then an error \
     (exit status 4) if --config or $OPENVIKING_CONFIG_FILE names a missing file, or if the \
     config is not valid JSON.",
    "With DATA_DIRs given, a config describes only its own workspace: ~/.openviking/ov.conf \
     and /etc/openviking/ov.conf are not read, and the storage.skip_process_lock and path-lock \
     settings of a config named by --config or $OPENVIKING_CONFIG_FILE apply to its workspace \
     alone. A --config must still exist and parse; a $OPENVIKING_CONFIG_FILE that cannot be \
     read is only warned about.",
    "status, check and who create nothing and change nothing. clear-stale removes only stale \
     .openviking.pid files and path locks, never .openviking.lock, and never a live lock.",
    "ovlock is complete on Linux. On macOS and Windows it cannot tell whether .openviking.lock \
     is held, nor which processes use a directory, and any verdict that depends on these is \
     unknown.",
];

const JSON_ON_ERROR: &str = "With --json, an error that stops ovlock still prints a document, \
     with an error field and exit_code 4.";

/// EXIT STATUS of one subcommand's page: its group, with no heading.
fn codes_of(subcommand: &str) -> Vec<(Option<&'static str>, Vec<Code>)> {
    vec![(None, codes(exit_code::group(subcommand)))]
}

/// Each code of a group and its meaning, after the verdict's name where it
/// has one.
fn codes(group: &exit_code::Group) -> Vec<Code> {
    group
        .rows
        .iter()
        .map(|r| {
            let meaning = r.meaning.replace('`', "");
            let text = match r.name {
                Some(name) => format!("{name}: {meaning}"),
                None => meaning,
            };
            (r.code.code(), text)
        })
        .collect()
}

fn notes(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

/// The files every subcommand that reads directories reads.
const FILES: &[(&str, &str)] = &[
    (
        "$OPENVIKING_CONFIG_FILE",
        "The ov.conf to read when --config is not given.",
    ),
    (
        "~/.openviking/ov.conf",
        "The ov.conf to read when neither --config nor $OPENVIKING_CONFIG_FILE names one, \
         and no DATA_DIR is given.",
    ),
    (
        "/etc/openviking/ov.conf",
        "The ov.conf to read when none of the above names one or exists, and no DATA_DIR is \
         given. From whichever is read, ovlock takes storage.workspace, \
         storage.skip_process_lock, and the path-lock settings: \
         storage.agfs.pathlock.lock_expire_secs (or the older \
         storage.transaction.lock_expire), storage.agfs.pathlock.provider and \
         storage.agfs.backend.",
    ),
    (
        "DATA_DIR/.openviking.lock",
        "The lock file of OpenViking 0.4.21 and later: held with flock(2) while a server \
         runs, and left in place when it exits. ovlock reads it and never removes it.",
    ),
    (
        "DATA_DIR/.openviking.pid",
        "The lock file of OpenViking 0.2 to 0.4.20: the owner's PID as text. It outlives a \
         crash; clear-stale removes it when it is stale.",
    ),
    (
        "DATA_DIR/viking/**/.path.ovlock, DATA_DIR/viking/**/.exact.ovlock.*",
        "Path locks: one file for each directory or file a task has locked, holding its \
         owner, its times and its kind. clear-stale removes the stale ones.",
    ),
    (
        "/proc/locks, /proc/PID/",
        "The kernel's lock table, and each process's open files, memory maps and identity \
         (Linux).",
    ),
];

/// The environment of every subcommand that reads directories.
const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "OPENVIKING_CONFIG_FILE",
        "The ov.conf to read when --config is not given, as OpenViking reads it. Empty is the \
         same as unset.",
    ),
    (
        "NO_COLOR",
        "When set and not empty, --color auto does not colour.",
    ),
    (
        "CLICOLOR_FORCE",
        "When set, not empty and not 0, --color auto colours even when stdout is not a \
         terminal (NO_COLOR still wins).",
    ),
    (
        "HOME",
        "Where ~/.openviking/ov.conf is, and what ~ in storage.workspace means. Other \
         variables named in an ov.conf as $VAR or ${VAR} are expanded before it is parsed, \
         as OpenViking does; an unset one stays as written, with a warning.",
    ),
];

/// The tools for the same questions about other files.
const SEE_ALSO_OTHERS: &[(&str, &str)] = &[("lslocks", "8"), ("fuser", "1"), ("flock", "1")];

/// The page's roff source.
fn render(page: &Page) -> String {
    let mut top = Cli::command().disable_help_subcommand(true);
    // Building gives each subcommand its name (ovlock-status) and the
    // global options, as `ovlock status --help` shows them.
    top.build();
    let cmd = match page.sub {
        None => top,
        Some(name) => top
            .find_subcommand(name)
            .unwrap_or_else(|| panic!("no subcommand {name}"))
            .clone(),
    };
    // The exit codes of --help are EXIT STATUS here; the version is in the
    // title, and a page has no VERSION section.
    // clap's usage line (`ovlock who [OPTIONS] [DATA_DIR]...`) reads
    // better than clap_mangen's list of every flag, which also loses the
    // values of options and the repetition of DATA_DIR.
    let usage = cmd.clone().render_usage().to_string();
    let usage = usage.strip_prefix("Usage: ").unwrap_or(&usage).to_string();
    let cmd = cmd
        .override_usage(usage)
        .long_about(page.description.join("\n\n"))
        .after_help(None::<&str>)
        .after_long_help(None::<&str>)
        .version(None::<&str>);
    let mut out = Vec::new();
    Man::new(cmd)
        .source(format!("ovlock {}", crate::cli::build_info::VERSION))
        .manual("User Commands")
        // An empty argument would vanish from the .TH line and shift the
        // source into the date's place; a quoted empty one stays.
        .date("\"\"")
        .render(&mut out)
        .expect("rendering to memory cannot fail");
    let made = String::from_utf8(out).expect("the page is UTF-8");
    // Paths and option names are not to be hyphenated at a line's end
    // (/etc/open-viking), nor spread out to fill it: .nh and .ad l after
    // the title, before any text.
    let (title, body) = made
        .split_once("\n.SH NAME\n")
        .expect("clap_mangen's page has a NAME section");
    format!("{title}\n.nh\n.ad l\n.SH NAME\n{body}{}", sections(page))
}

/// EXIT STATUS, FILES, ENVIRONMENT, EXAMPLES and SEE ALSO.
fn sections(page: &Page) -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    for (heading, codes) in &page.exit {
        if let Some(heading) = heading {
            roff.control("SS", [*heading]);
        }
        for (code, meaning) in codes {
            roff.control("TP", []);
            roff.text([bold(code.to_string())]);
            roff.text([roman(meaning.as_str())]);
        }
    }
    for note in &page.exit_notes {
        roff.control("PP", []);
        roff.text([roman(note.as_str())]);
    }
    if page.reads_directories {
        roff.control("SH", ["FILES"]);
        for (file, what) in FILES.iter().chain(page.files) {
            roff.control("TP", []);
            roff.text([italic(*file)]);
            roff.text([roman(*what)]);
        }
        roff.control("SH", ["ENVIRONMENT"]);
        for (name, what) in ENVIRONMENT {
            roff.control("TP", []);
            roff.text([bold(*name)]);
            roff.text([roman(*what)]);
        }
    }
    roff.control("SH", ["EXAMPLES"]);
    for (what, command) in page.examples {
        roff.control("PP", []);
        roff.text([roman(*what)]);
        roff.control("PP", []);
        roff.control("RS", ["4"]);
        roff.control("nf", []);
        roff.text([bold(*command)]);
        roff.control("fi", []);
        roff.control("RE", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<(String, &str)> = Vec::new();
    if page.sub.is_some() {
        refs.push(("ovlock".into(), "1"));
    }
    for other in pages().iter().filter_map(|p| p.sub) {
        if page.sub != Some(other) {
            refs.push((format!("ovlock-{other}"), "1"));
        }
    }
    refs.extend(SEE_ALSO_OTHERS.iter().map(|(n, s)| (n.to_string(), *s)));
    let mut line: Vec<Inline> = Vec::new();
    for (i, (name, section)) in refs.iter().enumerate() {
        if i > 0 {
            line.push(roman(", "));
        }
        line.push(bold(name.clone()));
        line.push(roman(format!("({section})")));
    }
    roff.text(line);
    // render() starts with the definition of the apostrophe string that
    // clap_mangen's part of the page already made.
    let text = roff.render();
    text.split_once('\n')
        .and_then(|(_, rest)| rest.split_once('\n'))
        .filter(|_| text.starts_with(".ie \\n(.g .ds Aq"))
        .map(|(_, rest)| rest.to_string())
        .expect("roff's output starts with its two-line preamble")
}

/// The file name of the page, in man/.
fn file_name(page: &Page) -> String {
    match page.sub {
        None => "ovlock.1".into(),
        Some(sub) => format!("ovlock-{sub}.1"),
    }
}

mod tests {
    use super::*;

    #[test]
    fn committed_pages_match_the_binary() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
        let update = std::env::var_os("OVLOCK_UPDATE_MAN").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for page in pages() {
            let name = file_name(&page);
            let made = render(&page);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(&name), &made).unwrap();
            } else if std::fs::read_to_string(dir.join(&name)).ok().as_ref() != Some(&made) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "man/{} out of date; regenerate with: {REGENERATE}",
            stale.join(", man/")
        );
        if !update {
            // A page for a subcommand that no longer exists would be installed still.
            let mut committed: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            committed.sort();
            let mut made: Vec<String> = pages().iter().map(file_name).collect();
            made.sort();
            assert_eq!(committed, made, "man/ holds exactly the pages made here");
        }
    }

    /// groff finds nothing to warn about (-ww: every warning) in any page:
    /// no unknown macro or escape, no line it cannot break.
    #[test]
    #[cfg_attr(
        ovlock_test_no_groff,
        ignore = "needs groff to render the pages (probed by build.rs)"
    )]
    fn pages_render_without_warnings() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        for page in pages() {
            let mut groff = Command::new("groff")
                .args(["-man", "-ww", "-z", "-Tutf8"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("groff runs");
            groff
                .stdin
                .take()
                .unwrap()
                .write_all(render(&page).as_bytes())
                .unwrap();
            let out = groff.wait_with_output().unwrap();
            let warnings = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() && warnings.is_empty(),
                "{}: {warnings}",
                file_name(&page)
            );
        }
    }

    /// A subcommand added to the CLI gets a page, or this fails.
    #[test]
    fn every_subcommand_has_a_page() {
        let paged: Vec<&str> = pages().iter().filter_map(|p| p.sub).collect();
        let subs: Vec<String> = Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect();
        assert_eq!(paged, subs);
    }
}
