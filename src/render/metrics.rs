//! `ovlock metrics`: the Prometheus text exposition format (0.0.4), one
//! family at a time with its HELP and TYPE, for node_exporter's textfile
//! collector. Every family is a gauge: each run states the present.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{escape, names};
use crate::inspect::path_locks::LockFileRead;
use crate::inspect::server::{Answer, Asked};
use crate::judge::{PathLockState, PidFileVerdict, Verdict};
use crate::survey::report::DirReport;

const VERDICTS: [Verdict; 5] = [
    Verdict::Free,
    Verdict::Held,
    Verdict::Stale,
    Verdict::Contended,
    Verdict::Unknown,
];
const PATH_LOCK_STATES: [PathLockState; 3] = [
    PathLockState::Held,
    PathLockState::Stale,
    PathLockState::Unknown,
];

/// What one run measured of itself.
pub struct Run {
    pub finished: SystemTime,
    pub took: Duration,
}

/// The whole exposition for `reports`.
pub fn render(reports: &[DirReport], run: &Run) -> String {
    let mut out = Exposition::default();
    out.family(
        "ovlock_verdict",
        "The verdict on the data directory: 1 for the current one, 0 for the others.",
    );
    for r in reports {
        for verdict in VERDICTS {
            out.sample(
                &[("data_dir", &dir(r)), ("verdict", names::verdict(verdict))],
                f64::from(u8::from(r.judgement.verdict == verdict)),
            );
        }
    }
    out.per_dir(
        reports,
        "ovlock_owners",
        "Live processes that own the data directory (more than one: contended).",
        |r| r.judgement.owners.len() as f64,
    );
    out.per_dir(
        reports,
        "ovlock_stale_locks",
        "Stale lock files of the data directory: its pid file and its path locks.",
        |r| {
            let pid_file = matches!(r.judgement.pid_file, PidFileVerdict::Stale(_));
            (usize::from(pid_file) + path_locks_in(r, PathLockState::Stale)) as f64
        },
    );
    out.family(
        "ovlock_path_locks",
        "Path locks (.path.ovlock, .exact.ovlock.*) in the storage tree, by state.",
    );
    for r in reports {
        for state in PATH_LOCK_STATES {
            out.sample(
                &[
                    ("data_dir", &dir(r)),
                    ("state", names::path_lock_state(state)),
                ],
                path_locks_in(r, state) as f64,
            );
        }
    }
    out.per_dir(
        reports,
        "ovlock_oldest_path_lock_seconds",
        "Age of the oldest held path-lock lease, from its file's creation time (0: none); \
         a stuck task keeps one for hours.",
        oldest_lease,
    );
    out.per_dir(
        reports,
        "ovlock_storage_users",
        "Processes that use the data directory without owning it.",
        |r| r.judgement.other_users.len() as f64,
    );
    out.per_dir(
        reports,
        "ovlock_path_lock_expire_seconds",
        "The lock_expire_secs in use for path locks (NaN: the config sets a value \
         OpenViking refuses).",
        |r| {
            r.facts
                .workspace
                .path_locks
                .lock_expire
                .value
                .as_ref()
                .map_or(f64::NAN, Duration::as_secs_f64)
        },
    );
    servers(&mut out, reports);
    out.family(
        "ovlock_uninspected_processes",
        "Processes whose files could not be read, so could not be ruled out (run with \
         CAP_SYS_PTRACE).",
    );
    out.sample(&[], uninspected(reports) as f64);
    out.family("ovlock_data_dirs", "Data directories this run reported on.");
    out.sample(&[], reports.len() as f64);
    out.family(
        "ovlock_last_run_timestamp_seconds",
        "When this run finished, in seconds since the epoch.",
    );
    out.sample(
        &[],
        run.finished
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64()),
    );
    out.family(
        "ovlock_run_duration_seconds",
        "How long this run took to survey and judge.",
    );
    out.sample(&[], run.took.as_secs_f64());
    out.family("ovlock_build_info", "The ovlock that wrote these metrics.");
    out.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    out.text
}

/// The families of the owners' servers, one sample for each server asked
/// (none for one that was not: no listener, another network namespace).
fn servers(out: &mut Exposition, reports: &[DirReport]) {
    let asked: Vec<(&DirReport, String, &Asked)> = reports
        .iter()
        .flat_map(|r| {
            r.servers
                .iter()
                .filter_map(move |s| Some((r, s.pid.to_string(), s.asked.as_ref().ok()?)))
        })
        .collect();
    out.family(
        "ovlock_server_answering",
        "Whether the owner's OpenViking server answered on loopback within the deadline \
         (1; a 401 or 403 counts) or not (0: hung, overloaded, refused or not OpenViking).",
    );
    for (r, pid, a) in &asked {
        let answering = matches!(a.answer, Answer::Answered(_) | Answer::NeedsKey { .. });
        out.sample(
            &[("data_dir", &dir(r)), ("pid", pid)],
            f64::from(u8::from(answering)),
        );
    }
    out.family(
        "ovlock_server_healthy",
        "Whether the owner's OpenViking server says it is healthy (/health and \
         /api/v1/observer/system), where it said.",
    );
    for (r, pid, a) in &asked {
        if let Answer::Answered(health) = &a.answer {
            if let Some(healthy) = health.is_healthy() {
                out.sample(
                    &[("data_dir", &dir(r)), ("pid", pid)],
                    f64::from(u8::from(healthy)),
                );
            }
        }
    }
    out.family(
        "ovlock_server_info",
        "The owner's OpenViking server that answered: its address, version and auth_mode.",
    );
    for (r, pid, a) in &asked {
        if let Answer::Answered(health) = &a.answer {
            out.sample(
                &[
                    ("data_dir", &dir(r)),
                    ("pid", pid),
                    ("address", &a.address.to_string()),
                    // From the network: no control character reaches a label.
                    (
                        "version",
                        &escape::text(health.version.as_deref().unwrap_or("")),
                    ),
                    (
                        "auth_mode",
                        &escape::text(health.auth_mode.as_deref().unwrap_or("")),
                    ),
                ],
                1.0,
            );
        }
    }
}

#[derive(Default)]
struct Exposition {
    text: String,
    /// The family being written.
    name: &'static str,
}

impl Exposition {
    fn family(&mut self, name: &'static str, help: &str) {
        self.name = name;
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} gauge");
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(self.name);
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
                .collect();
            let _ = write!(self.text, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.text, " {}", number(value));
    }

    /// A family with one sample for each directory.
    fn per_dir(
        &mut self,
        reports: &[DirReport],
        name: &'static str,
        help: &str,
        value: impl Fn(&DirReport) -> f64,
    ) {
        self.family(name, help);
        for r in reports {
            self.sample(&[("data_dir", &dir(r))], value(r));
        }
    }
}

/// The `data_dir` label: the directory as given or configured. A label is
/// UTF-8, so a byte that is not is written `\xNN`: two directories whose
/// names differ only there keep distinct series.
fn dir(r: &DirReport) -> String {
    let bytes = r.facts.workspace.path.as_os_str().as_encoded_bytes();
    let mut label = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        label.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(label, "\\x{byte:02x}");
        }
    }
    label
}

fn path_locks_in(r: &DirReport, state: PathLockState) -> usize {
    r.judgement
        .path_locks
        .iter()
        .filter(|p| p.state == state)
        .count()
}

/// The age of the oldest held lease by its creation time (never older than
/// its owner), 0 when none is held or none has a recorded creation time.
fn oldest_lease(r: &DirReport) -> f64 {
    r.judgement
        .path_locks
        .iter()
        .filter(|p| p.state == PathLockState::Held)
        .filter_map(|p| match &p.file.read {
            LockFileRead::Read { meta, .. } => crate::judge::held_for(meta.born?, &p.context),
            _ => None,
        })
        .max()
        .map_or(0.0, |age| age.as_secs_f64())
}

/// The processes the run's scan could not inspect (it is shared by every
/// directory, so the largest count of any of them).
fn uninspected(reports: &[DirReport]) -> usize {
    reports
        .iter()
        .filter_map(|r| match &r.facts.usage {
            Some(Ok(usage)) => Some(usage.uninspected.len()),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// A sample value as the format spells it.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{value}")
    }
}

/// A label value: backslash, double quote and newline escaped, as the
/// format requires; a directory name may hold anything.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// HELP text: backslash and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::tests::{base, flock_held, server};
    use crate::judge::{Policy, judge};

    fn report(mut facts: crate::inspect::Facts, path: &str) -> DirReport {
        facts.workspace.path = path.into();
        DirReport {
            judgement: judge(&facts, &Policy::new(&[])),
            facts,
            removals: None,
            servers: Vec::new(),
        }
    }

    #[test]
    fn every_verdict_is_present_and_labels_are_escaped() {
        let reports = [
            report(flock_held(base(), &[server(50)], 50), "/srv/a\"b\\c\nd"),
            report(base(), "/srv/free"),
        ];
        let run = Run {
            finished: UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            took: Duration::from_millis(12),
        };
        let text = render(&reports, &run);
        assert!(
            text.contains("ovlock_verdict{data_dir=\"/srv/a\\\"b\\\\c\\nd\",verdict=\"held\"} 1\n"),
            "{text}"
        );
        assert_eq!(text.matches("ovlock_verdict{").count(), 10, "{text}");
        assert!(
            text.contains("ovlock_verdict{data_dir=\"/srv/free\",verdict=\"free\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("ovlock_owners{data_dir=\"/srv/free\"} 0\n"));
        assert!(text.contains("ovlock_last_run_timestamp_seconds 1800000000\n"));
        assert!(text.contains("ovlock_run_duration_seconds 0.012\n"));
        // Every family has its HELP and TYPE before its samples.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        }
    }

    #[test]
    fn values_are_spelled_as_the_format_wants() {
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.5), "0.5");
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }
}
