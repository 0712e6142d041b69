//! The Prometheus text exposition format (0.0.4), parsed strictly, so that a
//! file cut short, a label escaped wrongly or a family without its HELP and
//! TYPE fails a test rather than being skipped over; and the lookups of its
//! samples.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    pub help: BTreeMap<String, String>,
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

/// Parses the text exposition format 0.0.4 strictly: every line must be a
/// HELP, a TYPE, a comment or a whole sample, label values may hold only
/// the escapes `\\`, `\"` and `\n`, a family is TYPEd once and before its
/// samples, and the text ends with a newline (as a file cut short does not,
/// unless it was cut at a line's end: a check of the families catches that).
pub fn parse(text: &str) -> Result<Exposition, String> {
    if text.is_empty() {
        return Err("empty".into());
    }
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut out = Exposition::default();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            metric_name(name).map_err(at)?;
            if out.help.insert(name.into(), help.into()).is_some() {
                return Err(at("a second HELP".into()));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| at("no type".into()))?;
            metric_name(name).map_err(at)?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(at(format!("unknown type {kind:?}")));
            }
            if out.samples.iter().any(|s| family_of(&s.name) == name) {
                return Err(at("TYPE after the family's samples".into()));
            }
            if out.types.insert(name.into(), kind.into()).is_some() {
                return Err(at("a second TYPE".into()));
            }
        } else if line.starts_with('#') {
            continue;
        } else {
            out.samples.push(sample(line).map_err(at)?);
        }
    }
    Ok(out)
}

fn metric_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

/// The family a sample belongs to (a summary's or histogram's `_sum`,
/// `_count` and `_bucket` are its own; every ovlock family is a gauge).
pub fn family_of(name: &str) -> &str {
    ["_sum", "_count", "_bucket"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    metric_name(name)?;
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let Some(&(i, c)) = chars.peek() else {
                return Err("labels not closed".into());
            };
            if c == '}' {
                rest = &after[i + 1..];
                break;
            }
            let start = i;
            while chars
                .peek()
                .is_some_and(|&(_, c)| c.is_ascii_alphanumeric() || c == '_')
            {
                chars.next();
            }
            let Some(&(eq, '=')) = chars.peek() else {
                return Err("label without =".into());
            };
            let key = &after[start..eq];
            if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(format!("bad label name {key:?}"));
            }
            chars.next();
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    None => return Err("label value not closed".into()),
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("invalid escape \\{other:?}")),
                    },
                    Some('\n') => return Err("raw newline in a label value".into()),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(key.to_string(), value).is_some() {
                return Err(format!("label {key} twice"));
            }
            match chars.peek().map(|&(_, c)| c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => return Err("labels not separated by ,".into()),
            }
        }
    }
    let mut fields = rest.split_ascii_whitespace();
    if !rest.starts_with([' ', '\t']) {
        return Err("no space before the value".into());
    }
    let value = match fields.next().ok_or("no value")? {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().map_err(|e| format!("value {v:?}: {e}"))?,
    };
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if fields.next().is_some() {
        return Err("more after the timestamp".into());
    }
    Ok(Sample {
        name: name.into(),
        labels,
        value,
    })
}

impl Exposition {
    pub fn of(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// The value of the one sample of `name` with exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = self
            .of(name)
            .into_iter()
            .filter(|s| s.labels == want)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name}{want:?}: {} samples\n{:#?}",
            found.len(),
            self.of(name)
        );
        found[0].value
    }
}
