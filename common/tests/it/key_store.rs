use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gpt_load_common::crypto::KeyCipher;
use gpt_load_common::keystore::{
    FailureOutcome, KeyMaterial, KeyStore, MemoryKeyStore, PoolCounts, PoolKey, RedisKeyStore,
    Selection,
};
use gpt_load_common::model::KeyStatus;
use gpt_load_common::redis::{RedisKeys, connect};
use gpt_load_common::serving_thread::ServingThread;

const REDIS: &str = "redis://127.0.0.1:6379/0";

fn key(group: i64, id: i64, status: KeyStatus) -> PoolKey {
    PoolKey {
        material: Arc::new(KeyMaterial {
            id,
            group_id: group,
            value: format!("sk-{id}"),
            stored: format!("sk-{id}"),
            hash: format!("h{id}"),
        }),
        status,
        failure_count: 0,
    }
}

async fn redis_store() -> RedisKeyStore {
    let client = connect(REDIS).await.unwrap();
    let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
    RedisKeyStore::new(
        client,
        RedisKeys::new(&prefix),
        Arc::new(KeyCipher::new(None)),
    )
}

async fn pick<S: KeyStore>(s: &S, g: i64) -> Option<i64> {
    match s.select(g, None).await.unwrap() {
        Selection::Key(k) => Some(k.key.id),
        _ => None,
    }
}

async fn rotation<S: KeyStore>(s: &S) {
    s.load_group(
        1,
        vec![
            key(1, 1, KeyStatus::Active),
            key(1, 2, KeyStatus::Active),
            key(1, 3, KeyStatus::Invalid),
            key(1, 4, KeyStatus::Active),
        ],
    )
    .await
    .unwrap();
    let mut seen = HashMap::new();
    for _ in 0..30 {
        *seen.entry(pick(s, 1).await.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen, HashMap::from([(1, 10), (2, 10), (4, 10)]));
    assert_eq!(
        s.counts(1).await.unwrap(),
        PoolCounts {
            active: 3,
            invalid: 1,
            cooling: 0
        }
    );
    match s.select(1, None).await.unwrap() {
        Selection::Key(k) => assert_eq!(k.key.value, format!("sk-{}", k.key.id)),
        other => panic!("{other:?}"),
    }
}

async fn blacklist_and_restore<S: KeyStore>(s: &S) {
    s.load_group(
        2,
        vec![key(2, 10, KeyStatus::Active), key(2, 11, KeyStatus::Active)],
    )
    .await
    .unwrap();
    assert_eq!(
        s.record_failure(2, 10, 2, None).await.unwrap(),
        FailureOutcome {
            failure_count: 1,
            blacklisted: false,
            invalid: false
        }
    );
    assert_eq!(
        s.record_failure(2, 10, 2, None).await.unwrap(),
        FailureOutcome {
            failure_count: 2,
            blacklisted: true,
            invalid: true
        }
    );
    assert_eq!(
        s.record_failure(2, 10, 2, None).await.unwrap(),
        FailureOutcome {
            failure_count: 2,
            blacklisted: false,
            invalid: true
        }
    );
    for _ in 0..6 {
        assert_eq!(pick(s, 2).await, Some(11));
    }
    s.set_status(2, &[10], KeyStatus::Active).await.unwrap();
    let mut got: Vec<i64> = Vec::new();
    for _ in 0..4 {
        got.push(pick(s, 2).await.unwrap());
    }
    got.sort();
    assert_eq!(got, [10, 10, 11, 11]);
    // Success resets consecutive failures.
    s.record_failure(2, 11, 5, None).await.unwrap();
    assert!(s.record_success(2, 11).await.unwrap());
    assert!(!s.record_success(2, 11).await.unwrap());
    assert_eq!(
        s.record_failure(2, 11, 5, None)
            .await
            .unwrap()
            .failure_count,
        1
    );
}

async fn cool_down<S: KeyStore>(s: &S) {
    s.load_group(
        3,
        vec![key(3, 20, KeyStatus::Active), key(3, 21, KeyStatus::Active)],
    )
    .await
    .unwrap();
    s.cool_down(3, 20, Duration::from_secs(30), None)
        .await
        .unwrap();
    for _ in 0..5 {
        assert_eq!(pick(s, 3).await, Some(21));
    }
    s.cool_down(3, 21, Duration::from_millis(300), None)
        .await
        .unwrap();
    match s.select(3, None).await.unwrap() {
        Selection::AllCooling { retry_after } => {
            assert!(retry_after <= Duration::from_millis(300), "{retry_after:?}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.counts(3).await.unwrap().cooling, 2);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(pick(s, 3).await, Some(21));
}

async fn membership<S: KeyStore>(s: &S) {
    // A group's pool is loaded (empty here) before keys come and go, as the master does.
    s.load_group(4, Vec::new()).await.unwrap();
    assert!(matches!(
        s.select(4, None).await.unwrap(),
        Selection::NoActiveKeys
    ));
    s.add_keys(4, vec![key(4, 30, KeyStatus::Active)])
        .await
        .unwrap();
    s.add_keys(4, vec![key(4, 31, KeyStatus::Invalid)])
        .await
        .unwrap();
    assert_eq!(pick(s, 4).await, Some(30));
    s.remove_keys(4, &[30]).await.unwrap();
    assert!(matches!(
        s.select(4, None).await.unwrap(),
        Selection::NoActiveKeys
    ));
    assert_eq!(
        s.counts(4).await.unwrap(),
        PoolCounts {
            active: 0,
            invalid: 1,
            cooling: 0
        }
    );
    s.remove_group(4).await.unwrap();
    assert_eq!(s.counts(4).await.unwrap(), PoolCounts::default());
    // Reloading keeps what the pool learned about keys it already has, and drops the rest.
    s.load_group(
        5,
        vec![key(5, 40, KeyStatus::Active), key(5, 41, KeyStatus::Active)],
    )
    .await
    .unwrap();
    s.record_failure(5, 40, 1, None).await.unwrap();
    s.load_group(
        5,
        vec![key(5, 40, KeyStatus::Active), key(5, 42, KeyStatus::Active)],
    )
    .await
    .unwrap();
    let mut got: Vec<i64> = Vec::new();
    for _ in 0..4 {
        got.push(pick(s, 5).await.unwrap());
    }
    assert_eq!(got, [42, 42, 42, 42], "40 stays blacklisted, 41 is gone");
}

async fn exact_concurrent_counting<S: KeyStore>(s: Arc<S>) {
    s.load_group(6, vec![key(6, 50, KeyStatus::Active)])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut blacklisted = 0;
            for _ in 0..100 {
                if s.record_failure(6, 50, 1000, None)
                    .await
                    .unwrap()
                    .blacklisted
                {
                    blacklisted += 1;
                }
            }
            blacklisted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 1, "blacklisted exactly once");
    assert_eq!(
        s.record_failure(6, 50, 1000, None).await.unwrap(),
        FailureOutcome {
            failure_count: 1000,
            blacklisted: false,
            invalid: true
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_contract() {
    let s = Arc::new(MemoryKeyStore::new());
    rotation(s.as_ref()).await;
    blacklist_and_restore(s.as_ref()).await;
    cool_down(s.as_ref()).await;
    membership(s.as_ref()).await;
    exact_concurrent_counting(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_contract() {
    let s = Arc::new(redis_store().await);
    rotation(s.as_ref()).await;
    blacklist_and_restore(s.as_ref()).await;
    cool_down(s.as_ref()).await;
    membership(s.as_ref()).await;
    exact_concurrent_counting(s.clone()).await;
    for g in 1..=6 {
        s.remove_group(g).await.unwrap();
    }
}

/// Redis that lost its data is told from an empty pool: a pool never loaded (or loaded, then
/// wiped) answers `PoolMissing`, one loaded empty `NoActiveKeys`; keys added after the loss do
/// not make the pool whole again, a reload does.
#[tokio::test(flavor = "multi_thread")]
async fn redis_store_tells_a_lost_pool_from_an_empty_one() {
    let s = redis_store().await;
    let prefix = s.keys().prefix().to_owned();
    assert!(matches!(
        s.select(40, None).await.unwrap(),
        Selection::PoolMissing
    ));
    s.load_group(40, Vec::new()).await.unwrap();
    assert!(matches!(
        s.select(40, None).await.unwrap(),
        Selection::NoActiveKeys
    ));
    s.load_group(
        41,
        vec![key(41, 1, KeyStatus::Active), key(41, 2, KeyStatus::Active)],
    )
    .await
    .unwrap();
    assert_eq!(s.missing_pools(&[40, 41, 42]).await.unwrap(), vec![42]);
    // What FLUSHALL does to this prefix.
    let wiped: Vec<String> = {
        use fred::prelude::*;
        let keys: Vec<String> = s
            .client()
            .custom(fred::cmd!("KEYS"), vec![format!("{{{prefix}:*")])
            .await
            .unwrap();
        let _: i64 = s.client().del(keys.clone()).await.unwrap();
        keys
    };
    assert!(!wiped.is_empty());
    assert!(matches!(
        s.select(41, None).await.unwrap(),
        Selection::PoolMissing
    ));
    assert_eq!(s.missing_pools(&[40, 41]).await.unwrap(), vec![40, 41]);
    // A key added meanwhile serves, but the pool still counts as missing until reloaded.
    s.add_keys(41, vec![key(41, 3, KeyStatus::Active)])
        .await
        .unwrap();
    assert_eq!(pick(&s, 41).await, Some(3));
    assert_eq!(s.missing_pools(&[41]).await.unwrap(), vec![41]);
    s.load_group(
        41,
        vec![
            key(41, 1, KeyStatus::Active),
            key(41, 2, KeyStatus::Invalid),
            key(41, 3, KeyStatus::Active),
        ],
    )
    .await
    .unwrap();
    assert!(s.missing_pools(&[41]).await.unwrap().is_empty());
    assert_eq!(s.counts(41).await.unwrap().active, 2);
    for g in [40, 41] {
        s.remove_group(g).await.unwrap();
    }
    assert_eq!(s.missing_pools(&[40]).await.unwrap(), vec![40]);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_selection_decrypts_stored_values() {
    let cipher = Arc::new(KeyCipher::new(Some("secret-pass")));
    let client = connect(REDIS).await.unwrap();
    let s = RedisKeyStore::new(
        client,
        RedisKeys::new(&format!("test-{}", uuid::Uuid::new_v4().simple())),
        cipher.clone(),
    );
    let stored = cipher.encrypt("sk-real");
    let mut k = key(9, 1, KeyStatus::Active);
    k.material = Arc::new(KeyMaterial {
        id: 1,
        group_id: 9,
        value: String::new(),
        stored: stored.clone(),
        hash: cipher.hash("sk-real"),
    });
    s.load_group(9, vec![k]).await.unwrap();
    match s.select(9, None).await.unwrap() {
        Selection::Key(sel) => {
            assert_eq!(sel.key.value, "sk-real");
            assert_eq!(sel.key.stored, stored);
        }
        other => panic!("{other:?}"),
    }
    s.remove_group(9).await.unwrap();
}

/// A three-master Redis Cluster of real `redis-server` processes on free ports, torn down on drop.
struct RedisCluster {
    nodes: Vec<std::process::Child>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
}

impl RedisCluster {
    fn free_port() -> u16 {
        // The cluster bus listens on port + 10000: both must be free.
        loop {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = l.local_addr().unwrap().port();
            if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
                return port;
            }
        }
    }

    async fn start() -> RedisCluster {
        let dir =
            std::env::temp_dir().join(format!("gpt-load-rc-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            let port = Self::free_port();
            let child = std::process::Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])
                .arg("--cluster-config-file")
                .arg(cluster.dir.join(format!("nodes-{port}.conf")))
                .arg("--dir")
                .arg(&cluster.dir)
                .args(["--save", "", "--appendonly", "no"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            cluster.nodes.push(child);
            cluster.ports.push(port);
        }
        for port in &cluster.ports {
            assert!(
                Self::wait_cli(*port, &["ping"], "PONG").await,
                "redis-server on {port} did not start"
            );
        }
        let addrs: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let created = std::process::Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for port in &cluster.ports {
            assert!(
                Self::wait_cli(*port, &["cluster", "info"], "cluster_state:ok").await,
                "cluster not ok on {port}"
            );
        }
        cluster
    }

    async fn wait_cli(port: u16, args: &[&str], expect: &str) -> bool {
        for _ in 0..100 {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string()])
                .args(args)
                .output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(expect)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    fn dsn(&self) -> String {
        let others: Vec<String> = self.ports[1..]
            .iter()
            .map(|p| format!("node=127.0.0.1:{p}"))
            .collect();
        format!(
            "redis-cluster://127.0.0.1:{}?{}",
            self.ports[0],
            others.join("&")
        )
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            let _ = n.kill();
            let _ = n.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The same contract on a real Redis Cluster: every group's keys share one hash tag, so the
/// multi-key scripts run on whichever node owns the group's slot (groups 1–6 spread over the
/// three masters).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_cluster_store_contract() {
    let cluster = RedisCluster::start().await;
    let client = connect(&cluster.dsn()).await.unwrap();
    let s = Arc::new(RedisKeyStore::new(
        client,
        RedisKeys::new("gpt-load"),
        Arc::new(KeyCipher::new(None)),
    ));
    rotation(s.as_ref()).await;
    blacklist_and_restore(s.as_ref()).await;
    cool_down(s.as_ref()).await;
    membership(s.as_ref()).await;
    exact_concurrent_counting(s.clone()).await;
    // The groups really are spread: more than one master holds keys.
    let holding = cluster
        .ports
        .iter()
        .filter(|p| {
            std::process::Command::new("redis-cli")
                .args(["-p", &p.to_string(), "dbsize"])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() != "0")
        })
        .count();
    assert!(holding >= 2, "keys on {holding} of 3 masters");
}

/// A database index no other test uses, so that its connections can be counted.
const REDIS_DB11: &str = "redis://127.0.0.1:6379/11";

/// The ids of the connections open on database 11 (`CLIENT LIST`), the asking one left out.
async fn redis_connections() -> std::collections::BTreeSet<String> {
    use fred::prelude::*;
    let c = connect(REDIS_DB11).await.unwrap();
    let list: String = c
        .custom(
            fred::types::CustomCommand::new_static("CLIENT", None, false),
            vec!["LIST"],
        )
        .await
        .unwrap();
    let _ = c.quit().await;
    list.lines()
        .filter(|l| l.contains(" db=11 ") && !l.contains("cmd=client|list"))
        .filter_map(|l| l.split(' ').next().map(str::to_owned))
        .collect()
}

/// Serving thread 0, as the calls made on it name it.
const T0: Option<ServingThread> = Some(ServingThread(0));

async fn pick_on<S: KeyStore>(s: &S, g: i64, on: Option<ServingThread>) -> Option<i64> {
    match s.select(g, on).await.unwrap() {
        Selection::Key(k) => Some(k.key.id),
        _ => None,
    }
}

/// Runs the future `make` builds on serving thread 0, as the worker's `serve` runs it: a thread
/// of its own with a single-threaded runtime.
fn on_serving_thread<T, F>(make: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(make())
    })
    .join()
    .unwrap()
}

#[test]
fn a_serving_thread_gets_a_redis_client_of_its_own() {
    // Process-wide; nextest runs every test in a process of its own.
    gpt_load_common::serving_thread::reserve(1);
    let main = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = Arc::new(main.block_on(async {
        let s = RedisKeyStore::new(
            connect(REDIS_DB11).await.unwrap(),
            RedisKeys::new(&format!("test-{}", uuid::Uuid::new_v4().simple())),
            Arc::new(KeyCipher::new(None)),
        );
        s.load_group(
            1,
            vec![key(1, 1, KeyStatus::Active), key(1, 2, KeyStatus::Active)],
        )
        .await
        .unwrap();
        s
    }));
    // Calls from other threads use the shared client and start no other.
    main.block_on(async {
        for _ in 0..4 {
            assert!(pick(&*s, 1).await.is_some());
        }
    });
    assert_eq!(s.thread_clients(), 0);
    let before = main.block_on(redis_connections());
    // Serving thread 0, as the worker's `serve` runs it: a single-threaded runtime of its own.
    let on_thread = s.clone();
    let picks = on_serving_thread(move || async move {
        let s = on_thread;
        // Served at once (by the shared client while its own connects) ...
        let mut picks = vec![pick_on(&*s, 1, T0).await];
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.thread_clients() == 0 {
            assert!(std::time::Instant::now() < deadline, "no client of its own");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // ... then by its own, with the same rotation and failure counting.
        for _ in 0..3 {
            picks.push(pick_on(&*s, 1, T0).await);
        }
        let out = s.record_failure(1, 1, 10, T0).await.unwrap();
        assert_eq!(out.failure_count, 1);
        (picks, redis_connections().await)
    });
    let (picks, during) = picks;
    assert_eq!(
        picks,
        vec![Some(1), Some(2), Some(1), Some(2)],
        "one rotation across both clients"
    );
    assert_eq!(s.thread_clients(), 1);
    // (Compared by connection id: another test run may share this Redis.)
    let new: Vec<&String> = during.difference(&before).collect();
    assert!(!new.is_empty(), "no connection of the serving thread's own");
    // It closes with its thread's runtime.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = main.block_on(redis_connections());
        if new.iter().any(|id| !now.contains(*id)) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still open: {new:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    main.block_on(s.remove_group(1)).unwrap();
}

/// A private `redis-server` on `port`, killed on drop.
struct PrivateRedis(std::process::Child);

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis(child)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_serving_thread_whose_redis_connect_failed_tries_again_later() {
    gpt_load_common::serving_thread::reserve(1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}/0");
    let redis = PrivateRedis::start(port);
    let main = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let s = Arc::new(main.block_on(async {
        RedisKeyStore::new(
            connect(&url).await.unwrap(),
            RedisKeys::new("retry"),
            Arc::new(KeyCipher::new(None)),
        )
    }));
    drop(redis);
    let on_thread = s.clone();
    let waited = on_serving_thread(move || async move {
        let s = on_thread;
        let first = std::time::Instant::now();
        // Redis is down: the call fails and so does the thread's first connect.
        assert!(s.select(1, T0).await.is_err());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let _redis = PrivateRedis::start(port);
        let back = std::time::Instant::now();
        // Back up, but the next attempt waits for its turn (meanwhile the shared client,
        // reconnected by itself, serves) ...
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let _ = s.select(1, T0).await;
        assert_eq!(s.thread_clients(), 0, "retried before its time");
        // ... and then the thread gets its own connection.
        let deadline = back + Duration::from_secs(15);
        while s.thread_clients() == 0 {
            assert!(std::time::Instant::now() < deadline, "never retried");
            let _ = s.select(1, T0).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        first.elapsed()
    });
    assert!(
        waited >= gpt_load_common::keystore::redis::THREAD_CLIENT_RETRY,
        "connected {waited:?} after the first attempt"
    );
}
