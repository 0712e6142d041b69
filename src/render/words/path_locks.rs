//! The words for a path lock: what it locks, and why it is in its state.

use std::time::Duration;

use super::not_regular;
use crate::inspect::Facts;
use crate::inspect::path_locks::Locks;
use crate::judge::{JudgedPathLock, PathLockReason, PathLockState, Refresher};
use crate::openviking::layout::{PathLockName, TreePlace};
use crate::render::names;
use crate::render::timefmt;

/// What a path lock locks: `viking://resources/proj (tree lock, account
/// default)`, as far as its name, place and token tell.
pub fn locked_place(p: &JudgedPathLock) -> String {
    let kind = names::path_lock_kind(p).map(|kind| format!("{kind} lock"));
    let (place, account) = match &p.file.locks {
        Locks::Place(place) => (place_words(place), account_of(place)),
        Locks::Missing { dir, safe } => (
            format!(
                "a path like {safe} in {}, which does not exist",
                place_words(dir)
            ),
            account_of(dir),
        ),
        Locks::Unrecognised { dir } => (
            format!(
                "an unknown path in {} (a name OpenViking never writes)",
                place_words(dir)
            ),
            account_of(dir),
        ),
    };
    let about: Vec<String> = kind
        .into_iter()
        .chain(account.map(|a| format!("account {a}")))
        .collect();
    if about.is_empty() {
        place
    } else {
        format!("{place} ({})", about.join(", "))
    }
}

fn place_words(place: &TreePlace) -> String {
    match place {
        TreePlace::AllAccounts => "the whole storage tree, every account".to_string(),
        TreePlace::Account { uri, .. } if uri == "viking://" => "the whole account".to_string(),
        TreePlace::Account { uri, .. } => uri.clone(),
    }
}

fn account_of(place: &TreePlace) -> Option<&str> {
    match place {
        TreePlace::AllAccounts => None,
        TreePlace::Account { account, .. } => Some(account),
    }
}

/// Why a path lock is in its state, and what it does to OpenViking.
pub fn path_lock_reason(p: &JudgedPathLock, facts: &Facts) -> String {
    let expire = facts.workspace.path_locks.lock_expire.value.as_ref().ok();
    let expire_words = |e: &Duration| format!("lock_expire_secs ({})", timefmt::short(*e));
    match &p.reason {
        PathLockReason::LeftBehind { until: Some(until) } => format!(
            "left behind: nothing owns the directory, so nothing refreshes it; OpenViking \
             refuses writes there (409 path_busy) until {}",
            timefmt::rfc3339(*until).unwrap_or_default()
        ),
        PathLockReason::LeftBehind { until: None } => {
            "left behind: nothing owns the directory, so nothing refreshes it or removes it"
                .to_string()
        }
        PathLockReason::ExpireUnknown { age } => format!(
            "not refreshed for {}, longer than OpenViking's default lock_expire_secs, but no \
             ov.conf that names this workspace was read, and its server may set a longer one \
             (up to 30m by default in 0.4.11 to 0.4.13): pass --config",
            timefmt::short(*age)
        ),
        PathLockReason::MaybeElsewhere { age } => format!(
            "refreshed {} ago and no server on this host owns the directory, but on a network \
             filesystem a server on another host may hold it",
            timefmt::short(*age)
        ),
        PathLockReason::Refreshed { age } => format!(
            "refreshed {} ago, within {}",
            timefmt::short(*age),
            expire.map(expire_words).unwrap_or_default()
        ),
        PathLockReason::Expired { age, expire } => format!(
            "not refreshed for {}, longer than {}: OpenViking treats it as free, and only \
             an acquire of this very path replaces it",
            timefmt::short(*age),
            expire_words(expire)
        ),
        PathLockReason::Ahead {
            ahead,
            until,
            remote: false,
        } => format!(
            "dated {} ahead: the clock moved back; OpenViking treats it as held until {}",
            ahead_words(*ahead),
            until
                .and_then(timefmt::rfc3339)
                .unwrap_or_else(|| "the end of time".to_string())
        ),
        PathLockReason::Ahead { ahead, .. } => format!(
            "dated {} ahead of this host's clock; on a network filesystem another \
             host's clock may be ahead, so it may be live",
            ahead_words(*ahead)
        ),
        PathLockReason::OwnerUndecided { age } => format!(
            "refreshed {} ago, and whether a live server owns the directory could not be told",
            timefmt::short(*age)
        ),
        PathLockReason::Invalid { why, young } => {
            let what = match why {
                Some(bad) => format!("invalid lock token: {bad}"),
                None => "longer than any lock token".to_string(),
            };
            let blocked = match p.file.name {
                PathLockName::ExactSidecar => "every write to what it locks",
                PathLockName::TreeOrDirectory => "every write and move below it",
            };
            if *young {
                format!("{what}, but written less than 2s ago: it may be being written")
            } else {
                format!("{what}: {blocked} fails with INTERNAL, until it is removed")
            }
        }
        PathLockReason::Empty { age } => {
            let written = if *age == Duration::MAX {
                "empty, dated ahead of the clock".to_string()
            } else {
                format!("empty, written {} ago", timefmt::short(*age))
            };
            match (p.state, p.context.refresher) {
                (PathLockState::Held, _) => {
                    format!("{written}: a server may be writing its token now")
                }
                (PathLockState::Unknown, _) => format!(
                    "{written}, and whether a live server owns the directory could not be told"
                ),
                (_, Refresher::Nobody) => {
                    format!("{written}, and nothing owns the directory to write it")
                }
                _ => format!("{written}: the write that would fill it never came"),
            }
        }
        PathLockReason::Legacy => "an encrypted token of OpenViking 0.4.11 or older, \
                                   which newer servers delete when they meet it"
            .to_string(),
        PathLockReason::NoTime => "its modification time cannot be read".to_string(),
        PathLockReason::NotRegular(kind) => not_regular(kind.describe()),
        PathLockReason::Unreadable(err) => format!("cannot read it: {err}"),
        PathLockReason::NoExpiry => {
            "lock_expire_secs has a value OpenViking refuses, so its age cannot be weighed"
                .to_string()
        }
    }
}

fn ahead_words(ahead: Duration) -> String {
    if ahead == Duration::MAX {
        "beyond any date".to_string()
    } else {
        timefmt::short(ahead)
    }
}
