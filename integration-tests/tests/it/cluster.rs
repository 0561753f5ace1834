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
        Self::start_with(backend, workers, 0).await
    }

    /// A cluster whose master writes request logs every `log_interval_minutes`.
    async fn start_with(backend: Backend, workers: usize, log_interval_minutes: i64) -> Cluster {
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
                json!({"request_log_write_interval_minutes": log_interval_minutes}),
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
        chat_on(node.client(), node.port, group).await.0
    }

    /// The group's keys the master lists as invalid.
    async fn invalid_keys(&self, gid: i64) -> Vec<String> {
        let (_, v) = self
            .master
            .get(&format!("/api/keys?group_id={gid}&status=invalid"))
            .await;
        v["data"]["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|k| k["key_value"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn final_logs(&self) -> i64 {
        logs_of(&self.master, None).await
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
        c.invalid_keys(gid).await == ["sk-k2"]
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
    assert_eq!(c.invalid_keys(gid).await, ["sk-k2"]);

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

/// Key status changes from the workers reach the database within about a second, whatever the
/// request-log interval: with logs written once a minute, a key a worker blacklisted shows as
/// invalid in the master's key list long before the logs read with its event are written.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_blacklisted_on_a_worker_shows_within_seconds_whatever_the_log_interval() {
    let c = Cluster::start_with(Backend::Postgres, 1, 1).await;
    let gid = c
        .group(
            "blacklisting",
            &["sk-good-1", "sk-bad-1"],
            json!({"config": {"blacklist_threshold": 1}}),
        )
        .await;
    c.mock
        .set_behavior(Some("sk-bad-1"), Behavior::openai_invalid_key("sk-bad-1"));
    let w = &c.workers[0];
    let served = eventually(Duration::from_secs(5), || async {
        c.chat(w, "blacklisting").await == 200
    })
    .await;
    assert!(served, "{}", w.logs());
    // Rotation reaches the bad key within two requests; its failure blacklists it (threshold 1)
    // and the request is retried on the good key.
    for _ in 0..2 {
        assert_eq!(c.chat(w, "blacklisting").await, 200);
    }
    assert_eq!(c.mock.requests_for_key("sk-bad-1").len(), 1);
    let blacklisted = Instant::now();
    let shown = eventually(Duration::from_secs(3), || async {
        c.invalid_keys(gid).await == ["sk-bad-1"]
    })
    .await;
    assert!(
        shown,
        "the master shows the key as invalid within seconds\n{}",
        c.master.logs()
    );
    // The logs themselves wait for their interval: the key state did not ride on them.
    assert!(blacklisted.elapsed() < Duration::from_secs(30));
    assert_eq!(c.final_logs().await, 0, "logs were written early");
    c.db.drop_db().await;
}

/// One proxied chat request to the node on `port`: status (0 when no answer came) and the error
/// code of a JSON error answer (or the transport error).
async fn chat_on(client: &reqwest::Client, port: u16, group: &str) -> (u16, String) {
    let r = client
        .post(format!(
            "http://127.0.0.1:{port}/proxy/{group}/v1/chat/completions"
        ))
        .bearer_auth(PROXY_KEY)
        .timeout(Duration::from_secs(5))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await;
    match r {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (status, v["code"].as_str().unwrap_or_default().to_owned())
        }
        Err(e) => (0, e.to_string()),
    }
}

async fn chat_code(node: &Server, group: &str) -> (u16, String) {
    chat_on(node.client(), node.port, group).await
}

/// Redis that loses its data takes every key pool with it. Without a restart of anything, the
/// master reloads the pools from the database within seconds, under load; meanwhile the proxy
/// says the key state is missing (or Redis unreachable) — never "no keys" for a group whose
/// keys are active. A key blacklisted before the loss stays out: the database knew it. Both
/// ways of losing the data: a restart without persistence and `FLUSHALL`.
#[tokio::test(flavor = "multi_thread")]
async fn key_pools_redis_lost_are_reloaded_under_load() {
    let mut c = Cluster::start(1).await;
    let gid = c
        .group(
            "lossy",
            &["sk-l1", "sk-l2", "sk-l3"],
            json!({"config": {"blacklist_threshold": 1}}),
        )
        .await;
    c.mock
        .set_behavior(Some("sk-l3"), Behavior::openai_invalid_key("sk-l3"));
    let w = c.workers[0].port;
    assert!(
        eventually(Duration::from_secs(5), || async {
            c.chat(&c.workers[0], "lossy").await == 200
        })
        .await
    );
    for _ in 0..3 {
        assert_eq!(c.chat(&c.workers[0], "lossy").await, 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            c.invalid_keys(gid).await == ["sk-l3"]
        })
        .await,
        "sk-l3 blacklisted in the database"
    );
    c.mock.set_behavior(Some("sk-l3"), Behavior::Ok);

    for how in ["restart without persistence", "FLUSHALL"] {
        // Load on both nodes while it happens.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::new(parking_lot::Mutex::new(Vec::<(u16, String)>::new()));
        let load = {
            let (stop, seen) = (stop.clone(), seen.clone());
            let master = c.master.port;
            tokio::spawn(async move {
                let client = reqwest::Client::builder().no_proxy().build().unwrap();
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let port = if i.is_multiple_of(2) { master } else { w };
                    i += 1;
                    let got = chat_on(&client, port, "lossy").await;
                    seen.lock().push(got);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        if how == "FLUSHALL" {
            c.redis.cli(&["FLUSHALL"]);
        } else {
            c.redis.restart_empty().await;
        }
        let lost = Instant::now();
        for node in [&c.master, &c.workers[0]] {
            let back = eventually(Duration::from_secs(10), || async {
                chat_code(node, "lossy").await.0 == 200
            })
            .await;
            assert!(
                back,
                "{how}: serving again within seconds ({:?}); last answer {:?}\nmaster:\n{}",
                lost.elapsed(),
                chat_code(node, "lossy").await,
                c.master.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.await.unwrap();
        let seen = seen.lock().clone();
        assert!(seen.iter().any(|(s, _)| *s == 200), "{how}: {seen:?}");
        for (status, code) in &seen {
            assert!(
                *status == 200
                    || (*status == 503
                        && (code == "KEY_STATE_MISSING" || code == "STORE_UNAVAILABLE")),
                "{how}: answered {status} {code}"
            );
        }
        assert!(
            c.master.logs().contains("reloaded it from the database"),
            "{how}\n{}",
            c.master.logs()
        );
        // The reloaded pool keeps the database's view: the blacklisted key is not used.
        let before = c.mock.requests_for_key("sk-l3").len();
        for i in 0..6usize {
            let node = if i.is_multiple_of(2) {
                &c.master
            } else {
                &c.workers[0]
            };
            assert_eq!(c.chat(node, "lossy").await, 200);
        }
        assert_eq!(c.mock.requests_for_key("sk-l3").len(), before, "{how}");
    }
    c.db.drop_db().await;
}

/// Calls `group` on `port` until `stop`, counting the 200 answers.
fn load(
    port: u16,
    group: &'static str,
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<std::sync::atomic::AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    use std::sync::atomic::Ordering;
    tokio::spawn(async move {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        while !stop.load(Ordering::Relaxed) {
            if chat_on(&client, port, group).await.0 == 200 {
                ok.fetch_add(1, Ordering::SeqCst);
            } else {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    })
}

/// Final logs (of one group, or all), as the master's API counts them.
async fn logs_of(master: &Server, group: Option<&str>) -> i64 {
    let filter = group
        .map(|g| format!("&group_name={g}"))
        .unwrap_or_default();
    let (_, v) = master
        .get(&format!("/api/logs?request_type=final&page_size=1{filter}"))
        .await;
    v["data"]["pagination"]["total_items"]
        .as_i64()
        .unwrap_or(-1)
}

/// Chaos under load: the master killed with SIGKILL and started again, then a worker killed with
/// SIGKILL, while clients keep calling both workers (each its own group, so the logs tell the
/// workers apart). Every request the surviving worker answered is logged exactly once, master
/// crash or not (its records wait in the Redis stream); the killed worker loses at most the
/// records of its last moments (its pusher looks at the queue every 50 ms), and never logs more
/// than it answered.
#[tokio::test(flavor = "multi_thread")]
async fn master_and_worker_killed_under_load_lose_only_the_killed_workers_last_records() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut c = Cluster::start(2).await;
    c.group("via-w0", &["sk-c0"], json!({})).await;
    c.group("via-w1", &["sk-c1"], json!({})).await;
    for (w, g) in [(0, "via-w0"), (1, "via-w1")] {
        let ok = eventually(Duration::from_secs(5), || async {
            c.chat(&c.workers[w], g).await == 200
        })
        .await;
        assert!(ok, "{g} serves on worker {w}");
    }
    // The warm-up's own logs, once they are all written (unchanged over a second).
    let mut warmup = (-1, -1);
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = (
            logs_of(&c.master, Some("via-w0")).await,
            logs_of(&c.master, Some("via-w1")).await,
        );
        if now == warmup {
            break;
        }
        warmup = now;
    }
    let (warmup_w0, warmup_w1) = warmup;
    assert!(warmup_w0 >= 1 && warmup_w1 >= 1, "{warmup:?}");

    let stop = Arc::new(AtomicBool::new(false));
    let ok0 = Arc::new(AtomicUsize::new(0));
    let ok1 = Arc::new(AtomicUsize::new(0));
    let loads = [
        load(c.workers[0].port, "via-w0", stop.clone(), ok0.clone()),
        load(c.workers[1].port, "via-w1", stop.clone(), ok1.clone()),
    ];
    let load_started = Instant::now();
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.master.kill().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.master.restart().await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before_kill = ok1.load(Ordering::SeqCst);
    let rate_w1 = before_kill as f64 / load_started.elapsed().as_secs_f64();
    c.workers[1].kill().await;
    let answered_w1 = ok1.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        l.await.unwrap();
    }
    let answered_w0 = ok0.load(Ordering::SeqCst) as i64;
    let answered_w1 = answered_w1 as i64;
    assert!(
        answered_w0 > 50 && before_kill > 50,
        "{answered_w0} {before_kill}"
    );
    // Every answer of the surviving worker, through the master's crash.
    let all = eventually(Duration::from_secs(20), || async {
        logs_of(&c.master, Some("via-w0")).await - warmup_w0 == answered_w0
    })
    .await;
    assert!(
        all,
        "worker 0 answered {answered_w0}, logged {}\nmaster:\n{}",
        logs_of(&c.master, Some("via-w0")).await - warmup_w0,
        c.master.logs()
    );
    // The killed worker: the records of its last moments may be lost (what it answered in the
    // last 50 ms tick and a push under way: a fifth of a second at its rate is a loose bound on
    // this loaded 2-core machine), nothing else.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let logged_w1 = logs_of(&c.master, Some("via-w1")).await - warmup_w1;
    let bound = (rate_w1 * 0.2).ceil() as i64 + 5;
    assert!(
        logged_w1 <= answered_w1 && logged_w1 >= answered_w1 - bound,
        "worker 1 answered {answered_w1} ({rate_w1:.0}/s), logged {logged_w1} (at most {bound} lost)"
    );
    c.db.drop_db().await;
}

/// Redis paused (the process stops answering, its connections stay open): every node answers a
/// quick 503 instead of hanging its clients, and serves again by itself once Redis resumes.
#[tokio::test(flavor = "multi_thread")]
async fn redis_paused_answers_503_quickly_and_recovers_when_resumed() {
    let c = Cluster::start(1).await;
    c.group("paused", &["sk-p1"], json!({})).await;
    assert!(
        eventually(Duration::from_secs(5), || async {
            c.chat(&c.workers[0], "paused").await == 200
        })
        .await
    );
    c.redis.signal("STOP");
    for node in [&c.master, &c.workers[0]] {
        let t = Instant::now();
        let (status, code) = chat_code(node, "paused").await;
        assert_eq!((status, code.as_str()), (503, "STORE_UNAVAILABLE"));
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    }
    c.redis.signal("CONT");
    for node in [&c.master, &c.workers[0]] {
        let back = eventually(Duration::from_secs(10), || async {
            c.chat(node, "paused").await == 200
        })
        .await;
        assert!(back, "serving again after Redis resumed");
    }
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

/// `gpt-load ctl import` holds keys to the admin API's length limit: a key over 4 096 bytes
/// refuses the import (naming its line) and adds nothing; a normal file imports.
#[tokio::test(flavor = "multi_thread")]
async fn ctl_import_refuses_an_oversized_key() {
    let c = Cluster::start(0).await;
    let gid = c
        .master
        .create_group(
            json!({"name": "imported", "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": c.mock.url(), "weight": 1}]}),
        )
        .await;
    let grpc = format!("http://127.0.0.1:{}", c.grpc_port);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.txt");
    std::fs::write(&file, format!("sk-fine-1\nsk-{}\n", "x".repeat(5_000))).unwrap();
    let path = file.display().to_string();
    let import = |path: String| {
        let grpc = grpc.clone();
        async move {
            run_cli(
                std::path::Path::new("/tmp"),
                &[("AUTH_KEY", ADMIN_KEY)],
                &[
                    "ctl", "--master", &grpc, "import", "--group", "imported", "--file", &path,
                ],
            )
            .await
        }
    };
    let (ok, _, err) = import(path).await;
    assert!(!ok, "an oversized key was imported");
    assert!(err.contains("line 2") && err.contains("4096"), "{err}");
    let (_, v) = c.master.get(&format!("/api/keys?group_id={gid}")).await;
    assert_eq!(v["data"]["pagination"]["total_items"], 0, "{v}");
    std::fs::write(&file, "sk-fine-1\nsk-fine-2\n").unwrap();
    let (ok, out, err) = import(file.display().to_string()).await;
    assert!(ok, "{out}{err}");
    let (_, v) = c.master.get(&format!("/api/keys?group_id={gid}")).await;
    assert_eq!(v["data"]["pagination"]["total_items"], 2, "{v}");
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

/// One native-route chat request with `key` for `model` to the node on `port`: the status.
async fn native_chat(node: &Server, key: &str, model: &str) -> u16 {
    let r = node
        .client()
        .post(format!(
            "http://127.0.0.1:{}/v1/chat/completions",
            node.port
        ))
        .bearer_auth(key)
        .timeout(Duration::from_secs(5))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await;
    r.map_or(0, |r| r.status().as_u16())
}

/// An access key created on the master works on every worker within a second, the model
/// choosing among the groups that serve it; disabled, it stops working everywhere as fast.
#[tokio::test(flavor = "multi_thread")]
async fn an_access_key_created_on_the_master_works_on_every_worker_within_a_second() {
    let c = Cluster::start(2).await;
    c.group("routed-a", &["sk-ra"], json!({"models": ["m-*"]}))
        .await;
    c.group("routed-b", &["sk-rb"], json!({"models": ["m-*"]}))
        .await;
    for w in &c.workers {
        let up = eventually(Duration::from_secs(10), || async {
            c.chat(w, "routed-a").await == 200
        })
        .await;
        assert!(up, "{}", w.logs());
    }
    let (status, v) = c
        .master
        .post("/api/access-keys", json!({"name": "team"}))
        .await;
    assert_eq!(status, 200, "{v}");
    let key = v["data"]["key"].as_str().unwrap().to_owned();
    let id = v["data"]["id"].as_i64().unwrap();
    for w in &c.workers {
        let works = eventually(Duration::from_secs(1), || async {
            native_chat(w, &key, "m-1").await == 200
        })
        .await;
        assert!(
            works,
            "the new key works on the worker within a second\n{}",
            w.logs()
        );
    }
    c.mock.clear();
    for w in &c.workers {
        for _ in 0..4 {
            assert_eq!(native_chat(w, &key, "m-1").await, 200);
        }
    }
    let (a, b) = (
        c.mock.requests_for_key("sk-ra").len(),
        c.mock.requests_for_key("sk-rb").len(),
    );
    assert_eq!((a, b), (4, 4), "both groups of the tier share the traffic");
    let (status, v) = c
        .master
        .put(
            &format!("/api/access-keys/{id}"),
            json!({"status": "disabled"}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    for w in &c.workers {
        let refused = eventually(Duration::from_secs(1), || async {
            native_chat(w, &key, "m-1").await == 401
        })
        .await;
        assert!(refused, "the disabled key is refused within a second");
    }
    c.db.drop_db().await;
}

/// `gpt-load ctl access-keys create|list|disable`: the key is shown whole once, masked in the
/// list, and works on a worker until disabled.
#[tokio::test(flavor = "multi_thread")]
async fn ctl_creates_lists_and_disables_access_keys() {
    let c = Cluster::start(1).await;
    c.group("ctl-routed", &["sk-ctl"], json!({"models": ["m-*"]}))
        .await;
    let grpc = format!("http://127.0.0.1:{}", c.grpc_port);
    let ctl = |args: Vec<String>| {
        let grpc = grpc.clone();
        async move {
            let mut all = vec![
                "ctl".to_owned(),
                "--master".to_owned(),
                grpc,
                "--json".to_owned(),
            ];
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            run_cli(
                std::path::Path::new("/tmp"),
                &[("AUTH_KEY", ADMIN_KEY)],
                &refs,
            )
            .await
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let (ok, out, err) = ctl(args(&[
        "access-keys",
        "create",
        "--name",
        "ci",
        "--group",
        "ctl-routed",
        "--model",
        "m-*",
    ]))
    .await;
    assert!(ok, "{out}{err}");
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    let key = created[0]["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("sk-gl-") && !key.contains('…'), "{key}");
    assert_eq!(created[0]["groups"], json!(["ctl-routed"]));
    let (ok, out, err) = ctl(args(&[
        "access-keys",
        "create",
        "--name",
        "x",
        "--group",
        "nope",
    ]))
    .await;
    assert!(!ok && err.contains("nope"), "{out}{err}");
    let w = &c.workers[0];
    let works = eventually(Duration::from_secs(5), || async {
        native_chat(w, &key, "m-1").await == 200
    })
    .await;
    assert!(works, "{}", w.logs());
    let (ok, out, err) = ctl(args(&["access-keys", "list"])).await;
    assert!(ok, "{out}{err}");
    let listed: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(!out.contains(&key), "the list shows the whole key: {out}");
    let (ok, out, err) = ctl(args(&["access-keys", "disable", "ci"])).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains("\"disabled\""), "{out}");
    let refused = eventually(Duration::from_secs(5), || async {
        native_chat(w, &key, "m-1").await == 401
    })
    .await;
    assert!(refused, "the disabled key is refused");
    c.db.drop_db().await;
}
