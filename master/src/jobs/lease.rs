//! The Redis lease that makes exactly one master run the scheduled jobs, even when an operator
//! starts two by mistake: `SET NX PX` to take it, a compare-and-extend script to keep it. A
//! master that does not hold it says so and keeps trying; one that loses it stops its jobs.

use std::sync::atomic::Ordering;
use std::time::Duration;

use fred::prelude::*;
use fred::types::scripts::Script;
use fred::types::{Expiration, SetOptions};
use tokio_util::sync::CancellationToken;

use crate::state::{AppState, RedisCtx};

pub const TTL: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);

// 1: extended; 2: the lease was gone (Redis lost its data) and is taken again — no other master
// held it, so this one keeps its jobs running; 0: another master holds it.
const RENEW: &str = "local v = redis.call('GET', KEYS[1]) if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 elseif not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 else return 0 end";
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

async fn try_take(r: &RedisCtx, id: &str) -> Result<bool, fred::error::Error> {
    let v: Option<String> = r
        .client
        .set(
            r.keys.master_lease(),
            id,
            Some(Expiration::PX(TTL.as_millis() as i64)),
            Some(SetOptions::NX),
            false,
        )
        .await?;
    Ok(v.is_some())
}

/// Whether this master still holds the lease (taking it again if Redis lost it).
async fn renew(r: &RedisCtx, id: &str, script: &Script) -> Result<bool, fred::error::Error> {
    let v: i64 = script
        .evalsha_with_reload(
            &r.client,
            vec![r.keys.master_lease()],
            vec![id.to_owned(), TTL.as_millis().to_string()],
        )
        .await?;
    if v == 2 {
        tracing::warn!("the job lease was gone from redis (redis lost its data?); taken again");
    }
    Ok(v >= 1)
}

/// Holds the lease while possible; runs `jobs(token)` while holding it, cancelling the token
/// when the lease is lost or at shutdown.
pub async fn run<F, Fut>(state: AppState, r: RedisCtx, cancel: CancellationToken, jobs: F)
where
    F: Fn(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let renew_script = Script::from_lua(RENEW);
    let id = state.instance_id.clone();
    let mut announced = false;
    loop {
        match try_take(&r, &id).await {
            Ok(true) => {
                tracing::info!(instance = %id, "holding the job lease: this master runs the scheduled jobs");
                state.leader.store(true, Ordering::Release);
                announced = false;
                let jobs_token = cancel.child_token();
                let handle = tokio::spawn(jobs(jobs_token.clone()));
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(RENEW_EVERY) => {}
                        _ = cancel.cancelled() => break,
                    }
                    match renew(&r, &id, &renew_script).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::error!("lost the job lease to another master; stopping jobs");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot renew the job lease (redis unreachable?)")
                        }
                    }
                }
                state.leader.store(false, Ordering::Release);
                jobs_token.cancel();
                let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
                if cancel.is_cancelled() {
                    let release = Script::from_lua(RELEASE);
                    let _: Result<i64, _> = release
                        .evalsha_with_reload(
                            &r.client,
                            vec![r.keys.master_lease()],
                            vec![id.clone()],
                        )
                        .await;
                    return;
                }
            }
            Ok(false) => {
                if !announced {
                    let holder: Option<String> =
                        r.client.get(r.keys.master_lease()).await.ok().flatten();
                    tracing::warn!(holder = ?holder, "another master holds the job lease; this one serves traffic but runs no scheduled jobs");
                    announced = true;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot take the job lease (redis unreachable?)"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RENEW_EVERY) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
