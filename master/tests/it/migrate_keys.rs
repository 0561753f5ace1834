//! `gpt-load migrate-keys` rotates the encryption of access keys with the vendor keys: afterwards
//! a master with the new `ENCRYPTION_KEY` finds the same access key, and a wrong `--from` changes
//! nothing.

use gpt_load_common::crypto::KeyCipher;
use gpt_load_master::migrate_keys;
use http::StatusCode;
use serde_json::json;

use crate::harness::{self, Admin};

const OLD: &str = "the-old-encryption-key-for-rotation";
const NEW: &str = "the-new-encryption-key-for-rotation";
const ACCESS_KEY: &str = "sk-gl-rotate-me-0123456789abcdef";

async fn stored(dir: &std::path::Path) -> Vec<(i64, String, String)> {
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", dir.join("gpt-load.db").display()))
            .await
            .unwrap();
    let rows = sqlx::query_as("SELECT id, key_value, key_hash FROM access_keys ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_keys_re_encrypts_access_keys() {
    let a = Admin::start(&[("ENCRYPTION_KEY", OLD)]).await;
    let gid = a
        .group(
            json!({"name": "g", "channel_type": "openai", "test_model": "m",
            "upstreams": [{"url": "http://127.0.0.1:9", "weight": 1}]}),
        )
        .await;
    let added = a
        .post(
            "/api/keys/add-multiple",
            json!({"group_id": gid, "keys_text": "sk-vendor-one"}),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{:?}", added.json);
    let created = a
        .post(
            "/api/access-keys",
            json!({"name": "rotating", "key": ACCESS_KEY}),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.json);
    let generated = a
        .post("/api/access-keys", json!({"name": "generated"}))
        .await
        .json["data"]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = a.stop().await;
    let before = stored(dir.path()).await;
    assert_eq!(before.len(), 2);

    // A wrong --from stops before writing anything.
    let cfg = harness::config(dir.path(), 1, &[("ENCRYPTION_KEY", OLD)]);
    let err = migrate_keys::run(&cfg, Some("not-the-password"), Some(NEW))
        .await
        .unwrap_err();
    assert!(err.contains("cannot be decrypted"), "{err}");
    assert!(!err.contains(ACCESS_KEY), "{err}");
    assert_eq!(stored(dir.path()).await, before);

    let msg = migrate_keys::run(&cfg, Some(OLD), Some(NEW)).await.unwrap();
    assert!(msg.contains("1 keys, 2 access keys"), "{msg}");
    let after = stored(dir.path()).await;
    let new = KeyCipher::new(Some(NEW));
    for ((id, old_value, old_hash), (id2, value, hash)) in before.iter().zip(&after) {
        assert_eq!(id, id2);
        assert_ne!((old_value, old_hash), (value, hash));
        let plain = new.decrypt(value).unwrap();
        assert_eq!(hash, &new.hash(&plain));
    }
    assert_eq!(new.decrypt(&after[0].1).unwrap(), ACCESS_KEY);

    // A master with the new key finds both, and lists them masked as before.
    let a = Admin::start_in(dir, &[("ENCRYPTION_KEY", NEW)]).await;
    let snap = a.state.worker.snapshot();
    assert!(snap.access_key(ACCESS_KEY).is_some_and(|k| k.def.enabled));
    assert!(snap.access_key(&generated).is_some());
    let list = a.get("/api/access-keys").await;
    assert_eq!(list.json["data"][0]["key"], "sk-gl-rota…cdef");
}
