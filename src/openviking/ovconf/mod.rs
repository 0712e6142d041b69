//! Parsing ov.conf the way OpenViking reads it: UTF-8 with an optional BOM,
//! `$VAR` and `${VAR}` expanded in the raw text (unset ones left as written),
//! then JSON.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

mod server;
pub use server::{Secret, ServerConfig};

/// The parts of ov.conf that decide which directory is locked and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageConfig {
    /// `storage.workspace`, after `~` expansion; relative paths stay relative.
    pub workspace: Option<PathBuf>,
    /// `storage.skip_process_lock`.
    pub skip_process_lock: bool,
    /// What decides where OpenViking keeps its path locks, and for how long.
    pub path_locks: PathLockConfig,
    /// Variables the text refers to, anywhere, that are not set here and so
    /// stay as written: the server's environment may well have them.
    pub unset_vars: Vec<Var>,
    /// Where and with what key to ask the server (`server.*`).
    pub server: ServerConfig,
}

/// The settings of OpenViking's path locks that the config sets; each is
/// None where the config leaves it to OpenViking's default.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathLockConfig {
    /// How long an unrefreshed token lives: `storage.agfs.pathlock.
    /// lock_expire_secs`, else the deprecated `storage.transaction.lock_expire`.
    pub lock_expire: Option<Configured<Duration>>,
    /// `storage.agfs.pathlock.provider`.
    pub provider: Option<Configured<PathLockProvider>>,
    /// `storage.agfs.backend`.
    pub backend: Option<Configured<StorageBackend>>,
}

/// A value the config sets, with the key that set it. A value OpenViking
/// refuses (it then refuses to start) is kept as a fact, not an error: the
/// config may be older or newer than the server that wrote the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured<T> {
    pub key: &'static str,
    pub value: Result<T, Invalid>,
}

/// A setting OpenViking would reject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The value as the config has it, in JSON, cut short if long.
    pub found: String,
    /// What OpenViking accepts there.
    pub expected: &'static str,
}

/// Where the path-lock tokens live (`storage.agfs.pathlock.provider`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathLockProvider {
    /// Files in the storage tree: OpenViking's default.
    Filesystem,
    /// Inside the server process: nothing outlives it.
    Memory,
    /// In the cache service (Redis), from 0.4.21.
    Cache,
}

/// Where the storage tree lives (`storage.agfs.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// `{workspace}/viking/`: OpenViking's default.
    Local,
    /// S3 objects, tokens included.
    S3,
    /// Inside the server process.
    Memory,
}

const LOCK_EXPIRE_SECS: &str = "storage.agfs.pathlock.lock_expire_secs";
const LOCK_EXPIRE_DEPRECATED: &str = "storage.transaction.lock_expire";
const PROVIDER: &str = "storage.agfs.pathlock.provider";
const BACKEND: &str = "storage.agfs.backend";

/// A variable named in the config text, shown as `$NAME`, or `${NAME}`
/// when the name could not be written without braces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Var(pub String);

impl std::fmt::Display for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.chars().all(is_name_char) {
            write!(f, "${}", self.0)
        } else {
            write!(f, "${{{}}}", self.0)
        }
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Why a config's text is not a usable ov.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    NotUtf8 {
        offset: usize,
    },
    /// `line` and `column` are in the text after expansion, so the
    /// variables that were expanded are named too.
    Json {
        line: usize,
        column: usize,
        message: String,
        expanded: Vec<Var>,
    },
    NotAnObject,
    WrongType {
        key: &'static str,
        expected: &'static str,
    },
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::NotUtf8 { offset } => {
                write!(f, "is not UTF-8 (invalid byte at offset {offset})")
            }
            ConfigError::Json {
                line,
                column,
                message,
                expanded,
            } => {
                f.write_str("is not valid JSON ")?;
                if !expanded.is_empty() {
                    let names: Vec<String> = expanded.iter().map(Var::to_string).collect();
                    write!(f, "after expanding variables ({}) ", names.join(", "))?;
                }
                write!(f, "at line {line}, column {column}: {message}")
            }
            ConfigError::NotAnObject => f.write_str("is not a JSON object"),
            ConfigError::WrongType { key, expected } => {
                write!(f, "has {key} that is not {expected}")
            }
        }
    }
}

/// Parses ov.conf text; `env` looks variables up and `home` expands `~`.
pub fn parse(
    raw: &[u8],
    env: impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<StorageConfig, ConfigError> {
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    let text = std::str::from_utf8(raw).map_err(|e| ConfigError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let Expansion {
        text,
        expanded,
        unset,
    } = expand_vars(text, env);
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| ConfigError::Json {
        line: e.line(),
        column: e.column(),
        message: json_message(&e),
        expanded,
    })?;
    let root = value.as_object().ok_or(ConfigError::NotAnObject)?;
    let Some(storage) = root.get("storage").filter(|v| !v.is_null()) else {
        return Ok(StorageConfig {
            unset_vars: unset,
            server: server::server_config(root),
            ..StorageConfig::default()
        });
    };
    let storage = storage.as_object().ok_or(ConfigError::WrongType {
        key: "storage",
        expected: "an object",
    })?;
    let workspace = match storage.get("workspace") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(expand_user(s, home)),
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "storage.workspace",
                expected: "a string",
            });
        }
    };
    let skip_process_lock = match storage.get("skip_process_lock") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ConfigError::WrongType {
                key: "storage.skip_process_lock",
                expected: "true or false",
            });
        }
    };
    Ok(StorageConfig {
        workspace,
        skip_process_lock,
        path_locks: path_lock_config(storage),
        unset_vars: unset,
        server: server::server_config(root),
    })
}

/// The path-lock settings under `storage`, as OpenViking 0.5.2 validates
/// them. The deprecated key counts only when the new one is absent; a key
/// that is present counts even when it is null or wrong (OpenViking then
/// refuses the config).
fn path_lock_config(storage: &Map<String, Value>) -> PathLockConfig {
    let lock_expire = match setting(storage, LOCK_EXPIRE_SECS) {
        None => setting(storage, LOCK_EXPIRE_DEPRECATED),
        set => set,
    }
    .map(|(key, value)| Configured {
        key,
        value: value.and_then(lock_expire),
    });
    PathLockConfig {
        lock_expire,
        provider: choice(
            storage,
            PROVIDER,
            |s| match s {
                "filesystem" => Some(PathLockProvider::Filesystem),
                "memory" => Some(PathLockProvider::Memory),
                "cache" => Some(PathLockProvider::Cache),
                _ => None,
            },
            "\"filesystem\", \"memory\" or \"cache\"",
        ),
        backend: choice(
            storage,
            BACKEND,
            |s| match s {
                "local" => Some(StorageBackend::Local),
                "s3" => Some(StorageBackend::S3),
                "memory" => Some(StorageBackend::Memory),
                _ => None,
            },
            "\"local\", \"s3\" or \"memory\"",
        ),
    }
}

/// A setting that names one of a few choices.
fn choice<T>(
    storage: &Map<String, Value>,
    key: &'static str,
    parse: fn(&str) -> Option<T>,
    expected: &'static str,
) -> Option<Configured<T>> {
    setting(storage, key).map(|(key, value)| Configured {
        key,
        value: value.and_then(|v| match v {
            Value::String(s) => parse(s).ok_or_else(|| invalid(v, expected)),
            _ => Err(invalid(v, expected)),
        }),
    })
}

/// The value at `key` (dotted, below `storage.`), if the config has the
/// key; an ancestor that is there but is not an object makes the key's
/// value invalid, since OpenViking rejects the config over it.
fn setting<'a>(
    storage: &'a Map<String, Value>,
    key: &'static str,
) -> Option<(&'static str, Result<&'a Value, Invalid>)> {
    let mut parts = key.split('.').skip(1);
    let mut map = storage;
    let mut part = parts.next()?;
    for next in parts {
        match map.get(part)? {
            Value::Object(inner) => map = inner,
            other => return Some((key, Err(invalid(other, "an object")))),
        }
        part = next;
    }
    map.get(part).map(|value| (key, Ok(value)))
}

/// Seconds as OpenViking takes them (a float, from a number, a boolean or
/// a numeric string), which its engine requires to be finite, at least 1,
/// and within what a duration can hold.
fn lock_expire(value: &Value) -> Result<Duration, Invalid> {
    let expected = "a number of seconds, at least 1";
    let secs = match value {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::String(s) => python_float(s),
        _ => None,
    };
    secs.filter(|s| *s >= 1.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| invalid(value, expected))
}

/// Python's `float(text)` for plain decimals: surrounding whitespace, and
/// single underscores between digits.
fn python_float(text: &str) -> Option<f64> {
    let text = text.trim();
    let bytes = text.as_bytes();
    let grouped = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'_'
            || (i > 0
                && bytes[i - 1].is_ascii_digit()
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    grouped.then(|| text.replace('_', "").parse().ok())?
}

fn invalid(value: &Value, expected: &'static str) -> Invalid {
    const SHOWN: usize = 60;
    let mut found = value.to_string();
    if found.len() > SHOWN {
        let cut = (0..=SHOWN).rev().find(|&i| found.is_char_boundary(i));
        found.truncate(cut.unwrap_or(0));
        found.push('…');
    }
    Invalid { found, expected }
}

/// serde_json appends " at line L column C" to its messages; the caller already says where.
fn json_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    match full.rfind(" at line ") {
        Some(cut) => full[..cut].to_string(),
        None => full,
    }
}

/// The text after `expand_vars`, and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    pub text: String,
    /// Variables replaced by their values, each once, in order of first appearance.
    pub expanded: Vec<Var>,
    /// Variables left as written because they are not set, likewise.
    pub unset: Vec<Var>,
}

/// Python's `os.path.expandvars` on POSIX: `$name` (ASCII word characters)
/// and `${anything}`; a variable that is not set stays as written.
pub fn expand_vars(text: &str, env: impl Fn(&str) -> Option<String>) -> Expansion {
    let mut out = String::with_capacity(text.len());
    let mut expanded = Vec::new();
    let mut unset = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, written_len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !is_name_char(c))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        // None: not a variable at all (a lone `$`, an unclosed `${`, `${}`).
        let lookup = (!name.is_empty()).then(|| env(name));
        if let Some(Some(value)) = &lookup {
            out.push_str(value);
            note(&mut expanded, name);
        } else {
            out.push('$');
            out.push_str(&after[..written_len]);
            // Python looks `$1` up too, but a name that starts with a digit
            // is a shell's positional parameter, never exported: `$1` or
            // `$100` in a config is text, not a forgotten variable.
            if lookup.is_some() && !name.starts_with(|c: char| c.is_ascii_digit()) {
                note(&mut unset, name);
            }
        }
        rest = &after[written_len..];
    }
    out.push_str(rest);
    Expansion {
        text: out,
        expanded,
        unset,
    }
}

fn note(vars: &mut Vec<Var>, name: &str) {
    if !vars.iter().any(|v| v.0 == name) {
        vars.push(Var(name.to_string()));
    }
}

/// `~` and `~/...` become the home directory; anything else is left alone.
fn expand_user(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix('~'), home) {
        (Some(""), Some(home)) => home.to_path_buf(),
        (Some(rest), Some(home)) if rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        _ => PathBuf::from(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/ov".into()),
            "WS" => Some("/srv/ws".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn parse_str(text: &str) -> Result<StorageConfig, ConfigError> {
        parse(text.as_bytes(), env, Some(Path::new("/home/ov")))
    }

    #[test]
    fn expands_like_python_expandvars() {
        // (input, text after expansion, variables expanded, variables unset)
        let cases: [(&str, &str, &[&str], &[&str]); 17] = [
            ("$WS/a", "/srv/ws/a", &["WS"], &[]),
            ("${WS}/a", "/srv/ws/a", &["WS"], &[]),
            ("$WS_x", "$WS_x", &[], &["WS_x"]),
            ("${NOPE}/a", "${NOPE}/a", &[], &["NOPE"]),
            ("$NOPE", "$NOPE", &[], &["NOPE"]),
            ("a$", "a$", &[], &[]),
            ("${WS", "${WS", &[], &[]),
            ("${}", "${}", &[], &[]),
            ("$$WS", "$/srv/ws", &["WS"], &[]),
            ("x${EMPTY}y", "xy", &["EMPTY"], &[]),
            ("$1", "$1", &[], &[]),
            ("${1}x$100", "${1}x$100", &[], &[]),
            ("ü$WS€", "ü/srv/ws€", &["WS"], &[]),
            (
                "$B $A ${B} $WS $A $WS",
                "$B $A ${B} /srv/ws $A /srv/ws",
                &["WS"],
                &["B", "A"],
            ),
            ("${a b}", "${a b}", &[], &["a b"]),
            ("$-x", "$-x", &[], &[]),
            ("${NOPE${WS}}", "${NOPE${WS}}", &[], &["NOPE${WS"]),
        ];
        for (input, text, expanded, unset) in cases {
            let got = expand_vars(input, env);
            let names = |vars: &[Var]| vars.iter().map(|v| v.0.clone()).collect::<Vec<_>>();
            assert_eq!(got.text, text, "input {input:?}");
            assert_eq!(names(&got.expanded), expanded, "expanded in {input:?}");
            assert_eq!(names(&got.unset), unset, "unset in {input:?}");
        }
    }

    #[test]
    fn a_variable_is_shown_as_it_could_be_written() {
        for (name, shown) in [
            ("WS", "$WS"),
            ("_x1", "$_x1"),
            ("a b", "${a b}"),
            ("ü", "${ü}"),
        ] {
            assert_eq!(Var(name.into()).to_string(), shown);
        }
    }

    #[test]
    fn unset_variables_are_reported_wherever_they_are() {
        for (text, unset) in [
            (r#"{"storage": {"workspace": "$NOPE/ws"}}"#, &["NOPE"][..]),
            (
                r#"{"server": {"key": "${KEY}"}, "storage": null}"#,
                &["KEY"],
            ),
            (r#"{"price": "$1", "storage": {"workspace": "$WS"}}"#, &[]),
        ] {
            let got = parse_str(text).unwrap().unset_vars;
            let got: Vec<&str> = got.iter().map(|v| v.0.as_str()).collect();
            assert_eq!(got, unset, "{text}");
        }
    }

    #[test]
    fn a_json_error_after_expansion_names_the_variables() {
        let env = |name: &str| match name {
            "Q" => Some("a\"b".into()),
            "WS" => Some("/srv/ws".into()),
            _ => None,
        };
        let cases = [
            (
                r#"{"storage": {"workspace": "$WS/${Q}", "x": "$WS$NOPE"}}"#,
                "is not valid JSON after expanding variables ($WS, $Q) \
                 at line 1, column 38: expected `,` or `}`",
            ),
            (
                r#"{"storage": {"workspace": "$NOPE"},}"#,
                "is not valid JSON at line 1, column 36: trailing comma",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text.as_bytes(), env, None).unwrap_err();
            assert_eq!(err.to_string(), want, "{text}");
        }
    }

    #[test]
    fn reads_workspace_and_skip_flag() {
        let got =
            parse_str(r#"{"storage": {"workspace": "${WS}/data", "skip_process_lock": true}}"#)
                .unwrap();
        assert_eq!(got.workspace, Some(PathBuf::from("/srv/ws/data")));
        assert!(got.skip_process_lock);
    }

    #[test]
    fn accepts_a_bom_and_expands_the_home_directory() {
        let got = parse(
            "\u{feff}{\"storage\":{\"workspace\":\"~/ovdata\"}}".as_bytes(),
            env,
            Some(Path::new("/home/ov")),
        )
        .unwrap();
        assert_eq!(got.workspace, Some(PathBuf::from("/home/ov/ovdata")));
        assert_eq!(
            parse_str(r#"{"storage":{"workspace":"~"}}"#)
                .unwrap()
                .workspace,
            Some(PathBuf::from("/home/ov"))
        );
        assert_eq!(
            parse_str(r#"{"storage":{"workspace":"~bob/x"}}"#)
                .unwrap()
                .workspace,
            Some(PathBuf::from("~bob/x"))
        );
    }

    #[test]
    fn missing_keys_mean_defaults() {
        for text in [
            "{}",
            r#"{"storage": null}"#,
            r#"{"storage": {}}"#,
            r#"{"server": {"host": "127.0.0.1"}}"#,
        ] {
            assert_eq!(parse_str(text).unwrap(), StorageConfig::default(), "{text}");
        }
    }

    #[test]
    fn says_where_the_json_broke() {
        match parse_str("{\n  \"storage\": {\"workspace\": }\n}") {
            Err(ConfigError::Json {
                line,
                column,
                message,
                expanded,
            }) => {
                assert_eq!((line, column), (2, 28));
                assert!(expanded.is_empty(), "{expanded:?}");
                assert!(!message.contains("at line"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_str("[]"), Err(ConfigError::NotAnObject));
        assert!(matches!(
            parse_str(r#"{"storage": {"workspace": 3}}"#),
            Err(ConfigError::WrongType { .. })
        ));
        assert!(matches!(
            parse(b"{\"a\": \"\xff\"}", env, None),
            Err(ConfigError::NotUtf8 { offset: 7 })
        ));
    }

    #[test]
    fn reads_the_path_lock_settings_as_openviking_does() {
        let expire = |text: &str| parse_str(text).unwrap().path_locks.lock_expire;
        let secs = |key, s: f64| {
            Some(Configured {
                key,
                value: Ok(Duration::from_secs_f64(s)),
            })
        };
        let bad = |key, found: &str| {
            Some(Configured {
                key,
                value: Err(Invalid {
                    found: found.into(),
                    expected: "a number of seconds, at least 1",
                }),
            })
        };
        let new = LOCK_EXPIRE_SECS;
        let old = LOCK_EXPIRE_DEPRECATED;
        let cases = [
            ("{}", None),
            (r#"{"storage": {"agfs": {}}}"#, None),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": 12}}}}"#,
                secs(new, 12.0),
            ),
            (
                r#"{"storage": {"transaction": {"lock_expire": 2.5}}}"#,
                secs(old, 2.5),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": 40}},
                                "transaction": {"lock_expire": 5}}}"#,
                secs(new, 40.0),
            ),
            // Present, however wrong, the new key wins: OpenViking refuses it.
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": null}},
                                "transaction": {"lock_expire": 5}}}"#,
                bad(new, "null"),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": " 1_000 "}}}}"#,
                secs(new, 1000.0),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": true}}}}"#,
                secs(new, 1.0),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": 0.5}}}}"#,
                bad(new, "0.5"),
            ),
            (
                r#"{"storage": {"transaction": {"lock_expire": -3}}}"#,
                bad(old, "-3"),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": 1e300}}}}"#,
                bad(new, "1e+300"),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": "inf"}}}}"#,
                bad(new, "\"inf\""),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": "30s"}}}}"#,
                bad(new, "\"30s\""),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": "_1"}}}}"#,
                bad(new, "\"_1\""),
            ),
            (
                r#"{"storage": {"agfs": {"pathlock": {"lock_expire_secs": [30]}}}}"#,
                bad(new, "[30]"),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(expire(text), want, "{text}");
        }
        let long = format!(
            r#"{{"storage": {{"transaction": {{"lock_expire": "{}"}}}}}}"#,
            "é".repeat(100)
        );
        match expire(&long).map(|c| c.value) {
            Some(Err(Invalid { found, .. })) => {
                assert!(found.len() <= 64 && found.ends_with('…'), "{found}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_where_the_tokens_are_kept() {
        let locks = |text: &str| parse_str(text).unwrap().path_locks;
        let got =
            locks(r#"{"storage": {"agfs": {"backend": "s3", "pathlock": {"provider": "cache"}}}}"#);
        assert_eq!(
            got.provider,
            Some(Configured {
                key: PROVIDER,
                value: Ok(PathLockProvider::Cache)
            })
        );
        assert_eq!(
            got.backend,
            Some(Configured {
                key: BACKEND,
                value: Ok(StorageBackend::S3)
            })
        );
        assert_eq!(
            locks(r#"{"storage": {"agfs": {"pathlock": {"provider": "memory"}}}}"#).provider,
            Some(Configured {
                key: PROVIDER,
                value: Ok(PathLockProvider::Memory)
            })
        );
        let got =
            locks(r#"{"storage": {"agfs": {"backend": 3, "pathlock": {"provider": "redis"}}}}"#);
        assert!(matches!(
            got.backend,
            Some(Configured { value: Err(Invalid { ref found, .. }), .. }) if found == "3"
        ));
        assert!(matches!(
            got.provider,
            Some(Configured { value: Err(Invalid { ref found, .. }), .. }) if found == "\"redis\""
        ));
        // An ancestor that is not an object spoils every key below it.
        let got = locks(r#"{"storage": {"agfs": "local"}}"#);
        for setting in [
            got.provider.map(|c| c.value.map(|_| ())),
            got.backend.map(|c| c.value.map(|_| ())),
        ] {
            assert_eq!(
                setting,
                Some(Err(Invalid {
                    found: "\"local\"".into(),
                    expected: "an object"
                }))
            );
        }
        assert_eq!(locks("{}"), PathLockConfig::default());
    }

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&raw, env, None);
        }

        #[test]
        fn text_without_dollars_is_unchanged(text in "[^$]*") {
            let got = expand_vars(&text, env);
            prop_assert_eq!(got.text, text);
            prop_assert!(got.expanded.is_empty() && got.unset.is_empty());
        }
    }
}
