//! Key pool management: parsing, adding, deleting, restoring, clearing, exporting; keeping the
//! database and the live key store in step.

use std::collections::HashSet;
use std::sync::Arc;

use gpt_load_common::crypto::KeyCipher;
use gpt_load_common::keystore::{KeyMaterial, KeyStore, PoolKey};
use gpt_load_common::model::KeyStatus;
use serde::Serialize;

use crate::db::repo::groups;
use crate::db::repo::keys::{self, KeyRecord};
use crate::db::{Db, DbError, DbResult};
use crate::state::AppState;

/// Largest number of keys the synchronous endpoints accept.
pub const MAX_SYNC_KEYS: usize = 5000;

/// Longest vendor key, in bytes. Vendor keys are tens to a few hundred bytes; every request
/// sends its key in a header, and each is held decrypted in memory, so an unbounded key (three
/// 60 MiB keys took the master from 198 MB to 1.42 GB) is refused at the door.
pub const MAX_KEY_BYTES: usize = 4096;

/// A key of the input over [`MAX_KEY_BYTES`]: where it is and how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTooLong {
    /// 1-based line of `text` where the key starts (`None` when it cannot be found verbatim,
    /// e.g. written with JSON escapes).
    pub line: Option<usize>,
    /// 1-based position of the key among the parsed keys.
    pub index: usize,
    pub bytes: usize,
}

impl std::fmt::Display for KeyTooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "the key on line {line}")?,
            None => write!(f, "key #{}", self.index)?,
        }
        write!(
            f,
            " is {} bytes long; a key may be at most {MAX_KEY_BYTES} bytes",
            self.bytes
        )
    }
}

/// The first of `keys` (parsed from `text`) longer than [`MAX_KEY_BYTES`], located in `text`.
pub fn find_too_long(text: &str, keys: &[String]) -> Option<KeyTooLong> {
    let (i, k) = keys
        .iter()
        .enumerate()
        .find(|(_, k)| k.len() > MAX_KEY_BYTES)?;
    let line = text
        .find(k.as_str())
        .map(|at| text[..at].bytes().filter(|b| *b == b'\n').count() + 1);
    Some(KeyTooLong {
        line,
        index: i + 1,
        bytes: k.len(),
    })
}

/// Keys from user text: a JSON array of strings, or tokens separated by whitespace, `,` or `;`.
/// Empty entries and duplicates are dropped, order kept.
pub fn parse_keys(text: &str) -> Vec<String> {
    let trimmed = text.trim();
    if trimmed.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(trimmed)
        && !v.is_empty()
    {
        return distinct(v.iter().map(String::as_str));
    }
    distinct(trimmed.split(|c: char| c.is_whitespace() || c == ',' || c == ';'))
}

/// The trimmed, non-empty tokens, each once, in order. Tokens stay borrowed until kept: a body
/// of 31 million one-letter tokens (62 MB) took the master to 1.15 GB as owned strings.
fn distinct<'a>(tokens: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen = HashSet::new();
    tokens
        .map(str::trim)
        .filter(|k| !k.is_empty() && seen.insert(*k))
        .map(str::to_owned)
        .collect()
}

/// The live-store form of a stored key.
pub fn material(
    cipher: &KeyCipher,
    id: i64,
    group_id: i64,
    stored: &str,
    hash: &str,
) -> Arc<KeyMaterial> {
    Arc::new(KeyMaterial {
        id,
        group_id,
        value: cipher.decrypt_or_raw(stored),
        stored: stored.to_owned(),
        hash: hash.to_owned(),
    })
}

fn pool_key(cipher: &KeyCipher, k: &KeyRecord) -> PoolKey {
    PoolKey {
        material: material(cipher, k.id, k.group_id, &k.key_value, &k.key_hash),
        status: KeyStatus::parse(&k.status).unwrap_or(KeyStatus::Active),
        failure_count: u32::try_from(k.failure_count.max(0)).unwrap_or(u32::MAX),
    }
}

/// Loads every key of the database into the store (boot), 10 000 rows at a time.
pub async fn load_all(db: &Db, cipher: &KeyCipher, store: &impl KeyStore) -> DbResult<usize> {
    let mut by_group: std::collections::BTreeMap<i64, Vec<PoolKey>> = Default::default();
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = keys::page_after(db, None, None, after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for k in &page {
            by_group
                .entry(k.group_id)
                .or_default()
                .push(pool_key(cipher, k));
            n += 1;
        }
    }
    for (g, ks) in by_group {
        store
            .load_group(g, ks)
            .await
            .map_err(|e| DbError::Other(sqlx::Error::Protocol(e.to_string())))?;
    }
    Ok(n)
}

/// Reloads one group's pool from the database.
pub async fn reload_group(state: &AppState, group_id: i64) -> DbResult<()> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = keys::page_after(&state.db, Some(group_id), None, after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        all.extend(page.iter().map(|k| pool_key(&state.cipher, k)));
    }
    store_result(state.store.load_group(group_id, all).await)
}

fn store_result<T>(r: Result<T, gpt_load_common::keystore::KeyStoreError>) -> DbResult<T> {
    r.map_err(|e| DbError::Other(sqlx::Error::Protocol(e.to_string())))
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AddResult {
    pub added_count: usize,
    pub ignored_count: usize,
    pub total_in_group: i64,
}

/// Adds keys (already parsed and de-duplicated) in chunks of 500, calling `progress` after each.
pub async fn add(
    state: &AppState,
    group_id: i64,
    input: &[String],
    mut progress: impl FnMut(usize),
) -> DbResult<AddResult> {
    let mut added = 0;
    let mut done = 0;
    for chunk in input.chunks(keys::CHUNK) {
        // The lock covers one chunk's duplicate check and insert, not the whole input, so other
        // key writes and group deletes run between the chunks of a long import (held for the
        // whole of a 300 000-key import, it kept a one-key add waiting over two minutes).
        let _w = state.key_writes.lock().await;
        // A group deleted between two chunks ends the import: no keys are written for it.
        groups::get(&state.db, group_id).await?;
        let hashes: Vec<String> = chunk.iter().map(|k| state.cipher.hash(k)).collect();
        let existing = keys::existing_hashes(&state.db, group_id, &hashes).await?;
        let new: Vec<(String, String)> = chunk
            .iter()
            .zip(hashes)
            .filter(|(_, h)| !existing.contains(h))
            .map(|(k, h)| (state.cipher.encrypt(k), h))
            .collect();
        if !new.is_empty() {
            let stored_by_hash: std::collections::HashMap<&str, &str> =
                new.iter().map(|(v, h)| (h.as_str(), v.as_str())).collect();
            let inserted = keys::insert(&state.db, group_id, &new).await?;
            let pool: Vec<PoolKey> = inserted
                .iter()
                .filter_map(|(id, h)| {
                    stored_by_hash.get(h.as_str()).map(|stored| PoolKey {
                        material: material(&state.cipher, *id, group_id, stored, h),
                        status: KeyStatus::Active,
                        failure_count: 0,
                    })
                })
                .collect();
            added += new.len();
            store_result(state.store.add_keys(group_id, pool).await)?;
        }
        done += chunk.len();
        progress(done);
    }
    let (total, _, _) = keys::counts(&state.db, Some(group_id)).await?;
    Ok(AddResult {
        added_count: added,
        ignored_count: input.len() - added,
        total_in_group: total,
    })
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DeleteResult {
    pub deleted_count: usize,
    pub ignored_count: usize,
    pub total_in_group: i64,
}

/// Deletes the listed keys of a group.
pub async fn delete(
    state: &AppState,
    group_id: i64,
    input: &[String],
    mut progress: impl FnMut(usize),
) -> DbResult<DeleteResult> {
    let mut deleted = 0;
    let mut done = 0;
    for chunk in input.chunks(keys::CHUNK) {
        // Per chunk, as in [`add`]: a long deletion lets other key writes through.
        let _w = state.key_writes.lock().await;
        let hashes: Vec<String> = chunk.iter().map(|k| state.cipher.hash(k)).collect();
        let found = keys::find_by_hashes(&state.db, group_id, &hashes).await?;
        let ids: Vec<i64> = found.iter().map(|(id, _, _)| *id).collect();
        if !ids.is_empty() {
            keys::delete_ids(&state.db, &ids).await?;
            store_result(state.store.remove_keys(group_id, &ids).await)?;
            let distinct: HashSet<&str> = found.iter().map(|(_, h, _)| h.as_str()).collect();
            deleted += distinct.len();
        }
        done += chunk.len();
        progress(done);
    }
    let (total, _, _) = keys::counts(&state.db, Some(group_id)).await?;
    Ok(DeleteResult {
        deleted_count: deleted,
        ignored_count: input.len() - deleted,
        total_in_group: total,
    })
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RestoreResult {
    pub restored_count: usize,
    pub ignored_count: usize,
    pub total_in_group: i64,
}

/// Restores the listed keys that are invalid.
pub async fn restore(state: &AppState, group_id: i64, input: &[String]) -> DbResult<RestoreResult> {
    let mut restored = 0;
    for chunk in input.chunks(keys::CHUNK) {
        let hashes: Vec<String> = chunk.iter().map(|k| state.cipher.hash(k)).collect();
        let ids: Vec<i64> = keys::find_by_hashes(&state.db, group_id, &hashes)
            .await?
            .into_iter()
            .filter(|(_, _, s)| s == "invalid")
            .map(|(id, _, _)| id)
            .collect();
        restored += set_status(state, group_id, &ids, KeyStatus::Active).await?;
    }
    let (total, _, _) = keys::counts(&state.db, Some(group_id)).await?;
    Ok(RestoreResult {
        restored_count: restored,
        ignored_count: input.len().saturating_sub(restored),
        total_in_group: total,
    })
}

/// Sets keys' status in the database and the store; returns how many rows changed.
pub async fn set_status(
    state: &AppState,
    group_id: i64,
    ids: &[i64],
    status: KeyStatus,
) -> DbResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let n = keys::set_status(&state.db, ids, status.as_str()).await?;
    store_result(state.store.set_status(group_id, ids, status).await)?;
    // The record queue may still hold an older event for these keys (a failed test or request
    // just before a restore), which the writer would apply after this update and so undo it.
    // The same change through the queue comes after it, and the writer keeps the latest per key.
    if status == KeyStatus::Active {
        for &key_id in ids {
            state
                .records
                .key_event(gpt_load_common::keystore::KeyEvent {
                    group_id,
                    key_id,
                    failure_count: 0,
                    status,
                });
        }
    }
    if status == KeyStatus::Active
        && let Some(g) = state.worker.runtime().group_by_id(group_id)
    {
        g.metrics
            .key_event(gpt_load_common::metrics::KeyEventKind::Restored, n);
    }
    Ok(n as usize)
}

/// Restores every invalid key of a group.
pub async fn restore_all_invalid(state: &AppState, group_id: i64) -> DbResult<usize> {
    let ids = keys::ids(&state.db, group_id, Some("invalid")).await?;
    set_status(state, group_id, &ids, KeyStatus::Active).await
}

/// Deletes a group's keys with `status` (all when `None`).
pub async fn clear(state: &AppState, group_id: i64, status: Option<&str>) -> DbResult<usize> {
    let _w = state.key_writes.lock().await;
    let ids = keys::ids(&state.db, group_id, status).await?;
    let n = keys::delete_ids(&state.db, &ids).await?;
    store_result(state.store.remove_keys(group_id, &ids).await)?;
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlong_keys_are_found_with_their_line() {
        let big = "k".repeat(MAX_KEY_BYTES + 1);
        let text = format!("a\r\nb, c\n\n{big} d");
        let keys = parse_keys(&text);
        let e = find_too_long(&text, &keys).unwrap();
        assert_eq!(
            e,
            KeyTooLong {
                line: Some(4),
                index: 4,
                bytes: MAX_KEY_BYTES + 1
            }
        );
        assert!(e.to_string().contains("line 4"), "{e}");
        assert!(find_too_long("a b", &parse_keys("a b")).is_none());
        let at_limit = "k".repeat(MAX_KEY_BYTES);
        assert!(find_too_long(&at_limit, &parse_keys(&at_limit)).is_none());
        // A JSON array: the key's line in the text.
        let text = format!("[\"a\",\n\"{big}\"]");
        let e = find_too_long(&text, &parse_keys(&text)).unwrap();
        assert_eq!((e.line, e.index), (Some(2), 2));
    }

    #[test]
    fn parses_json_arrays_and_any_separator() {
        assert_eq!(parse_keys(r#"["a","b"," a ",""]"#), ["a", "b"]);
        assert_eq!(parse_keys("a, b;c\n d\t\te ,,;"), ["a", "b", "c", "d", "e"]);
        assert_eq!(parse_keys("[not json"), ["[not", "json"]);
        assert!(parse_keys("  \n ").is_empty());
        assert_eq!(parse_keys("x x y"), ["x", "y"]);
    }
}
