//! What an owner's server answered adds to the warnings and fixes, never
//! to the verdict: a hung server still holds its directory, and a task named
//! behind a stuck lease is never reason to remove anything.

use super::finding::{Finding, Fix, ProcessRef};
use super::judgement::{Judgement, Owner};
use super::path_lock_state::JudgedPathLock;
use crate::inspect::path_locks::Locks;
use crate::inspect::server::{Answer, Health, ServerFacts, Task};
use crate::openviking::layout::TreePlace;

/// Adds to `j` what the servers' answers call for: the tasks behind stuck
/// leases (warnings, and how to cancel them) and the fixes for servers that
/// do not answer or want a key, before the others.
pub fn apply(servers: &[ServerFacts], j: &mut Judgement) {
    stuck_tasks(servers, j);
    let mut first = fixes(servers, &j.owners);
    first.append(&mut j.fixes);
    j.fixes = first;
}

/// The fixes the servers' answers call for, one per server at most.
fn fixes(servers: &[ServerFacts], owners: &[Owner]) -> Vec<Fix> {
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
                // /health needs no key; the system observer may.
                Answer::Answered(Health {
                    errors: Some(Err(ref why)),
                    ..
                }) => match **why {
                    Answer::NeedsKey { key_sent, .. } => Some(Fix::GiveApiKey { key_sent }),
                    _ => None,
                },
                _ => None,
            }
        })
        .collect()
}

/// For each stuck lease, the task behind it: by its owner_id where the one
/// server that lists tasks reports it, else (probably) its running tasks
/// on the locked URI or below it. Adds a warning for each, and the command
/// that cancels it.
fn stuck_tasks(servers: &[ServerFacts], j: &mut Judgement) {
    // Tokens name no process: with several servers, whose lease is whose is unknown.
    let [server] = servers else { return };
    let (Some(tasks), Ok(asked)) = (&server.tasks, &server.asked) else {
        return;
    };
    let tasks = match tasks {
        Ok(tasks) => tasks,
        Err(answer) => {
            j.warnings
                .push(Finding::TasksNotListed(Box::new(answer.clone())));
            return;
        }
    };
    let mut found = Vec::new();
    for lock in j.path_locks.iter().filter(|p| p.stuck_for.is_some()) {
        let Some(lease) = lock.lease() else { continue };
        let by_owner: Vec<&Task> = tasks
            .iter()
            .filter(|t| t.owner_ids.contains(&lease.owner))
            .collect();
        let (certain, named) = if by_owner.is_empty() {
            (false, running_below(tasks, lock))
        } else {
            (true, by_owner)
        };
        for task in named {
            found.push((lock.clone(), task.clone(), certain));
        }
    }
    for (lock, task, certain) in found {
        j.fixes.insert(
            0,
            Fix::CancelTask {
                address: asked.address,
                task_id: task.id.clone(),
            },
        );
        j.warnings.push(Finding::TaskHoldsLease {
            lock: Box::new(lock),
            task: Box::new(task),
            certain,
        });
    }
}

/// Running tasks whose resource is the locked URI or below it.
fn running_below<'a>(tasks: &'a [Task], lock: &JudgedPathLock) -> Vec<&'a Task> {
    let Locks::Place(TreePlace::Account { uri, .. }) = &lock.file.locks else {
        return Vec::new();
    };
    let uri = uri.trim_end_matches('/');
    tasks
        .iter()
        .filter(|t| t.status.as_deref() == Some("running"))
        .filter(|t| {
            t.resource.as_deref().is_some_and(|r| {
                r == uri
                    || r.strip_prefix(uri)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
        })
        .collect()
}
