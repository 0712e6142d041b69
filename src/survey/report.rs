//! The pipeline's record of one run: each directory's facts and judgement,
//! what clear-stale did to it, and how a `check --wait` ended. Built by
//! `survey` and `main` from the stages below, read by `render`.

use std::time::Duration;

use crate::clear::Removal;
use crate::inspect::Facts;
use crate::inspect::server::ServerFacts;
use crate::judge::Judgement;

/// One directory's facts and judgement, and what clear-stale did to it.
pub struct DirReport {
    pub facts: Facts,
    pub judgement: Judgement,
    /// Set by clear-stale only.
    pub removals: Option<Vec<Removal>>,
    /// What each OpenViking owner's server answered; empty when not asked.
    pub servers: Vec<ServerFacts>,
}

/// How often `check --wait` looks again.
pub const POLL: Duration = Duration::from_millis(200);

/// How a `check --wait` ended.
pub struct Wait {
    /// `--wait SECONDS`.
    pub limit: Duration,
    pub waited: Duration,
    /// The time ran out with a directory still owned or undecided.
    pub timed_out: bool,
}
