//! A data directory on a network or FUSE filesystem: locks taken on other
//! hosts are invisible from here, and ovlock must say so. A FUSE mount made
//! with bindfs stands in for NFS and SMB, which need a server.

mod support;

use std::process::Command;

use support::*;

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
