//! `gpt-load migrate-keys`: offline re-encryption of `api_keys` (spec §2.4) — and, unlike GPT-Load,
//! of gpt-load's `access_keys` and of the keys in `request_logs`, so access keys keep working and
//! old logs stay readable and searchable after a rotation. Every stored key is decrypted before
//! anything is written: a key the `--from` password cannot open stops the run with nothing changed.

use gpt_load_common::config::StaticConfig;
use gpt_load_common::crypto::{KeyCipher, sha256_hex};

use crate::app::open_database;
use crate::db::repo::{access_keys, keys};
use crate::db::{Db, DbI64};
use crate::with_pool;

/// Runs the migration; the error says what to do.
pub async fn run(
    cfg: &StaticConfig,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<String, String> {
    let from = from.filter(|s| !s.is_empty());
    let to = to.filter(|s| !s.is_empty());
    match (from, to) {
        (None, None) => {
            return Err(
                "give --to NEW to enable encryption, --from OLD to disable it, or both to rotate"
                    .into(),
            );
        }
        (Some(a), Some(b)) if a == b => return Err("--from and --to must differ".into()),
        _ => {}
    }
    let old = KeyCipher::new(from);
    let new = KeyCipher::new(to);
    let db = open_database(cfg, &old).await.map_err(|e| e.to_string())?;

    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = keys::page_after(&db, None, None, after, 5000)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page);
    }
    let mut access = Vec::new();
    let mut after = 0;
    loop {
        let page = access_keys::page_after(&db, after, 1000)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.0;
        access.extend(page);
    }
    if from.is_none() {
        let sample: Vec<(&str, &str)> = all
            .iter()
            .filter(|k| !k.key_hash.is_empty())
            .take(20)
            .map(|k| (k.key_value.as_str(), k.key_hash.as_str()))
            .chain(
                access
                    .iter()
                    .take(20)
                    .map(|(_, v, h)| (v.as_str(), h.as_str())),
            )
            .collect();
        let plain = sample
            .iter()
            .filter(|(value, hash)| sha256_hex(value) == *hash)
            .count();
        if !sample.is_empty() && plain == 0 {
            return Err("keys already look encrypted: use --from OLD to rotate".into());
        }
        if plain != sample.len() {
            return Err("inconsistent data: some keys look encrypted and some do not".into());
        }
    }
    let mut rows = Vec::with_capacity(all.len());
    for k in &all {
        let plain = old.decrypt(&k.key_value).map_err(|e| {
            format!(
                "key id {} cannot be decrypted with the --from key: {e}",
                k.id
            )
        })?;
        rows.push((k.id, new.encrypt(&plain), new.hash(&plain)));
    }
    let mut access_rows = Vec::with_capacity(access.len());
    for (id, stored, _) in &access {
        let plain = old.decrypt(stored).map_err(|e| {
            format!("access key id {id} cannot be decrypted with the --from key: {e}")
        })?;
        access_rows.push((*id, new.encrypt(&plain), new.hash(&plain)));
    }
    keys::rewrite_values(&db, &rows)
        .await
        .map_err(|e| e.to_string())?;
    access_keys::rewrite_values(&db, &access_rows)
        .await
        .map_err(|e| e.to_string())?;
    let logs = reencrypt_logs(&db, &old, &new)
        .await
        .map_err(|e| e.to_string())?;
    db.close().await;
    Ok(format!(
        "re-encrypted {} keys, {} access keys and {logs} request-log entries",
        rows.len(),
        access_rows.len()
    ))
}

async fn reencrypt_logs(db: &Db, old: &KeyCipher, new: &KeyCipher) -> Result<usize, sqlx::Error> {
    let select = db.sql("SELECT id, key_value FROM request_logs WHERE id > ? AND key_value IS NOT NULL AND key_value <> '' ORDER BY id ASC LIMIT ?");
    let update = db.sql("UPDATE request_logs SET key_value = ?, key_hash = ? WHERE id = ?");
    let mut after = String::new();
    let mut n = 0;
    loop {
        let page: Vec<(String, String)> = with_pool!(db, p => sqlx::query_as(&select).bind(&after).bind(DbI64(1000)).fetch_all(p).await)?;
        let Some(last) = page.last() else {
            return Ok(n);
        };
        after = last.0.clone();
        with_pool!(db, p => {
            let mut tx = p.begin().await?;
            for (id, stored) in &page {
                if let Ok(plain) = old.decrypt(stored) {
                    sqlx::query(&update).bind(new.encrypt(&plain)).bind(new.hash(&plain)).bind(id).execute(&mut *tx).await?;
                    n += 1;
                }
            }
            tx.commit().await?;
        });
    }
}
