//! The JSON document, schema_version 1. Fields may be added, never renamed
//! or removed; the README documents every one.

use serde::Serialize;

use std::path::PathBuf;
use std::time::Duration;

use super::dir_locks::DirLockState;
use super::names;
use super::words::{self, Worded};
use crate::clear::{Outcome, Removal};
use crate::cli::build_info;
use crate::exit_code::ExitCode;
use crate::inspect::Facts;
use crate::inspect::path_locks::{LockFileRead, Locks, PathLocks};
use crate::inspect::server::{Answer, Health, ServerFacts, Via};
use crate::inspect::usage::RunningServer;
use crate::inspect::{LOCK_NAME, LockFile, PID_NAME, PathAccess};
use crate::judge::{self, JudgedPathLock, Protocol};
use crate::openviking::layout::TreePlace;
use crate::render::timefmt;
use crate::survey::report::{DirReport, Wait};
use crate::workspace::SettingSource;

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
struct Document<'a> {
    schema_version: u32,
    /// The process's exit status.
    exit_code: u8,
    /// `check --wait` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    wait: Option<WaitReport>,
    data_dirs: Vec<DataDir<'a>>,
    /// `who --all` only: every OpenViking process and its data directories.
    #[serde(skip_serializing_if = "Option::is_none")]
    processes: Option<Vec<FoundProcess<'a>>>,
    #[serde(flatten)]
    build: Build,
}

/// Which ovlock made the document: the version, and the git commit and
/// target where the build recorded them (null otherwise). Last in the
/// document, after the fields that schema_version 1 began with.
#[derive(Serialize)]
struct Build {
    ovlock_version: &'static str,
    git_commit: Option<&'static str>,
    target: Option<&'static str>,
}

impl Build {
    fn current() -> Build {
        Build {
            ovlock_version: build_info::VERSION,
            git_commit: build_info::git_commit(),
            target: build_info::target(),
        }
    }
}

#[derive(Serialize)]
struct WaitReport {
    limit_seconds: f64,
    waited_seconds: f64,
    timed_out: bool,
}

#[derive(Serialize)]
struct FoundProcess<'a> {
    pid: u32,
    name: &'a str,
    cmdline: &'a [String],
    user: Option<&'a str>,
    data_dirs: Vec<String>,
    /// Its open files could not be read, so its directories are unknown.
    unreadable: bool,
    /// It runs in another mount namespace (a container), so its directories
    /// are not named.
    other_mount_namespace: bool,
    /// What its server answered, as for an owner; absent when not asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<Server<'a>>,
}

#[derive(Serialize)]
struct DataDir<'a> {
    path: String,
    resolved_path: String,
    source: &'static str,
    config_file: Option<String>,
    exists: bool,
    verdict: &'static str,
    exit_code: u8,
    owners: Vec<Owner<'a>>,
    locks: Vec<Lock>,
    reasons: Vec<String>,
    warnings: Vec<String>,
    fixes: Vec<String>,
    /// The network or FUSE filesystem it is on, or null.
    remote_filesystem: Option<&'static str>,
    /// Whether every process was scanned for this directory.
    scanned: bool,
    other_users: Vec<OtherUser<'a>>,
    /// Processes that could not be inspected; null without a scan.
    uninspected: Option<usize>,
    /// Every path lock of the storage tree, judged.
    path_locks: Vec<PathLock>,
    /// `lock_expire_secs` in use, or null when the config sets a value
    /// OpenViking refuses.
    path_lock_expire_seconds: Option<f64>,
    path_lock_expire_source: SettingFrom,
    path_lock_search: PathLockSearch,
    #[serde(skip_serializing_if = "Option::is_none")]
    removed: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    would_remove: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed: Option<Vec<Failure>>,
    /// Stale files clear-stale left in place, each with why.
    #[serde(skip_serializing_if = "Option::is_none")]
    kept: Option<Vec<Kept>>,
}

#[derive(Serialize)]
struct Kept {
    path: String,
    why: String,
}

#[derive(Serialize)]
struct Owner<'a> {
    pid: u32,
    ppid: Option<u32>,
    name: &'a str,
    exe: Option<String>,
    cmdline: &'a [String],
    user: Option<&'a str>,
    started_at: Option<String>,
    cwd: Option<String>,
    memory_bytes: Option<u64>,
    protocol: &'static str,
    protocols: Vec<&'static str>,
    ns_pid: Option<u32>,
    ancestry: Vec<Link<'a>>,
    files: Vec<File>,
    workers: &'a [u32],
    /// What its OpenViking server answered; absent when it was not asked
    /// (`check` without `--ask`, `--no-ask`, or not OpenViking).
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<Server<'a>>,
}

/// One owner's server, as asked on loopback.
#[derive(Serialize)]
struct Server<'a> {
    /// `answering`, `unhealthy`, `refused`, `silent`, `slow`,
    /// `not_openviking`, `needs_key`, `failed` or `not_asked`.
    state: &'static str,
    /// It answered /health as OpenViking does (a 401 or 403 counts: it is alive).
    answering: bool,
    healthy: Option<bool>,
    version: Option<&'a str>,
    auth_mode: Option<&'a str>,
    /// The errors /api/v1/observer/system named (unhealthy servers only).
    errors: Vec<&'a str>,
    /// Where it was asked (loopback), or null when it was not.
    address: Option<String>,
    /// `socket` (its own listening socket) or `config` (server.port of ov.conf).
    address_source: Option<&'static str>,
    /// The socket's own address (0.0.0.0 or :: for one asked on loopback).
    listening: Option<String>,
    /// The line the text shows.
    reason: String,
}

#[derive(Serialize)]
struct PathLock {
    path: String,
    uri: Option<String>,
    account: Option<String>,
    kind: Option<&'static str>,
    owner: Option<String>,
    refreshed_at: Option<String>,
    created_at: Option<String>,
    modified_at: Option<String>,
    state: &'static str,
    reason: String,
    /// A held lease older than an hour: how old, by its creation time.
    stuck_seconds: Option<f64>,
}

/// Where a setting came from: a key of a config file, or the default (nulls).
#[derive(Serialize)]
struct SettingFrom {
    key: Option<&'static str>,
    config_file: Option<String>,
}

/// Whether and how the storage tree was searched for path locks.
#[derive(Serialize)]
struct PathLockSearch {
    /// `searched`, `no_tree` (no `viking/`), `tree_not_a_directory`,
    /// `not_local` (the tokens are not files here) or `not_determined` (off Linux).
    state: &'static str,
    /// For `not_local`: `provider memory`, `provider cache`, `backend s3` or `backend memory`.
    store: Option<&'static str>,
    /// For `searched`: the whole tree was searched.
    complete: Option<bool>,
    directories: Option<u64>,
}

#[derive(Serialize)]
struct Failure {
    path: String,
    error: String,
}

#[derive(Serialize)]
struct Link<'a> {
    pid: u32,
    name: &'a str,
}

#[derive(Serialize)]
struct OtherUser<'a> {
    pid: u32,
    name: &'a str,
    cmdline: &'a [String],
    why: &'static str,
    files: Vec<File>,
}

#[derive(Serialize)]
struct File {
    path: String,
    #[serde(rename = "use")]
    access: &'static str,
    lock: Option<FileLock>,
}

#[derive(Serialize)]
struct FileLock {
    #[serde(rename = "type")]
    class: &'static str,
    mode: &'static str,
}

#[derive(Serialize)]
struct Lock {
    protocol: &'static str,
    path: String,
    present: bool,
    /// What is at the path: "regular", "symlink", "fifo", ... or null when absent.
    kind: Option<&'static str>,
    held: Option<bool>,
    pid: Option<u32>,
    /// flock only: the PID the kernel recorded when the lock was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    recorded_pid: Option<u32>,
    content: Option<String>,
    size: Option<u64>,
    modified_at: Option<String>,
}

/// The whole document, pretty-printed, with a final newline; `found` comes
/// from `who --all` (with what their servers answered), `wait` from `check --wait`.
pub fn render(
    reports: &[DirReport],
    found: Option<(&[RunningServer], &[ServerFacts])>,
    code: ExitCode,
    wait: Option<&Wait>,
) -> String {
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        exit_code: code.code(),
        wait: wait.map(|w| WaitReport {
            limit_seconds: w.limit.as_secs_f64(),
            waited_seconds: (w.waited.as_secs_f64() * 1000.0).round() / 1000.0,
            timed_out: w.timed_out,
        }),
        data_dirs: reports.iter().map(data_dir).collect(),
        processes: found.map(|(found, servers)| {
            found
                .iter()
                .map(|f| FoundProcess {
                    pid: f.process.pid,
                    name: &f.process.name,
                    cmdline: &f.process.cmdline,
                    user: f.process.user.as_deref(),
                    data_dirs: f
                        .dirs
                        .iter()
                        .map(|d| d.to_string_lossy().into_owned())
                        .collect(),
                    unreadable: f.unreadable,
                    other_mount_namespace: f.other_mount_namespace,
                    server: servers.iter().find(|s| s.pid == f.process.pid).map(server),
                })
                .collect()
        }),
        build: Build::current(),
    };
    let out = serde_json::to_string_pretty(&doc).expect("the document serialises");
    format!("{}\n", escape_controls(&out))
}

/// serde_json escapes only U+0000 to U+001F. DEL, the C1 controls (U+009B
/// starts a terminal sequence as ESC [ does) and the bidirectional overrides
/// are escaped too, so the document is safe to show on a terminal. Outside
/// strings the document is ASCII, so every such character is inside one.
fn escape_controls(json: &str) -> String {
    // Below DEL, serde_json has escaped them already, and the layout's own
    // newlines must stay.
    let unsafe_char = |c: char| c >= '\u{7f}' && crate::render::terminal_chars::is_unsafe(c);
    if !json.contains(unsafe_char) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// The document for a run that failed before it could judge anything.
pub fn error(message: &str) -> String {
    #[derive(Serialize)]
    struct Failed<'a> {
        schema_version: u32,
        error: &'a str,
        exit_code: u8,
        data_dirs: [(); 0],
        #[serde(flatten)]
        build: Build,
    }
    let doc = Failed {
        schema_version: SCHEMA_VERSION,
        error: message,
        exit_code: ExitCode::Unknown.code(),
        data_dirs: [],
        build: Build::current(),
    };
    let out = serde_json::to_string_pretty(&doc).expect("the document serialises");
    format!("{}\n", escape_controls(&out))
}

fn data_dir(report: &DirReport) -> DataDir<'_> {
    let facts = &report.facts;
    let j = &report.judgement;
    let removals = Removals::of(report.removals.as_deref());
    let worded = Worded::of(facts, j);
    DataDir {
        path: facts.workspace.path.to_string_lossy().into_owned(),
        resolved_path: facts.resolved_dir.to_string_lossy().into_owned(),
        source: facts.workspace.source.kind(),
        config_file: facts
            .workspace
            .source
            .config_file()
            .map(|f| f.to_string_lossy().into_owned()),
        exists: !matches!(facts.dir, crate::inspect::DirState::Missing),
        verdict: names::verdict(j.verdict),
        exit_code: ExitCode::of(j.verdict).code(),
        owners: j
            .owners
            .iter()
            .map(|o| Owner {
                server: report
                    .servers
                    .iter()
                    .find(|s| s.pid == o.process.pid)
                    .map(server),
                ..owner(o)
            })
            .collect(),
        locks: vec![flock_entry(report), pid_entry(report)],
        reasons: worded.reasons,
        warnings: worded.warnings,
        fixes: worded.fixes,
        remote_filesystem: facts.remote_fs,
        scanned: matches!(facts.usage, Some(Ok(_))),
        other_users: j.other_users.iter().map(other_user).collect(),
        uninspected: match &facts.usage {
            Some(Ok(usage)) => Some(usage.uninspected.len()),
            _ => None,
        },
        path_locks: j.path_locks.iter().map(|p| path_lock(p, facts)).collect(),
        path_lock_expire_seconds: facts
            .workspace
            .path_locks
            .lock_expire
            .value
            .as_ref()
            .ok()
            .map(Duration::as_secs_f64),
        path_lock_expire_source: setting_from(&facts.workspace.path_locks.lock_expire.source),
        path_lock_search: path_lock_search(&facts.path_locks),
        removed: removals.removed,
        would_remove: removals.would_remove,
        failed: removals.failed,
        kept: removals.kept,
    }
}

fn owner(o: &judge::Owner) -> Owner<'_> {
    let p = &o.process;
    let lossy = |path: &std::path::Path| path.to_string_lossy().into_owned();
    Owner {
        pid: p.pid,
        ppid: p.ppid,
        name: &p.name,
        exe: p.exe.as_deref().map(lossy),
        cmdline: &p.cmdline,
        user: p.user.as_deref(),
        started_at: p.started.and_then(timefmt::rfc3339),
        cwd: p.cwd.as_deref().map(lossy),
        memory_bytes: p.memory,
        protocol: names::protocol(o.protocols.first().copied().unwrap_or(Protocol::Storage)).json,
        protocols: o
            .protocols
            .iter()
            .map(|p| names::protocol(*p).json)
            .collect(),
        ns_pid: o.ns_pid,
        ancestry: o
            .ancestry
            .iter()
            .map(|a| Link {
                pid: a.pid,
                name: &a.name,
            })
            .collect(),
        files: files(&o.files),
        workers: &o.workers,
        server: None,
    }
}

fn server(s: &ServerFacts) -> Server<'_> {
    let asked = s.asked.as_ref().ok();
    let health = asked.and_then(|a| match &a.answer {
        Answer::Answered(health) => Some(health),
        _ => None,
    });
    let state = match asked.map(|a| &a.answer) {
        None => "not_asked",
        Some(Answer::Answered(h)) if h.is_healthy() == Some(false) => "unhealthy",
        Some(Answer::Answered(_)) => "answering",
        Some(Answer::Refused) => "refused",
        Some(Answer::Silent) => "silent",
        Some(Answer::Slow) => "slow",
        Some(Answer::NotOpenViking(_)) => "not_openviking",
        Some(Answer::NeedsKey { .. }) => "needs_key",
        Some(Answer::Failed(_)) => "failed",
    };
    Server {
        state,
        answering: matches!(
            asked.map(|a| &a.answer),
            Some(Answer::Answered(_) | Answer::NeedsKey { .. })
        ),
        healthy: health.and_then(Health::is_healthy),
        version: health.and_then(|h| h.version.as_deref()),
        auth_mode: health.and_then(|h| h.auth_mode.as_deref()),
        errors: match health.and_then(|h| h.errors.as_ref()) {
            Some(Ok(errors)) => errors.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        },
        address: asked.map(|a| a.address.to_string()),
        address_source: asked.map(|a| match a.via {
            Via::Socket { .. } => "socket",
            Via::Config { .. } => "config",
        }),
        listening: asked.and_then(|a| match a.via {
            Via::Socket { listening } => Some(listening.to_string()),
            Via::Config { .. } => None,
        }),
        reason: words::server(s),
    }
}

fn other_user(u: &judge::OtherUser) -> OtherUser<'_> {
    OtherUser {
        pid: u.process.pid,
        name: &u.process.name,
        cmdline: &u.process.cmdline,
        why: u
            .files
            .iter()
            .map(|f| f.access)
            .max()
            .map_or(names::access(crate::inspect::Access::Cwd).json, |a| {
                names::access(a).json
            }),
        files: files(&u.files),
    }
}

fn path_lock(p: &JudgedPathLock, facts: &Facts) -> PathLock {
    let (uri, account) = match &p.file.locks {
        Locks::Place(TreePlace::Account { account, uri }) => (Some(uri.clone()), Some(account)),
        Locks::Missing {
            dir: TreePlace::Account { account, .. },
            ..
        }
        | Locks::Unrecognised {
            dir: TreePlace::Account { account, .. },
        } => (None, Some(account)),
        _ => (None, None),
    };
    let lease = p.lease();
    let meta = match &p.file.read {
        LockFileRead::Read { meta, .. } => Some(meta),
        LockFileRead::Unreadable { meta, .. } => meta.as_ref(),
        LockFileRead::NotRegular(_) => None,
    };
    PathLock {
        path: p.file.path.to_string_lossy().into_owned(),
        uri,
        account: account.cloned(),
        kind: names::path_lock_kind(p),
        owner: lease.map(|l| l.owner.clone()),
        refreshed_at: lease
            .and_then(|l| l.refreshed_at)
            .and_then(timefmt::rfc3339),
        created_at: meta.and_then(|m| m.born).and_then(timefmt::rfc3339),
        modified_at: meta
            .and_then(|m| m.stat.modified)
            .and_then(timefmt::rfc3339),
        state: names::path_lock_state(p.state),
        reason: words::path_lock_reason(p, facts),
        stuck_seconds: p.stuck_for.map(|d| d.as_secs_f64()),
    }
}

fn setting_from(source: &SettingSource) -> SettingFrom {
    match source {
        SettingSource::Default => SettingFrom {
            key: None,
            config_file: None,
        },
        SettingSource::Config { key, file } => SettingFrom {
            key: Some(key),
            config_file: Some(file.to_string_lossy().into_owned()),
        },
    }
}

fn path_lock_search(locks: &PathLocks) -> PathLockSearch {
    let mut search = PathLockSearch {
        state: "no_tree",
        store: None,
        complete: None,
        directories: None,
    };
    match locks {
        PathLocks::NoTree => {}
        PathLocks::TreeNotADirectory(_) => search.state = "tree_not_a_directory",
        PathLocks::NotDetermined => search.state = "not_determined",
        PathLocks::NotLocal(not_local) => {
            search.state = "not_local";
            search.store = Some(names::not_local(*not_local));
        }
        PathLocks::Walked(walk) => {
            search.state = "searched";
            search.complete = Some(
                walk.unreadable.is_empty()
                    && walk.skipped_mounts.is_empty()
                    && walk.caps.is_empty(),
            );
            search.directories = Some(walk.dirs);
        }
    }
    search
}

/// clear-stale's removals, sorted by outcome; all None for other subcommands.
struct Removals {
    removed: Option<Vec<String>>,
    would_remove: Option<Vec<String>>,
    failed: Option<Vec<Failure>>,
    kept: Option<Vec<Kept>>,
}

impl Removals {
    fn of(removals: Option<&[Removal]>) -> Removals {
        let paths = |want: fn(&Outcome) -> bool| {
            removals.map(|all| {
                all.iter()
                    .filter(|r| want(&r.outcome))
                    .map(|r| r.path.to_string_lossy().into_owned())
                    .collect()
            })
        };
        Removals {
            removed: paths(|o| matches!(o, Outcome::Removed)),
            would_remove: paths(|o| matches!(o, Outcome::WouldRemove)),
            failed: removals.map(|all| {
                all.iter()
                    .filter_map(|r| match &r.outcome {
                        Outcome::Failed(error) => Some(Failure {
                            path: r.path.to_string_lossy().into_owned(),
                            error: error.clone(),
                        }),
                        _ => None,
                    })
                    .collect()
            }),
            kept: removals.map(|all| {
                all.iter()
                    .filter_map(|r| match &r.outcome {
                        Outcome::Kept(why) => Some(Kept {
                            path: r.path.to_string_lossy().into_owned(),
                            why: words::kept(why),
                        }),
                        _ => None,
                    })
                    .collect()
            }),
        }
    }
}

fn files(accesses: &[PathAccess]) -> Vec<File> {
    accesses
        .iter()
        .map(|t| File {
            path: t.path.to_string_lossy().into_owned(),
            access: names::access(t.access).json,
            lock: t.locks.first().map(|l| FileLock {
                class: names::lock_class(l.class),
                mode: names::lock_mode(l.exclusive),
            }),
        })
        .collect()
}

/// A lock file's entry: what is at its path, and its state.
fn lock_entry(protocol: Protocol, path: PathBuf, file: &LockFile, state: &DirLockState) -> Lock {
    let mut lock = Lock {
        protocol: names::protocol(protocol).json,
        path: path.to_string_lossy().into_owned(),
        present: false,
        kind: None,
        held: state.held,
        pid: state.pid,
        recorded_pid: None,
        content: None,
        size: None,
        modified_at: None,
    };
    match file {
        LockFile::Absent => {}
        LockFile::NotRegular(kind) => {
            lock.present = true;
            lock.kind = Some(kind.name());
        }
        LockFile::Inaccessible(_) => lock.present = true,
        LockFile::Present { stat, content, .. } => {
            lock.present = true;
            lock.kind = Some("regular");
            lock.content = content
                .as_ref()
                .ok()
                .map(|c| String::from_utf8_lossy(c).into_owned());
            lock.size = Some(stat.size);
            lock.modified_at = stat.modified.and_then(timefmt::rfc3339);
        }
    }
    lock
}

fn flock_entry(report: &DirReport) -> Lock {
    let facts = &report.facts;
    let path = facts.resolved_dir.join(LOCK_NAME);
    let state = super::dir_locks::flock(facts, &report.judgement);
    let mut lock = lock_entry(Protocol::Flock, path, &facts.lock_file, &state);
    lock.recorded_pid = state.recorded_pid;
    lock
}

fn pid_entry(report: &DirReport) -> Lock {
    let facts = &report.facts;
    let path = facts.resolved_dir.join(PID_NAME);
    let state = super::dir_locks::pid_file(facts, &report.judgement);
    lock_entry(Protocol::PidFile, path, &facts.pid_file, &state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_document_names_the_build_that_failed() {
        let doc: serde_json::Value = serde_json::from_str(&error("no such file")).unwrap();
        assert_eq!(doc["schema_version"], 1);
        assert_eq!(doc["error"], "no such file");
        assert_eq!(doc["data_dirs"], serde_json::json!([]));
        assert_eq!(doc["ovlock_version"], build_info::VERSION);
        assert_eq!(doc["target"].as_str(), build_info::target());
        assert_eq!(doc["git_commit"].as_str(), build_info::git_commit());
    }

    #[test]
    fn c1_controls_del_and_bidi_overrides_become_json_escapes() {
        let doc = serde_json::to_string(&"a\u{9b}2J\u{7f}\u{202e}z\u{1b}").unwrap();
        let escaped = escape_controls(&doc);
        assert_eq!(escaped, r#""a\u009b2J\u007f\u202ez\u001b""#);
        let back: String = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, "a\u{9b}2J\u{7f}\u{202e}z\u{1b}");
    }
}
