//! Judging OpenViking's path locks (`.path.ovlock`, `.exact.ovlock.*`): each
//! file is held, stale or unknown, by OpenViking 0.5.2's own rules and by
//! whether anything still owns the directory to refresh it.

use std::time::{Duration, SystemTime};

use super::evidence::Evidence;
use super::finding::{Finding, ProcessRef};
use super::path_lock_state::{Context, JudgedPathLock, PathLockReason, PathLockState, Refresher};
use super::pid_file::SLACK;
use crate::inspect::Facts;
use crate::inspect::path_locks::{LockFileRead, PathLockFile, PathLocks};
use crate::openviking::lock_token::{self, Lease, Token};
use crate::workspace::SettingSource;

/// A lease held longer than this is probably a stuck task (OpenViking issue
/// #5283): its live server refreshes it forever. Operations take seconds.
pub const STUCK_AFTER: Duration = Duration::from_secs(3600);

/// The longest `lock_expire_secs` any OpenViking release defaulted to
/// (0.4.11 to 0.4.13): beside a server whose config ovlock did not read, a
/// lease younger than this may still be its live one.
const LONGEST_DEFAULT_EXPIRE: Duration = Duration::from_secs(1800);

/// Judges one path-lock file.
pub fn judge(file: &PathLockFile, cx: &Context) -> JudgedPathLock {
    let (state, reason) = match &file.read {
        LockFileRead::NotRegular(kind) => {
            (PathLockState::Unknown, PathLockReason::NotRegular(*kind))
        }
        LockFileRead::Unreadable { error, .. } => (
            PathLockState::Unknown,
            PathLockReason::Unreadable(error.clone()),
        ),
        LockFileRead::Read { meta, token, .. } => {
            judge_token(token.as_ref(), meta.stat.modified, cx)
        }
    };
    let stuck_for = match (&file.read, state) {
        (LockFileRead::Read { meta, .. }, PathLockState::Held) => meta
            .born
            .and_then(|born| held_for(born, cx))
            .filter(|age| *age > STUCK_AFTER),
        _ => None,
    };
    JudgedPathLock {
        file: file.clone(),
        state,
        reason,
        stuck_for,
        context: *cx,
    }
}

/// How long a lease whose file was born at `born` can have been held: the
/// file's age, but no longer than its owner has run.
pub fn held_for(born: SystemTime, cx: &Context) -> Option<Duration> {
    let age = cx.now.duration_since(born).ok()?;
    let owner = cx.owner_since.and_then(|s| cx.now.duration_since(s).ok());
    Some(owner.map_or(age, |owner| age.min(owner)))
}

/// Judges the bytes of a lock file as read again now: whether clear-stale
/// may still remove it.
pub fn still_stale(content: &[u8], modified: Option<SystemTime>, cx: &Context) -> bool {
    let token = (content.len() <= crate::inspect::path_locks::PATH_LOCK_READ_CAP)
        .then(|| lock_token::decode(content));
    judge_token(token.as_ref(), modified, cx).0 == PathLockState::Stale
}

/// `token` is None for a file too long to hold one.
fn judge_token(
    token: Option<&Token>,
    modified: Option<SystemTime>,
    cx: &Context,
) -> (PathLockState, PathLockReason) {
    use PathLockReason as Why;
    use PathLockState::{Held, Stale, Unknown};
    let Some(modified) = modified else {
        return (Unknown, Why::NoTime);
    };
    // Written this long ago; None when its time is ahead of the clock, so
    // not since the clock moved back: not being written now.
    let written_ago = match cx.now.duration_since(modified) {
        Ok(ago) => Some(ago),
        Err(ahead) if ahead.duration() <= SLACK => Some(Duration::ZERO),
        Err(_) => None,
    };
    let lease = match token {
        None | Some(Token::Invalid(_)) => {
            let why = match token {
                Some(Token::Invalid(bad)) => Some(bad.clone()),
                _ => None,
            };
            let young = written_ago.is_some_and(|ago| ago < SLACK);
            let state = if young { Unknown } else { Stale };
            return (state, Why::Invalid { why, young });
        }
        Some(Token::Legacy) => return (Stale, Why::Legacy),
        Some(Token::Empty) => {
            let age = written_ago.unwrap_or(Duration::MAX);
            let expired = cx.expire.is_some_and(|expire| age > expire);
            let state = match cx.refresher {
                Refresher::Nobody => Stale,
                _ if expired => Stale,
                Refresher::Unknown => Unknown,
                Refresher::Live => Held,
            };
            return (state, Why::Empty { age });
        }
        Some(Token::Lease(lease)) => lease,
    };
    judge_lease(lease, cx)
}

/// A lease, by its age, the clock, and whether its owner lives to refresh it.
fn judge_lease(lease: &Lease, cx: &Context) -> (PathLockState, PathLockReason) {
    use PathLockReason as Why;
    use PathLockState::{Held, Stale, Unknown};
    let age = lease.refreshed_at.map(|at| cx.now.duration_since(at));
    let fresh = match (&age, cx.expire) {
        (Some(Ok(age)), Some(expire)) => *age <= expire,
        _ => true,
    };
    // OpenViking holds a token until its date plus lock_expire_secs, even
    // a date ahead of the clock.
    let until = lease
        .refreshed_at
        .zip(cx.expire)
        .and_then(|(at, expire)| at.checked_add(expire));
    if cx.refresher == Refresher::Nobody {
        // On a network filesystem the owner may be a server on another host.
        return if cx.remote && fresh {
            let age = age.and_then(Result::ok).unwrap_or_default();
            (Unknown, Why::MaybeElsewhere { age })
        } else {
            let until = until.filter(|until| *until > cx.now);
            (Stale, Why::LeftBehind { until })
        };
    }
    let age = match age {
        Some(Ok(age)) => age,
        Some(Err(ahead_by)) if ahead_by.duration() <= SLACK => Duration::ZERO,
        Some(Err(ahead_by)) => return ahead(ahead_by.duration(), until, cx.remote),
        // Beyond any time the clock can hold: far in the future.
        None => return ahead(Duration::MAX, None, cx.remote),
    };
    let Some(expire) = cx.expire else {
        return (Unknown, Why::NoExpiry);
    };
    if age > expire && !cx.expire_known && age <= LONGEST_DEFAULT_EXPIRE.max(expire) {
        (Unknown, Why::ExpireUnknown { age })
    } else if age > expire {
        (Stale, Why::Expired { age, expire })
    } else if cx.refresher == Refresher::Unknown {
        (Unknown, Why::OwnerUndecided { age })
    } else {
        (Held, Why::Refreshed { age })
    }
}

/// How much harm a stale lock does, the most harmful lowest: an invalid
/// token fails every write below it until someone removes it, one from the
/// future refuses them until its date, a lease left behind until it expires.
fn harm(reason: &PathLockReason) -> u8 {
    match reason {
        PathLockReason::Invalid { .. } => 0,
        PathLockReason::Ahead { .. } => 1,
        PathLockReason::LeftBehind { .. } => 2,
        _ => 3,
    }
}

fn ahead(by: Duration, until: Option<SystemTime>, remote: bool) -> (PathLockState, PathLockReason) {
    let state = if remote {
        PathLockState::Unknown
    } else {
        PathLockState::Stale
    };
    (
        state,
        PathLockReason::Ahead {
            ahead: by,
            until,
            remote,
        },
    )
}

/// Judges every path lock of the directory, given what owns it so far, and
/// adds what they argue for to the evidence: stale locks make a directory
/// with no live owner stale, and are warnings beside one; undecided and
/// stuck ones are always warnings.
pub(super) fn judge_tree(facts: &Facts, j: &mut Evidence) -> Vec<JudgedPathLock> {
    let settings = &facts.workspace.path_locks;
    if let Err(invalid) = &settings.lock_expire.value {
        j.warnings.push(Finding::LockExpireRefused {
            invalid: invalid.clone(),
            source: settings.lock_expire.source.clone(),
        });
    }
    let walk = match &facts.path_locks {
        PathLocks::NoTree | PathLocks::NotLocal(_) => return Vec::new(),
        PathLocks::TreeNotADirectory(kind) => {
            j.warnings.push(Finding::TreeNotADirectory(*kind));
            return Vec::new();
        }
        PathLocks::NotDetermined => {
            j.warnings.push(Finding::PathLocksNotDetermined);
            return Vec::new();
        }
        PathLocks::Walked(walk) => walk,
    };
    if !walk.unreadable.is_empty() || !walk.skipped_mounts.is_empty() || !walk.caps.is_empty() {
        j.warnings.push(Finding::PathLocksNotSearched {
            unreadable: walk.unreadable.clone(),
            skipped_mounts: walk.skipped_mounts.clone(),
            caps: walk.caps.clone(),
        });
    }
    let cx = context(facts, j);
    let judged: Vec<JudgedPathLock> = walk.files.iter().map(|f| judge(f, &cx)).collect();
    weigh(&judged, cx.refresher, j);
    judged
}

/// What the path locks of this directory are judged by, given its owners so far.
fn context(facts: &Facts, j: &Evidence) -> Context {
    let settings = &facts.workspace.path_locks;
    let refresher = if !j.owners.is_empty() || j.anonymous_holder {
        Refresher::Live
    } else if !j.unknown.is_empty() {
        Refresher::Unknown
    } else {
        Refresher::Nobody
    };
    Context {
        refresher,
        expire: settings.lock_expire.value.as_ref().ok().copied(),
        expire_known: settings.described_by.is_some()
            || settings.lock_expire.source != SettingSource::Default,
        now: facts.host.now,
        remote: facts.remote_fs.is_some(),
        owner_since: j.owners.iter().filter_map(|o| o.process.started).min(),
    }
}

/// Adds what the judged path locks argue for to the evidence.
fn weigh(judged: &[JudgedPathLock], refresher: Refresher, j: &mut Evidence) {
    // The one named first is the one that does the most harm.
    let of = |state| {
        let matching = judged.iter().filter(move |p| p.state == state);
        let first = matching.clone().min_by_key(|p| harm(&p.reason))?;
        Some((matching.count(), Box::new(first.clone())))
    };
    let owned = refresher == Refresher::Live;
    if let Some((count, first)) = of(PathLockState::Stale) {
        let finding = Finding::StalePathLocks { count, first };
        if owned {
            j.warnings.push(finding);
        } else {
            j.stale.push(finding);
        }
    }
    // Path locks never keep a server from starting: one that cannot be
    // judged is a warning, not a doubt about the directory.
    if let Some((count, first)) = of(PathLockState::Unknown) {
        j.warnings
            .push(Finding::UndecidedPathLocks { count, first });
    }
    let stuck: Vec<&JudgedPathLock> = judged.iter().filter(|p| p.stuck_for.is_some()).collect();
    if let Some(oldest) = stuck.iter().max_by_key(|p| p.stuck_for) {
        j.warnings.push(Finding::StuckLeases {
            count: stuck.len(),
            oldest: Box::new((*oldest).clone()),
            by: match j.owners.as_slice() {
                [one] => Some(ProcessRef::of(&one.process)),
                _ => None,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::inspect::fsread::{FileKind, FileStat};
    use crate::inspect::path_locks::LockMeta;

    const NOW: u64 = 1_800_000_000;
    const EXPIRE: Duration = Duration::from_secs(30);

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    /// A lock file on `viking://resources` holding `content`, last written
    /// at `modified`, created at `born`.
    fn file(content: &[u8], modified: u64, born: Option<u64>) -> PathLockFile {
        let mut file = crate::judge::tests::path_lock("resources/.path.ovlock", content, modified);
        if let LockFileRead::Read { meta, .. } = &mut file.read {
            meta.born = born.map(at);
        }
        file
    }

    /// A token refreshed at `secs` (after the epoch).
    fn lease(secs: u64) -> Vec<u8> {
        format!("owner-1:{}:T", u128::from(secs) * 1_000_000_000).into_bytes()
    }

    fn cx(refresher: Refresher) -> Context {
        Context {
            refresher,
            expire: Some(EXPIRE),
            expire_known: true,
            now: at(NOW),
            remote: false,
            owner_since: None,
        }
    }

    #[test]
    fn every_rule_over_a_table() {
        use PathLockState::{Held, Stale, Unknown};
        use Refresher::{Live, Nobody};
        let remote = Context {
            remote: true,
            ..cx(Live)
        };
        let remote_nobody = Context {
            remote: true,
            ..cx(Nobody)
        };
        let expire_unknown = Context {
            expire_known: false,
            ..cx(Live)
        };
        let no_expiry = Context {
            expire: None,
            ..cx(Live)
        };
        let not_regular = PathLockFile {
            read: LockFileRead::NotRegular(FileKind::Fifo),
            ..file(b"", NOW, None)
        };
        let unreadable = PathLockFile {
            read: LockFileRead::Unreadable {
                meta: None,
                error: "Permission denied".into(),
            },
            ..file(b"", NOW, None)
        };
        let too_long = PathLockFile {
            read: LockFileRead::Read {
                meta: LockMeta {
                    stat: FileStat {
                        dev: 1,
                        ino: 2,
                        size: 4096,
                        modified: Some(at(NOW - 60)),
                    },
                    born: None,
                },
                content: vec![b'x'; 512],
                token: None,
            },
            ..file(b"", NOW, None)
        };
        let day = 86_400;
        let cases: Vec<(&str, PathLockFile, Context, PathLockState, &str)> = vec![
            (
                "fresh, live owner",
                file(&lease(NOW - 5), NOW - 5, None),
                cx(Live),
                Held,
                "Refreshed",
            ),
            (
                "fresh, no owner",
                file(&lease(NOW - 5), NOW - 5, None),
                cx(Nobody),
                Stale,
                "LeftBehind",
            ),
            (
                "future, no owner",
                file(&lease(NOW + day), NOW, None),
                cx(Nobody),
                Stale,
                "LeftBehind",
            ),
            (
                "expired, live owner",
                file(&lease(NOW - 31), NOW - 31, None),
                cx(Live),
                Stale,
                "Expired",
            ),
            (
                "expired, owner undecided",
                file(&lease(NOW - 31), NOW - 31, None),
                cx(Refresher::Unknown),
                Stale,
                "Expired",
            ),
            (
                "fresh, owner undecided",
                file(&lease(NOW - 5), NOW - 5, None),
                cx(Refresher::Unknown),
                Unknown,
                "OwnerUndecided",
            ),
            (
                "a day ahead",
                file(&lease(NOW + day), NOW, None),
                cx(Live),
                Stale,
                "Ahead",
            ),
            (
                "a day ahead, network filesystem",
                file(&lease(NOW + day), NOW, None),
                remote,
                Unknown,
                "Ahead",
            ),
            (
                "fresh, network filesystem, no owner here",
                file(&lease(NOW - 5), NOW - 5, None),
                remote_nobody,
                Unknown,
                "MaybeElsewhere",
            ),
            (
                "expired, network filesystem, no owner here",
                file(&lease(NOW - 31), NOW - 31, None),
                remote_nobody,
                Stale,
                "LeftBehind",
            ),
            (
                "expired by the default, the server's own setting unknown",
                file(&lease(NOW - 31), NOW - 31, None),
                expire_unknown,
                Unknown,
                "ExpireUnknown",
            ),
            (
                "expired past any default, the server's own setting unknown",
                file(&lease(NOW - 1801), NOW - 1801, None),
                expire_unknown,
                Stale,
                "Expired",
            ),
            (
                "invalid, dated ahead of the clock",
                file(b"abc-123:1700", NOW + 86_400, None),
                cx(Live),
                Stale,
                "Invalid",
            ),
            (
                "empty, dated ahead of the clock",
                file(b"", NOW + 86_400, None),
                cx(Live),
                Stale,
                "Empty",
            ),
            (
                "empty, owner undecided",
                file(b"", NOW - 1, None),
                cx(Refresher::Unknown),
                Unknown,
                "Empty",
            ),
            (
                "a second ahead is now",
                file(&lease(NOW + 1), NOW, None),
                cx(Live),
                Held,
                "Refreshed",
            ),
            (
                "beyond any date",
                file(b"o:99999999999999999999999999:T", NOW, None),
                cx(Live),
                Stale,
                "Ahead",
            ),
            (
                "no expiry",
                file(&lease(NOW - 5), NOW - 5, None),
                no_expiry,
                Unknown,
                "NoExpiry",
            ),
            (
                "invalid",
                file(b"abc-123:1700", NOW - 60, None),
                cx(Live),
                Stale,
                "Invalid",
            ),
            (
                "invalid, just written",
                file(b"abc-123:1700", NOW - 1, None),
                cx(Nobody),
                Unknown,
                "Invalid",
            ),
            ("too long", too_long, cx(Live), Stale, "Invalid"),
            (
                "empty, just written",
                file(b"", NOW - 1, None),
                cx(Live),
                Held,
                "Empty",
            ),
            (
                "empty, long ago",
                file(b"", NOW - 31, None),
                cx(Live),
                Stale,
                "Empty",
            ),
            (
                "empty, no owner",
                file(b"", NOW - 1, None),
                cx(Nobody),
                Stale,
                "Empty",
            ),
            (
                "legacy",
                file(b"OVE1\x00\x01", NOW, None),
                cx(Live),
                Stale,
                "Legacy",
            ),
            ("a FIFO", not_regular, cx(Nobody), Unknown, "NotRegular"),
            ("unreadable", unreadable, cx(Nobody), Unknown, "Unreadable"),
        ];
        for (name, file, cx, state, reason) in cases {
            let judged = judge(&file, &cx);
            assert_eq!(judged.state, state, "{name}: {judged:#?}");
            assert!(
                format!("{:?}", judged.reason).starts_with(reason),
                "{name}: {:?}",
                judged.reason
            );
        }
    }

    #[test]
    fn a_token_dated_ahead_is_held_until_its_date_and_lock_expire_secs() {
        let judged = judge(&file(&lease(NOW + 86_400), NOW, None), &cx(Refresher::Live));
        assert_eq!(
            judged.reason,
            PathLockReason::Ahead {
                ahead: Duration::from_secs(86_400),
                until: Some(at(NOW + 86_400) + EXPIRE),
                remote: false,
            }
        );
    }

    #[test]
    fn a_lease_held_for_hours_is_stuck_but_still_held() {
        let old = file(&lease(NOW - 5), NOW - 5, Some(NOW - 3 * 3600));
        let judged = judge(&old, &cx(Refresher::Live));
        assert_eq!(judged.state, PathLockState::Held);
        assert_eq!(judged.stuck_for, Some(Duration::from_secs(3 * 3600)));

        let young = file(&lease(NOW - 5), NOW - 5, Some(NOW - 600));
        assert_eq!(judge(&young, &cx(Refresher::Live)).stuck_for, None);
        // A file older than its server was taken over in place: the lease is
        // at most as old as the server.
        let restarted = Context {
            owner_since: Some(at(NOW - 1800)),
            ..cx(Refresher::Live)
        };
        assert_eq!(judge(&old, &restarted).stuck_for, None);
        let long_running = Context {
            owner_since: Some(at(NOW - 7200)),
            ..cx(Refresher::Live)
        };
        assert_eq!(
            judge(&old, &long_running).stuck_for,
            Some(Duration::from_secs(7200))
        );
        // Left behind is stale, not stuck.
        assert_eq!(judge(&old, &cx(Refresher::Nobody)).stuck_for, None);
    }

    #[test]
    fn judged_again_a_refreshed_token_is_no_longer_stale() {
        let cx = cx(Refresher::Live);
        assert!(still_stale(&lease(NOW - 60), Some(at(NOW - 60)), &cx));
        assert!(!still_stale(&lease(NOW), Some(at(NOW)), &cx));
    }
}
