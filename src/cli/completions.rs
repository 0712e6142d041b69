//! Shell completion scripts, generated from the clap definition and kept in
//! completions/ for packagers.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "ovlock", &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where each shell's script lives in the repository.
    const FILES: [(Shell, &str); 5] = [
        (Shell::Bash, "ovlock.bash"),
        (Shell::Zsh, "_ovlock"),
        (Shell::Fish, "ovlock.fish"),
        (Shell::PowerShell, "_ovlock.ps1"),
        (Shell::Elvish, "ovlock.elv"),
    ];

    #[test]
    fn committed_scripts_match_the_binary() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
        for (shell, file) in FILES {
            let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            assert!(
                committed == script(shell),
                "completions/{file} is out of date; regenerate it with: cargo run -q -- completions {shell} > completions/{file}"
            );
        }
    }
}
