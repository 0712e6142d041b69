//! OpenViking's path locks: every `.path.ovlock` and `.exact.ovlock.*` in
//! the storage tree `{workspace}/viking/`, what each locks, and what it
//! says. The walk reads directories only (each entry's kind comes with its
//! name from getdents on Linux, readdir on macOS), opens nothing but the
//! lock files, never follows a symlink, does not enter network or FUSE
//! mounts (one whose server hangs would hang the run), and spreads over the
//! cores, so that `check` can afford it on a large tree.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::inspect::fsread::{FileKind, FileStat};
use crate::openviking::layout::{PathLockName, TREE_DIR, TreePlace};
use crate::openviking::lock_token::Token;
use crate::openviking::ovconf::{PathLockProvider, StorageBackend};
use crate::workspace::PathLockSettings;

/// How much of a path-lock file is read: OpenViking's tokens are about 60
/// bytes long.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
pub const PATH_LOCK_READ_CAP: usize = 512;

/// What the workspace's path locks are, as far as files can tell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PathLocks {
    /// There is no `viking/` (or no workspace at all): nothing is locked.
    #[default]
    NoTree,
    /// `viking` is something other than a directory; a symlink there is
    /// not followed.
    TreeNotADirectory(FileKind),
    /// The config keeps the tokens where no file on this machine shows them.
    NotLocal(NotLocal),
    /// The tree is there, but only Linux, macOS and Windows search it.
    #[cfg_attr(
        any(target_os = "linux", target_os = "macos", windows),
        allow(dead_code)
    )]
    NotDetermined,
    #[cfg_attr(
        not(any(target_os = "linux", target_os = "macos", windows)),
        allow(dead_code)
    )]
    Walked(Walk),
}

/// Why the tokens are not files of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotLocal {
    /// `memory` keeps them in the server process, `cache` in Redis.
    Provider(PathLockProvider),
    /// `s3` keeps the tree, tokens included, in S3; `memory` in the process.
    Backend(StorageBackend),
}

/// What a search of the tree found.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// `{resolved workspace}/viking`.
    pub tree: PathBuf,
    /// Every lock file found, sorted by path.
    pub files: Vec<PathLockFile>,
    /// Directories that could not be opened or listed, so were not searched.
    pub unreadable: Vec<Unreadable>,
    /// Network and FUSE mounts inside the tree, which were not entered.
    pub skipped_mounts: Vec<PathBuf>,
    /// The limits the walk met, each once; it searched less than the tree.
    pub caps: Vec<CapHit>,
    /// How many directories were listed, and how many entries they held.
    pub dirs: u64,
    pub entries: u64,
}

/// A directory that could not be opened or listed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub path: PathBuf,
    pub error: String,
}

/// A limit that kept the walk from searching the whole tree.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapHit {
    /// Directories more than `limit` levels below `viking/` were not
    /// entered; `first` is the first one met.
    Depth { limit: usize, first: PathBuf },
    /// The walk stopped after about `limit` entries.
    Entries { limit: u64 },
    /// Lock files beyond the first `limit` were not read.
    LockFiles { limit: usize },
    /// A thread of the search failed (a panic, in a build that unwinds),
    /// and what it had found is lost.
    Interrupted,
}

/// One lock file: where it is, what it locks, what it holds.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLockFile {
    pub path: PathBuf,
    pub name: PathLockName,
    pub locks: Locks,
    pub read: LockFileRead,
}

/// What a lock file locks, from its name and place.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Locks {
    /// The place locked: for `.path.ovlock`, its directory; for a sidecar,
    /// the entry of its directory whose engine path hashes to the name's
    /// suffix.
    Place(TreePlace),
    /// A sidecar whose hash is of no entry of its directory `dir`: an
    /// exact lock on a path that does not exist (yet, or any more), whose
    /// name sanitises to `safe`.
    Missing { dir: TreePlace, safe: String },
    /// A sidecar whose name does not end in `.<16 hex digits>`, as no
    /// OpenViking names one, in the directory `dir`.
    Unrecognised { dir: TreePlace },
}

/// What reading a lock file gave.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockFileRead {
    /// A symlink, FIFO, directory, device or socket: never opened.
    NotRegular(FileKind),
    /// It could not be opened or read; its metadata, when that could be read.
    Unreadable {
        meta: Option<LockMeta>,
        error: String,
    },
    Read {
        meta: LockMeta,
        /// At most [`PATH_LOCK_READ_CAP`] bytes.
        content: Vec<u8>,
        /// None when the file is longer than [`PATH_LOCK_READ_CAP`], so was not
        /// read whole.
        token: Option<Token>,
    },
}

/// A lock file's identity and times, from the descriptor that was read.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockMeta {
    pub stat: FileStat,
    /// When the file was created, where the filesystem records it (statx's
    /// birth time). A refresh rewrites the token in place, so this is when
    /// the lock was taken; a restarted server that re-adopts a lease keeps
    /// its file.
    pub born: Option<SystemTime>,
}

/// The path locks of the workspace at `resolved_dir`, which exists. A
/// workspace without `viking/` costs one failed open.
pub fn find(resolved_dir: &Path, settings: &PathLockSettings) -> PathLocks {
    match (&settings.provider.value, &settings.backend.value) {
        (Ok(provider @ (PathLockProvider::Memory | PathLockProvider::Cache)), _) => {
            PathLocks::NotLocal(NotLocal::Provider(*provider))
        }
        (_, Ok(backend @ (StorageBackend::S3 | StorageBackend::Memory))) => {
            PathLocks::NotLocal(NotLocal::Backend(*backend))
        }
        // A setting OpenViking refuses says nothing of where an older
        // server kept its tokens: the files are looked for.
        _ => search(&resolved_dir.join(TREE_DIR)),
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
use walk::search;

#[cfg(windows)]
use super::windows::path_walk::search;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
fn search(tree: &Path) -> PathLocks {
    match crate::inspect::fsread::kind_of(tree) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => PathLocks::NoTree,
        Ok(FileKind::Directory) | Err(_) => PathLocks::NotDetermined,
        Ok(kind) => PathLocks::TreeNotADirectory(kind),
    }
}

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod listing;
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod reading;
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod walk;

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::collections::BTreeSet;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    use super::walk::{LIMITS, Limits, search_with};
    use super::*;
    use crate::openviking::layout;
    use crate::openviking::lock_token::{BadToken, LeaseKind};
    use crate::workspace::{Setting, SettingSource};

    const TOKEN: &[u8] = b"dd0d5c0c-9d45-4ed7-a741-7a7d9e7dbf64:1796173763185979065:T";

    fn write(path: &Path, content: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn mkfifo(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, path, rustix::fs::Mode::RUSR).unwrap();
    }

    /// The path locks of `ws`, found on another thread: a walk that
    /// blocked (on a FIFO, say) fails the test instead of hanging it.
    fn search(ws: &Path, settings: PathLockSettings) -> PathLocks {
        let ws = ws.to_path_buf();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(find(&ws, &settings));
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the walk blocked")
    }

    fn walked(found: PathLocks) -> Walk {
        match found {
            PathLocks::Walked(walk) => walk,
            other => panic!("{other:?}"),
        }
    }

    fn file<'a>(walk: &'a Walk, relative: &str) -> &'a PathLockFile {
        let path = walk.tree.join(relative);
        walk.files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{relative} not found in {:#?}", walk.files))
    }

    fn place(account: &str, uri: &str) -> TreePlace {
        TreePlace::Account {
            account: account.into(),
            uri: uri.into(),
        }
    }

    fn token(file: &PathLockFile) -> Option<&Token> {
        match &file.read {
            LockFileRead::Read { token, .. } => token.as_ref(),
            other => panic!("{}: {other:?}", file.path.display()),
        }
    }

    #[test]
    fn a_workspace_without_a_tree_costs_nothing_and_says_so() {
        let ws = tempfile::tempdir().unwrap();
        let none = PathLockSettings::default;
        assert_eq!(search(ws.path(), none()), PathLocks::NoTree);
        let tree = ws.path().join("viking");
        std::fs::write(&tree, b"").unwrap();
        assert_eq!(
            search(ws.path(), none()),
            PathLocks::TreeNotADirectory(FileKind::Regular)
        );
        std::fs::remove_file(&tree).unwrap();
        mkfifo(&tree);
        assert_eq!(
            search(ws.path(), none()),
            PathLocks::TreeNotADirectory(FileKind::Fifo)
        );
        std::fs::remove_file(&tree).unwrap();
        // A symlinked tree is not followed, though it leads to locks.
        let elsewhere = tempfile::tempdir().unwrap();
        write(&elsewhere.path().join("default/.path.ovlock"), TOKEN);
        symlink(elsewhere.path(), &tree).unwrap();
        assert_eq!(
            search(ws.path(), none()),
            PathLocks::TreeNotADirectory(FileKind::Symlink)
        );
    }

    #[test]
    fn finds_every_lock_and_what_it_locks() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        let res = tree.join("default/resources");
        write(&tree.join(".path.ovlock"), b"o1:1700:T");
        std::fs::create_dir_all(tree.join("newacct")).unwrap();
        write(
            &tree.join(".exact.ovlock.newacct.f9d26da03b3fcb09"),
            b"o2:1700:E",
        );
        write(&tree.join("default/.path.ovlock"), TOKEN);
        write(&res.join("new file.md"), b"text");
        write(
            &res.join(".exact.ovlock.new_file.md.77ed9eafed6a3362"),
            b"o3:1:E",
        );
        // Two names with one safe name: the hash tells them apart.
        write(&res.join("a b"), b"");
        write(&res.join("a  b"), b"");
        let sidecar = layout::exact_lock_name(b"/local/default/resources/a  b");
        write(&res.join(&sidecar), b"o4:1:E");
        write(
            &res.join(".exact.ovlock.gone.md.0123456789abcdef"),
            b"o5:1:E",
        );
        write(&res.join(".exact.ovlock.oddname"), b"o6:1:E");
        write(&tree.join("default/empty/.path.ovlock"), b"");
        write(&tree.join("default/long/.path.ovlock"), &[b'x'; 600]);
        write(
            &tree.join("default/legacy/.path.ovlock"),
            b"OVE1\x00\x01secret",
        );
        write(&tree.join("default/bad/.path.ovlock"), b"abc-123:1700");
        mkfifo(&tree.join("default/fifo/.path.ovlock"));
        std::fs::create_dir_all(tree.join("default/link")).unwrap();
        symlink("../.path.ovlock", tree.join("default/link/.path.ovlock")).unwrap();
        write(
            &tree.join("default/dirlock/.path.ovlock/.path.ovlock"),
            TOKEN,
        );
        let outside = tempfile::tempdir().unwrap();
        write(&outside.path().join(".path.ovlock"), TOKEN);
        symlink(outside.path(), tree.join("default/linked")).unwrap();
        let odd = tree.join("other").join(OsStr::from_bytes(b"\xff"));
        write(&odd.join(".path.ovlock"), TOKEN);
        for i in 0..50 {
            write(&res.join(format!("doc{i}.md")), b"");
        }

        let walk = walked(search(ws.path(), PathLockSettings::default()));
        assert_eq!(walk.tree, tree);
        assert!(walk.unreadable.is_empty(), "{:?}", walk.unreadable);
        assert!(walk.caps.is_empty() && walk.skipped_mounts.is_empty());

        let all = file(&walk, ".path.ovlock");
        assert_eq!(all.name, PathLockName::TreeOrDirectory);
        assert_eq!(all.locks, Locks::Place(TreePlace::AllAccounts));
        assert!(matches!(token(all), Some(Token::Lease(l)) if l.kind == LeaseKind::Tree));

        let account = file(&walk, ".exact.ovlock.newacct.f9d26da03b3fcb09");
        assert_eq!(account.name, PathLockName::ExactSidecar);
        assert_eq!(account.locks, Locks::Place(place("newacct", "viking://")));

        let default = file(&walk, "default/.path.ovlock");
        assert_eq!(default.locks, Locks::Place(place("default", "viking://")));
        match &default.read {
            LockFileRead::Read {
                meta,
                content,
                token: Some(Token::Lease(lease)),
            } => {
                assert_eq!(content, TOKEN);
                assert_eq!(lease.owner, "dd0d5c0c-9d45-4ed7-a741-7a7d9e7dbf64");
                let std = std::fs::metadata(&default.path).unwrap();
                assert_eq!(
                    (meta.stat.dev, meta.stat.ino, meta.stat.size),
                    (std.dev(), std.ino(), std.size())
                );
                assert_eq!(meta.stat.modified, std.modified().ok());
                // std asks statx too; None where the filesystem keeps no birth time.
                assert_eq!(meta.born, std.created().ok());
            }
            other => panic!("{other:?}"),
        }

        let docs = |uri: &str| Locks::Place(place("default", uri));
        assert_eq!(
            file(
                &walk,
                "default/resources/.exact.ovlock.new_file.md.77ed9eafed6a3362"
            )
            .locks,
            docs("viking://resources/new file.md")
        );
        assert_eq!(
            file(&walk, &format!("default/resources/{sidecar}")).locks,
            docs("viking://resources/a  b")
        );
        assert_eq!(
            file(
                &walk,
                "default/resources/.exact.ovlock.gone.md.0123456789abcdef"
            )
            .locks,
            Locks::Missing {
                dir: place("default", "viking://resources"),
                safe: "gone.md".into()
            }
        );
        assert_eq!(
            file(&walk, "default/resources/.exact.ovlock.oddname").locks,
            Locks::Unrecognised {
                dir: place("default", "viking://resources")
            }
        );

        assert_eq!(
            token(file(&walk, "default/empty/.path.ovlock")),
            Some(&Token::Empty)
        );
        assert_eq!(
            token(file(&walk, "default/legacy/.path.ovlock")),
            Some(&Token::Legacy)
        );
        assert_eq!(
            token(file(&walk, "default/bad/.path.ovlock")),
            Some(&Token::Invalid(BadToken::MissingSecondColon))
        );
        match &file(&walk, "default/long/.path.ovlock").read {
            LockFileRead::Read {
                meta,
                content,
                token: None,
            } => assert_eq!((content.len(), meta.stat.size), (PATH_LOCK_READ_CAP, 600)),
            other => panic!("{other:?}"),
        }
        for (relative, kind) in [
            ("default/fifo/.path.ovlock", FileKind::Fifo),
            ("default/link/.path.ovlock", FileKind::Symlink),
            ("default/dirlock/.path.ovlock", FileKind::Directory),
        ] {
            assert_eq!(
                file(&walk, relative).read,
                LockFileRead::NotRegular(kind),
                "{relative}"
            );
        }
        let odd = odd.join(".path.ovlock");
        let odd = walk.files.iter().find(|f| f.path == odd).unwrap();
        assert_eq!(odd.locks, Locks::Place(place("other", "viking://\u{fffd}")));

        // Nothing behind a symlink or inside a lock-named directory, and
        // each directory listed once.
        assert_eq!(walk.files.len(), 15, "{:#?}", walk.files);
        let mut paths: Vec<&PathBuf> = walk.files.iter().map(|f| &f.path).collect();
        paths.dedup();
        assert_eq!(paths.len(), 15);
        assert!(paths.windows(2).all(|w| w[0] < w[1]), "sorted");
        // viking, newacct, default, resources, empty, long, legacy, bad,
        // fifo, link, dirlock, other, other/\xff.
        assert_eq!(walk.dirs, 13);
    }

    /// Runs `f` on a thread without the capabilities that let root read
    /// anything, so that permissions bite as they do for other users.
    fn as_unprivileged<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        use rustix::thread::{CapabilitySet, capabilities, set_capabilities};
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // Capabilities are per thread: the rest of the tests keep theirs.
                    let mut caps = capabilities(None).unwrap();
                    caps.effective -= CapabilitySet::DAC_OVERRIDE | CapabilitySet::DAC_READ_SEARCH;
                    set_capabilities(None, caps).unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    #[test]
    fn what_cannot_be_read_is_said() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        write(&tree.join("default/secret/.path.ovlock"), TOKEN);
        write(&tree.join("default/.path.ovlock"), TOKEN);
        write(&tree.join("default/open/.path.ovlock"), TOKEN);
        let mode = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        mode(&tree.join("default/secret"), 0o000);
        mode(&tree.join("default/.path.ovlock"), 0o000);
        let walk = as_unprivileged(|| walked(search(ws.path(), PathLockSettings::default())));
        mode(&tree.join("default/secret"), 0o755);
        assert_eq!(walk.unreadable.len(), 1, "{:?}", walk.unreadable);
        assert_eq!(walk.unreadable[0].path, tree.join("default/secret"));
        assert!(
            walk.unreadable[0].error.contains("Permission denied"),
            "{}",
            walk.unreadable[0].error
        );
        match &file(&walk, "default/.path.ovlock").read {
            LockFileRead::Unreadable {
                meta: Some(meta),
                error,
            } => {
                assert_eq!(meta.stat.size, TOKEN.len() as u64);
                assert!(error.contains("Permission denied"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            token(file(&walk, "default/open/.path.ovlock")),
            Some(Token::Lease(_))
        ));
    }

    #[test]
    fn a_limit_met_is_said_not_kept_quiet() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        write(&tree.join("a/.path.ovlock"), TOKEN);
        write(&tree.join("a/b/.path.ovlock"), TOKEN);
        write(&tree.join("a/b/c/d/.path.ovlock"), TOKEN);
        let walk_with = |limits| walked(search_with(&tree, limits, Vec::new));
        let walk = walk_with(Limits { depth: 2, ..LIMITS });
        let found: Vec<&Path> = walk.files.iter().map(|f| f.path.as_path()).collect();
        assert_eq!(
            found,
            [tree.join("a/.path.ovlock"), tree.join("a/b/.path.ovlock")]
        );
        assert_eq!(
            walk.caps,
            [CapHit::Depth {
                limit: 2,
                first: tree.join("a/b/c")
            }]
        );
        let walk = walk_with(Limits {
            lock_files: 2,
            ..LIMITS
        });
        assert_eq!(walk.files.len(), 2);
        assert_eq!(walk.caps, [CapHit::LockFiles { limit: 2 }]);
        for i in 0..10 {
            write(&tree.join(format!("f{i}")), b"");
        }
        let walk = walk_with(Limits {
            entries: 5,
            ..LIMITS
        });
        assert_eq!(walk.caps, [CapHit::Entries { limit: 5 }]);
        assert_eq!(walk_with(LIMITS).caps, []);
    }

    #[test]
    fn network_mounts_are_not_entered() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        write(&tree.join("default/nfs/.path.ovlock"), TOKEN);
        write(&tree.join("default/.path.ovlock"), TOKEN);
        let mounted = tree.join("default/nfs");
        let hanging = || vec![PathBuf::from("/elsewhere"), mounted.clone()];
        let walk = walked(search_with(&tree, LIMITS, hanging));
        assert_eq!(walk.skipped_mounts, std::slice::from_ref(&mounted));
        assert_eq!(walk.files.len(), 1);
        let walk = walked(search_with(&tree, LIMITS, || vec![tree.clone()]));
        assert_eq!(walk.skipped_mounts, std::slice::from_ref(&tree));
        assert!(walk.files.is_empty() && walk.dirs == 0);
    }

    #[test]
    fn tokens_kept_elsewhere_are_not_looked_for() {
        let ws = tempfile::tempdir().unwrap();
        write(&ws.path().join("viking/default/.path.ovlock"), TOKEN);
        fn set<T>(value: Result<T, crate::openviking::ovconf::Invalid>) -> Setting<T> {
            Setting {
                value,
                source: SettingSource::Default,
            }
        }
        let with = |provider, backend| PathLockSettings {
            provider: set(provider),
            backend: set(backend),
            ..PathLockSettings::default()
        };
        let invalid = || crate::openviking::ovconf::Invalid {
            found: "\"redis\"".into(),
            expected: "a provider",
        };
        use {PathLockProvider as P, StorageBackend as B};
        for (provider, backend, want) in [
            (
                Ok(P::Memory),
                Ok(B::Local),
                Some(NotLocal::Provider(P::Memory)),
            ),
            (Ok(P::Cache), Ok(B::S3), Some(NotLocal::Provider(P::Cache))),
            (Ok(P::Filesystem), Ok(B::S3), Some(NotLocal::Backend(B::S3))),
            (
                Ok(P::Filesystem),
                Ok(B::Memory),
                Some(NotLocal::Backend(B::Memory)),
            ),
            (Err(invalid()), Ok(B::Local), None),
            (Ok(P::Filesystem), Ok(B::Local), None),
        ] {
            let found = search(ws.path(), with(provider, backend));
            match want {
                Some(not_local) => assert_eq!(found, PathLocks::NotLocal(not_local)),
                None => assert_eq!(walked(found).files.len(), 1),
            }
        }
    }

    #[test]
    fn finds_what_a_plain_recursive_listing_finds() {
        let ws = tempfile::tempdir().unwrap();
        let tree = ws.path().join("viking");
        let mut want = BTreeSet::new();
        // A few hundred directories, some deep, so that every thread has work.
        for i in 0..300 {
            let dir = tree.join(format!("acct{}/d{}/e{}", i % 3, i % 17, i));
            write(&dir.join("file.md"), b"");
            if i % 7 == 0 {
                write(&dir.join(".path.ovlock"), TOKEN);
                want.insert(dir.join(".path.ovlock"));
            }
            if i % 11 == 0 {
                let sidecar = dir.join(".exact.ovlock.file.md.0000000000000000");
                write(&sidecar, TOKEN);
                want.insert(sidecar);
            }
        }
        /// The lock files below `dir`, and how many directories were listed.
        fn oracle(dir: &Path, found: &mut BTreeSet<PathBuf>) -> u64 {
            let mut dirs = 1;
            for entry in std::fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name();
                if PathLockName::of(name.as_bytes()).is_some() {
                    found.insert(entry.path());
                } else if entry.file_type().unwrap().is_dir() {
                    dirs += oracle(&entry.path(), found);
                }
            }
            dirs
        }
        let mut listed = BTreeSet::new();
        let dirs = oracle(&tree, &mut listed);
        assert_eq!(listed, want);
        for _ in 0..5 {
            let walk = walked(search(ws.path(), PathLockSettings::default()));
            let found: BTreeSet<PathBuf> = walk.files.into_iter().map(|f| f.path).collect();
            assert_eq!(found, want);
            assert_eq!(walk.dirs, dirs);
        }
    }
}
