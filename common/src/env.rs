//! Reading the process environment through an injectable source.
//!
//! Every variable gpt-load understands is a `const ENV_*` here, spelled exactly as GPT-Load spells
//! it, so users keep their `.env` files. The loader reads through [`EnvSource`] so tests pass a map
//! instead of mutating the process environment (`std::env::set_var` is banned in `clippy.toml`).

use std::collections::HashMap;

pub const ENV_PORT: &str = "PORT";
pub const ENV_HOST: &str = "HOST";
pub const ENV_SERVER_READ_TIMEOUT: &str = "SERVER_READ_TIMEOUT";
pub const ENV_SERVER_WRITE_TIMEOUT: &str = "SERVER_WRITE_TIMEOUT";
pub const ENV_SERVER_IDLE_TIMEOUT: &str = "SERVER_IDLE_TIMEOUT";
pub const ENV_SERVER_GRACEFUL_SHUTDOWN_TIMEOUT: &str = "SERVER_GRACEFUL_SHUTDOWN_TIMEOUT";
pub const ENV_SERVER_MAX_CONNECTIONS: &str = "SERVER_MAX_CONNECTIONS";
pub const ENV_ALLOW_LINK_LOCAL_UPSTREAMS: &str = "ALLOW_LINK_LOCAL_UPSTREAMS";
pub const ENV_IS_SLAVE: &str = "IS_SLAVE";
pub const ENV_AUTH_KEY: &str = "AUTH_KEY";
pub const ENV_ENCRYPTION_KEY: &str = "ENCRYPTION_KEY";
pub const ENV_DATABASE_DSN: &str = "DATABASE_DSN";
pub const ENV_REDIS_DSN: &str = "REDIS_DSN";
pub const ENV_MAX_CONCURRENT_REQUESTS: &str = "MAX_CONCURRENT_REQUESTS";
pub const ENV_ENABLE_CORS: &str = "ENABLE_CORS";
pub const ENV_ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
pub const ENV_ALLOWED_METHODS: &str = "ALLOWED_METHODS";
pub const ENV_ALLOWED_HEADERS: &str = "ALLOWED_HEADERS";
pub const ENV_ALLOW_CREDENTIALS: &str = "ALLOW_CREDENTIALS";
pub const ENV_LOG_LEVEL: &str = "LOG_LEVEL";
pub const ENV_LOG_FORMAT: &str = "LOG_FORMAT";
pub const ENV_LOG_ENABLE_FILE: &str = "LOG_ENABLE_FILE";
pub const ENV_LOG_FILE_PATH: &str = "LOG_FILE_PATH";
pub const ENV_TZ: &str = "TZ";
// Beyond GPT-Load.
pub const ENV_MAX_REQUEST_BODY_MB: &str = "MAX_REQUEST_BODY_MB";
pub const ENV_GRPC_PORT: &str = "GRPC_PORT";
pub const ENV_MASTER_GRPC_URL: &str = "MASTER_GRPC_URL";
pub const ENV_CLUSTER_SECRET: &str = "CLUSTER_SECRET";
pub const ENV_REDIS_KEY_PREFIX: &str = "REDIS_KEY_PREFIX";
pub const ENV_TRUSTED_PROXIES: &str = "TRUSTED_PROXIES";
pub const ENV_METRICS_ENABLED: &str = "METRICS_ENABLED";
pub const ENV_UI_DIR: &str = "UI_DIR";

/// A source of environment variables: the process environment, or a map in tests.
pub trait EnvSource {
    /// The value of `name`, if set (an empty value counts as unset, as in GPT-Load).
    fn get(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

/// A fixed map of variables, for tests.
#[derive(Debug, Default, Clone)]
pub struct MapEnv(pub HashMap<String, String>);

impl MapEnv {
    pub fn new<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapEnv {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// A variable that is set but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct EnvError {
    pub name: &'static str,
    pub reason: String,
}

impl EnvError {
    pub fn new(name: &'static str, reason: impl Into<String>) -> Self {
        Self {
            name,
            reason: reason.into(),
        }
    }
}

/// Typed reads with defaults; each error names the variable.
pub struct Env<'a>(pub &'a dyn EnvSource);

impl Env<'_> {
    pub fn string(&self, name: &'static str, default: &str) -> String {
        self.0
            .get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| default.to_owned())
    }

    pub fn opt_string(&self, name: &'static str) -> Option<String> {
        self.0.get(name).map(|v| v.trim().to_owned())
    }

    pub fn int(
        &self,
        name: &'static str,
        default: i64,
        min: i64,
        max: i64,
    ) -> Result<i64, EnvError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        let value: i64 = raw
            .trim()
            .parse()
            .map_err(|_| EnvError::new(name, format!("{:?} is not an integer", raw.trim())))?;
        if value < min || value > max {
            return Err(EnvError::new(
                name,
                format!("{value} is out of range {min}..={max}"),
            ));
        }
        Ok(value)
    }

    pub fn bool(&self, name: &'static str, default: bool) -> Result<bool, EnvError> {
        let Some(raw) = self.0.get(name) else {
            return Ok(default);
        };
        parse_bool(&raw).ok_or_else(|| {
            EnvError::new(
                name,
                format!(
                    "{:?} is not a boolean (use true/false, 1/0, yes/no, on/off)",
                    raw.trim()
                ),
            )
        })
    }
}

/// GPT-Load's boolean spellings.
pub fn parse_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_defaults_parses_and_names_the_variable() {
        let env = MapEnv::new([("PORT", "8080"), ("BAD", "x1"), ("BIG", "70000")]);
        let e = Env(&env);
        assert_eq!(e.int("PORT", 3001, 1, 65535), Ok(8080));
        assert_eq!(e.int("UNSET", 3001, 1, 65535), Ok(3001));
        let err = e.int("BAD", 1, 1, 10).unwrap_err();
        assert_eq!(err.name, "BAD");
        assert!(err.to_string().contains("not an integer"));
        assert!(
            e.int("BIG", 1, 1, 65535)
                .unwrap_err()
                .to_string()
                .contains("BIG")
        );
    }

    #[test]
    fn bools_accept_gpt_load_spellings() {
        for t in ["true", "1", "YES", "on"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "0", "No", "off"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn empty_values_count_as_unset() {
        let env = MapEnv::new([("HOST", "  ")]);
        assert_eq!(Env(&env).string("HOST", "0.0.0.0"), "0.0.0.0");
    }
}
