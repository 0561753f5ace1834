//! A master and two `IS_SLAVE` workers on a private Redis and a PostgreSQL database: config
//! propagation, shared rotation, shared blacklisting, logs from every node, the master going
//! away and coming back, Redis restarting — and no request record lost through any of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gpt_load_integration_tests::harness::{
    ADMIN_KEY, Backend, RedisServer, Server, TestDb, eventually, free_port, run_cli,
};
use gpt_load_integration_tests::mock_upstream::{Behavior, MockUpstream};
use serde_json::{Value, json};

const PROXY_KEY: &str = "sk-cluster-client-key-0001";

struct Cluster {
    redis: RedisServer,
    db: TestDb,
    mock: MockUpstream,
    master: Server,
    workers: Vec<Server>,
    grpc_port: u16,
    prefix: String,
}

impl Cluster {
    async fn start(workers: usize) -> Cluster {
        Self::start_on(Backend::Postgres, workers).await
    }

    async fn start_on(backend: Backend, workers: usize) -> Cluster {
        let redis = RedisServer::start().await;
        let mock = MockUpstream::start().await;
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let db = TestDb::create(backend, &dir).await;
        let grpc_port = free_port();
        let prefix = format!("gl-{}", uuid::Uuid::new_v4().simple());
        let master = Server::start(
            dir,
            &[
                ("DATABASE_DSN", &db.dsn),
                ("REDIS_DSN", &redis.url()),
                ("REDIS_KEY_PREFIX", &prefix),
                ("GRPC_PORT", &grpc_port.to_string()),
            ],
        )
        .await;
        let (status, v) = master
            .put(
                "/api/settings",
                json!({"request_log_write_interval_minutes": 0}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        let mut c = Cluster {
            redis,
            db,
            mock,
            master,
            workers: Vec::new(),
            grpc_port,
            prefix,
        };
        for _ in 0..workers {
            let w = c.start_worker().await;
            c.workers.push(w);
        }
        c
    }

    async fn start_worker(&self) -> Server {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        Server::start(
            dir,
            &[
                ("IS_SLAVE", "true"),
                ("REDIS_DSN", &self.redis.url()),
                ("REDIS_KEY_PREFIX", &self.prefix),
                (
                    "MASTER_GRPC_URL",
                    &format!("http://127.0.0.1:{}", self.grpc_port),
                ),
            ],
        )
        .await
    }

    async fn group(&self, name: &str, keys: &[&str], extra: Value) -> i64 {
        let mut body = json!({"name": name, "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": self.mock.url(), "weight": 1}], "proxy_keys": PROXY_KEY});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let id = self.master.create_group(body).await;
        let (status, v) = self
            .master
            .post(
                "/api/keys/add-multiple",
                json!({"group_id": id, "keys_text": keys.join(",")}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        id
    }

    async fn chat(&self, node: &Server, group: &str) -> u16 {
        match node
            .client()
            .post(node.url(&format!("/proxy/{group}/v1/chat/completions")))
            .bearer_auth(PROXY_KEY)
            .timeout(Duration::from_secs(5))
            .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
        {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
            Err(_) => 0,
        }
    }

    async fn final_logs(&self) -> i64 {
        let (_, v) = self
            .master
            .get("/api/logs?request_type=final&page_size=1")
            .await;
        v["data"]["pagination"]["total_items"]
            .as_i64()
            .unwrap_or(-1)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_end_to_end() {
    let mut c = Cluster::start(2).await;

    // A group created on the master serves on both workers within 2 s.
    let gid = c
        .group(
            "shared",
            &["sk-k1", "sk-k2", "sk-k3"],
            json!({"config": {"blacklist_threshold": 1}}),
        )
        .await;
    let created = Instant::now();
    for w in &c.workers {
        let ok = eventually(Duration::from_secs(2), || async {
            w.client()
                .get(w.url("/proxy/shared/v1/models"))
                .bearer_auth(PROXY_KEY)
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        })
        .await;
        assert!(
            ok,
            "the new group serves on every worker within 2 s ({:?})",
            created.elapsed()
        );
    }
    // (Model-list calls above were proxied too; count them as sent.)
    let model_calls = c.mock.request_count() as i64;
    let mut sent = model_calls;
    c.mock.clear();

    // Rotation is shared: requests alternating between the workers use the keys evenly.
    for i in 0..60 {
        assert_eq!(c.chat(&c.workers[i % 2], "shared").await, 200);
        sent += 1;
    }
    for k in ["sk-k1", "sk-k2", "sk-k3"] {
        assert_eq!(c.mock.requests_for_key(k).len(), 20, "{k}");
    }

    // A key blacklisted through worker A is never used by worker B and shows as invalid.
    c.mock
        .set_behavior(Some("sk-k2"), Behavior::openai_invalid_key("sk-k2"));
    for _ in 0..3 {
        assert_eq!(c.chat(&c.workers[0], "shared").await, 200);
        sent += 1;
    }
    let used = c.mock.requests_for_key("sk-k2").len();
    for _ in 0..30 {
        assert_eq!(c.chat(&c.workers[1], "shared").await, 200);
        sent += 1;
    }
    assert_eq!(
        c.mock.requests_for_key("sk-k2").len(),
        used,
        "worker B never uses the key A blacklisted"
    );
    let invalid = eventually(Duration::from_secs(10), || async {
        let (_, v) = c
            .master
            .get(&format!("/api/keys?group_id={gid}&status=invalid"))
            .await;
        v["data"]["items"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0]["key_value"] == "sk-k2")
    })
    .await;
    assert!(invalid, "the master shows the key as invalid");

    // Worker logs reach the master's /api/logs.
    assert!(
        eventually(Duration::from_secs(10), || async {
            c.final_logs().await == sent
        })
        .await,
        "logs: {} of {sent}\nmaster:\n{}\nworker0:\n{}",
        c.final_logs().await,
        c.master.logs(),
        c.workers[0].logs()
    );

    // `gpt-load ctl status` sees both workers; a wrong secret is refused.
    let grpc = format!("http://127.0.0.1:{}", c.grpc_port);
    let (ok, out, err) = run_cli(
        std::path::Path::new("/tmp"),
        &[("AUTH_KEY", ADMIN_KEY)],
        &["ctl", "--master", &grpc, "--json", "status"],
    )
    .await;
    assert!(ok, "{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["connected"] == true)
            .count(),
        2,
        "{out}"
    );
    assert_eq!(status["holds_job_lease"], true);
    let (ok, _, err) = run_cli(
        std::path::Path::new("/tmp"),
        &[("AUTH_KEY", "not-the-admin-key")],
        &["ctl", "--master", &grpc, "status"],
    )
    .await;
    assert!(!ok && err.contains("Unauthenticated"), "{err}");

    // Kill the master mid-traffic: the workers answer every request.
    c.mock.set_behavior(Some("sk-k2"), Behavior::Ok);
    c.master.kill().await;
    for i in 0..40 {
        assert_eq!(
            c.chat(&c.workers[i % 2], "shared").await,
            200,
            "request {i} while the master is down"
        );
        sent += 1;
    }
    // Restart it on the same data: the workers resync and pick up a new group.
    c.master.restart().await;
    c.group("after-restart", &["sk-n1"], json!({})).await;
    for w in &c.workers {
        let ok = eventually(Duration::from_secs(3), || async {
            c.chat(w, "after-restart").await == 200
        })
        .await;
        assert!(
            ok,
            "workers pick up a group created after the master restarted"
        );
        sent += 1;
    }
    // The restart kept the live pools: the blacklisted key is still invalid, no key was reset.
    let (_, v) = c
        .master
        .get(&format!("/api/keys?group_id={gid}&status=invalid"))
        .await;
    assert_eq!(v["data"]["items"].as_array().unwrap().len(), 1);

    // Restart Redis: workers answer 503 quickly while it is down, then recover by themselves.
    c.redis.stop().await;
    let t = Instant::now();
    let s = c.chat(&c.workers[0], "shared").await;
    assert_eq!(s, 503, "a quick 503 while Redis is down");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    sent += 1;
    c.redis.restart().await;
    let mut recovered = false;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let s = c.chat(&c.workers[1], "shared").await;
        sent += 1;
        if s == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(recovered, "workers recover after Redis restarts");
    for i in 0..10 {
        assert_eq!(c.chat(&c.workers[i % 2], "shared").await, 200);
        sent += 1;
    }

    // No request record was lost through any of it.
    let all = eventually(Duration::from_secs(20), || async {
        c.final_logs().await == sent
    })
    .await;
    assert!(
        all,
        "final logs {} != requests {sent}",
        c.final_logs().await
    );

    for w in c.workers.iter_mut() {
        w.stop().await;
    }
    c.master.stop().await;
    c.db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_serve_only_the_proxy_and_need_redis() {
    let c = Cluster::start(1).await;
    let w = &c.workers[0];
    let r = w
        .client()
        .get(w.url("/api/groups"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = w.client().get(w.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (ok, _, err) = run_cli(
        std::path::Path::new("/tmp"),
        &[("AUTH_KEY", ADMIN_KEY), ("IS_SLAVE", "true")],
        &[],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("REDIS_DSN"), "{err}");
    c.db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_master_runs_no_jobs() {
    let c = Cluster::start(0).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let second = Server::start(
        dir,
        &[
            ("DATABASE_DSN", &c.db.dsn),
            ("REDIS_DSN", &c.redis.url()),
            ("REDIS_KEY_PREFIX", &c.prefix),
            ("GRPC_PORT", &free_port().to_string()),
        ],
    )
    .await;
    let said = eventually(Duration::from_secs(5), || async {
        second.logs().contains("another master holds the job lease")
    })
    .await;
    assert!(said, "{}", second.logs());
    assert!(c.master.logs().contains("holding the job lease"));
    c.db.drop_db().await;
}

/// The Redis stream can deliver a record again: a worker whose `XADD` reply was lost sends the
/// batch twice, and entries are read again after a crash between the commit and the
/// acknowledgement, or when the key states written after the logs failed. A log delivered twice
/// is stored once and counted once — in the hourly stats and in its key's usage — whether the
/// copies arrive in one flush or after the first was written. On PostgreSQL and MariaDB (each
/// takes its own way to see what other transactions wrote).
#[tokio::test(flavor = "multi_thread")]
async fn a_log_delivered_twice_is_stored_and_counted_once() {
    for backend in [Backend::Postgres, Backend::MariaDb] {
        log_delivered_twice_on(backend).await;
    }
}

async fn log_delivered_twice_on(backend: Backend) {
    let c = Cluster::start_on(backend, 0).await;
    let gid = c.group("replayed", &["sk-replayed-1"], json!({})).await;
    let (status, v) = c.master.get(&format!("/api/keys?group_id={gid}")).await;
    assert_eq!(status, 200, "{v}");
    let key = v["data"]["items"][0].clone();
    let hash = key["key_hash"].as_str().expect("key hash").to_owned();

    let stream = format!("{}:records", c.prefix);
    let redis = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &c.redis.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let record = |id: &str| {
        json!({"Log": {
            "id": id, "timestamp": chrono::Utc::now().to_rfc3339(), "group_id": gid,
            "group_name": "replayed", "parent_group_id": null, "parent_group_name": "",
            "key_value": "sk-replayed-1", "key_hash": hash, "model": "m", "is_success": true,
            "source_ip": "127.0.0.1", "status_code": 200,
            "request_path": "/proxy/replayed/v1/chat/completions", "duration_ms": 3,
            "error_message": "", "user_agent": "test", "request_type": "final",
            "upstream_addr": "http://127.0.0.1:1/v1/chat/completions", "is_stream": false,
            "request_body": ""
        }})
    };
    let flushed = || async {
        eventually(Duration::from_secs(10), || async {
            redis(&["XLEN", &stream]) == "0"
        })
        .await
    };
    // One stream entry holding `ids`' logs, as a worker pushes them.
    let push = |ids: &[&str]| {
        let batch = Value::Array(ids.iter().map(|id| record(id)).collect()).to_string();
        redis(&["XADD", &stream, "*", "b", &batch]);
    };
    let first = uuid::Uuid::now_v7().to_string();
    let second = uuid::Uuid::now_v7().to_string();
    // The same log in two entries of one read, and twice in one entry.
    push(&[&first]);
    push(&[&first]);
    push(&[&second, &second]);
    assert!(flushed().await, "entries left unread\n{}", c.master.logs());
    // Both again, after they were written.
    push(&[&first, &second]);
    assert!(flushed().await, "entries left unread\n{}", c.master.logs());

    let (_, v) = c
        .master
        .get("/api/logs?group_name=replayed&page_size=10")
        .await;
    assert_eq!(v["data"]["pagination"]["total_items"], 2, "{v}");
    let (_, v) = c.master.get(&format!("/api/keys?group_id={gid}")).await;
    assert_eq!(v["data"]["items"][0]["request_count"], 2, "{v}");
    let sql = "SELECT CAST(COALESCE(SUM(success_count), 0) AS SIGNED), \
         CAST(COALESCE(SUM(failure_count), 0) AS SIGNED) FROM group_hourly_stats WHERE group_id = ";
    let counts: (i64, i64) = if backend == Backend::Postgres {
        let pool = sqlx::PgPool::connect(&c.db.url).await.expect("postgres");
        let sql = format!("{sql}$1").replace("SIGNED", "BIGINT");
        let r = sqlx::query_as(&sql).bind(gid).fetch_one(&pool).await;
        pool.close().await;
        r.expect("hourly stats")
    } else {
        let pool = sqlx::MySqlPool::connect(&c.db.url).await.expect("mariadb");
        let r = sqlx::query_as(&format!("{sql}?"))
            .bind(gid)
            .fetch_one(&pool)
            .await;
        pool.close().await;
        r.expect("hourly stats")
    };
    assert_eq!(counts, (2, 0), "{backend:?}");
    c.db.drop_db().await;
}
