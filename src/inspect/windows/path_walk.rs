//! The search for path locks in the storage tree on Windows, where there is
//! no getdents: a walk with `std::fs::read_dir`, whose entries carry their
//! kind from the directory listing (FindNextFileW), so nothing is opened but
//! the lock files. A symlink or junction is never followed (its kind is a
//! symlink, never a directory), and the same limits as on Linux bound it.
//! One thread: the cost that matters here is Windows' per-file overhead,
//! which more threads on one disk do not cut.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use crate::inspect::fsread::{self, FileKind, ReadError, Symlinks};
use crate::inspect::path_locks::{
    CapHit, LockFileRead, LockMeta, Locks, PATH_LOCK_READ_CAP, PathLockFile, PathLocks, Unreadable,
    Walk,
};
use crate::openviking::layout::{self, PathLockName, TreePlace};
use crate::openviking::lock_token;

/// Levels below `viking/`, entries and lock files read, as on Linux.
const DEPTH: usize = 128;
const ENTRIES: u64 = 4_000_000;
const LOCK_FILES: usize = 100_000;

pub fn search(tree: &Path) -> PathLocks {
    match fs::symlink_metadata(tree) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return PathLocks::NoTree,
        Ok(meta) if !meta.is_dir() || meta.file_type().is_symlink() => {
            return PathLocks::TreeNotADirectory(fsread::kind_of(tree).unwrap_or(FileKind::Other));
        }
        _ => {}
    }
    let mut walk = Walk {
        tree: tree.to_path_buf(),
        files: Vec::new(),
        unreadable: Vec::new(),
        skipped_mounts: Vec::new(),
        caps: Vec::new(),
        dirs: 0,
        entries: 0,
    };
    let mut too_deep: Option<PathBuf> = None;
    let mut pending = vec![(tree.to_path_buf(), 0usize)];
    'walk: while let Some((dir, depth)) = pending.pop() {
        let listing = match fs::read_dir(&dir) {
            Ok(listing) => listing,
            // Gone since its parent was listed: nothing to search.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => {
                walk.unreadable.push(unreadable(&dir, &err));
                continue;
            }
        };
        walk.dirs += 1;
        let mut names: Vec<OsString> = Vec::new();
        let mut met: Vec<(OsString, PathLockName)> = Vec::new();
        for entry in listing {
            let entry = match entry {
                Ok(entry) => entry,
                Err(err) => {
                    walk.unreadable.push(unreadable(&dir, &err));
                    break;
                }
            };
            walk.entries += 1;
            if walk.entries > ENTRIES {
                walk.caps.push(CapHit::Entries { limit: ENTRIES });
                break 'walk;
            }
            let name = entry.file_name();
            if let Some(kind) = PathLockName::of(name.as_encoded_bytes()) {
                met.push((name, kind));
                continue;
            }
            let is_dir = entry
                .file_type()
                .is_ok_and(|t| t.is_dir() && !t.is_symlink());
            if is_dir {
                let path = dir.join(&name);
                if depth + 1 > DEPTH {
                    too_deep = too_deep.or(Some(path));
                } else {
                    pending.push((path, depth + 1));
                }
            }
            names.push(name);
        }
        let relative = dir
            .strip_prefix(tree)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let by_safe = by_safe_name(&names, &met);
        for (name, kind) in met {
            if walk.files.len() >= LOCK_FILES {
                walk.caps.push(CapHit::LockFiles { limit: LOCK_FILES });
                break 'walk;
            }
            let path = dir.join(&name);
            let Some(read) = read_lock(&path) else {
                continue;
            };
            walk.files.push(PathLockFile {
                locks: locks(&relative, &name, kind, &by_safe),
                path,
                name: kind,
                read,
            });
        }
    }
    if let Some(first) = too_deep {
        walk.caps.insert(
            0,
            CapHit::Depth {
                limit: DEPTH,
                first,
            },
        );
    }
    walk.files.sort_by(|a, b| a.path.cmp(&b.path));
    walk.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    PathLocks::Walked(walk)
}

fn unreadable(path: &Path, err: &std::io::Error) -> Unreadable {
    Unreadable {
        path: path.to_path_buf(),
        error: fsread::describe(err),
    }
}

/// The directory's other entries by their safe names, when it has a
/// sidecar: only the few a sidecar may be of are hashed.
fn by_safe_name<'a>(
    names: &'a [OsString],
    met: &[(OsString, PathLockName)],
) -> HashMap<String, Vec<&'a OsStr>> {
    let mut by_safe: HashMap<String, Vec<&OsStr>> = HashMap::new();
    if met
        .iter()
        .any(|(_, kind)| *kind == PathLockName::ExactSidecar)
    {
        for name in names {
            by_safe
                .entry(layout::sidecar_safe_name(name.as_encoded_bytes()))
                .or_default()
                .push(name);
        }
    }
    by_safe
}

/// What the lock file `name`, in the directory at `relative` below
/// `viking/`, locks (as the Linux walk decides it).
fn locks(
    relative: &Path,
    name: &OsStr,
    kind: PathLockName,
    by_safe: &HashMap<String, Vec<&OsStr>>,
) -> Locks {
    let dir = TreePlace::of(relative);
    if kind == PathLockName::TreeOrDirectory {
        return Locks::Place(dir);
    }
    let name = name.as_encoded_bytes();
    let Some(safe) = layout::sidecar_safe_part(name) else {
        return Locks::Unrecognised { dir };
    };
    let candidates = std::str::from_utf8(safe)
        .ok()
        .and_then(|safe| by_safe.get(safe))
        .map_or(&[][..], Vec::as_slice);
    let target = candidates.iter().find(|entry| {
        let path = relative.join(entry);
        layout::exact_lock_name(&layout::engine_path(&path)).as_bytes() == name
    });
    match target {
        Some(entry) => Locks::Place(TreePlace::of(&relative.join(entry))),
        None => Locks::Missing {
            dir,
            safe: String::from_utf8_lossy(safe).into_owned(),
        },
    }
}

/// Reads a lock file without following a reparse point or opening anything
/// but a regular file; None when it was removed since the listing.
fn read_lock(path: &Path) -> Option<LockFileRead> {
    match fsread::read_capped(path, PATH_LOCK_READ_CAP, Symlinks::Refuse) {
        Ok(snapshot) => {
            let born = fs::metadata(path).and_then(|m| m.created()).ok();
            let token = (!snapshot.truncated).then(|| lock_token::decode(&snapshot.content));
            Some(LockFileRead::Read {
                meta: LockMeta {
                    stat: snapshot.stat,
                    born,
                },
                content: snapshot.content,
                token,
            })
        }
        Err(ReadError::Missing) => None,
        Err(ReadError::NotRegular(kind)) => Some(LockFileRead::NotRegular(kind)),
        Err(ReadError::Io(err)) => Some(LockFileRead::Unreadable {
            meta: fsread::lstat(path)
                .ok()
                .map(|(_, stat)| LockMeta { stat, born: None }),
            error: fsread::describe(&err),
        }),
    }
}
