//! OpenViking's on-disk layout, written down once: the lock files at the top
//! of a data directory, and the directories and files that hold its storage.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// Name of the flock file (OpenViking 0.4.21 and later).
pub const LOCK_NAME: &str = ".openviking.lock";
/// Name of the PID file (OpenViking 0.2 to 0.4.20).
pub const PID_NAME: &str = ".openviking.pid";
/// The prefix of the name clear-stale gives a pid file it moves aside.
pub const ASIDE_PREFIX: &str = ".openviking.pid.ovlock-clearing-";

/// The top-level directories of a data directory that hold its storage:
/// the vector store (RocksDB's `vectordb/<collection>/store/LOCK` among it)
/// and the SQLite queue and usage-audit databases.
pub const STORAGE_DIRS: [&str; 2] = ["vectordb", "_system"];

/// Whether a path under the data directory `dir` is part of OpenViking's
/// storage (its lock file, its vector store, its SQLite queues), rather
/// than, say, a log someone is tailing.
pub fn is_storage_file(dir: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(dir) else {
        return false;
    };
    // A file of another data directory nested inside this one is that one's.
    if let Some(owner) = workspace_of(path) {
        return owner == dir;
    }
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy())
        .unwrap_or_default();
    if first == LOCK_NAME || STORAGE_DIRS.contains(&first.as_ref()) {
        return true;
    }
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let name = name.trim_end_matches(" (deleted)");
    [
        ".db",
        ".db-wal",
        ".db-shm",
        ".db-journal",
        ".sqlite",
        ".sqlite3",
        ".sqlite3-wal",
        ".sqlite3-shm",
        ".sst",
    ]
    .iter()
    .any(|ext| name.ends_with(ext))
        || matches!(name, "LOCK" | "CURRENT" | "IDENTITY")
        || name.starts_with("MANIFEST-")
}

/// Whether a storage file is one the kernel holds locks on while a server
/// runs: RocksDB's `LOCK` and the SQLite databases with their shared-memory
/// files (SQLite locks bytes of both). Asked about one by one on macOS,
/// which has no lock table to list.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub fn takes_kernel_locks(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    let name = name.strip_suffix("-shm").unwrap_or(&name);
    name == "LOCK"
        || [".db", ".sqlite", ".sqlite3"]
            .iter()
            .any(|ext| name.ends_with(ext))
}

/// The data directory an open file of an OpenViking server belongs to: the
/// parent of `.openviking.lock` (also one deleted under the server), or what
/// lies before the last storage directory component (the last, since the
/// directory's own path may hold such a name). Only Linux and Windows name
/// the files a process has open.
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
pub fn workspace_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name().map(OsStr::as_encoded_bytes);
    if name.is_some_and(|n| n.strip_suffix(b" (deleted)").unwrap_or(n) == LOCK_NAME.as_bytes()) {
        return path.parent().map(PathBuf::from);
    }
    let name_is = |p: &Path, name: &str| p.file_name().is_some_and(|n| n == name);
    let storage = path
        .ancestors()
        .skip(1)
        .find(|a| STORAGE_DIRS.iter().any(|s| name_is(a, s)))?;
    let dir = storage.parent()?;
    // OpenViking's own tree keeps `_system` directories too, for task
    // records (`viking/{account}/_system/tasks`) and redo markers
    // (`viking/_system/redo`): they belong to the data directory above
    // `viking`.
    let inner = path
        .strip_prefix(storage)
        .ok()
        .and_then(|rest| rest.components().next())
        .is_some_and(|c| TREE_SYSTEM_DIRS.iter().any(|d| c.as_os_str() == *d));
    let dir = match dir {
        _ if !inner => dir,
        _ if name_is(dir, TREE_DIR) => dir.parent()?,
        _ if dir.parent().is_some_and(|p| name_is(p, TREE_DIR)) => dir.parent()?.parent()?,
        _ => dir,
    };
    dir.parent().map(|_| dir.to_path_buf())
}

/// The directory of OpenViking's storage tree, `viking/{account}/...`.
pub const TREE_DIR: &str = "viking";
/// What the tree's own `_system` directories hold.
const TREE_SYSTEM_DIRS: [&str; 2] = ["tasks", "redo"];

// Only Linux searches the tree for path locks, so elsewhere what follows
// names what is never looked for.

/// A path lock in a directory of the tree: a tree lock on that directory,
/// or any lock on it, since it exists.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub const PATH_LOCK_NAME: &str = ".path.ovlock";
/// How an exact lock's sidecar is named: it sits next to the file it locks
/// (which need not exist yet), as `.exact.ovlock.<safe>.<h16>`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub const EXACT_LOCK_PREFIX: &str = ".exact.ovlock.";
/// Where OpenViking's engine mounts the tree: `{workspace}/viking/{rest}`
/// is the engine's `/local/{rest}`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const ENGINE_ROOT: &str = "/local";
/// How long the `safe` part of a sidecar's name is at most.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
const SAFE_NAME_MAX: usize = 80;

/// What a path-lock file's name says it is.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathLockName {
    /// `.path.ovlock`: a tree lock on its directory, or an exact lock on
    /// that directory.
    TreeOrDirectory,
    /// `.exact.ovlock.*`: an exact lock on an entry of its directory.
    ExactSidecar,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl PathLockName {
    /// The kind of path-lock file an entry of the tree is, by its name alone.
    pub fn of(name: &[u8]) -> Option<PathLockName> {
        if name == PATH_LOCK_NAME.as_bytes() {
            Some(PathLockName::TreeOrDirectory)
        } else if name.starts_with(EXACT_LOCK_PREFIX.as_bytes()) {
            Some(PathLockName::ExactSidecar)
        } else {
            None
        }
    }
}

/// A place in the storage tree, as OpenViking names it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreePlace {
    /// `viking/` itself, the engine's `/local`: every account at once.
    AllAccounts,
    /// `viking/{account}/{rest}`, which the account's requests call
    /// `viking://{rest}`; `rest` is empty for the whole account. Names that
    /// are not UTF-8 (which OpenViking never writes) carry U+FFFD.
    Account { account: String, uri: String },
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl TreePlace {
    /// The place at `relative`, a path below `viking/`.
    pub fn of(relative: &Path) -> TreePlace {
        let mut parts = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match parts.next() {
            None => TreePlace::AllAccounts,
            Some(account) => TreePlace::Account {
                account,
                uri: format!("viking://{}", parts.collect::<Vec<_>>().join("/")),
            },
        }
    }
}

/// The engine's path of what is at `relative` below `viking/`, as the bytes
/// it hashes for a sidecar's name.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn engine_path(relative: &Path) -> Vec<u8> {
    let mut path = ENGINE_ROOT.as_bytes().to_vec();
    for part in relative.components() {
        path.push(b'/');
        path.extend_from_slice(part.as_os_str().as_encoded_bytes());
    }
    path
}

/// The name of the sidecar an exact lock on `engine_path` (such as
/// `/local/default/resources/new file.md`) is written to.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn exact_lock_name(engine_path: &[u8]) -> String {
    let basename = engine_path
        .rsplit(|&b| b == b'/')
        .next()
        .unwrap_or_default();
    format!(
        "{EXACT_LOCK_PREFIX}{}.{}",
        sidecar_safe_name(basename),
        exact_lock_hash(engine_path)
    )
}

/// The last part of a sidecar's name: the first 16 hex digits of the SHA-1
/// of the engine path it locks, which tells apart the names that one safe
/// name stands for.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn exact_lock_hash(engine_path: &[u8]) -> String {
    use sha1::{Digest, Sha1};
    Sha1::digest(engine_path)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A basename as a sidecar's name carries it: each run of characters other
/// than `[A-Za-z0-9._-]` becomes one `_`, leading and trailing `.` and `_`
/// go, then it is cut to 80 characters (a cut may end it in `.` or `_`
/// again, which stays); `path` if nothing is left. Bytes and characters
/// give the same result, since any character outside the set is a run of
/// bytes outside it.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn sidecar_safe_name(basename: &[u8]) -> String {
    let mut safe = String::with_capacity(basename.len());
    let mut in_run = false;
    for &b in basename {
        let kept = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        if kept {
            safe.push(char::from(b));
        } else if !in_run {
            safe.push('_');
        }
        in_run = !kept;
    }
    let mut safe = safe.trim_matches(['.', '_']).to_string();
    safe.truncate(SAFE_NAME_MAX);
    if safe.is_empty() {
        safe.push_str("path");
    }
    safe
}

/// The safe name in a sidecar's name, when it is a name OpenViking writes
/// (`.exact.ovlock.<safe>.<16 lowercase hex digits>`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn sidecar_safe_part(name: &[u8]) -> Option<&[u8]> {
    let rest = name.strip_prefix(EXACT_LOCK_PREFIX.as_bytes())?;
    let dot = rest.iter().rposition(|&b| b == b'.')?;
    let (safe, hash) = (&rest[..dot], &rest[dot + 1..]);
    let hex = |b: &u8| b.is_ascii_digit() || (b'a'..=b'f').contains(b);
    (!safe.is_empty() && hash.len() == 16 && hash.iter().all(hex)).then_some(safe)
}

/// Whether a lock on `path` can be a lock of the data directory `dir`: it
/// lies under `dir`, and not in another data directory nested inside it.
pub fn belongs_to(dir: &Path, path: &Path) -> bool {
    path.starts_with(dir) && workspace_of(path).is_none_or(|owner| owner == dir)
}

/// What a descriptor's link in /proc names when it holds `dir`'s
/// `.openviking.lock` after that file was unlinked.
pub fn deleted_lock_file(dir: &Path) -> PathBuf {
    let mut name = dir.join(LOCK_NAME).into_os_string();
    name.push(" (deleted)");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storage_files_the_kernel_locks_are_the_ones_a_real_server_locks() {
        for name in [
            "LOCK",
            "queue.db",
            "queue.db-shm",
            "usage_audit.sqlite3",
            "usage_audit.sqlite3-shm",
        ] {
            assert!(takes_kernel_locks(OsStr::new(name)), "{name}");
        }
        for name in [
            "LOG",
            "000012.log",
            "MANIFEST-000005",
            "queue.db-wal",
            "x.sst",
        ] {
            assert!(!takes_kernel_locks(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn finds_the_data_directory_of_a_storage_file() {
        let cases = [
            ("/srv/ov/data/.openviking.lock", Some("/srv/ov/data")),
            (
                "/srv/ov/data/.openviking.lock (deleted)",
                Some("/srv/ov/data"),
            ),
            (
                "/srv/ov/data/vectordb/context/store/LOCK",
                Some("/srv/ov/data"),
            ),
            ("/srv/ov/data/_system/queue/queue.db", Some("/srv/ov/data")),
            (
                "/srv/vectordb/ws/vectordb/context/store/LOCK",
                Some("/srv/vectordb/ws"),
            ),
            ("/vectordb/x", None),
            ("/srv/ov/data/log/server.log", None),
            (
                "/srv/ov/data/viking/default/_system/tasks/t1.json",
                Some("/srv/ov/data"),
            ),
            ("/srv/ov/data/viking/_system/redo/r", Some("/srv/ov/data")),
            (
                "/srv/viking/ws/vectordb/context/store/LOCK",
                Some("/srv/viking/ws"),
            ),
            (
                "/srv/viking/ws/_system/queue/queue.db",
                Some("/srv/viking/ws"),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(
                workspace_of(Path::new(path)).as_deref(),
                want.map(Path::new),
                "{path}"
            );
        }
    }

    #[test]
    fn names_a_sidecar_as_openviking_does() {
        // Measured on the 0.5.2 engine: it wrote these for exact locks on
        // `/local/default/resources/<name>`.
        let a79 = "a".repeat(79);
        let cases = [
            ("new file.md", "new_file.md.77ed9eafed6a3362"),
            ("-lead-", "-lead-.b03f055052377d2b"),
            ("...", "path.8a350bc82fab99bd"),
            (".hidden_", "hidden.cef18eec3de455ec"),
        ];
        for (name, sidecar) in cases {
            let engine = format!("/local/default/resources/{name}");
            assert_eq!(
                exact_lock_name(engine.as_bytes()),
                format!(".exact.ovlock.{sidecar}"),
                "{name}"
            );
        }
        // The sanitising rules alone, measured on the same engine.
        for (name, safe) in [
            ("a  b", "a_b".to_string()),
            ("a_ b", "a__b".into()),
            ("x _y", "x__y".into()),
            ("m.. n", "m.._n".into()),
            ("p -q", "p_-q".into()),
            ("\u{e9}_", "path".into()),
            ("_\u{e9}_x", "x".into()),
            ("a\u{e9}\u{e9}b", "a_b".into()),
            ("\u{fc}\u{20ac}x", "x".into()),
            ("___x...", "x".into()),
            (&format!("{a79}.b{}", "c".repeat(10)), format!("{a79}.")),
            (&format!("{a79}__b"), format!("{a79}_")),
            (&"x".repeat(100), "x".repeat(80)),
            (&format!("{}\u{fc}", "a".repeat(80)), "a".repeat(80)),
        ] {
            assert_eq!(sidecar_safe_name(name.as_bytes()), safe, "{name}");
        }
        assert_eq!(
            exact_lock_name(b"/local/newacct"),
            ".exact.ovlock.newacct.f9d26da03b3fcb09"
        );
        assert_eq!(
            sidecar_safe_part(b".exact.ovlock.new_file.md.77ed9eafed6a3362"),
            Some(&b"new_file.md"[..])
        );
        for odd in [
            &b".exact.ovlock.x"[..],
            b".exact.ovlock..77ed9eafed6a3362",
            b".exact.ovlock.x.77ED9EAFED6A3362",
            b".exact.ovlock.x.77ed9eafed6a336",
            b".path.ovlock",
        ] {
            assert_eq!(
                sidecar_safe_part(odd),
                None,
                "{}",
                String::from_utf8_lossy(odd)
            );
        }
    }

    #[test]
    fn maps_the_tree_to_accounts_and_uris() {
        let place = |rel: &str| TreePlace::of(Path::new(rel));
        let account = |account: &str, uri: &str| TreePlace::Account {
            account: account.into(),
            uri: uri.into(),
        };
        assert_eq!(place(""), TreePlace::AllAccounts);
        assert_eq!(place("default"), account("default", "viking://"));
        assert_eq!(
            place("acme/resources/docs/a b.md"),
            account("acme", "viking://resources/docs/a b.md")
        );
        assert_eq!(engine_path(Path::new("")), b"/local");
        assert_eq!(
            engine_path(Path::new("default/resources/new file.md")),
            b"/local/default/resources/new file.md"
        );
        assert_eq!(
            PathLockName::of(b".path.ovlock"),
            Some(PathLockName::TreeOrDirectory)
        );
        assert_eq!(
            PathLockName::of(b".exact.ovlock.x.0123456789abcdef"),
            Some(PathLockName::ExactSidecar)
        );
        assert_eq!(PathLockName::of(b".path.ovlock.bak"), None);
        assert_eq!(PathLockName::of(b"exact.ovlock.x"), None);
    }

    #[test]
    fn tells_storage_from_other_files() {
        let dir = Path::new("/srv/ov");
        for (path, storage) in [
            ("/srv/ov/.openviking.lock", true),
            ("/srv/ov/vectordb/context/store/LOCK", true),
            ("/srv/ov/_system/queue/queue.db-wal", true),
            ("/srv/ov/other/x.sqlite3 (deleted)", true),
            ("/srv/ov/log/server.log", false),
            ("/srv/ov", false),
            ("/elsewhere/vectordb/LOCK", false),
            // A data directory nested inside: its files are its own.
            ("/srv/ov/ws2/.openviking.lock", false),
            ("/srv/ov/ws2/_system/queue/queue.db", false),
            ("/srv/ov/viking/default/_system/tasks/t.json", true),
        ] {
            assert_eq!(is_storage_file(dir, Path::new(path)), storage, "{path}");
        }
        assert!(belongs_to(dir, Path::new("/srv/ov/notes.txt")));
        assert!(!belongs_to(dir, Path::new("/srv/ov/ws2/.openviking.lock")));
        assert!(!belongs_to(dir, Path::new("/srv/other")));
        assert_eq!(
            deleted_lock_file(dir),
            Path::new("/srv/ov/.openviking.lock (deleted)")
        );
    }
}
