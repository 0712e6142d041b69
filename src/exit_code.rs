//! The process exit codes: one enum, one mapping, and one table of what
//! each code means for each subcommand. `--help` (cli/mod.rs), the man pages'
//! EXIT STATUS (cli/man.rs) and README.md's table are all made from the table,
//! so the codes are written down once.

use crate::judge::Verdict;

/// What the process tells its caller through its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// `--help`, `--version`, `completions`: done.
    Success,
    /// Nothing owns the directory.
    Free,
    /// One live server owns it.
    Held,
    /// Nothing owns it, and a stale `.openviking.pid` or path lock remains.
    Stale,
    /// Two or more live servers own it.
    Contended,
    /// `who`: an owner was found.
    RunningServer,
    /// `who`: it is certain that there is no owner.
    NoneFound,
    /// It cannot be decided, or an error stopped ovlock.
    Unknown,
    /// The command line was wrong.
    Usage,
}

impl ExitCode {
    pub const fn code(self) -> u8 {
        match self {
            ExitCode::Success | ExitCode::Free | ExitCode::RunningServer => 0,
            ExitCode::Held | ExitCode::NoneFound => 1,
            ExitCode::Stale => 2,
            ExitCode::Contended => 3,
            ExitCode::Unknown => 4,
            ExitCode::Usage => 64,
        }
    }

    /// The code of one directory's verdict.
    pub const fn of(verdict: Verdict) -> ExitCode {
        match verdict {
            Verdict::Free => ExitCode::Free,
            Verdict::Held => ExitCode::Held,
            Verdict::Stale => ExitCode::Stale,
            Verdict::Contended => ExitCode::Contended,
            Verdict::Unknown => ExitCode::Unknown,
        }
    }

    /// The one code for several directories (`check`, `status`,
    /// `clear-stale`), which answers "may a server start on every one of
    /// them?". The first that applies wins: unknown (4), then contended (3),
    /// then held (1), then stale (2), then free (0). Held outranks stale
    /// although its number is smaller: a script that starts a server on 0
    /// or 2 must not start one beside a live server. No directories: free.
    pub fn of_all(verdicts: impl IntoIterator<Item = Verdict>) -> ExitCode {
        let verdicts: Vec<Verdict> = verdicts.into_iter().collect();
        let worst = PRECEDENCE
            .into_iter()
            .find(|v| verdicts.contains(v))
            .unwrap_or(Verdict::Free);
        ExitCode::of(worst)
    }

    /// `who`: 0 when an owner was found, 1 when it is certain there is
    /// none, 4 when it could not be told (as pgrep). A held lock whose
    /// holder could not be identified is not "none".
    pub fn of_who(seen: WhoSeen) -> ExitCode {
        if seen.owner {
            ExitCode::RunningServer
        } else if seen.all_released {
            ExitCode::NoneFound
        } else {
            ExitCode::Unknown
        }
    }

    /// `who --all`: 0 when an OpenViking process was found, 1 when there is
    /// certainly none, 4 when a process could not be seen. With `--pid`
    /// what counts is the owners printed, as `who --pid`; none printed is
    /// "none" only where nothing stood in the way of seeing one.
    pub fn of_who_all(seen: WhoAllSeen) -> ExitCode {
        if seen.pid_only {
            match ExitCode::of_who(seen.owners) {
                ExitCode::NoneFound if seen.hidden || seen.unreadable => ExitCode::Unknown,
                code => code,
            }
        } else if seen.openviking {
            ExitCode::RunningServer
        } else if seen.hidden {
            ExitCode::Unknown
        } else {
            ExitCode::NoneFound
        }
    }
}

/// What `who` needs to know of its directories.
#[derive(Debug, Clone, Copy)]
pub struct WhoSeen {
    /// Some directory has an owner.
    pub owner: bool,
    /// Every directory is free or stale.
    pub all_released: bool,
}

/// What `who --all` needs to know of the processes and their directories.
#[derive(Debug, Clone, Copy)]
pub struct WhoAllSeen {
    /// `--pid`.
    pub pid_only: bool,
    /// Some process looks like OpenViking.
    pub openviking: bool,
    /// hidepid or a lack of privilege hides processes.
    pub hidden: bool,
    /// Some OpenViking process could not be read, or lives in another
    /// mount namespace.
    pub unreadable: bool,
    /// The directories those processes use.
    pub owners: WhoSeen,
}

/// The order `ExitCode::of_all` applies: the first that any directory has wins.
const PRECEDENCE: [Verdict; 5] = [
    Verdict::Unknown,
    Verdict::Contended,
    Verdict::Held,
    Verdict::Stale,
    Verdict::Free,
];

/// One code of one group of subcommands.
// `name` and `meaning` are read by the man pages and README.md's table,
// which only tests make.
#[cfg_attr(not(test), allow(dead_code))]
pub struct Row {
    pub code: ExitCode,
    /// The word ovlock prints for it (the verdict), where it has one.
    pub name: Option<&'static str>,
    /// What `--help` says of it, in a few words.
    pub summary: &'static str,
    /// What the man pages and README.md say of it; `code spans` in backticks.
    pub meaning: &'static str,
}

/// Subcommands whose codes mean the same.
pub struct Group {
    pub subcommands: &'static [&'static str],
    /// How the man page of ovlock(1) heads the group.
    pub heading: &'static str,
    /// How a subcommand's `--help` introduces the codes.
    pub lead: &'static str,
    /// Between the codes in `--help`.
    pub separator: &'static str,
    pub rows: &'static [Row],
}

const USAGE: Row = Row {
    code: ExitCode::Usage,
    name: None,
    summary: "usage error",
    meaning: "usage error: the command line was wrong",
};

/// Every exit code of every subcommand. A subcommand is in exactly one group.
pub const TABLE: &[Group] = &[
    Group {
        subcommands: &["status", "check", "clear-stale"],
        heading: "status, check and clear-stale",
        lead: "Exit codes",
        separator: ", ",
        rows: &[
            Row {
                code: ExitCode::Free,
                name: Some("free"),
                summary: "free",
                meaning: "nothing owns the directory: there are no lock files, `.openviking.lock` \
                          is not held, or the directory does not exist yet (OpenViking would \
                          create it)",
            },
            Row {
                code: ExitCode::Held,
                name: Some("held"),
                summary: "held",
                meaning: "one live server owns it: one process and its descendants, through a \
                          lock file or the kernel's locks on its storage, or a lock held by a \
                          process ovlock could not identify",
            },
            Row {
                code: ExitCode::Stale,
                name: Some("stale"),
                summary: "stale",
                meaning: "nothing owns the directory, and a `.openviking.pid` whose owner is \
                          gone, or a stale path lock, remains (`clear-stale` removes them; a \
                          server may start)",
            },
            Row {
                code: ExitCode::Contended,
                name: Some("contended"),
                summary: "contended",
                meaning: "two or more servers own it: an old (pid file) and a new (flock) \
                          OpenViking on one directory, or two OpenViking process trees that use \
                          the storage",
            },
            Row {
                code: ExitCode::Unknown,
                name: Some("unknown"),
                summary: "unknown or error",
                meaning: "it cannot be decided (permission denied, a lock path that is not a \
                          regular file, a pid file being written), or an error stopped ovlock \
                          (such as a broken config, or output that could not be written)",
            },
            USAGE,
        ],
    },
    Group {
        subcommands: &["who"],
        heading: "who (as pgrep)",
        lead: "Exit codes (as pgrep)",
        separator: "; ",
        rows: &[
            Row {
                code: ExitCode::RunningServer,
                name: None,
                summary: "an owner was found",
                meaning: "an owner was found",
            },
            Row {
                code: ExitCode::NoneFound,
                name: None,
                summary: "there is none",
                meaning: "there is none",
            },
            Row {
                code: ExitCode::Unknown,
                name: None,
                summary: "it could not be told: an error, a lock held by a process ovlock could \
                          not identify, or (with --all --pid) processes it could not read",
                meaning: "it could not be told: an error, a lock held by a process ovlock could \
                          not identify (run it as root, with CAP_SYS_PTRACE), or (with `--all \
                          --pid`) processes it could not read",
            },
            USAGE,
        ],
    },
    Group {
        subcommands: &["metrics"],
        heading: "metrics",
        lead: "Exit codes",
        separator: "; ",
        rows: &[
            Row {
                code: ExitCode::Success,
                name: None,
                summary: "the metrics were written, whatever they report (findings are data, \
                          not failures)",
                meaning: "the metrics were written, whatever they report (findings are data, \
                          not failures)",
            },
            Row {
                code: ExitCode::Unknown,
                name: None,
                summary: "they could not be written (the message names the path)",
                meaning: "they could not be written; the message names the path",
            },
            USAGE,
        ],
    },
    Group {
        subcommands: &["completions"],
        heading: "completions, --help and --version",
        lead: "Exit codes",
        separator: "; ",
        rows: &[
            Row {
                code: ExitCode::Success,
                name: None,
                summary: "printed",
                meaning: "the script, the help or the version was printed",
            },
            Row {
                code: ExitCode::Unknown,
                name: None,
                summary: "it could not be written",
                meaning: "it could not be written (a closed pipe is not an error: the output \
                          ends quietly)",
            },
            Row {
                summary: "usage error, such as a shell it does not know",
                meaning: "usage error, such as a shell it does not know",
                ..USAGE
            },
        ],
    },
];

/// The group of a subcommand.
pub fn group(subcommand: &str) -> &'static Group {
    TABLE
        .iter()
        .find(|g| g.subcommands.contains(&subcommand))
        .unwrap_or_else(|| panic!("{subcommand} has no row in exit_code::TABLE"))
}

/// What several directories exit with, after the codes of `status`, `check`
/// and `clear-stale`.
pub fn several_directories() -> String {
    let order: Vec<String> = PRECEDENCE
        .iter()
        .map(|v| ExitCode::of(*v).code().to_string())
        .collect();
    format!(
        "With several directories, the exit status is the first of {} that any of them \
         has: a server may start on every one only on {} or {}. Held outranks stale although \
         its number is smaller, so a script that starts a server on those never starts one \
         beside a live server. Each directory's own code is in the JSON document, as \
         data_dirs[].exit_code.",
        order.join(", "),
        ExitCode::Free.code(),
        ExitCode::Stale.code(),
    )
}

/// check --wait: the code when the waiting ended.
pub const AFTER_WAITING: &str = "With check --wait, the exit status is the verdict when the waiting \
     ended: released (0 or 2), or what held the directories at the deadline.";

/// clear-stale: the code after clearing.
pub const AFTER_CLEARING: &str = "The exit status of clear-stale is the verdict after clearing: \
     0 when every stale lock is gone and nothing else owns the directory.";

/// The codes of a group as `--help` lists them: `0 free, 1 held, ...`.
pub fn summary(group: &Group) -> String {
    let codes: Vec<String> = group
        .rows
        .iter()
        .map(|r| format!("{} {}", r.code.code(), r.summary))
        .collect();
    codes.join(group.separator)
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn each_verdict_has_its_documented_number() {
        let codes = [Free, Held, Stale, Contended, Unknown].map(|v| ExitCode::of(v).code());
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        assert_eq!(ExitCode::Usage.code(), 64);
        assert_eq!(
            [
                ExitCode::RunningServer,
                ExitCode::NoneFound,
                ExitCode::Success
            ]
            .map(ExitCode::code),
            [0, 1, 0]
        );
    }

    #[test]
    fn who_says_none_only_when_it_is_certain() {
        // (owner, all released) → code
        let cases = [
            ((true, true), 0),
            ((true, false), 0),
            ((false, true), 1),
            ((false, false), 4),
        ];
        for ((owner, all_released), want) in cases {
            let seen = WhoSeen {
                owner,
                all_released,
            };
            assert_eq!(ExitCode::of_who(seen).code(), want, "{seen:?}");
        }
    }

    #[test]
    fn who_all_counts_processes_and_with_pid_the_owners_printed() {
        let none = WhoSeen {
            owner: false,
            all_released: true,
        };
        let owner = WhoSeen {
            owner: true,
            all_released: false,
        };
        let undecided = WhoSeen {
            owner: false,
            all_released: false,
        };
        // (pid_only, openviking, hidden, unreadable, owners) → code
        let cases = [
            ((false, true, false, false, none), 0),
            ((false, true, true, true, none), 0),
            ((false, false, false, false, none), 1),
            ((false, false, true, false, none), 4),
            // Unreadable OpenViking processes are still OpenViking processes.
            ((false, false, false, true, none), 1),
            ((true, true, false, false, owner), 0),
            ((true, true, true, true, owner), 0),
            ((true, true, false, false, none), 1),
            ((true, true, true, false, none), 4),
            ((true, true, false, true, none), 4),
            ((true, true, false, false, undecided), 4),
            ((true, false, false, false, none), 1),
        ];
        for ((pid_only, openviking, hidden, unreadable, owners), want) in cases {
            let seen = WhoAllSeen {
                pid_only,
                openviking,
                hidden,
                unreadable,
                owners,
            };
            assert_eq!(ExitCode::of_who_all(seen).code(), want, "{seen:?}");
        }
    }

    #[test]
    fn several_directories_answer_whether_a_server_may_start_on_all() {
        let cases: &[(&[Verdict], u8)] = &[
            (&[], 0),
            (&[Free], 0),
            (&[Free, Stale], 2),
            (&[Stale, Held], 1),
            (&[Held, Stale], 1),
            (&[Held, Contended], 3),
            (&[Contended, Unknown, Free], 4),
            (&[Stale, Free, Stale], 2),
        ];
        for (verdicts, want) in cases {
            assert_eq!(
                ExitCode::of_all(verdicts.iter().copied()).code(),
                *want,
                "{verdicts:?}"
            );
        }
    }

    /// Each verdict in `PRECEDENCE` outranks every one after it, which
    /// `several_directories` says to the reader.
    #[test]
    fn the_documented_order_of_several_directories_is_the_one_applied() {
        for (i, first) in PRECEDENCE.iter().enumerate() {
            for later in &PRECEDENCE[i + 1..] {
                assert_eq!(
                    ExitCode::of_all([*later, *first]),
                    ExitCode::of(*first),
                    "{first:?} outranks {later:?}"
                );
            }
        }
        assert!(several_directories().contains("first of 4, 3, 1, 2, 0 "));
    }

    /// Every subcommand of the CLI has its codes in exactly one group, each
    /// code once, and the usage error among them.
    #[test]
    fn every_subcommand_is_in_one_group() {
        use clap::CommandFactory;
        for sub in crate::cli::Cli::command().get_subcommands() {
            let name = sub.get_name();
            let groups = TABLE.iter().filter(|g| g.subcommands.contains(&name));
            assert_eq!(groups.count(), 1, "{name}");
        }
        for g in TABLE {
            let mut codes: Vec<u8> = g.rows.iter().map(|r| r.code.code()).collect();
            assert!(codes.contains(&ExitCode::Usage.code()), "{}", g.heading);
            codes.dedup();
            assert_eq!(codes.len(), g.rows.len(), "{}", g.heading);
        }
    }

    /// README.md's table of exit codes: a row a code, a column a group.
    fn markdown_table() -> String {
        let mut codes: Vec<u8> = TABLE
            .iter()
            .flat_map(|g| g.rows.iter().map(|r| r.code.code()))
            .collect();
        codes.sort_unstable();
        codes.dedup();
        let headings: Vec<&str> = TABLE.iter().map(|g| g.heading).collect();
        let mut out = format!("| code | {} |\n", headings.join(" | "));
        out += &format!("|---|{}\n", "---|".repeat(TABLE.len()));
        for code in codes {
            let cells: Vec<String> = TABLE
                .iter()
                .map(|g| {
                    g.rows
                        .iter()
                        .find(|r| r.code.code() == code)
                        .map(|r| match r.name {
                            Some(name) => format!("`{name}`: {}", r.meaning),
                            None => r.meaning.to_string(),
                        })
                        .unwrap_or_default()
                        .replace('|', "\\|")
                })
                .collect();
            out += &format!("| {code} | {} |\n", cells.join(" | "));
        }
        out
    }

    /// README.md's section "Verdicts and exit codes" is the table made here
    /// and what several directories exit with. `OVLOCK_UPDATE_README=1`
    /// writes it there instead.
    #[test]
    fn readme_table_is_the_one_made_here() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let heading = "\n## Verdicts and exit codes\n\n";
        let start = readme.find(heading).expect("README.md has the section") + heading.len();
        let len = readme[start..]
            .find("\n## ")
            .map_or(readme.len() - start, |n| n + 1);
        let table = format!("{}\n{}\n\n", markdown_table(), several_directories());
        if std::env::var_os("OVLOCK_UPDATE_README").is_some_and(|v| v == "1") {
            let updated = format!("{}{table}{}", &readme[..start], &readme[start + len..]);
            std::fs::write(&path, updated).unwrap();
        } else {
            assert!(
                readme[start..start + len] == table,
                "README.md's table of exit codes is out of date; regenerate it with: \
                 OVLOCK_UPDATE_README=1 cargo test --bin ovlock exit_code::"
            );
        }
    }
}
