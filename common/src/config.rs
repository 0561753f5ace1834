//! The static configuration of a process: environment variables read once at start.
//!
//! Names and defaults are GPT-Load's (spec §1.2); a value that is set but unusable is an error that
//! names the variable, so `main` can print one line and exit non-zero before binding any port.

use std::time::Duration;

use crate::env::*;
use crate::secret::Secret;

/// Where the SQL database lives, parsed from `DATABASE_DSN` exactly as GPT-Load does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseDsn {
    /// A file path (`./data/gpt-load.db` by default) or `:memory:`.
    Sqlite(String),
    /// `postgres://` or `postgresql://` URL.
    Postgres(String),
    /// A Go-style MySQL DSN (`user:pass@tcp(host:3306)/db?params`) or a `mysql://` URL,
    /// normalised to a `mysql://` URL for sqlx. `loc` is the Go driver's time zone for DATETIME
    /// values (`UTC` when absent, `Local`, or an IANA name): GPT-Load wrote wall-clock times in it.
    MySql { url: String, loc: String },
}

impl DatabaseDsn {
    /// GPT-Load's rule: `postgres://`/`postgresql://` → PostgreSQL; contains `@tcp` → MySQL;
    /// otherwise a SQLite file path. We also accept `mysql://` and `sqlite:` URLs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if raw.starts_with("mysql://") || raw.starts_with("mariadb://") {
            let url = raw.replacen("mariadb://", "mysql://", 1);
            let (url, loc) = take_loc(&url);
            return Ok(Self::MySql { url, loc });
        }
        if raw.contains("@tcp") {
            let url = go_mysql_dsn_to_url(raw)?;
            let loc = raw
                .split_once('?')
                .and_then(|(_, q)| q.split('&').find_map(|p| p.strip_prefix("loc=")))
                .map(|l| l.replace("%2F", "/"))
                .unwrap_or_else(|| "UTC".to_owned());
            return Ok(Self::MySql { url, loc });
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        // GPT-Load appends `?_busy_timeout=5000`; a user may already have query parameters.
        let path = path.split('?').next().unwrap_or(path);
        if path.is_empty() {
            return Err("empty SQLite path".into());
        }
        Ok(Self::Sqlite(path.to_owned()))
    }

    /// The backend's name, for logs and the dashboard.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::MySql { .. } => "mysql",
        }
    }
}

/// Removes a `loc=` query parameter from a URL, returning it (default `UTC`).
fn take_loc(url: &str) -> (String, String) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), "UTC".to_owned());
    };
    let mut loc = "UTC".to_owned();
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| match p.strip_prefix("loc=") {
            Some(l) => {
                loc = l.replace("%2F", "/");
                false
            }
            None => !p.is_empty(),
        })
        .collect();
    if kept.is_empty() {
        (base.to_owned(), loc)
    } else {
        (format!("{base}?{}", kept.join("&")), loc)
    }
}

/// `user:pass@tcp(host:port)/dbname?param=value` → `mysql://user:pass@host:port/dbname?...`.
///
/// Go-only parameters (`parseTime`, `loc`, `charset`, `collation`) are dropped: sqlx always decodes
/// times and uses utf8mb4.
fn go_mysql_dsn_to_url(dsn: &str) -> Result<String, String> {
    let at = dsn.rfind("@tcp").ok_or("missing @tcp(...)")?;
    let (userinfo, rest) = (&dsn[..at], &dsn[at + 4..]);
    let rest = rest.strip_prefix('(').ok_or("expected '(' after @tcp")?;
    let close = rest.find(')').ok_or("missing ')' after host")?;
    let host = &rest[..close];
    let after = &rest[close + 1..];
    let after = after.strip_prefix('/').unwrap_or(after);
    let (db, query) = match after.split_once('?') {
        Some((db, q)) => (db, q),
        None => (after, ""),
    };
    if db.is_empty() {
        return Err("missing database name after '/'".into());
    }
    let (user, pass) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let mut url = String::from("mysql://");
    url.push_str(&percent_encode(user));
    if let Some(pass) = pass {
        url.push(':');
        url.push_str(&percent_encode(pass));
    }
    url.push('@');
    url.push_str(if host.is_empty() {
        "127.0.0.1:3306"
    } else {
        host
    });
    url.push('/');
    url.push_str(db);
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let k = p.split('=').next().unwrap_or("");
            !matches!(
                k,
                "parseTime"
                    | "loc"
                    | "charset"
                    | "collation"
                    | "timeout"
                    | "readTimeout"
                    | "writeTimeout"
            )
        })
        .collect();
    if !kept.is_empty() {
        url.push('?');
        url.push_str(&kept.join("&"));
    }
    Ok(url)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Cross-origin settings (`ENABLE_CORS` and friends).
#[derive(Debug, Clone)]
pub struct CorsConfig {
    pub enabled: bool,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    pub allowed_headers: Vec<String>,
    pub allow_credentials: bool,
}

/// Logging settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    pub enable_file: bool,
    pub file_path: String,
}

/// Everything read from the environment at start; restart to change it.
#[derive(Debug, Clone)]
pub struct StaticConfig {
    pub port: u16,
    pub host: String,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// Open client connections at most; 0 = three quarters of the file-descriptor limit.
    pub max_connections: usize,
    pub graceful_shutdown_timeout: Duration,
    pub is_slave: bool,
    pub auth_key: Secret,
    pub encryption_key: Option<Secret>,
    pub database_dsn: DatabaseDsn,
    pub redis_dsn: Option<Secret>,
    pub redis_key_prefix: String,
    pub max_concurrent_requests: usize,
    pub max_request_body_bytes: usize,
    pub cors: CorsConfig,
    pub log: LogConfig,
    pub grpc_port: u16,
    pub master_grpc_url: Option<String>,
    pub cluster_secret: Option<Secret>,
    /// Peers (addresses or CIDR ranges) whose `X-Forwarded-For`/`X-Real-IP` we believe; empty =
    /// trust nobody.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics_enabled: bool,
    pub ui_dir: Option<String>,
    /// Upstream URLs at link-local addresses (cloud metadata services) are refused unless set.
    pub allow_link_local_upstreams: bool,
}

/// A configuration that cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Env(#[from] EnvError),
    #[error("{0} is required")]
    Missing(&'static str),
}

impl StaticConfig {
    /// Reads and validates the configuration. Warnings (weak keys, raised minimums) are logged.
    pub fn load(source: &dyn EnvSource) -> Result<Self, ConfigError> {
        let env = Env(source);
        let port = env.int(ENV_PORT, 3001, 1, 65535)? as u16;
        let host = env.string(ENV_HOST, "0.0.0.0");
        let secs = |name: &'static str, default: i64| -> Result<Duration, EnvError> {
            Ok(Duration::from_secs(
                env.int(name, default, 1, 86_400 * 365)? as u64,
            ))
        };
        let read_timeout = secs(ENV_SERVER_READ_TIMEOUT, 60)?;
        let write_timeout = secs(ENV_SERVER_WRITE_TIMEOUT, 600)?;
        let idle_timeout = secs(ENV_SERVER_IDLE_TIMEOUT, 120)?;
        let max_connections = env.int(ENV_SERVER_MAX_CONNECTIONS, 0, 0, 10_000_000)? as usize;
        let mut graceful = env.int(ENV_SERVER_GRACEFUL_SHUTDOWN_TIMEOUT, 10, 0, 3600)?;
        if graceful < 10 {
            tracing::warn!(
                value = graceful,
                "SERVER_GRACEFUL_SHUTDOWN_TIMEOUT raised to the minimum of 10s"
            );
            graceful = 10;
        }
        let is_slave = env.bool(ENV_IS_SLAVE, false)?;
        let auth_key = env
            .opt_string(ENV_AUTH_KEY)
            .map(Secret::new)
            .ok_or(ConfigError::Missing(ENV_AUTH_KEY))?;
        let encryption_key = env.opt_string(ENV_ENCRYPTION_KEY).map(Secret::new);
        let dsn_raw = env.string(ENV_DATABASE_DSN, "./data/gpt-load.db");
        let database_dsn = DatabaseDsn::parse(&dsn_raw)
            .map_err(|reason| EnvError::new(ENV_DATABASE_DSN, reason))?;
        let redis_dsn = env.opt_string(ENV_REDIS_DSN).map(Secret::new);
        if let Some(r) = &redis_dsn {
            let v = r.expose();
            if !(v.starts_with("redis://")
                || v.starts_with("rediss://")
                || v.starts_with("redis-cluster://"))
            {
                return Err(EnvError::new(
                    ENV_REDIS_DSN,
                    "must start with redis://, rediss:// or redis-cluster://",
                )
                .into());
            }
        }
        let redis_key_prefix = env.string(ENV_REDIS_KEY_PREFIX, "gpt-load");
        let max_concurrent_requests =
            env.int(ENV_MAX_CONCURRENT_REQUESTS, 100, 1, 1_000_000)? as usize;
        let max_request_body_bytes =
            (env.int(ENV_MAX_REQUEST_BODY_MB, 32, 1, 4096)? as usize) * 1024 * 1024;

        let list = |name: &'static str, default: &str| -> Vec<String> {
            env.string(name, default)
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let cors = CorsConfig {
            enabled: env.bool(ENV_ENABLE_CORS, false)?,
            allowed_origins: list(ENV_ALLOWED_ORIGINS, ""),
            allowed_methods: list(ENV_ALLOWED_METHODS, "GET,POST,PUT,DELETE,OPTIONS"),
            allowed_headers: list(ENV_ALLOWED_HEADERS, "*"),
            allow_credentials: env.bool(ENV_ALLOW_CREDENTIALS, false)?,
        };
        if cors.enabled && cors.allowed_origins.is_empty() {
            return Err(EnvError::new(
                ENV_ALLOWED_ORIGINS,
                "must list at least one origin when ENABLE_CORS is true",
            )
            .into());
        }
        let level = env.string(ENV_LOG_LEVEL, "info").to_ascii_lowercase();
        if !matches!(
            level.as_str(),
            "trace" | "debug" | "info" | "warn" | "error"
        ) {
            return Err(
                EnvError::new(ENV_LOG_LEVEL, "must be one of debug, info, warn, error").into(),
            );
        }
        let format = match env
            .string(ENV_LOG_FORMAT, "text")
            .to_ascii_lowercase()
            .as_str()
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(EnvError::new(
                    ENV_LOG_FORMAT,
                    format!("{other:?} is not text or json"),
                )
                .into());
            }
        };
        let log = LogConfig {
            level,
            format,
            enable_file: env.bool(ENV_LOG_ENABLE_FILE, false)?,
            file_path: env.string(ENV_LOG_FILE_PATH, "./data/logs/app.log"),
        };
        let grpc_port = env.int(ENV_GRPC_PORT, 3002, 1, 65535)? as u16;
        let master_grpc_url = env.opt_string(ENV_MASTER_GRPC_URL);
        if let Some(u) = &master_grpc_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            {
                return Err(EnvError::new(
                    ENV_MASTER_GRPC_URL,
                    "must be an http:// or https:// URL",
                )
                .into());
            }
        }
        let cluster_secret = env.opt_string(ENV_CLUSTER_SECRET).map(Secret::new);
        let trusted_proxies = parse_trusted_proxies(&list(ENV_TRUSTED_PROXIES, ""))?;
        let metrics_enabled = env.bool(ENV_METRICS_ENABLED, false)?;
        let ui_dir = env.opt_string(ENV_UI_DIR);
        let allow_link_local_upstreams = env.bool(ENV_ALLOW_LINK_LOCAL_UPSTREAMS, false)?;

        if is_slave && redis_dsn.is_none() {
            return Err(EnvError::new(
                ENV_REDIS_DSN,
                "is required when IS_SLAVE=true (workers share key state through Redis)",
            )
            .into());
        }
        if is_slave && master_grpc_url.is_none() {
            return Err(EnvError::new(
                ENV_MASTER_GRPC_URL,
                "is required when IS_SLAVE=true (e.g. http://master:3002)",
            )
            .into());
        }

        Ok(Self {
            port,
            host,
            read_timeout,
            write_timeout,
            idle_timeout,
            max_connections,
            graceful_shutdown_timeout: Duration::from_secs(graceful as u64),
            is_slave,
            auth_key,
            encryption_key,
            database_dsn,
            redis_dsn,
            redis_key_prefix,
            max_concurrent_requests,
            max_request_body_bytes,
            cors,
            log,
            grpc_port,
            master_grpc_url,
            cluster_secret,
            trusted_proxies,
            metrics_enabled,
            ui_dir,
            allow_link_local_upstreams,
        })
    }

    /// The shared secret of gRPC calls: `CLUSTER_SECRET`, or one derived from `AUTH_KEY`
    /// (hex HMAC-SHA256 of a fixed label) so a master and its workers agree without extra config.
    pub fn cluster_secret(&self) -> String {
        if let Some(s) = &self.cluster_secret {
            return s.expose().to_owned();
        }
        use hmac::{Hmac, Mac};
        match <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.auth_key.expose().as_bytes()) {
            Ok(mut mac) => {
                mac.update(b"gpt-load-cluster-v1");
                hex::encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        }
    }

    /// The seed for the `app_url` setting: `http://{HOST or localhost}:{PORT}`.
    pub fn default_app_url(&self) -> String {
        let host = if self.host.is_empty() || self.host == "0.0.0.0" || self.host == "::" {
            "localhost"
        } else {
            &self.host
        };
        format!("http://{host}:{}", self.port)
    }
}

/// One line per variable for `--help`: name, default, meaning.
pub const ENV_HELP: &[(&str, &str, &str)] = &[
    (ENV_PORT, "3001", "HTTP port of the proxy, admin API and UI"),
    (ENV_HOST, "0.0.0.0", "bind address"),
    (
        ENV_AUTH_KEY,
        "(required)",
        "admin secret for /api/* and the UI",
    ),
    (
        ENV_ENCRYPTION_KEY,
        "",
        "encrypt upstream keys at rest (AES-256-GCM); see `gpt-load migrate-keys`",
    ),
    (
        ENV_DATABASE_DSN,
        "./data/gpt-load.db",
        "SQLite path, postgres://..., or user:pass@tcp(host:3306)/db",
    ),
    (
        ENV_REDIS_DSN,
        "",
        "redis://... — shared key state for a cluster; empty = in-memory",
    ),
    (
        ENV_IS_SLAVE,
        "false",
        "run as a stateless proxy worker (needs REDIS_DSN and MASTER_GRPC_URL)",
    ),
    (
        ENV_MASTER_GRPC_URL,
        "",
        "worker only: the master's gRPC URL, e.g. http://master:3002",
    ),
    (
        ENV_GRPC_PORT,
        "3002",
        "master only: gRPC control-plane port",
    ),
    (
        ENV_CLUSTER_SECRET,
        "(derived from AUTH_KEY)",
        "shared secret authenticating gRPC calls",
    ),
    (
        ENV_REDIS_KEY_PREFIX,
        "gpt-load",
        "prefix of every Redis key",
    ),
    (
        ENV_MAX_CONCURRENT_REQUESTS,
        "100",
        "in-flight request limit; past it requests get 429",
    ),
    (
        ENV_MAX_REQUEST_BODY_MB,
        "32",
        "largest proxied request body in MiB; past it 413",
    ),
    (
        ENV_SERVER_READ_TIMEOUT,
        "60",
        "seconds to read a request (its headers: at most the idle timeout)",
    ),
    (
        ENV_SERVER_WRITE_TIMEOUT,
        "600",
        "seconds a client may take no bytes of an answer before it is cut (streams it reads are never cut)",
    ),
    (
        ENV_SERVER_IDLE_TIMEOUT,
        "120",
        "seconds a keep-alive connection may wait for its next request",
    ),
    (
        ENV_SERVER_MAX_CONNECTIONS,
        "0",
        "open client connections at most (0 = three quarters of the open-file limit); past it new ones are closed",
    ),
    (
        ENV_SERVER_GRACEFUL_SHUTDOWN_TIMEOUT,
        "10",
        "seconds to drain on SIGTERM (minimum 10)",
    ),
    (ENV_ENABLE_CORS, "false", "enable CORS"),
    (ENV_ALLOWED_ORIGINS, "", "comma-separated CORS origins"),
    (
        ENV_ALLOWED_METHODS,
        "GET,POST,PUT,DELETE,OPTIONS",
        "CORS methods",
    ),
    (ENV_ALLOWED_HEADERS, "*", "CORS headers"),
    (ENV_ALLOW_CREDENTIALS, "false", "CORS credentials"),
    (
        ENV_TRUSTED_PROXIES,
        "",
        "comma-separated peer IPs whose X-Forwarded-For is believed",
    ),
    (ENV_LOG_LEVEL, "info", "debug, info, warn, error"),
    (ENV_LOG_FORMAT, "text", "text or json"),
    (
        ENV_LOG_ENABLE_FILE,
        "false",
        "also write logs to LOG_FILE_PATH",
    ),
    (ENV_LOG_FILE_PATH, "./data/logs/app.log", "log file"),
    (
        ENV_METRICS_ENABLED,
        "false",
        "serve Prometheus metrics on /metrics (admin-authenticated)",
    ),
    (
        ENV_UI_DIR,
        "",
        "a built web UI to serve from disk instead of the one embedded in the binary",
    ),
    (
        ENV_ALLOW_LINK_LOCAL_UPSTREAMS,
        "false",
        "accept upstream URLs at link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata)",
    ),
    (
        "SSL_CERT_FILE",
        "(the system's CA store)",
        "PEM file of CAs trusted for https upstreams besides the built-in Mozilla roots (replaces the system store)",
    ),
    (
        "SSL_CERT_DIR",
        "(the system's CA store)",
        "colon-separated directories of such PEM files",
    ),
    (ENV_TZ, "(system)", "time zone of hourly statistics"),
    (
        "TOKIO_WORKER_THREADS",
        "(one per core)",
        "threads serving requests",
    ),
    (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "",
        "export traces and metrics over OTLP/gRPC, e.g. http://otel-collector:4317",
    ),
    (
        "OTEL_SERVICE_NAME",
        "gpt-load-master / gpt-load-worker",
        "service.name of exported telemetry",
    ),
    (
        "OTEL_RESOURCE_ATTRIBUTES",
        "",
        "extra resource attributes, k=v,k=v",
    ),
    (
        "OTEL_TRACES_SAMPLER",
        "parentbased_always_on",
        "with OTEL_TRACES_SAMPLER_ARG, e.g. parentbased_traceidratio + 0.05",
    ),
    (
        "OTEL_METRIC_EXPORT_INTERVAL",
        "60000",
        "milliseconds between OTLP metric exports",
    ),
];

/// `TRUSTED_PROXIES` entries: IP addresses (`10.0.0.7`) or CIDR ranges (`10.0.0.0/8`, `fd00::/8`).
fn parse_trusted_proxies(entries: &[String]) -> Result<Vec<ipnet::IpNet>, EnvError> {
    entries
        .iter()
        .map(|e| {
            e.parse::<ipnet::IpNet>()
                .or_else(|_| e.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    EnvError::new(
                        ENV_TRUSTED_PROXIES,
                        format!("`{e}` is not an IP address or CIDR range"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::MapEnv;

    fn load(pairs: &[(&str, &str)]) -> Result<StaticConfig, ConfigError> {
        StaticConfig::load(&MapEnv::new(pairs.iter().copied()))
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let ok =
            parse_trusted_proxies(&["10.0.0.7".into(), "10.0.0.0/8".into(), "::1".into()]).unwrap();
        let shown: Vec<String> = ok.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.7/32", "10.0.0.0/8", "::1/128"]);
        let e = parse_trusted_proxies(&["10.0.0.0/33".into()]).unwrap_err();
        assert!(e.to_string().contains("TRUSTED_PROXIES"), "{e}");
        assert!(parse_trusted_proxies(&["proxy.local".into()]).is_err());
    }

    #[test]
    fn defaults_match_gpt_load() {
        let c = load(&[("AUTH_KEY", "k")]).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.host, "0.0.0.0");
        assert_eq!(c.max_concurrent_requests, 100);
        assert_eq!(
            c.database_dsn,
            DatabaseDsn::Sqlite("./data/gpt-load.db".into())
        );
        assert_eq!(c.write_timeout, Duration::from_secs(600));
        assert_eq!(c.default_app_url(), "http://localhost:3001");
        assert!(!c.is_slave);
    }

    #[test]
    fn auth_key_is_required() {
        assert_eq!(load(&[]).unwrap_err(), ConfigError::Missing("AUTH_KEY"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = load(&[("AUTH_KEY", "k"), ("PORT", "0")]).unwrap_err();
        assert!(e.to_string().starts_with("invalid value for PORT"), "{e}");
        let e = load(&[("AUTH_KEY", "k"), ("MAX_CONCURRENT_REQUESTS", "0")]).unwrap_err();
        assert!(e.to_string().contains("MAX_CONCURRENT_REQUESTS"), "{e}");
        let e = load(&[("AUTH_KEY", "k"), ("ENABLE_CORS", "true")]).unwrap_err();
        assert!(e.to_string().contains("ALLOWED_ORIGINS"), "{e}");
        let e = load(&[("AUTH_KEY", "k"), ("IS_SLAVE", "true")]).unwrap_err();
        assert!(e.to_string().contains("REDIS_DSN"), "{e}");
    }

    #[test]
    fn graceful_timeout_is_raised_to_ten() {
        let c = load(&[("AUTH_KEY", "k"), ("SERVER_GRACEFUL_SHUTDOWN_TIMEOUT", "3")]).unwrap();
        assert_eq!(c.graceful_shutdown_timeout, Duration::from_secs(10));
    }

    #[test]
    fn dsn_parsing_follows_gpt_load() {
        assert_eq!(
            DatabaseDsn::parse("postgres://u:p@h:5432/db?sslmode=disable").unwrap(),
            DatabaseDsn::Postgres("postgres://u:p@h:5432/db?sslmode=disable".into())
        );
        let m = DatabaseDsn::parse(
            "root:p@ss@tcp(127.0.0.1:3306)/gpt?charset=utf8mb4&parseTime=True&loc=Local",
        )
        .unwrap();
        assert_eq!(
            m,
            DatabaseDsn::MySql {
                url: "mysql://root:p%40ss@127.0.0.1:3306/gpt".into(),
                loc: "Local".into()
            }
        );
        assert_eq!(
            DatabaseDsn::parse("u@tcp(h:3306)/db").unwrap(),
            DatabaseDsn::MySql {
                url: "mysql://u@h:3306/db".into(),
                loc: "UTC".into()
            }
        );
        assert_eq!(
            DatabaseDsn::parse("mysql://u@h/db?loc=Asia%2FShanghai&ssl-mode=disabled").unwrap(),
            DatabaseDsn::MySql {
                url: "mysql://u@h/db?ssl-mode=disabled".into(),
                loc: "Asia/Shanghai".into()
            }
        );
        assert_eq!(
            DatabaseDsn::parse("./data/x.db?_busy_timeout=5000").unwrap(),
            DatabaseDsn::Sqlite("./data/x.db".into())
        );
        assert!(DatabaseDsn::parse("u@tcp(h:1)/").is_err());
    }
}
