//! Asks an owner's OpenViking server how it is: where it listens (its own
//! sockets, else the port its ov.conf names), then `GET /health` there, and
//! `/api/v1/observer/system` when it says it is unhealthy, `/api/v1/tasks`
//! when asked for the tasks behind stuck leases. Only loopback is
//! ever asked; every request has a deadline and a byte cap, follows no
//! redirect and is never retried. What it answers changes no verdict.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::openviking::ovconf::{Secret, ServerConfig};

/// How long one request may take, connecting and answering together.
pub const DEADLINE: Duration = Duration::from_secs(1);
/// How long the asking of one survey may take, all servers together.
pub const BUDGET: Duration = Duration::from_secs(2);
/// How much of an answer is read: OpenViking's are a few hundred bytes.
pub const BODY_CAP: u64 = 64 * 1024;

/// What one owner's server said, or why it was not asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFacts {
    pub pid: u32,
    pub asked: Result<Asked, NotAsked>,
    /// Its tasks, asked only when it holds a stuck lease; Err is what it
    /// answered instead.
    pub tasks: Option<Result<Vec<Task>, Answer>>,
}

/// A question put to one address, and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// Where it was asked: always a loopback address.
    pub address: SocketAddr,
    pub via: Via,
    pub answer: Answer,
}

/// Where the address came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A socket of the owner's listening there (`listening` may be 0.0.0.0 or ::).
    Socket { listening: SocketAddr },
    /// `server.port` of this ov.conf, because the sockets could not be read.
    Config { file: Option<PathBuf>, why: String },
}

/// Why a server was not asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAsked {
    /// It listens on no TCP port (a stdio MCP server, or one starting).
    NoListener,
    /// It listens only on addresses other than loopback, which ovlock never asks.
    NotOnLoopback(Vec<SocketAddr>),
    /// It runs in another network namespace: our loopback is not its.
    OtherNetwork,
    /// Its sockets could not be read and no ov.conf names a port.
    Unreadable(String),
    /// The time this survey allows for asking ran out before its turn.
    OutOfTime,
}

/// What an address answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Answered(Health),
    /// Nothing listens there (any more).
    Refused,
    /// It took the connection but said nothing within the deadline.
    Silent,
    /// It began to answer but did not finish within the deadline.
    Slow,
    /// Something answered, but not as OpenViking does; the text says what.
    NotOpenViking(String),
    /// `401` or `403`; `key_sent` says whether a key went with the request.
    NeedsKey {
        status: u16,
        key_sent: bool,
    },
    /// Any other failure, in ureq's words with any key scrubbed.
    Failed(String),
}

/// What `/health` and `/api/v1/observer/system` said. A 0.5.2 server's
/// /health says healthy whenever it runs; the system observer says whether
/// its parts are (`is_healthy`, and the `errors` it names).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    pub version: Option<String>,
    pub healthy: Option<bool>,
    pub auth_mode: Option<String>,
    /// The system observer's `is_healthy`.
    pub system_healthy: Option<bool>,
    /// The errors the system observer names, or what it answered instead;
    /// None when it was not asked (no time left).
    pub errors: Option<Result<Vec<String>, Box<Answer>>>,
}

impl Health {
    /// Healthy by both: unhealthy when either says so.
    pub fn is_healthy(&self) -> Option<bool> {
        match (self.healthy, self.system_healthy) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (None, None) => None,
            _ => Some(true),
        }
    }
}

/// One task as `/api/v1/tasks` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Task {
    pub id: String,
    pub task_type: Option<String>,
    pub status: Option<String>,
    pub stage: Option<String>,
    /// `resource_id`: the viking:// URI it works on.
    pub resource: Option<String>,
    pub created_at: Option<String>,
    /// `processing_seconds`, whole.
    pub running_secs: Option<u64>,
    /// Every `owner_id` anywhere in the task's record: the leases it holds,
    /// where the server says.
    pub owner_ids: Vec<String>,
}

/// How many tasks are read: enough for any server ovlock is likely to meet.
const TASKS_SHOWN: usize = 500;

/// Asks servers within one survey's budget.
pub struct Asker {
    agent: ureq::Agent,
    until: Instant,
    /// `OPENVIKING_API_KEY`, for a server whose ov.conf gives no key.
    env_key: Option<Secret>,
}

impl Asker {
    pub fn new(env_key: Option<Secret>) -> Asker {
        let agent = ureq::Agent::config_builder()
            // Never a proxy from the environment: the question stays on loopback.
            .proxy(None)
            .max_redirects(0)
            .http_status_as_error(false)
            .max_response_header_size(16 * 1024)
            .max_idle_connections(0)
            .user_agent(concat!("ovlock/", env!("CARGO_PKG_VERSION")))
            .timeout_global(Some(DEADLINE))
            .build()
            .into();
        Asker {
            agent,
            until: Instant::now() + BUDGET,
            env_key,
        }
    }

    /// Asks the server of owner `pid`, described (if at all) by `config`
    /// read from `file`.
    pub fn ask(&self, pid: u32, config: &ServerConfig, file: Option<PathBuf>) -> ServerFacts {
        let key = config.api_key.as_ref().or(self.env_key.as_ref());
        let asked = self.places(pid, config, file).and_then(|places| {
            let mut first = None;
            for (address, via) in places {
                let Some(left) = self.left() else {
                    return Err(NotAsked::OutOfTime);
                };
                let answer = self.health(address, key, left);
                // Refused and foreign answers are quick: another socket may
                // be the server's HTTP one. A silent one is not asked twice.
                let go_on = matches!(answer, Answer::Refused | Answer::NotOpenViking(_));
                let asked = Asked {
                    address,
                    via,
                    answer,
                };
                if !go_on {
                    return Ok(asked);
                }
                first.get_or_insert(asked);
            }
            first.ok_or(NotAsked::NoListener)
        });
        ServerFacts {
            pid,
            asked,
            tasks: None,
        }
    }

    /// The tasks of the server that answered at `address`, or what it
    /// answered instead; None when the survey's time for asking is spent.
    pub fn tasks(
        &self,
        address: SocketAddr,
        config: &ServerConfig,
    ) -> Option<Result<Vec<Task>, Answer>> {
        let key = config.api_key.as_ref().or(self.env_key.as_ref());
        let left = self.left()?;
        Some(
            self.get(address, "/api/v1/tasks", key, left)
                .and_then(|body| {
                    parse_tasks(&body).ok_or_else(|| Answer::NotOpenViking(foreign(&body)))
                }),
        )
    }

    fn left(&self) -> Option<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then(|| left.min(DEADLINE))
    }

    /// The loopback addresses to ask, the configured port first.
    fn places(
        &self,
        pid: u32,
        config: &ServerConfig,
        file: Option<PathBuf>,
    ) -> Result<Vec<(SocketAddr, Via)>, NotAsked> {
        let listening = match listening(pid) {
            Ok(listening) => listening,
            Err(Unlistable::OtherNetwork) => return Err(NotAsked::OtherNetwork),
            Err(Unlistable::Unreadable(why)) => {
                return match config.port {
                    Some(port) => Ok(vec![(
                        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                        Via::Config { file, why },
                    )]),
                    None => Err(NotAsked::Unreadable(why)),
                };
            }
        };
        if listening.is_empty() {
            return Err(NotAsked::NoListener);
        }
        let mut places: Vec<(SocketAddr, Via)> = Vec::new();
        for &socket in &listening {
            if let Some(address) = loopback(socket) {
                if !places.iter().any(|(a, _)| *a == address) {
                    places.push((address, Via::Socket { listening: socket }));
                }
            }
        }
        if places.is_empty() {
            return Err(NotAsked::NotOnLoopback(listening));
        }
        places.sort_by_key(|(a, _)| Some(a.port()) != config.port);
        Ok(places)
    }

    /// `GET /health`, then the system observer's health and errors.
    fn health(&self, address: SocketAddr, key: Option<&Secret>, left: Duration) -> Answer {
        let body = match self.get(address, "/health", key, left) {
            Ok(body) => body,
            Err(answer) => return answer,
        };
        let Some(health) = parse_health(&body) else {
            return Answer::NotOpenViking(foreign(&body));
        };
        let mut health = health;
        health.errors = self.left().map(|left| {
            self.get(address, "/api/v1/observer/system", key, left)
                .and_then(|body| system_state(&body))
                .map(|(healthy, errors)| {
                    health.system_healthy = healthy;
                    errors
                })
                .map_err(Box::new)
        });
        Answer::Answered(health)
    }

    /// One bounded GET; a body of at most [`BODY_CAP`] bytes, or what went wrong.
    fn get(
        &self,
        address: SocketAddr,
        path: &str,
        key: Option<&Secret>,
        left: Duration,
    ) -> Result<Vec<u8>, Answer> {
        let mut request = self
            .agent
            .get(format!("http://{address}{path}"))
            .header("Accept", "application/json");
        if let Some(key) = key {
            request = request.header("X-API-Key", key.expose());
        }
        let scrub = |err: ureq::Error| failure(err, key);
        let mut response = request
            .config()
            .timeout_global(Some(left))
            .build()
            .call()
            .map_err(scrub)?;
        let status = response.status().as_u16();
        match status {
            200 => {}
            401 | 403 => {
                return Err(Answer::NeedsKey {
                    status,
                    key_sent: key.is_some(),
                });
            }
            300..=399 => {
                let to = response
                    .headers()
                    .get("location")
                    .map(|l| cut(&String::from_utf8_lossy(l.as_bytes()), 200));
                return Err(Answer::NotOpenViking(match to {
                    Some(to) => format!("a redirect ({status}) to {to}, not followed"),
                    None => format!("a redirect ({status}), not followed"),
                }));
            }
            _ => {
                return Err(Answer::NotOpenViking(format!("HTTP status {status}")));
            }
        }
        response
            .body_mut()
            .with_config()
            .limit(BODY_CAP)
            .read_to_vec()
            .map_err(|err| match failure(err, key) {
                Answer::Silent => Answer::Slow,
                other => other,
            })
    }
}

/// Why a process's listening addresses are not to be had.
enum Unlistable {
    // Only Linux tells network namespaces apart.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    OtherNetwork,
    Unreadable(String),
}

/// The addresses `pid` listens on.
#[cfg(target_os = "linux")]
fn listening(pid: u32) -> Result<Vec<SocketAddr>, Unlistable> {
    match super::sockets::same_network(pid) {
        Ok(true) => {}
        Ok(false) => return Err(Unlistable::OtherNetwork),
        Err(err) => {
            return Err(Unlistable::Unreadable(format!(
                "cannot read its network namespace: {err}"
            )));
        }
    }
    super::sockets::listening(pid)
        .map_err(|err| Unlistable::Unreadable(format!("cannot read its sockets: {err}")))
}

#[cfg(not(target_os = "linux"))]
fn listening(_pid: u32) -> Result<Vec<SocketAddr>, Unlistable> {
    Err(Unlistable::Unreadable(format!(
        "ovlock does not read sockets on {}",
        std::env::consts::OS
    )))
}

/// The loopback address that reaches a listening socket, if one does: a
/// wildcard is asked on loopback, loopback as it is, anything else never.
fn loopback(socket: SocketAddr) -> Option<SocketAddr> {
    let ip = match socket.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_loopback() => {
            IpAddr::V4(if v4.is_unspecified() {
                Ipv4Addr::LOCALHOST
            } else {
                v4
            })
        }
        IpAddr::V6(v6) if v6.is_unspecified() || v6.is_loopback() => {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) if v4.is_unspecified() || v4.is_loopback() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            _ => return None,
        },
        IpAddr::V4(_) => return None,
    };
    Some(SocketAddr::new(ip, socket.port()))
}

/// A ureq failure as an [`Answer`]; its text never carries the key.
fn failure(err: ureq::Error, key: Option<&Secret>) -> Answer {
    use std::io::ErrorKind;
    match err {
        ureq::Error::Timeout(_) => Answer::Silent,
        ureq::Error::Io(ref io) if io.kind() == ErrorKind::TimedOut => Answer::Silent,
        ureq::Error::Io(ref io) if io.kind() == ErrorKind::ConnectionRefused => Answer::Refused,
        ureq::Error::ConnectionFailed => Answer::Refused,
        ureq::Error::BodyExceedsLimit(_) => {
            Answer::NotOpenViking(format!("an answer longer than {} KiB", BODY_CAP / 1024))
        }
        ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
            Answer::NotOpenViking("an answer that is not HTTP".to_string())
        }
        ureq::Error::Io(ref io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe
            ) =>
        {
            Answer::NotOpenViking("the connection closed without an answer".to_string())
        }
        other => {
            let text = other.to_string();
            Answer::Failed(match key {
                Some(key) => text.replace(key.expose(), "<key>"),
                None => text,
            })
        }
    }
}

/// OpenViking's `/health`: a JSON object with `healthy` or `version`.
fn parse_health(body: &[u8]) -> Option<Health> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let object = value.as_object()?;
    let text = |k: &str| object.get(k).and_then(Value::as_str).map(|t| cut(t, 80));
    let healthy = object.get("healthy").and_then(Value::as_bool);
    let version = text("version");
    if healthy.is_none() && version.is_none() {
        return None;
    }
    Some(Health {
        version,
        healthy,
        auth_mode: text("auth_mode"),
        system_healthy: None,
        errors: None,
    })
}

/// `{"status":"ok","result":[...]}` (or `result.tasks`), each task an
/// object with a `task_id`.
fn parse_tasks(body: &[u8]) -> Option<Vec<Task>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let result = value.get("result")?;
    let list = result
        .as_array()
        .or_else(|| result.get("tasks")?.as_array())?;
    Some(
        list.iter()
            .take(TASKS_SHOWN)
            .filter_map(|task| {
                let text = |k: &str| task.get(k).and_then(Value::as_str).map(|t| cut(t, 200));
                let mut owner_ids = Vec::new();
                owners_in(task, 4, &mut owner_ids);
                Some(Task {
                    id: text("task_id")?,
                    task_type: text("task_type"),
                    status: text("status"),
                    stage: text("stage"),
                    resource: text("resource_id"),
                    created_at: text("created_at"),
                    running_secs: task
                        .get("processing_seconds")
                        .and_then(Value::as_f64)
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| s as u64),
                    owner_ids,
                })
            })
            .collect(),
    )
}

/// The `owner_id` texts in `value`, down to `depth` levels.
fn owners_in(value: &Value, depth: usize, out: &mut Vec<String>) {
    if depth == 0 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(id) if k == "owner_id" => out.push(cut(id, 80)),
                    _ => owners_in(v, depth - 1, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| owners_in(v, depth - 1, out)),
        _ => {}
    }
}

/// What a body that is not OpenViking's health looks like, in a few words.
fn foreign(body: &[u8]) -> String {
    let start = String::from_utf8_lossy(&body[..body.len().min(512)]).to_lowercase();
    let start = start.trim_start();
    if start.starts_with("<!doctype html") || start.starts_with("<html") {
        "an HTML page, not OpenViking's JSON".to_string()
    } else if serde_json::from_slice::<Value>(body).is_ok() {
        "JSON that is not OpenViking's /health".to_string()
    } else if std::str::from_utf8(body).is_err() {
        "binary data, not OpenViking's JSON".to_string()
    } else {
        "text that is not JSON".to_string()
    }
}

/// `result.is_healthy` of `/api/v1/observer/system`, and the errors it
/// names (`result.errors`, a list of texts or one text).
fn system_state(body: &[u8]) -> Result<(Option<bool>, Vec<String>), Answer> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| Answer::NotOpenViking(foreign(body)))?;
    let result = value.get("result");
    let healthy = result
        .and_then(|r| r.get("is_healthy"))
        .and_then(Value::as_bool);
    let errors = result.and_then(|r| r.get("errors"));
    let errors = match errors {
        Some(Value::Array(list)) => list
            .iter()
            .take(10)
            .map(|e| {
                cut(
                    &e.as_str().map_or_else(|| e.to_string(), str::to_string),
                    200,
                )
            })
            .collect(),
        Some(Value::String(one)) if !one.is_empty() => vec![cut(one, 200)],
        _ => Vec::new(),
    };
    Ok((healthy, errors))
}

/// A text from the network, cut to at most `max` characters: the report
/// stays readable whatever a server sends.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_asked_on_loopback_and_nothing_else_is_asked() {
        let at = |s: &str| loopback(s.parse().unwrap()).map(|a| a.to_string());
        assert_eq!(at("0.0.0.0:1933").as_deref(), Some("127.0.0.1:1933"));
        assert_eq!(at("127.0.0.2:1933").as_deref(), Some("127.0.0.2:1933"));
        assert_eq!(at("[::]:1933").as_deref(), Some("[::1]:1933"));
        assert_eq!(at("[::1]:1933").as_deref(), Some("[::1]:1933"));
        assert_eq!(
            at("[::ffff:0.0.0.0]:1933").as_deref(),
            Some("127.0.0.1:1933")
        );
        assert_eq!(at("192.168.1.5:1933"), None);
        assert_eq!(at("[2001:db8::1]:1933"), None);
        assert_eq!(at("[::ffff:10.0.0.1]:1933"), None);
    }

    #[test]
    fn health_as_openviking_0_5_2_says_it() {
        let h =
            parse_health(br#"{"status":"ok","healthy":true,"version":"0.5.2","auth_mode":"dev"}"#)
                .unwrap();
        assert_eq!(h.version.as_deref(), Some("0.5.2"));
        assert_eq!(h.healthy, Some(true));
        assert_eq!(h.auth_mode.as_deref(), Some("dev"));
        assert_eq!(parse_health(br#"{"status":"ok"}"#), None);
        assert_eq!(parse_health(b"<html>"), None);
    }

    #[test]
    fn long_texts_from_the_network_are_cut() {
        let long = format!(r#"{{"healthy":true,"version":"{}"}}"#, "9".repeat(5000));
        let h = parse_health(long.as_bytes()).unwrap();
        assert_eq!(h.version.unwrap().chars().count(), 81);
    }

    #[test]
    fn tasks_with_their_lease_owners() {
        let body = br#"{"status":"ok","result":[
            {"task_id":"t1","task_type":"add_resource","status":"running","stage":"parse",
             "resource_id":"viking://resources/big","processing_seconds":7200.5,
             "lock_handoff":{"owner_id":"u-1","paths":["/local/default/resources/big"]}},
            {"task_type":"no id"}
        ]}"#;
        let tasks = parse_tasks(body).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].id, "t1");
        assert_eq!(tasks[0].running_secs, Some(7200));
        assert_eq!(tasks[0].owner_ids, vec!["u-1"]);
        assert_eq!(parse_tasks(br#"{"result":{"tasks":[]}}"#), Some(Vec::new()));
        assert_eq!(parse_tasks(b"[]"), None);
    }

    #[test]
    fn foreign_answers_are_told_apart() {
        assert!(foreign(b"<!DOCTYPE html><html>").contains("HTML"));
        assert!(foreign(b"[1,2]").contains("JSON that is not"));
        assert!(foreign(b"\xff\xfe\x00").contains("binary"));
        assert!(foreign(b"hello").contains("not JSON"));
    }

    #[test]
    fn system_errors_as_a_list_or_a_text() {
        let list =
            br#"{"status":"ok","result":{"is_healthy":false,"errors":["models has errors"]}}"#;
        assert_eq!(
            system_state(list).unwrap(),
            (Some(false), vec!["models has errors".to_string()])
        );
        let one = br#"{"result":{"errors":"queue is stuck"}}"#;
        assert_eq!(
            system_state(one).unwrap(),
            (None, vec!["queue is stuck".to_string()])
        );
        assert!(system_state(b"nope").is_err());
    }

    #[test]
    fn a_closed_port_is_refused_at_once() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let asker = Asker::new(None);
        let started = Instant::now();
        let answer = asker.health(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            None,
            DEADLINE,
        );
        assert_eq!(answer, Answer::Refused);
        assert!(started.elapsed() < DEADLINE);
    }
}
