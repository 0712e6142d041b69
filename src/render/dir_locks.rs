//! The state of each lock file, derived once from the facts and the
//! judgement for the text and the JSON alike, so that the two can never
//! disagree: whether it is held, by which PID, and the words for it.

use super::words;
use crate::inspect::{DirState, Facts, FlockState, LockFile};
use crate::judge::{Judgement, PidFileVerdict};
use crate::openviking::layout;

/// One lock file's state.
pub struct DirLockState {
    /// Held, not held, or None when it cannot be told.
    pub held: Option<bool>,
    /// The live holder (flock) or the PID the file holds (pid file).
    pub pid: Option<u32>,
    /// flock only: the PID the kernel recorded when the lock was taken.
    pub recorded_pid: Option<u32>,
    /// The State column.
    pub words: String,
    /// The PID column.
    pub pid_words: String,
}

/// `.openviking.lock`.
pub fn flock(facts: &Facts, j: &Judgement) -> DirLockState {
    let mut state = DirLockState {
        held: None,
        pid: None,
        recorded_pid: None,
        words: "cannot tell".to_string(),
        pid_words: String::new(),
    };
    match (&facts.lock_file, &facts.flock) {
        (
            LockFile::Present { .. },
            Some(FlockState::Held {
                holders,
                recorded_pid,
                recorded_exited,
                ..
            }),
        ) => {
            state.held = Some(true);
            state.pid = holders.first().copied();
            state.recorded_pid = *recorded_pid;
            state.words = "held".to_string();
            let holders: Vec<String> = holders.iter().map(u32::to_string).collect();
            state.pid_words = match (holders.is_empty(), recorded_pid) {
                (false, _) => holders.join(", "),
                // A live PID is never shown as exited, whatever else is unknown.
                (true, Some(pid)) if *recorded_exited => format!("{pid} (exited)"),
                (true, Some(pid)) => format!("{pid} (no longer holds it)"),
                (true, None) => "?".to_string(),
            };
        }
        (LockFile::Present { .. }, Some(FlockState::Unheld)) => {
            state.held = Some(false);
            state.words = "not held".to_string();
        }
        (
            LockFile::Present { .. },
            Some(FlockState::Unidentified {
                recorded_pid,
                certain,
                ..
            }),
        ) => {
            state.recorded_pid = *recorded_pid;
            if *certain {
                state.held = Some(true);
                state.words = "held (holder not yet identified)".to_string();
            }
        }
        (LockFile::Present { .. }, Some(FlockState::Unknown(why))) => {
            state.words = format!("cannot tell: {why}");
        }
        // The scan read every process it could, and none holds it.
        (LockFile::Present { .. }, Some(FlockState::Unsettled)) if scanned(facts) => {
            state.held = Some(false);
            state.words = "not held by any process that could be read".to_string();
        }
        (LockFile::Present { .. }, Some(FlockState::Unsettled)) => {
            state.words = "cannot tell: the kernel's lock table kept changing".to_string();
        }
        (LockFile::Present { .. }, None) => {}
        (LockFile::Absent, _) => {
            // Deleted under a server that still holds its flock: held, though
            // nothing is at the path.
            let deleted = layout::deleted_lock_file(&facts.resolved_dir);
            let holders: Vec<u32> = j
                .owners
                .iter()
                .filter(|o| o.files.iter().any(|t| t.path == deleted))
                .map(|o| o.process.pid)
                .collect();
            if holders.is_empty() {
                state.held = inspected(&facts.dir).then_some(false);
                state.words = presence(&facts.lock_file, &facts.dir);
            } else {
                let pids: Vec<String> = holders.iter().map(u32::to_string).collect();
                state.held = Some(true);
                state.pid = holders.first().copied();
                state.words = format!(
                    "deleted, but PID {} still holds the flock on it",
                    pids.join(", ")
                );
            }
        }
        (file, _) => state.words = presence(file, &facts.dir),
    }
    state
}

/// `.openviking.pid`.
pub fn pid_file(facts: &Facts, j: &Judgement) -> DirLockState {
    let words = match &j.pid_file {
        PidFileVerdict::Absent => presence(&facts.pid_file, &facts.dir),
        PidFileVerdict::Owned { ns_pid: None, .. } => "owner alive".to_string(),
        PidFileVerdict::Owned {
            pid,
            ns_pid: Some(_),
        } => format!("owner alive in another PID namespace (PID {pid} here)"),
        PidFileVerdict::Stale(why) => format!("stale: {}", words::staleness(why)),
        PidFileVerdict::BeingWritten => "being written".to_string(),
        PidFileVerdict::Unknown(why) => match &facts.pid_file {
            LockFile::Present { .. } => {
                format!("cannot tell: {}", words::pid_doubt(why, &facts.host))
            }
            file => presence(file, &facts.dir),
        },
    };
    let held = match &j.pid_file {
        PidFileVerdict::Absent if !inspected(&facts.dir) => None,
        PidFileVerdict::Absent | PidFileVerdict::Stale(_) => Some(false),
        PidFileVerdict::Owned { .. } => Some(true),
        PidFileVerdict::BeingWritten | PidFileVerdict::Unknown(_) => None,
    };
    let pid = facts.pid_file.pid();
    DirLockState {
        held,
        pid,
        recorded_pid: None,
        words,
        pid_words: pid.map(|p| p.to_string()).unwrap_or_default(),
    }
}

/// Whether the directory could be looked into at all.
fn inspected(dir: &DirState) -> bool {
    matches!(dir, DirState::Present { .. } | DirState::Missing)
}

/// What is at a lock file's path, when that is all there is to say.
fn presence(file: &LockFile, dir: &DirState) -> String {
    match file {
        LockFile::Absent if !inspected(dir) => "not inspected".to_string(),
        LockFile::Absent => "absent".to_string(),
        LockFile::NotRegular(kind) => format!("not a file: {}", kind.describe()),
        LockFile::Inaccessible(err) => format!("cannot inspect: {err}"),
        LockFile::Present { .. } => "present".to_string(),
    }
}

/// Whether a scan of every process ran and finished.
fn scanned(facts: &Facts) -> bool {
    matches!(facts.usage, Some(Ok(_)))
}
