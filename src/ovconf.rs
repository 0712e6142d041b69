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
    /// Variables the text refers to, anywhere, that are not set here and so
    /// stay as written: the server's environment may well have them.
    pub unset_vars: Vec<Var>,
}

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
        unset_vars: unset,
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
