//! The process exit codes: one enum, one mapping, documented in the README,
//! in `--help` and in the man pages.

use crate::judge::Verdict;

/// What the process tells its caller through its exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// `--help`, `--version`, `completions`: done.
    Success,
    /// Nothing owns the directory.
    Free,
    /// One live server owns it.
    Held,
    /// Nothing owns it, and a stale `.openviking.pid` or path lock remains.
    Stale,
    /// Two or more live servers own it.
    Contended,
    /// `who`: an owner was found.
    RunningServer,
    /// `who`: it is certain that there is no owner.
    NoneFound,
    /// It cannot be decided, or an error stopped ovlock.
    Unknown,
    /// The command line was wrong.
    Usage,
}

impl ExitCode {
    pub const fn code(self) -> u8 {
        match self {
            ExitCode::Success | ExitCode::Free | ExitCode::RunningServer => 0,
            ExitCode::Held | ExitCode::NoneFound => 1,
            ExitCode::Stale => 2,
            ExitCode::Contended => 3,
            ExitCode::Unknown => 4,
            ExitCode::Usage => 64,
        }
    }

    /// The code of one directory's verdict.
    pub const fn of(verdict: Verdict) -> ExitCode {
        match verdict {
            Verdict::Free => ExitCode::Free,
            Verdict::Held => ExitCode::Held,
            Verdict::Stale => ExitCode::Stale,
            Verdict::Contended => ExitCode::Contended,
            Verdict::Unknown => ExitCode::Unknown,
        }
    }

    /// The one code for several directories (`check`, `status`,
    /// `clear-stale`), which answers "may a server start on every one of
    /// them?". The first that applies wins: unknown (4), then contended (3),
    /// then held (1), then stale (2), then free (0). Held outranks stale
    /// although its number is smaller: a script that starts a server on 0
    /// or 2 must not start one beside a live server. No directories: free.
    pub fn of_all(verdicts: impl IntoIterator<Item = Verdict>) -> ExitCode {
        const PRECEDENCE: [Verdict; 5] = [
            Verdict::Unknown,
            Verdict::Contended,
            Verdict::Held,
            Verdict::Stale,
            Verdict::Free,
        ];
        let verdicts: Vec<Verdict> = verdicts.into_iter().collect();
        let worst = PRECEDENCE
            .into_iter()
            .find(|v| verdicts.contains(v))
            .unwrap_or(Verdict::Free);
        ExitCode::of(worst)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    #[test]
    fn each_verdict_has_its_documented_number() {
        let codes = [Free, Held, Stale, Contended, Unknown].map(|v| ExitCode::of(v).code());
        assert_eq!(codes, [0, 1, 2, 3, 4]);
        assert_eq!(ExitCode::Usage.code(), 64);
        assert_eq!(
            [
                ExitCode::RunningServer,
                ExitCode::NoneFound,
                ExitCode::Success
            ]
            .map(ExitCode::code),
            [0, 1, 0]
        );
    }

    #[test]
    fn several_directories_answer_whether_a_server_may_start_on_all() {
        let cases: &[(&[Verdict], u8)] = &[
            (&[], 0),
            (&[Free], 0),
            (&[Free, Stale], 2),
            (&[Stale, Held], 1),
            (&[Held, Stale], 1),
            (&[Held, Contended], 3),
            (&[Contended, Unknown, Free], 4),
            (&[Stale, Free, Stale], 2),
        ];
        for (verdicts, want) in cases {
            assert_eq!(
                ExitCode::of_all(verdicts.iter().copied()).code(),
                *want,
                "{verdicts:?}"
            );
        }
    }
}
