//! The processes known to use a directory: the scan's users, joined by the
//! holders of kernel locks on its storage files.

use crate::inspect::{Facts, User};

/// Every process known to use the directory: the scan's users, joined by
/// the holders of locks on its storage files (which the kernel names even
/// for processes whose files cannot be read, and without a scan).
pub(super) fn users(facts: &Facts) -> Vec<User> {
    let mut users = match &facts.usage {
        Some(Ok(usage)) => usage.users.clone(),
        _ => Vec::new(),
    };
    for holder in &facts.storage_locks.holders {
        let Some(user) = users
            .iter_mut()
            .find(|u| u.process.pid == holder.process.pid)
        else {
            users.push(holder.clone());
            continue;
        };
        for accesses in &holder.accesses {
            match user.accesses.iter_mut().find(|t| t.path == accesses.path) {
                Some(t) if t.locks.is_empty() => t.locks = accesses.locks.clone(),
                Some(_) => {}
                None => user.accesses.push(accesses.clone()),
            }
        }
    }
    users
}

/// The known user with this PID.
pub(super) fn user(facts: &Facts, pid: u32) -> Option<User> {
    users(facts).into_iter().find(|u| u.process.pid == pid)
}
