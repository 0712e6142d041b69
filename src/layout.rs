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

/// The data directory an open file of an OpenViking server belongs to: the
/// parent of `.openviking.lock` (also one deleted under the server), or what
/// lies before the last storage directory component (the last, since the
/// directory's own path may hold such a name). Only Linux names the files a
/// process has open.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
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
