//! The admin router on a SQLite database of the test's own (or on a PostgreSQL or MariaDB
//! database of the test's own, created on this machine's servers by [`ServerDb`]).

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use gpt_load_common::config::StaticConfig;
use gpt_load_common::env::MapEnv;
use gpt_load_master::app::{App, router};
use gpt_load_master::state::AppState;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub const ADMIN_KEY: &str = "Adm1n-InProcess-Key-0123456789abcdef";

/// The client address every request comes from.
pub const CLIENT: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)),
    40_001,
);

/// A master's admin API in process.
pub struct Admin {
    pub state: AppState,
    router: Router,
    pub dir: tempfile::TempDir,
}

/// An answer: status and JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub json: Value,
}

/// The configuration of a master whose SQLite file is in `dir`, with `env` on top of the defaults
/// (a `DATABASE_DSN` there points it elsewhere).
pub fn config(dir: &Path, port: u16, env: &[(&str, &str)]) -> StaticConfig {
    let db = dir.join("gpt-load.db");
    let mut vars = vec![
        ("AUTH_KEY".to_owned(), ADMIN_KEY.to_owned()),
        ("DATABASE_DSN".to_owned(), db.display().to_string()),
        ("HOST".to_owned(), "127.0.0.1".to_owned()),
        ("PORT".to_owned(), port.to_string()),
        ("TZ".to_owned(), "UTC".to_owned()),
    ];
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    StaticConfig::load(&MapEnv::new(vars)).unwrap()
}

impl Admin {
    /// A master on a fresh SQLite file, with `env` on top of the defaults.
    pub async fn start(env: &[(&str, &str)]) -> Admin {
        Self::start_in(tempfile::tempdir().unwrap(), env).await
    }

    /// A master on the SQLite file in `dir` (kept or created), with `env` on top of the defaults.
    pub async fn start_in(dir: tempfile::TempDir, env: &[(&str, &str)]) -> Admin {
        // `App::build` binds its port (nothing is served on it): a free one, again if taken.
        let mut tries = 0;
        let app = loop {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let cfg = config(dir.path(), port, env);
            match App::build(cfg).await {
                Ok(app) => break app,
                Err(e) if tries < 5 => {
                    tries += 1;
                    eprintln!("retrying the build: {e}");
                }
                Err(e) => panic!("App::build: {e}"),
            }
        };
        let state = app.state.clone();
        Admin {
            router: router(state.clone()),
            state,
            dir,
        }
    }

    /// Sends a request as the admin (with `key`, unless `None`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("accept-language", "en-US");
        if let Some(k) = key {
            req = req.header("authorization", format!("Bearer {k}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header("content-type", "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.raw(req.body(body).unwrap()).await
    }

    /// Sends a prepared request (the client address is added).
    pub async fn raw(&self, mut req: Request<Body>) -> Answer {
        req.extensions_mut().insert(ConnectInfo(CLIENT));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, Some(ADMIN_KEY), None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(ADMIN_KEY), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(ADMIN_KEY), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, Some(ADMIN_KEY), None).await
    }

    /// Creates a group from `body`; its id.
    pub async fn group(&self, body: Value) -> i64 {
        let a = self.post("/api/groups", body).await;
        assert_eq!(a.status, 200, "{:?}", a.json);
        a.json["data"]["id"].as_i64().unwrap()
    }

    /// Closes the database (and the request-log writer); the directory, with the SQLite file.
    pub async fn stop(self) -> tempfile::TempDir {
        self.state.log_writer.close().await;
        self.state.db.close().await;
        self.dir
    }

    /// A pool on the database file, for checks of what is stored.
    pub async fn db(&self) -> sqlx::SqlitePool {
        let path = self.dir.path().join("gpt-load.db");
        sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap()
    }
}

/// A server database backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    Postgres,
    MariaDb,
}

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MARIADB_ADMIN: &str = "mysql://root@127.0.0.1:3306/mysql";

/// A database of the test's own on this machine's PostgreSQL (127.0.0.1:5432, user `postgres`)
/// or MariaDB (127.0.0.1:3306, user `root`); [`ServerDb::drop_db`] removes it.
pub struct ServerDb {
    pub server: Server,
    /// What `DATABASE_DSN` takes.
    pub dsn: String,
    name: String,
}

impl ServerDb {
    pub async fn create(server: Server) -> ServerDb {
        use sqlx::Connection;
        let name = format!("gl_it_{}", uuid::Uuid::new_v4().simple());
        let dsn = match server {
            Server::Postgres => {
                let mut c = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
                format!("postgres://postgres@127.0.0.1:5432/{name}")
            }
            Server::MariaDb => {
                let mut c = sqlx::MySqlConnection::connect(MARIADB_ADMIN).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                    .execute(&mut c)
                    .await
                    .unwrap();
                format!("mysql://root@127.0.0.1:3306/{name}")
            }
        };
        ServerDb { server, dsn, name }
    }

    /// Drops the database (closing whatever is still connected to it).
    pub async fn drop_db(self) {
        use sqlx::Connection;
        match self.server {
            Server::Postgres => {
                let mut c = sqlx::PgConnection::connect(PG_ADMIN).await.unwrap();
                sqlx::query(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .execute(&mut c)
                .await
                .unwrap();
            }
            Server::MariaDb => {
                let mut c = sqlx::MySqlConnection::connect(MARIADB_ADMIN).await.unwrap();
                sqlx::query(&format!("DROP DATABASE IF EXISTS {}", self.name))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
        }
    }
}
