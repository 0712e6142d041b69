//! What ovlock tells the operator to run. A server that a systemd service
//! runs would be started again if only killed: the fix stops the service
//! first. The service is made for real, as a cgroup of the unified
//! hierarchy named as systemd names its units.

use std::fs;
use std::path::PathBuf;

use crate::support::*;

/// A cgroup made for a test under the unified (v2) hierarchy, holding one
/// process; removed, with the process moved out, when dropped.
struct Cgroup {
    root: PathBuf,
    path: PathBuf,
    pid: u32,
}

impl Cgroup {
    /// Moves `pid` into `relative` under the cgroup2 mount, or None when
    /// there is none this process may write.
    fn enter(relative: &str, pid: u32) -> Option<Cgroup> {
        let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
        let root = mounts.lines().find_map(|line| {
            let (mount, sup) = line.split_once(" - ")?;
            let point = mount.split(' ').nth(4)?;
            sup.starts_with("cgroup2 ").then(|| PathBuf::from(point))
        })?;
        let path = root.join(relative);
        fs::create_dir_all(&path).ok()?;
        let group = Cgroup { root, path, pid };
        fs::write(group.path.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(group)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.root.join("cgroup.procs"), self.pid.to_string());
        // Innermost first: a cgroup with children cannot be removed.
        for dir in self.path.ancestors() {
            if dir == self.root || fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// Makes the cgroup; build.rs marks these tests ignored where it cannot.
fn enter(relative: &str, pid: u32) -> Cgroup {
    Cgroup::enter(relative, pid).unwrap_or_else(|| {
        panic!("no writable cgroup2 hierarchy to make a service cgroup in; {PROBED}")
    })
}

#[test]
#[cfg_attr(
    ovlock_test_no_cgroup2,
    ignore = "needs root and a writable cgroup2 hierarchy"
)]
fn a_server_run_by_a_systemd_service_is_stopped_through_it() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let unit = format!("ovlock-test-{}.service", server.pid());
    let _group = enter(&format!("system.slice/{unit}"), server.pid());
    let r = env.status();
    r.expect(1, "held", vec![server.pid()]);
    let fixes = strings(&r.dir["fixes"]).join("\n");
    assert!(
        fixes.contains(&format!(
            "systemctl stop {unit}, then if it still runs: kill {}",
            server.pid()
        )),
        "{fixes}"
    );
}

#[test]
#[cfg_attr(
    ovlock_test_no_cgroup2,
    ignore = "needs root and a writable cgroup2 hierarchy"
)]
fn a_server_run_by_a_users_service_is_stopped_with_systemctl_user() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let unit = format!("ovlock-test-{}.service", server.pid());
    let relative = format!("user.slice/user-1000.slice/user@1000.service/app.slice/{unit}");
    let _group = enter(&relative, server.pid());
    let r = env.status();
    let fixes = strings(&r.dir["fixes"]).join("\n");
    assert!(
        fixes.contains(&format!("systemctl --user stop {unit}")),
        "{fixes}"
    );
}

#[test]
fn a_server_outside_any_service_is_stopped_by_its_pid() {
    let env = TestEnv::new();
    let server = spawn_holder("flock", &env.lock_path(), SERVER_TAG);
    let r = env.status();
    let fixes = strings(&r.dir["fixes"]).join("\n");
    assert!(fixes.contains(&format!("kill {}", server.pid())), "{fixes}");
    // Tests run by a service (a CI runner's) start their servers in it.
    let ours = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if !ours.contains(".service") {
        assert!(!fixes.contains("systemctl"), "{fixes}");
    }
}
