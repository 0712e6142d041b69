//! Parsing ov.conf the way OpenViking reads it: UTF-8 with an optional BOM,
//! `$VAR` and `${VAR}` expanded in the raw text (unset ones left as written),
//! then JSON.

use std::path::{Path, PathBuf};

/// The parts of ov.conf that decide which directory is locked and how.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StorageConfig {
    /// `storage.workspace`, after `~` expansion; relative paths stay relative.
    pub workspace: Option<PathBuf>,
    /// `storage.skip_process_lock`.
    pub skip_process_lock: bool,
}

/// Why a config's text is not a usable ov.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    NotUtf8 {
        offset: usize,
    },
    Json {
        line: usize,
        column: usize,
        message: String,
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
            } => {
                write!(
                    f,
                    "is not valid JSON at line {line}, column {column}: {message}"
                )
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
    let expanded = expand_vars(text, env);
    let value: serde_json::Value =
        serde_json::from_str(&expanded).map_err(|e| ConfigError::Json {
            line: e.line(),
            column: e.column(),
            message: json_message(&e),
        })?;
    let root = value.as_object().ok_or(ConfigError::NotAnObject)?;
    let Some(storage) = root.get("storage").filter(|v| !v.is_null()) else {
        return Ok(StorageConfig::default());
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
    })
}

/// serde_json appends " at line L column C" to its messages; the caller already says where.
fn json_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    match full.rfind(" at line ") {
        Some(cut) => full[..cut].to_string(),
        None => full,
    }
}

/// Python's `os.path.expandvars` on POSIX: `$name` (ASCII word characters)
/// and `${anything}`; a variable that is not set stays as written.
pub fn expand_vars(text: &str, env: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
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
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (written_len, env(name)) {
            (len, Some(value)) if len > 0 && !name.is_empty() => out.push_str(&value),
            _ => {
                out.push('$');
                out.push_str(&after[..written_len]);
            }
        }
        rest = &after[written_len..];
    }
    out.push_str(rest);
    out
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
        let cases = [
            ("$WS/a", "/srv/ws/a"),
            ("${WS}/a", "/srv/ws/a"),
            ("$WS_x", "$WS_x"),
            ("${NOPE}/a", "${NOPE}/a"),
            ("$NOPE", "$NOPE"),
            ("a$", "a$"),
            ("${WS", "${WS"),
            ("${}", "${}"),
            ("$$WS", "$/srv/ws"),
            ("x${EMPTY}y", "xy"),
            ("$1", "$1"),
            ("ü$WS€", "ü/srv/ws€"),
        ];
        for (input, want) in cases {
            assert_eq!(expand_vars(input, env), want, "input {input:?}");
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
            r#"{"server": {"port": 1}}"#,
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
            }) => {
                assert_eq!((line, column), (2, 28));
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

    proptest! {
        #[test]
        fn never_panics(raw in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&raw, env, None);
        }

        #[test]
        fn text_without_dollars_is_unchanged(text in "[^$]*") {
            prop_assert_eq!(expand_vars(&text, env), text);
        }
    }
}
