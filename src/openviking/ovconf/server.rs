//! The `server` section of ov.conf, as far as asking the server needs it:
//! the port it was told to listen on, and the key it wants. Read leniently:
//! a value of the wrong type is as good as absent here, since nothing about
//! the locks depends on it.

use serde_json::{Map, Value};

/// What ovlock needs to ask the server an ov.conf describes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerConfig {
    /// `server.port`.
    pub port: Option<u16>,
    /// `server.root_api_key`, when `server.auth_mode` is `"api_key"`.
    pub api_key: Option<Secret>,
}

/// A key that must never be printed: its Debug says only that it is there.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// An empty key is no key: OpenViking would not accept it either.
    pub fn new(key: String) -> Option<Secret> {
        (!key.is_empty()).then_some(Secret(key))
    }

    /// The key itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The server section of a parsed ov.conf (the root object).
pub fn server_config(root: &Map<String, Value>) -> ServerConfig {
    let Some(Value::Object(server)) = root.get("server") else {
        return ServerConfig::default();
    };
    let port = match server.get("port") {
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|&p| p != 0);
    let api_key = match (server.get("auth_mode"), server.get("root_api_key")) {
        (Some(Value::String(mode)), Some(Value::String(key))) if mode == "api_key" => {
            Secret::new(key.clone())
        }
        _ => None,
    };
    ServerConfig { port, api_key }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> ServerConfig {
        let value: Value = serde_json::from_str(text).unwrap();
        server_config(value.as_object().unwrap())
    }

    #[test]
    fn port_and_key_with_api_key_auth() {
        let c = of(r#"{"server":{"port":1933,"auth_mode":"api_key","root_api_key":"s3cr3t"}}"#);
        assert_eq!(c.port, Some(1933));
        assert_eq!(c.api_key.as_ref().map(Secret::expose), Some("s3cr3t"));
    }

    #[test]
    fn a_key_without_api_key_auth_is_not_sent() {
        let c = of(r#"{"server":{"auth_mode":"dev","root_api_key":"s3cr3t"}}"#);
        assert_eq!(c.api_key, None);
    }

    #[test]
    fn wrong_types_count_as_absent() {
        assert_eq!(of(r#"{"server":{"port":70000}}"#), ServerConfig::default());
        assert_eq!(of(r#"{"server":{"port":[1]}}"#), ServerConfig::default());
        assert_eq!(of(r#"{"server":7}"#), ServerConfig::default());
        assert_eq!(of(r#"{"server":{"port":"8080"}}"#).port, Some(8080));
    }

    #[test]
    fn the_key_never_shows_in_debug() {
        let c = of(r#"{"server":{"auth_mode":"api_key","root_api_key":"s3cr3t"}}"#);
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
