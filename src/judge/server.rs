//! What an owner's server answered adds to the fixes, never to the verdict:
//! a hung server still holds its directory.

use super::finding::{Fix, ProcessRef};
use super::judgement::Owner;
use crate::inspect::server::{Answer, ServerFacts};

/// The fixes the servers' answers call for, one per server at most.
pub fn fixes(servers: &[ServerFacts], owners: &[Owner]) -> Vec<Fix> {
    servers
        .iter()
        .filter_map(|server| {
            let asked = server.asked.as_ref().ok()?;
            match asked.answer {
                Answer::Silent | Answer::Slow => {
                    let owner = owners.iter().find(|o| o.process.pid == server.pid)?;
                    Some(Fix::RestartSilentServer {
                        process: ProcessRef::of(&owner.process),
                        service: owner.process.service.clone(),
                        address: asked.address,
                    })
                }
                Answer::NeedsKey { key_sent, .. } => Some(Fix::GiveApiKey { key_sent }),
                _ => None,
            }
        })
        .collect()
}
