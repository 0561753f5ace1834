#![expect(
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed set-up must abort the test with its reason"
)]

//! Starting the real `gpt-load` binary for tests: a free port, an isolated working directory and
//! database (SQLite file, or a fresh PostgreSQL / MariaDB database of this machine), the
//! `listening on` line awaited, output captured, the process killed on drop.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const ADMIN_KEY: &str = "Adm1n-Test-Key-9f8e7d6c5b4a3210-XYZ";
pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const MARIADB_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Path of a binary built by this workspace (`cargo build --bins` runs before the tests).
pub fn bin_path(name: &str) -> PathBuf {
    if let Ok(p) = std::env::var(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Sqlite, Backend::Postgres, Backend::MariaDb];
}

/// A database owned by one test.
#[derive(Debug)]
pub struct TestDb {
    pub backend: Backend,
    /// What to put in `DATABASE_DSN`.
    pub dsn: String,
    /// A URL sqlx can open (for seeding and checks).
    pub url: String,
    name: String,
    _dir: Option<Arc<tempfile::TempDir>>,
}

impl TestDb {
    /// Creates an empty database of `backend`.
    pub async fn create(backend: Backend, dir: &Arc<tempfile::TempDir>) -> TestDb {
        let name = format!("gl_{}", uuid::Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("data").join("gpt-load.db");
                TestDb {
                    backend,
                    dsn: path.display().to_string(),
                    url: format!("sqlite://{}?mode=rwc", path.display()),
                    name,
                    _dir: Some(dir.clone()),
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(PG_ADMIN_URL)
                    .await
                    .expect("postgres reachable");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .expect("create database");
                let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
                TestDb {
                    backend,
                    dsn: format!("{url}?sslmode=disable"),
                    url,
                    name,
                    _dir: None,
                }
            }
            Backend::MariaDb => {
                use sqlx::Connection;
                let mut c = sqlx::MySqlConnection::connect(MARIADB_ADMIN_URL)
                    .await
                    .expect("mariadb reachable");
                sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
                    .execute(&mut c)
                    .await
                    .expect("create database");
                TestDb {
                    backend,
                    // GPT-Load's documented Go-style DSN.
                    dsn: format!(
                        "root:@tcp(127.0.0.1:3306)/{name}?charset=utf8mb4&parseTime=True&loc=Local"
                    ),
                    url: format!("mysql://root@127.0.0.1:3306/{name}"),
                    name,
                    _dir: None,
                }
            }
        }
    }

    /// Drops a server database (best effort; SQLite goes with its directory).
    pub async fn drop_db(&self) {
        use sqlx::Connection;
        match self.backend {
            Backend::Sqlite => {}
            Backend::Postgres => {
                if let Ok(mut c) = sqlx::PgConnection::connect(PG_ADMIN_URL).await {
                    let _ = sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .execute(&mut c)
                    .await;
                }
            }
            Backend::MariaDb => {
                if let Ok(mut c) = sqlx::MySqlConnection::connect(MARIADB_ADMIN_URL).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {}", self.name))
                        .execute(&mut c)
                        .await;
                }
            }
        }
    }
}

/// A running `gpt-load` process.
pub struct Server {
    pub port: u16,
    pub env: HashMap<String, String>,
    pub dir: Arc<tempfile::TempDir>,
    child: Option<Child>,
    pub output: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
    /// The binary to run (the workspace's `gpt-load` unless set).
    binary: PathBuf,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("port", &self.port).finish()
    }
}

impl Server {
    /// Starts `gpt-load` in `dir` with `env` (plus `HOST`, `PORT`, `AUTH_KEY` defaults).
    pub async fn start(dir: Arc<tempfile::TempDir>, env: &[(&str, &str)]) -> Server {
        Self::start_binary(bin_path("gpt-load"), dir, env).await
    }

    /// Starts `binary` (a copy of `gpt-load`, say) as [`Server::start`] does.
    pub async fn start_binary(
        binary: PathBuf,
        dir: Arc<tempfile::TempDir>,
        env: &[(&str, &str)],
    ) -> Server {
        let mut map: HashMap<String, String> = HashMap::new();
        map.insert("HOST".into(), "127.0.0.1".into());
        map.insert("AUTH_KEY".into(), ADMIN_KEY.into());
        map.insert("LOG_LEVEL".into(), "info".into());
        for (k, v) in env {
            map.insert((*k).into(), (*v).into());
        }
        let mut s = Server {
            port: 0,
            env: map,
            dir,
            child: None,
            output: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_default(),
            binary,
        };
        s.spawn().await;
        s
    }

    async fn spawn(&mut self) {
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&self.binary);
            cmd.current_dir(self.dir.path())
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .envs(&self.env)
                .env("PORT", port.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            if !self.env.contains_key("TZ") {
                cmd.env("TZ", "UTC");
            }
            let mut child = cmd
                .spawn()
                .expect("spawn gpt-load (run `cargo build --bins` first)");
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
            for pipe in [
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let out = self.output.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut lines = BufReader::new(pipe).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.contains("listening on") {
                            let _ = tx.send(true);
                        }
                        if line.contains("address in use")
                            || line.contains("Address already in use")
                        {
                            let _ = tx.send(false);
                        }
                        out.lock().push(line);
                    }
                });
            }
            drop(tx);
            let ok = tokio::time::timeout(Duration::from_secs(60), rx.recv()).await;
            match ok {
                Ok(Some(true)) => {
                    self.port = port;
                    self.child = Some(child);
                    return;
                }
                Ok(Some(false)) => {
                    let _ = child.kill().await;
                    continue;
                }
                _ => {
                    let _ = child.kill().await;
                    panic!("gpt-load did not start:\n{}", self.output.lock().join("\n"));
                }
            }
        }
        panic!("gpt-load could not bind a free port");
    }

    /// SIGTERM, wait for exit (graceful shutdown flushes logs).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }

    /// SIGKILL without any shutdown.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.output.lock().clear();
        self.spawn().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn logs(&self) -> String {
        self.output.lock().join("\n")
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.http
    }

    /// An admin API call: `(status, json body)`.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("Authorization", format!("Bearer {ADMIN_KEY}"))
            .header("Accept-Language", "en-US");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.api(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.api(reqwest::Method::DELETE, path, None).await
    }

    /// Polls `/api/tasks/status` until the task is done; returns its final status.
    pub async fn wait_task(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, v) = self.get("/api/tasks/status").await;
            if v["data"]["is_running"] == Value::Bool(false) && v["data"]["task_type"] != "" {
                return v["data"].clone();
            }
            assert!(Instant::now() < deadline, "task did not finish: {v}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates a standard group; returns its id.
    pub async fn create_group(&self, body: Value) -> i64 {
        let (status, v) = self.post("/api/groups", body).await;
        assert_eq!(status, 200, "create group: {v}");
        v["data"]["id"].as_i64().expect("group id")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Waits until `f` returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A private `redis-server` for one test (its own port and directory, append-only file on, so a
/// restart keeps the data).
pub struct RedisServer {
    pub port: u16,
    dir: Arc<tempfile::TempDir>,
    child: Option<Child>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .finish()
    }
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut r = RedisServer {
            port: free_port(),
            dir,
            child: None,
        };
        r.spawn().await;
        r
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                &self.dir.path().display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Stops the server (SIGTERM: it writes its append-only file) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg("-TERM")
                    .arg(pid.to_string())
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Restarts the server without its data, as one without persistence comes back (or an
    /// empty replica promoted in its place).
    pub async fn restart_empty(&mut self) {
        self.stop().await;
        for entry in std::fs::read_dir(self.dir.path())
            .expect("redis dir")
            .flatten()
        {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
        self.spawn().await;
    }

    /// Sends the server a signal (`STOP` pauses it: connections stay open, nothing answers;
    /// `CONT` resumes it).
    pub fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("redis-server running");
        let ok = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{signal} {pid}");
    }

    /// Runs `redis-cli` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// Runs the `gpt-load` binary with arguments (e.g. `ctl status`) and returns `(success, stdout, stderr)`.
pub async fn run_cli(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (bool, String, String) {
    let out = Command::new(bin_path("gpt-load"))
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args)
        .output()
        .await
        .expect("run gpt-load");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
