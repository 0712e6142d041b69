//! The words for what an owner's server answered, or why it was not asked.

use crate::inspect::server::{Answer, NotAsked, ServerFacts, Via};
use crate::render::timefmt;

/// One line on what an owner's server said, or why it was not asked.
pub fn server(server: &ServerFacts) -> String {
    let asked = match &server.asked {
        Err(why) => return format!("not asked: {}", not_asked(why)),
        Ok(asked) => asked,
    };
    let via = match &asked.via {
        Via::Socket { listening } if *listening == asked.address => "its socket".to_string(),
        Via::Socket { listening } => format!("its socket on {listening}"),
        Via::Config { file, why } => format!(
            "server.port in {} ({why})",
            file.as_deref()
                .map_or_else(|| "ov.conf".to_string(), |f| f.display().to_string())
        ),
    };
    format!("{} (from {via}): {}", asked.address, answer(&asked.answer))
}

fn not_asked(why: &NotAsked) -> String {
    match why {
        NotAsked::NoListener => "it listens on no TCP port".to_string(),
        NotAsked::NotOnLoopback(addresses) => {
            let list: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            format!(
                "it listens only on {}, and ovlock asks loopback only",
                list.join(", ")
            )
        }
        NotAsked::OtherNetwork => {
            "it runs in another network namespace (a container): this loopback is not its"
                .to_string()
        }
        NotAsked::Unreadable(why) => format!("{why}, and no ov.conf read names server.port"),
        NotAsked::OutOfTime => format!(
            "the {} ovlock allows for asking servers ran out",
            timefmt::short(crate::inspect::server::BUDGET)
        ),
    }
}

/// What an address answered, in a few words.
pub fn answer(answer: &Answer) -> String {
    let deadline = timefmt::short(crate::inspect::server::DEADLINE);
    match answer {
        Answer::Answered(health) => {
            let version = health
                .version
                .as_deref()
                .map_or_else(String::new, |v| format!("OpenViking {v}, "));
            let state = match health.is_healthy() {
                Some(true) => match &health.errors {
                    Some(Err(why)) => format!(
                        "healthy by /health (/api/v1/observer/system: {})",
                        self::answer(why)
                    ),
                    _ => "healthy".to_string(),
                },
                None => "answers (health not said)".to_string(),
                Some(false) => match &health.errors {
                    Some(Ok(errors)) if !errors.is_empty() => {
                        format!("unhealthy: {}", errors.join("; "))
                    }
                    Some(Ok(_)) | None => "unhealthy".to_string(),
                    Some(Err(why)) => {
                        format!("unhealthy (/api/v1/observer/system: {})", self::answer(why))
                    }
                },
            };
            format!("answers: {version}{state}")
        }
        Answer::Refused => "refused: nothing listens there".to_string(),
        Answer::Silent => {
            format!("took the connection but did not answer within {deadline} (hung or overloaded)")
        }
        Answer::Slow => {
            format!("began to answer but did not finish within {deadline} (hung or overloaded)")
        }
        Answer::NotOpenViking(what) => format!("not OpenViking's answer: {what}"),
        Answer::NeedsKey {
            status,
            key_sent: false,
        } => {
            format!("needs an API key ({status}), and ovlock has none")
        }
        Answer::NeedsKey {
            status,
            key_sent: true,
        } => {
            format!("refused the API key ovlock sent ({status})")
        }
        Answer::Failed(why) => format!("could not be asked: {why}"),
    }
}
