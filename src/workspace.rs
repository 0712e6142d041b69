//! Which data directories to inspect, and where each one came from: the
//! command line, `storage.workspace` of an ov.conf, or OpenViking's default;
//! and the settings of its path locks the same config gives.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Result, bail};

use crate::inspect::fsread::{self, Symlinks};
use crate::openviking::ovconf::{self, PathLockConfig, PathLockProvider, StorageBackend};

/// An ov.conf larger than this is not a config file.
const CONFIG_CAP: usize = 4 << 20;

/// How the config file was found, in OpenViking's order of precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigVia {
    /// `--config FILE`.
    Flag,
    /// `$OPENVIKING_CONFIG_FILE`.
    Env,
    /// `~/.openviking/ov.conf`.
    Home,
    /// `/etc/openviking/ov.conf`.
    System,
}

impl ConfigVia {
    pub fn describe(self) -> &'static str {
        match self {
            ConfigVia::Flag => "--config",
            ConfigVia::Env => "$OPENVIKING_CONFIG_FILE",
            ConfigVia::Home => "~/.openviking/ov.conf",
            ConfigVia::System => "/etc/openviking/ov.conf",
        }
    }
}

/// Where a data directory's path came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Argument,
    Config {
        file: PathBuf,
        via: ConfigVia,
    },
    /// OpenViking's default `./data`; `config` names the file that lacked the key, if any.
    Default {
        config: Option<(PathBuf, ConfigVia)>,
    },
    /// Found among the open files of a running OpenViking process (`who --all`).
    Discovered,
}

impl Source {
    /// The short name used in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Argument => "argument",
            Source::Config { .. } => "config",
            Source::Default { .. } => "default",
            Source::Discovered => "process",
        }
    }

    pub fn config_file(&self) -> Option<&Path> {
        match self {
            Source::Config { file, .. }
            | Source::Default {
                config: Some((file, _)),
            } => Some(file),
            _ => None,
        }
    }
}

/// One directory to inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// Absolute, as given or configured; symlinks in it are not resolved here.
    pub path: PathBuf,
    pub source: Source,
    /// The config says `storage.skip_process_lock: true`.
    pub skip_process_lock: bool,
    /// How OpenViking keeps the path locks of this workspace.
    pub path_locks: PathLockSettings,
    /// Where its config says the server listens, and the key it wants.
    pub server: ovconf::ServerConfig,
}

/// OpenViking's path-lock settings for one workspace, each with where it
/// came from. A config describes only its own workspace: any other
/// directory gets OpenViking's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathLockSettings {
    /// How long a token that is not refreshed is held.
    pub lock_expire: Setting<Duration>,
    pub provider: Setting<PathLockProvider>,
    pub backend: Setting<StorageBackend>,
    /// The ov.conf that describes this workspace, when one was read: only
    /// then is a default OpenViking's default in fact, rather than a guess
    /// at a server whose config ovlock did not see.
    pub described_by: Option<PathBuf>,
}

/// The value in use and where it came from; a value the config sets that
/// OpenViking would refuse is kept as the fact it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting<T> {
    pub value: Result<T, ovconf::Invalid>,
    pub source: SettingSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingSource {
    /// OpenViking's default: no config sets it.
    Default,
    /// `key` (dotted, such as `storage.agfs.pathlock.lock_expire_secs`) in `file`.
    Config { key: &'static str, file: PathBuf },
}

/// OpenViking's `lock_expire_secs` when no config sets it (since 0.4.14;
/// 300 s up to 0.4.10, 1800 s in 0.4.11 to 0.4.13).
pub const DEFAULT_LOCK_EXPIRE: Duration = Duration::from_secs(30);

impl Default for PathLockSettings {
    /// OpenViking's defaults, for a workspace no config read describes.
    fn default() -> PathLockSettings {
        let settings = PathLockSettings::from_config(PathLockConfig::default(), Path::new(""));
        PathLockSettings {
            lock_expire: settings.lock_expire,
            provider: settings.provider,
            backend: settings.backend,
            described_by: None,
        }
    }
}

impl PathLockSettings {
    /// What `config`, read from `file`, sets, and OpenViking's defaults
    /// for the rest.
    fn from_config(config: PathLockConfig, file: &Path) -> PathLockSettings {
        PathLockSettings {
            lock_expire: Setting::of(config.lock_expire, DEFAULT_LOCK_EXPIRE, file),
            provider: Setting::of(config.provider, PathLockProvider::Filesystem, file),
            backend: Setting::of(config.backend, StorageBackend::Local, file),
            described_by: Some(file.to_path_buf()),
        }
    }
}

impl<T> Setting<T> {
    fn of(configured: Option<ovconf::Configured<T>>, default: T, file: &Path) -> Setting<T> {
        match configured {
            Some(ovconf::Configured { key, value }) => Setting {
                value,
                source: SettingSource::Config {
                    key,
                    file: file.to_path_buf(),
                },
            },
            None => Setting {
                value: Ok(default),
                source: SettingSource::Default,
            },
        }
    }
}

/// The outside world that resolution depends on, so tests can set it.
pub struct Env<'a> {
    pub config_flag: Option<&'a Path>,
    pub var: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<PathBuf>,
    /// The current directory, or why it cannot be had (it was deleted):
    /// needed only for relative paths.
    pub cwd: Result<PathBuf, String>,
}

impl Env<'_> {
    pub fn from_process(config_flag: Option<&Path>) -> Env<'_> {
        Env {
            config_flag,
            var: &|name| std::env::var(name).ok(),
            home: std::env::home_dir(),
            cwd: std::env::current_dir().map_err(|err| err.to_string()),
        }
    }
}

/// What `resolve` found.
#[derive(Debug)]
pub struct Resolved {
    pub workspaces: Vec<Workspace>,
    /// Things the user should know that do not stop the run: a variable in
    /// the config that is not set, a `$OPENVIKING_CONFIG_FILE` passed over.
    pub warnings: Vec<String>,
}

/// The directories to inspect: the arguments, each once, or else the
/// configured workspace.
///
/// With directories named, the config is read only when named itself
/// (`--config`, `$OPENVIKING_CONFIG_FILE`), for `skip_process_lock`: it
/// describes its own workspace, not whatever directory the user points at.
pub fn resolve(args: &[PathBuf], env: &Env) -> Result<Resolved> {
    let mut warnings = Vec::new();
    if !args.is_empty() {
        // A config typed on the command line must exist and parse; one from
        // the environment is only consulted, as it may have been set for
        // another workspace. Either way its skip_process_lock holds for its
        // own workspace. An empty variable names no file, as in find_config.
        let from_env = (env.var)("OPENVIKING_CONFIG_FILE").filter(|v| !v.is_empty());
        let named = match (env.config_flag, from_env) {
            (Some(_), _) => configured(env, &mut warnings)?,
            (None, Some(value)) => match configured(env, &mut warnings) {
                Ok(named) => named,
                Err(err) => {
                    warnings.push(format!(
                        "$OPENVIKING_CONFIG_FILE names {value}, which could not be used: \
                         {err:#}; its storage.skip_process_lock is not applied"
                    ));
                    None
                }
            },
            (None, None) => None,
        };
        let mut seen = HashSet::new();
        let mut workspaces = Vec::new();
        for dir in args {
            let path = absolute(&env.cwd, dir)?;
            if !seen.insert(identity(&path)) {
                continue;
            }
            let own = named.as_ref().filter(|w| same_directory(&w.path, &path));
            workspaces.push(Workspace {
                path,
                source: Source::Argument,
                skip_process_lock: own.is_some_and(|w| w.skip_process_lock),
                path_locks: own.map(|w| w.path_locks.clone()).unwrap_or_default(),
                server: own.map(|w| w.server.clone()).unwrap_or_default(),
            });
        }
        return Ok(Resolved {
            workspaces,
            warnings,
        });
    }
    let workspace = match configured(env, &mut warnings)? {
        Some(workspace) => workspace,
        None => Workspace {
            path: absolute(&env.cwd, Path::new("data"))?,
            source: Source::Default { config: None },
            skip_process_lock: false,
            path_locks: PathLockSettings::default(),
            server: ovconf::ServerConfig::default(),
        },
    };
    Ok(Resolved {
        workspaces: vec![workspace],
        warnings,
    })
}

/// The workspace the config names, or None when there is no config file.
/// Adds a warning for each variable the config uses that is not set.
fn configured(env: &Env, warnings: &mut Vec<String>) -> Result<Option<Workspace>> {
    let Some((file, via)) = find_config(env)? else {
        return Ok(None);
    };
    let raw = match fsread::read_capped(&file, CONFIG_CAP, Symlinks::Follow) {
        Ok(snapshot) if snapshot.truncated => {
            bail!(
                "config file {} is larger than {} MiB; it is not an ov.conf",
                file.display(),
                CONFIG_CAP >> 20
            )
        }
        Ok(snapshot) => snapshot.content,
        Err(err) => bail!(
            "cannot read config file {} ({}): {err}",
            file.display(),
            via.describe()
        ),
    };
    let config = ovconf::parse(&raw, env.var, env.home.as_deref())
        .map_err(|err| anyhow::anyhow!("config file {} {err}", file.display()))?;
    warnings.extend(config.unset_vars.iter().map(|var| {
        format!(
            "config file {}: {var} is not set, so it stays as written (OpenViking does the same)",
            file.display()
        )
    }));
    let path_locks = PathLockSettings::from_config(config.path_locks, &file);
    let (path, source) = match config.workspace {
        Some(workspace) => (
            absolute(&env.cwd, &workspace)?,
            Source::Config { file, via },
        ),
        None => (
            absolute(&env.cwd, Path::new("data"))?,
            Source::Default {
                config: Some((file, via)),
            },
        ),
    };
    Ok(Some(Workspace {
        path,
        source,
        skip_process_lock: config.skip_process_lock,
        path_locks,
        server: config.server,
    }))
}

/// Directories found in the open files of running processes.
pub fn discovered(dirs: Vec<PathBuf>) -> Vec<Workspace> {
    dirs.into_iter()
        .map(|path| Workspace {
            path,
            source: Source::Discovered,
            skip_process_lock: false,
            path_locks: PathLockSettings::default(),
            server: ovconf::ServerConfig::default(),
        })
        .collect()
}

/// OpenViking's search order; an explicitly named file must exist.
fn find_config(env: &Env) -> Result<Option<(PathBuf, ConfigVia)>> {
    if let Some(flag) = env.config_flag {
        return explicit(absolute(&env.cwd, flag)?, ConfigVia::Flag).map(Some);
    }
    if let Some(var) = (env.var)("OPENVIKING_CONFIG_FILE").filter(|v| !v.is_empty()) {
        return explicit(absolute(&env.cwd, Path::new(&var))?, ConfigVia::Env).map(Some);
    }
    let home = env
        .home
        .as_ref()
        .map(|h| (h.join(".openviking/ov.conf"), ConfigVia::Home));
    let system = Some((PathBuf::from("/etc/openviking/ov.conf"), ConfigVia::System));
    Ok([home, system]
        .into_iter()
        .flatten()
        .find(|(path, _)| path.exists()))
}

fn explicit(path: PathBuf, via: ConfigVia) -> Result<(PathBuf, ConfigVia)> {
    match std::fs::metadata(&path) {
        Ok(_) => Ok((path, via)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            bail!(
                "config file {} (from {}) does not exist",
                path.display(),
                via.describe()
            )
        }
        Err(err) => bail!(
            "cannot read config file {} (from {}): {}",
            path.display(),
            via.describe(),
            fsread::describe(&err)
        ),
    }
}

/// The same directory, however spelled: compared resolved where both exist.
fn same_directory(a: &Path, b: &Path) -> bool {
    identity(a) == identity(b)
}

/// What tells directories apart: the resolved path where there is one, else
/// the path as given (absolute), since a missing directory resolves to nothing.
fn identity(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `path` made absolute against the current directory, with `.` components
/// and repeated separators dropped (`..` stays: it may cross a symlink).
fn absolute(cwd: &Result<PathBuf, String>, path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match cwd {
            Ok(cwd) => cwd.join(path),
            Err(why) => bail!(
                "cannot make {} absolute: the current directory cannot be determined ({why})",
                path.display()
            ),
        }
    };
    Ok(joined.components().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with<'a>(
        dir: &Path,
        flag: Option<&'a Path>,
        var: &'a dyn Fn(&str) -> Option<String>,
    ) -> Env<'a> {
        Env {
            config_flag: flag,
            var,
            home: Some(dir.join("home")),
            cwd: Ok(dir.join("cwd")),
        }
    }

    #[test]
    fn arguments_win_and_are_made_absolute() {
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let got = resolve(
            &[PathBuf::from("rel"), PathBuf::from("/abs")],
            &env_with(dir.path(), None, &none),
        )
        .unwrap()
        .workspaces;
        assert_eq!(got[0].path, dir.path().join("cwd/rel"));
        assert_eq!(got[1].path, PathBuf::from("/abs"));
        assert!(got.iter().all(|w| w.source == Source::Argument));
    }

    #[test]
    fn env_var_config_with_variables_and_skip_flag() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ov.conf");
        std::fs::write(
            &conf,
            r#"{"storage":{"workspace":"${ROOT}/ws","skip_process_lock":true}}"#,
        )
        .unwrap();
        let conf_s = conf.to_str().unwrap().to_string();
        let var = move |name: &str| match name {
            "OPENVIKING_CONFIG_FILE" => Some(conf_s.clone()),
            "ROOT" => Some("/srv".into()),
            _ => None,
        };
        let got = resolve(&[], &env_with(dir.path(), None, &var)).unwrap();
        assert_eq!(got.warnings, Vec::<String>::new());
        let got = got.workspaces;
        assert_eq!(got[0].path, PathBuf::from("/srv/ws"));
        assert_eq!(
            got[0].source,
            Source::Config {
                file: conf,
                via: ConfigVia::Env
            }
        );
        assert!(got[0].skip_process_lock);
    }

    #[test]
    fn path_lock_settings_come_from_the_workspace_s_own_config() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("cwd");
        std::fs::create_dir_all(cwd.join("ws")).unwrap();
        std::fs::create_dir_all(cwd.join("other")).unwrap();
        let conf = dir.path().join("ov.conf");
        std::fs::write(
            &conf,
            format!(
                r#"{{"storage": {{"workspace": "{}",
                    "transaction": {{"lock_expire": 90}},
                    "agfs": {{"pathlock": {{"provider": "cache"}}}}}}}}"#,
                cwd.join("ws").display()
            ),
        )
        .unwrap();
        let none = |_: &str| None;
        let from_config = |key| SettingSource::Config {
            key,
            file: conf.clone(),
        };
        let args = [PathBuf::from("ws"), PathBuf::from("other")];
        for args in [&[][..], &args[..1]] {
            let got = resolve(args, &env_with(dir.path(), Some(&conf), &none)).unwrap();
            let locks = &got.workspaces[0].path_locks;
            assert_eq!(
                locks.lock_expire,
                Setting {
                    value: Ok(Duration::from_secs(90)),
                    source: from_config("storage.transaction.lock_expire"),
                },
                "{args:?}"
            );
            assert_eq!(
                locks.provider,
                Setting {
                    value: Ok(PathLockProvider::Cache),
                    source: from_config("storage.agfs.pathlock.provider"),
                }
            );
            assert_eq!(locks.backend.source, SettingSource::Default);
        }
        // Another directory is not the config's to describe.
        let got = resolve(&args, &env_with(dir.path(), Some(&conf), &none)).unwrap();
        assert_eq!(got.workspaces[1].path_locks, PathLockSettings::default());
        assert_eq!(
            PathLockSettings::default().lock_expire.value,
            Ok(Duration::from_secs(30))
        );
    }

    #[test]
    fn home_config_without_workspace_means_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/.openviking")).unwrap();
        let conf = dir.path().join("home/.openviking/ov.conf");
        std::fs::write(&conf, "{}").unwrap();
        let none = |_: &str| None;
        let got = resolve(&[], &env_with(dir.path(), None, &none))
            .unwrap()
            .workspaces;
        assert_eq!(got[0].path, dir.path().join("cwd/data"));
        assert_eq!(
            got[0].source,
            Source::Default {
                config: Some((conf, ConfigVia::Home))
            }
        );
    }

    #[test]
    fn explicit_config_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let missing = dir.path().join("nope.conf");
        let err = resolve(&[], &env_with(dir.path(), Some(&missing), &none)).unwrap_err();
        assert!(
            err.to_string().contains("nope.conf") && err.to_string().contains("does not exist"),
            "{err}"
        );

        let bad = dir.path().join("bad.conf");
        std::fs::write(&bad, "{\"storage\": ").unwrap();
        let err = resolve(&[], &env_with(dir.path(), Some(&bad), &none))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.conf") && err.contains("line 1, column"),
            "{err}"
        );
    }

    #[test]
    fn a_directory_named_twice_is_inspected_once() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("cwd");
        std::fs::create_dir_all(cwd.join("ws")).unwrap();
        std::fs::create_dir_all(cwd.join("other")).unwrap();
        std::os::unix::fs::symlink("ws", cwd.join("link")).unwrap();
        let none = |_: &str| None;
        let cases: [(&[&str], &[&str]); 7] = [
            (&["ws", "ws", "./ws"], &["ws"]),
            (&["./ws", "ws"], &["ws"]),
            (&["link", "ws"], &["link"]),
            (&["ws", "other", "ws/", "link"], &["ws", "other"]),
            (&["gone", ".//gone", "gone/."], &["gone"]),
            // Missing, so not resolved: `..` may cross a symlink.
            (&["gone", "x/../gone"], &["gone", "x/../gone"]),
            (&["other", "ws"], &["other", "ws"]),
        ];
        for (args, want) in cases {
            let args: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
            let got = resolve(&args, &env_with(dir.path(), None, &none)).unwrap();
            let got: Vec<PathBuf> = got.workspaces.into_iter().map(|w| w.path).collect();
            let want: Vec<PathBuf> = want.iter().map(|p| cwd.join(p)).collect();
            assert_eq!(got, want, "{args:?}");
        }
    }

    #[test]
    fn warnings_for_unset_variables_and_an_unusable_env_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("cwd")).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        };
        let unset = write(
            "unset.conf",
            r#"{"storage":{"workspace":"$NOPE/${NOPE}/$ALSO","skip_process_lock":true}}"#,
        );
        let broken = write("cwd/broken.conf", "not json");
        std::fs::create_dir_all(dir.path().join("home/.openviking")).unwrap();
        write("home/.openviking/ov.conf", "not json either");
        let missing = dir.path().join("missing.conf");
        let missing = missing.to_str().unwrap();
        let not_set = |file: &str, var: &str| {
            format!(
                "config file {file}: {var} is not set, so it stays as written \
                 (OpenViking does the same)"
            )
        };
        let passed_over = |value: &str, why: &str| {
            format!(
                "$OPENVIKING_CONFIG_FILE names {value}, which could not be used: \
                 {why}; its storage.skip_process_lock is not applied"
            )
        };
        /// Directories, --config, $OPENVIKING_CONFIG_FILE, and the warnings.
        type Case<'a> = (&'a [&'a str], Option<&'a str>, Option<&'a str>, Vec<String>);
        let cases: [Case; 7] = [
            (
                &[],
                None,
                Some(&unset),
                vec![not_set(&unset, "$NOPE"), not_set(&unset, "$ALSO")],
            ),
            (
                &["ws"],
                Some(&unset),
                None,
                vec![not_set(&unset, "$NOPE"), not_set(&unset, "$ALSO")],
            ),
            (
                &["ws"],
                None,
                Some(&unset),
                vec![not_set(&unset, "$NOPE"), not_set(&unset, "$ALSO")],
            ),
            (
                &["ws"],
                None,
                Some(&broken),
                vec![passed_over(
                    &broken,
                    &format!(
                        "config file {broken} is not valid JSON at line 1, column 2: \
                         expected ident"
                    ),
                )],
            ),
            (
                &["ws"],
                None,
                Some(missing),
                vec![passed_over(
                    missing,
                    &format!("config file {missing} (from $OPENVIKING_CONFIG_FILE) does not exist"),
                )],
            ),
            // Named as the variable has it; the reason gives the file it means.
            (
                &["ws"],
                None,
                Some("broken.conf"),
                vec![passed_over(
                    "broken.conf",
                    &format!(
                        "config file {broken} is not valid JSON at line 1, column 2: \
                         expected ident"
                    ),
                )],
            ),
            // An empty variable names no file; the broken home config is not read.
            (&["ws"], None, Some(""), vec![]),
        ];
        for (args, flag, value, want) in cases {
            let var = |name: &str| {
                value
                    .filter(|_| name == "OPENVIKING_CONFIG_FILE")
                    .map(str::to_string)
            };
            let flag = flag.map(Path::new);
            let args: Vec<PathBuf> = args.iter().map(PathBuf::from).collect();
            let got = resolve(&args, &env_with(dir.path(), flag, &var))
                .unwrap_or_else(|err| panic!("{args:?} {flag:?} {value:?}: {err}"));
            assert_eq!(got.warnings, want, "{args:?} {flag:?} {value:?}");
        }
    }

    #[test]
    fn a_json_error_after_expansion_says_so_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("ov.conf");
        std::fs::write(&conf, r#"{"storage":{"workspace":"${ROOT}/ws"}}"#).unwrap();
        let var = |name: &str| (name == "ROOT").then(|| r"C:\Users".to_string());
        let err = resolve(&[], &env_with(dir.path(), Some(&conf), &var))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "config file {} is not valid JSON after expanding variables ($ROOT) \
                 at line 1, column 29: invalid escape",
                conf.display()
            )
        );
    }
}
