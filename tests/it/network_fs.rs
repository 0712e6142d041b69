//! A data directory on a network or FUSE filesystem: locks taken on other
//! hosts are invisible from here, and ovlock must say so. A FUSE mount made
//! with bindfs stands in for NFS and SMB, which need a server.

use std::process::Command;

use crate::support::*;

/// A bindfs mount of a directory, unmounted on drop.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("fusermount").arg("-u").arg(&self.0).status();
    }
}

#[test]
#[cfg_attr(
    ovlock_test_no_bindfs,
    ignore = "needs bindfs and /dev/fuse for a FUSE mount (probed by build.rs)"
)]
fn a_fuse_data_directory_warns_that_free_is_only_free_here() {
    let env = TestEnv::new();
    let mountpoint = env.root().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let mounted = Command::new("bindfs")
        .arg(env.ws())
        .arg(&mountpoint)
        .status();
    assert!(
        mounted.as_ref().is_ok_and(|s| s.success()),
        "bindfs could not mount a FUSE filesystem here ({mounted:?}); this test needs \
         bindfs and /dev/fuse to stand in for a network filesystem; {PROBED}"
    );
    let _mount = Mount(mountpoint.clone());

    let run = env.run(&["check", "--json", mountpoint.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{run:?}");
    let dir = run.dir();
    assert_eq!(dir["remote_filesystem"], "FUSE", "{dir:#}");
    let warnings = strings(&dir["warnings"]).join("\n");
    assert!(
        warnings.contains("on FUSE") && warnings.contains("only free on this host"),
        "{warnings}"
    );

    let local = env.run(&["check", "--json", &env.ws_str()]);
    assert_eq!(local.dir()["remote_filesystem"], serde_json::Value::Null);
    assert!(strings(&local.dir()["warnings"]).is_empty());
}

/// A FUSE filesystem mounted inside the storage (`vectordb/` on its own
/// mount) whose server has stopped answering: reading it would hang. The
/// storage walk never enters it, so check still answers, and a lock on the
/// local part of the storage still names its server.
#[test]
#[cfg_attr(
    ovlock_test_no_bindfs,
    ignore = "needs bindfs and /dev/fuse for a FUSE mount (probed by build.rs)"
)]
fn a_hung_fuse_mount_inside_the_storage_does_not_hang_check() {
    use std::time::Duration;
    let env = TestEnv::new();
    let backing = env.root().join("backing");
    let vectordb = env.ws().join("vectordb");
    std::fs::create_dir_all(backing.join("context/store")).unwrap();
    std::fs::create_dir(&vectordb).unwrap();
    std::fs::create_dir_all(env.ws().join("_system/queue")).unwrap();
    // In the foreground, so that it is our child and can be stopped.
    let mut bindfs = Command::new("bindfs")
        .arg("-f")
        .arg(&backing)
        .arg(&vectordb)
        .spawn()
        .expect("bindfs");
    let _mount = Mount(vectordb.clone());
    wait_until(Duration::from_secs(10), || {
        vectordb.join("context/store").exists()
    });
    let server = spawn_user(
        &env.ws(),
        SERVER_TAG,
        serde_json::json!([["sqlite", "_system/queue/queue.db"]]),
    );
    let pid = rustix::process::Pid::from_raw(bindfs.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();

    let run = run_cmd_within(
        &mut env.command(&["check", "--json", &env.ws_str()]),
        Duration::from_secs(20),
    );
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(owner_pids(&run.dir()), [server.pid()], "{run:?}");
    drop(_mount);
    let _ = bindfs.kill();
    let _ = bindfs.wait();
}
