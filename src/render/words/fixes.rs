//! The words of each fix: one command, with what to know before running
//! it, and how to stop or restart a process through what manages it.

use super::{leftovers, process, remedy};
use crate::inspect::process::{LaunchdJob, Service};
use crate::inspect::{Facts, LOCK_NAME, PID_NAME, Privilege};
use crate::judge::{Fix, StopCase};
use crate::render::shell;

/// One command (with what to know first) for one fix, for the directory of `facts`.
pub fn fix(f: &Fix, facts: &Facts) -> String {
    let dir = shell::quote_path(&facts.workspace.path);
    match f {
        Fix::WaitForRelease => format!(
            "If it is shutting down, wait until it has let go: ovlock check --wait 30 {dir}"
        ),
        Fix::SeeEveryServer => {
            "See every OpenViking server and the data directory it uses: ovlock who --all"
                .to_string()
        }
        Fix::KeepOneServer => {
            "Keep one OpenViking server on this directory and stop the others".to_string()
        }
        Fix::Stop {
            process: p,
            launchd,
            case: StopCase::NotOpenViking,
            ..
        } => format!(
            "{} does not look like OpenViking: see what it is (ovlock who {dir}) before you \
             stop it: {}",
            process(p),
            stop_command(p.pid, None, launchd.as_deref())
        ),
        Fix::Stop {
            process: p,
            service,
            launchd,
            case: StopCase::BlindToFlock,
        } => format!(
            "{} is an OpenViking 0.4.20 or older (it uses {PID_NAME}) and cannot see the lock of \
             0.4.21 and later: stop it: {}",
            process(p),
            stop_command(p.pid, service.as_ref(), launchd.as_deref())
        ),
        Fix::Stop {
            process: p,
            service,
            launchd,
            case: StopCase::Plain,
        } => format!(
            "Stop {} if it should not run: {}",
            process(p),
            stop_command(p.pid, service.as_ref(), launchd.as_deref())
        ),
        Fix::UseHttp => "Connect every client to one OpenViking server over HTTP instead of \
                         starting another (MCP hosts that start one stdio server per session \
                         collide here)"
            .to_string(),
        Fix::OwnWorkspace => format!(
            "Give each OpenViking instance its own storage.workspace in ov.conf (this one is {dir})"
        ),
        Fix::FindHolder(None) => format!("Look for the holder by hand: fuser -v {dir}/{LOCK_NAME}"),
        Fix::FindHolder(Some(Privilege::Root)) => {
            format!("Run as root to identify the holder: sudo ovlock who {dir}")
        }
        Fix::FindHolder(Some(Privilege::SysPtrace)) => format!(
            "Run ovlock with CAP_SYS_PTRACE to identify the holder (this run lacks it): ovlock \
             who {dir}"
        ),
        Fix::ClearStale {
            pid_file,
            path_locks,
        } => format!(
            "Remove the {}: ovlock clear-stale {dir}",
            leftovers("stale", *pid_file, *path_locks)
        ),
        Fix::ClearLeftovers {
            pid_file,
            path_locks,
        } => format!(
            "Remove the {}: ovlock clear-stale {dir}",
            leftovers("leftover", *pid_file, *path_locks)
        ),
        Fix::EndStuckTask {
            process: Some(p),
            service,
            launchd,
        } => format!(
            "Cancel the stuck task, or restart {}: {}",
            process(p),
            restart_command(p.pid, service.as_ref(), launchd.as_deref())
        ),
        Fix::EndStuckTask { process: None, .. } => {
            "Cancel the stuck task, or restart the server that runs it".to_string()
        }
        Fix::LookAgain => format!("Look again in a moment: sleep 2; ovlock status {dir}"),
        Fix::LookWith(Privilege::Root) => {
            format!("Run as root to see every process and file: sudo ovlock status {dir}")
        }
        Fix::LookWith(Privilege::SysPtrace) => format!(
            "Run ovlock with CAP_SYS_PTRACE to see every process and file (this run lacks it): \
             ovlock status {dir}"
        ),
        Fix::LookByHand => format!("Look at the directory by hand: ls -la {dir}"),
        Fix::MakeSure => format!(
            "To be sure no process uses it without a lock, {}: ovlock status {dir}",
            remedy(&facts.host)
        ),
        Fix::Restart {
            process: p,
            service,
            launchd,
        } => format!(
            "Restart {} so that it locks {LOCK_NAME} at its path again; until then a new server \
             cannot see it: {}",
            process(p),
            restart_command(p.pid, service.as_ref(), launchd.as_deref())
        ),
        Fix::RestartSilentServer {
            process: p,
            service,
            address,
        } => {
            let (log, restart) = match service {
                Some(service) => (
                    format!(
                        "journalctl {}-u {} -n 50",
                        if service.user { "--user " } else { "" },
                        shell::quote(&service.name)
                    ),
                    systemctl("restart", service),
                ),
                None => (
                    "its log".to_string(),
                    format!("{}, then start it again", kill_command(p.pid)),
                ),
            };
            format!(
                "{} takes connections at {address} but does not answer: look at {log} and at \
                 its load (top -p {}); if it stays so, restart it: {restart} (do not delete \
                 {LOCK_NAME}: it still holds the directory)",
                process(p),
                p.pid
            )
        }
        Fix::CancelTask { address, task_id } => format!(
            "Cancel task {} if it is the one stuck, with a user's or an admin's API key (0.5.2 \
             refuses ROOT: \"ROOT may not cancel tasks\", and in dev mode every request is \
             ROOT, so there restart the server instead); ovlock removes nothing on this \
             evidence: curl -X POST -H \"X-API-Key: $USER_API_KEY\" \
             http://{address}/api/v1/tasks/{}/cancel",
            task_id,
            shell::quote(task_id)
        ),
        Fix::GiveApiKey { key_sent: false } => {
            "Its server wants an API key: give ovlock the ov.conf \
             that has server.root_api_key (--config FILE), or set OPENVIKING_API_KEY"
                .to_string()
        }
        Fix::GiveApiKey { key_sent: true } => "Its server refused the API key ovlock sent: check \
             server.root_api_key in the ov.conf given, or OPENVIKING_API_KEY"
            .to_string(),
    }
}

/// How to stop a process for good: through its systemd service or its
/// launchd job, either of which would otherwise start it again, then by its
/// PID.
fn stop_command(pid: u32, service: Option<&Service>, launchd: Option<&LaunchdJob>) -> String {
    match (service, launchd) {
        (Some(service), _) => format!(
            "{}, then if it still runs: {}",
            systemctl("stop", service),
            kill_command(pid)
        ),
        (None, Some(job)) => launchctl_bootout(pid, job),
        (None, None) => kill_command(pid),
    }
}

/// How to restart a process: through its systemd service or launchd job,
/// else by hand.
fn restart_command(pid: u32, service: Option<&Service>, launchd: Option<&LaunchdJob>) -> String {
    match (service, launchd) {
        (Some(service), _) => systemctl("restart", service),
        (
            None,
            Some(LaunchdJob {
                label: Some(label),
                uid,
            }),
        ) => {
            let (sudo, domain) = launchd_domain(*uid);
            format!(
                "{sudo}launchctl kickstart -k {domain}/{}",
                shell::quote(label)
            )
        }
        // launchd starts a KeepAlive job again by itself.
        (None, Some(_)) => format!(
            "kill {pid}; if launchd does not start it again (no LaunchAgent or LaunchDaemon \
             keeps it alive), start it again"
        ),
        (None, None) => format!("{}, then start it again", kill_command(pid)),
    }
}

/// Where launchd keeps a job of the user `uid`, and whether reaching it
/// needs root: a LaunchDaemon runs as root in the system domain, a user's
/// LaunchAgent in that user's GUI domain.
fn launchd_domain(uid: Option<u32>) -> (&'static str, String) {
    match uid {
        Some(0) => ("sudo ", "system".to_string()),
        Some(uid) => ("", format!("gui/{uid}")),
        None => ("", "gui/$(id -u)".to_string()),
    }
}

/// `launchctl bootout DOMAIN/LABEL`, which stops a launchd job and unloads
/// it: `kill` alone a KeepAlive job undoes at once. Without the label, how
/// to find it.
fn launchctl_bootout(pid: u32, job: &LaunchdJob) -> String {
    let (sudo, domain) = launchd_domain(job.uid);
    match &job.label {
        Some(label) => format!(
            "launchd runs it as the job {label} and would start it again after a kill: \
             {sudo}launchctl bootout {domain}/{}",
            shell::quote(label)
        ),
        None => format!(
            "its parent is launchd, which starts it again after a kill if a LaunchAgent or \
             LaunchDaemon keeps it alive: find its label (launchctl list | grep -i openviking, \
             or sudo launchctl procinfo {pid}), then {sudo}launchctl bootout {domain}/LABEL; \
             if it is no launchd job: kill {pid}"
        ),
    }
}

/// The command that stops a process by its PID here.
fn kill_command(pid: u32) -> String {
    if cfg!(windows) {
        format!("taskkill /PID {pid}")
    } else {
        format!("kill {pid}")
    }
}

/// `systemctl VERB UNIT`, with `--user` for a user's service.
fn systemctl(verb: &str, service: &Service) -> String {
    let user = if service.user { "--user " } else { "" };
    format!("systemctl {user}{verb} {}", shell::quote(&service.name))
}
