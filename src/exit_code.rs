//! The process exit codes: one enum, one mapping, documented in the README.

/// What the process tells its caller through its exit status.
///
/// The order matters: with several directories, the highest code wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExitCode {
    /// Nothing owns the directory (`who`: an owner was found).
    Free,
    /// One live process owns it (`who`: no owner was found).
    Held,
    /// A `.openviking.pid` remains whose owner is gone.
    Stale,
    /// Two or more live processes own it.
    Contended,
    /// It cannot be decided, or an error stopped ovlock.
    Unknown,
    /// The command line was wrong.
    Usage,
}

impl ExitCode {
    pub const fn code(self) -> u8 {
        match self {
            ExitCode::Free => 0,
            ExitCode::Held => 1,
            ExitCode::Stale => 2,
            ExitCode::Contended => 3,
            ExitCode::Unknown => 4,
            ExitCode::Usage => 64,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::ExitCode::*;

    #[test]
    fn codes_are_ordered_like_their_numbers() {
        let all = [Free, Held, Stale, Contended, Unknown, Usage];
        for pair in all.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].code() < pair[1].code());
        }
        assert_eq!(all.map(|c| c.code()), [0, 1, 2, 3, 4, 64]);
    }
}
