//! What judging one directory has found so far, before it is weighed into
//! a verdict: owners, other users, and findings sorted by what they argue for.

use super::finding::Finding;
use super::judgement::{OtherUser, Owner, Protocol};
use crate::inspect::ProcessInfo;

/// What judging one directory has found so far, sorted by what each fact
/// argues for; `finish` weighs them into the verdict.
#[derive(Default)]
pub(super) struct Evidence {
    pub(super) owners: Vec<Owner>,
    pub(super) other_users: Vec<OtherUser>,
    /// Reasons that name owners.
    pub(super) owned: Vec<Finding>,
    /// Facts that could not be read or decided.
    pub(super) unknown: Vec<Finding>,
    /// Reasons a PID file is stale.
    pub(super) stale: Vec<Finding>,
    /// Facts that show nothing owns the directory.
    pub(super) nothing_owns: Vec<Finding>,
    pub(super) warnings: Vec<Finding>,
    /// The flock is held, but by no process that could be identified.
    pub(super) anonymous_holder: bool,
    /// OpenViking servers run on other data directories (see `point_elsewhere`).
    pub(super) elsewhere: bool,
    /// An owner has let go of `.openviking.lock` but holds its storage.
    pub(super) shutting_down: bool,
}

impl Evidence {
    pub(super) fn add_owner(&mut self, process: &ProcessInfo, protocol: Protocol) {
        match self
            .owners
            .iter_mut()
            .find(|o| o.process.pid == process.pid)
        {
            Some(owner) => owner.protocols.push(protocol),
            None => self.owners.push(Owner {
                process: process.clone(),
                protocols: vec![protocol],
                ..Owner::default()
            }),
        }
    }
}
