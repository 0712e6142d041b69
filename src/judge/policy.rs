//! Which processes count as OpenViking: the built-in marker and the ones
//! `--match` adds, with arguments that only name the directory left out.

use std::path::Path;

use crate::inspect::ProcessInfo;

/// Extra rules from the command line.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Lowercase substrings that also mark a process as OpenViking.
    pub markers: Vec<String>,
}

impl Policy {
    pub fn new(extra_markers: &[String]) -> Policy {
        let mut markers = vec!["openviking".to_string()];
        markers.extend(
            extra_markers
                .iter()
                .filter(|m| !m.is_empty())
                .map(|m| m.to_lowercase()),
        );
        Policy { markers }
    }

    /// Whether a process looks like OpenViking: its name, executable or
    /// command line contains a marker, case-insensitively.
    pub fn is_openviking(&self, process: &ProcessInfo) -> bool {
        self.is_openviking_ignoring(process, &[])
    }

    /// The same, but arguments that name one of `paths` (or a file in one)
    /// do not count: they say what a process looks at, not what it is.
    pub fn is_openviking_ignoring(&self, process: &ProcessInfo, paths: &[&Path]) -> bool {
        // The path itself or a path below it, as a word or after `=`
        // (`--workspace=/srv/ov`), relative to the process's current
        // directory, or as an SQLite `file:` URI; not a longer name that
        // merely begins with it (`/srv/ov-venv/bin/openviking-server`):
        // paths compare by components.
        let names_a_path = |arg: &str| {
            let value = arg.split_once('=').map_or(arg, |(_, v)| v);
            [arg, value].iter().any(|a| {
                let a = match a.strip_prefix("file:") {
                    Some(uri) => uri.split('?').next().unwrap_or(uri),
                    None => a,
                };
                let named = match (Path::new(a).is_absolute(), &process.cwd) {
                    (true, _) => Path::new(a).to_path_buf(),
                    (false, Some(cwd)) => cwd.join(a).components().collect(),
                    (false, None) => return false,
                };
                paths
                    .iter()
                    .any(|p| !p.as_os_str().is_empty() && named.starts_with(p))
            })
        };
        let args = process
            .cmdline
            .iter()
            .map(String::as_str)
            .filter(|a| !names_a_path(a));
        let exe = process
            .exe
            .as_deref()
            .map(Path::to_string_lossy)
            .unwrap_or_default();
        let haystacks = [process.name.as_str(), &exe]
            .into_iter()
            .chain(args)
            .map(str::to_lowercase)
            .collect::<Vec<_>>();
        self.markers
            .iter()
            .any(|m| haystacks.iter().any(|h| h.contains(m.as_str())))
    }
}
