//! What the binary knows of its own build: its version, and, where build.rs
//! could tell, the git commit it was built from and the target it was built
//! for. `--version --verbose` prints them, and every JSON document carries
//! them, so a bug report or a fleet inventory names the exact build.

/// The crate's version, as `--version` prints it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit that was checked out when the binary was built, or None for
/// a build from a source tarball that does not record one.
pub fn git_commit() -> Option<&'static str> {
    // build.rs always sets it, empty when unknown, so that whatever the
    // builder's own environment holds cannot leak in through option_env!.
    Some(env!("OVLOCK_GIT_COMMIT")).filter(|commit| !commit.is_empty())
}

/// The target triple the binary was built for (`x86_64-unknown-linux-musl`).
pub fn target() -> Option<&'static str> {
    Some(env!("OVLOCK_TARGET")).filter(|target| !target.is_empty())
}

/// What `--version` prints: `ovlock 0.1.0`, and with `verbose` a line for
/// the commit and one for the target, each saying "unknown" rather than
/// being left out, so a script reading them always finds the key.
pub fn version_text(verbose: bool) -> String {
    let mut text = format!("ovlock {VERSION}\n");
    if verbose {
        let unknown = "unknown (not recorded at build time)";
        text.push_str(&format!("commit: {}\n", git_commit().unwrap_or(unknown)));
        text.push_str(&format!("target: {}\n", target().unwrap_or(unknown)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_version_is_the_crate_version_alone() {
        assert_eq!(version_text(false), format!("ovlock {VERSION}\n"));
    }

    #[test]
    fn the_verbose_version_names_the_commit_and_the_target() {
        let text = version_text(true);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[1].starts_with("commit: "), "{text}");
        // Cargo always tells build.rs the target; a test binary is built
        // for the same one as the binary it tests.
        assert_eq!(target(), Some(lines[2].strip_prefix("target: ").unwrap()));
        if let Some(commit) = git_commit() {
            assert!(
                matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit()),
                "{commit:?}"
            );
        }
    }
}
