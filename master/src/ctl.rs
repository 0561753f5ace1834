//! `gpt-load ctl`: the ops client of a running master.

use gpt_load_common::config::StaticConfig;
use gpt_load_proto::ops::v1::ops_client::OpsClient;
use gpt_load_proto::ops::v1::{
    AccessKeyInfo, ClusterStatusRequest, CreateAccessKeyRequest, DisableAccessKeyRequest,
    ImportKeysRequest, ListAccessKeysRequest, ListGroupsRequest, ValidateGroupRequest,
};
use gpt_load_worker::cluster::subscriber::authed;
use serde_json::json;
use tonic::transport::Endpoint;

use crate::cli::{AccessKeysCommand, CtlArgs, CtlCommand};

fn status_msg(s: tonic::Status) -> String {
    format!("{:?}: {}", s.code(), s.message())
}

/// Runs one ctl command; the `Ok` text is printed on stdout.
pub async fn run(cfg: &StaticConfig, args: CtlArgs) -> Result<String, String> {
    let url = args
        .master
        .clone()
        .or_else(|| cfg.master_grpc_url.clone())
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", cfg.grpc_port));
    let channel = Endpoint::from_shared(url.clone())
        .map_err(|e| format!("bad master URL {url}: {e}"))?
        .connect_timeout(std::time::Duration::from_secs(3))
        .connect()
        .await
        .map_err(|e| format!("cannot reach the master at {url}: {e}"))?;
    let mut client = OpsClient::new(channel);
    let secret = cfg.cluster_secret();
    match args.command {
        CtlCommand::Status => {
            let s = client
                .cluster_status(authed(ClusterStatusRequest {}, &secret))
                .await
                .map_err(status_msg)?
                .into_inner();
            if args.json {
                let workers: Vec<_> = s
                    .workers
                    .iter()
                    .map(|w| {
                        json!({"worker_id": w.worker_id, "hostname": w.hostname, "listen_addr": w.listen_addr, "snapshot_version": w.snapshot_version,
                               "last_seen_seconds_ago": w.last_seen_seconds_ago, "connected": w.connected, "in_flight": w.in_flight, "records_dropped": w.records_dropped})
                    })
                    .collect();
                return Ok(json!({"snapshot_version": s.snapshot_version, "master_id": s.master_id, "holds_job_lease": s.holds_job_lease,
                                 "database": s.database, "workers": workers})
                .to_string());
            }
            let mut out = format!(
                "master {} (database {}, snapshot v{}, {})\n",
                s.master_id,
                s.database,
                s.snapshot_version,
                if s.holds_job_lease {
                    "runs the scheduled jobs"
                } else {
                    "does not hold the job lease"
                }
            );
            out.push_str(&format!("{} worker(s)\n", s.workers.len()));
            for w in s.workers {
                out.push_str(&format!(
                    "  {:<40} {:<22} v{:<15} {:<12} seen {}s ago, {} in flight\n",
                    w.worker_id,
                    w.listen_addr,
                    w.snapshot_version,
                    if w.connected {
                        "connected"
                    } else {
                        "disconnected"
                    },
                    w.last_seen_seconds_ago,
                    w.in_flight
                ));
            }
            Ok(out)
        }
        CtlCommand::Groups => {
            let g = client
                .list_groups(authed(ListGroupsRequest {}, &secret))
                .await
                .map_err(status_msg)?
                .into_inner();
            if args.json {
                let v: Vec<_> = g
                    .groups
                    .iter()
                    .map(|g| json!({"id": g.id, "name": g.name, "channel_type": g.channel_type, "group_type": g.group_type, "total_keys": g.total_keys, "active_keys": g.active_keys, "invalid_keys": g.invalid_keys}))
                    .collect();
                return Ok(serde_json::Value::Array(v).to_string());
            }
            let mut out = format!(
                "{:<6} {:<30} {:<16} {:>8} {:>8} {:>8}\n",
                "id", "name", "channel", "keys", "active", "invalid"
            );
            for g in g.groups {
                out.push_str(&format!(
                    "{:<6} {:<30} {:<16} {:>8} {:>8} {:>8}\n",
                    g.id, g.name, g.channel_type, g.total_keys, g.active_keys, g.invalid_keys
                ));
            }
            Ok(out)
        }
        CtlCommand::Import { group, file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let r = client
                .import_keys(authed(
                    ImportKeysRequest {
                        group_name: group,
                        keys_text: text,
                    },
                    &secret,
                ))
                .await
                .map_err(status_msg)?
                .into_inner();
            Ok(if args.json {
                json!({"added_count": r.added_count, "ignored_count": r.ignored_count, "total_in_group": r.total_in_group}).to_string()
            } else {
                format!(
                    "added {}, ignored {}, {} keys in the group\n",
                    r.added_count, r.ignored_count, r.total_in_group
                )
            })
        }
        CtlCommand::Validate { group, status } => {
            let r = client
                .validate_group(authed(
                    ValidateGroupRequest {
                        group_name: group,
                        status,
                    },
                    &secret,
                ))
                .await
                .map_err(status_msg)?
                .into_inner();
            Ok(if args.json {
                json!({"total_keys": r.total_keys, "valid_keys": r.valid_keys, "invalid_keys": r.invalid_keys}).to_string()
            } else {
                format!(
                    "validated {} keys: {} valid, {} invalid\n",
                    r.total_keys, r.valid_keys, r.invalid_keys
                )
            })
        }
        CtlCommand::AccessKeys(cmd) => {
            let keys = match cmd {
                AccessKeysCommand::List => {
                    client
                        .list_access_keys(authed(ListAccessKeysRequest {}, &secret))
                        .await
                        .map_err(status_msg)?
                        .into_inner()
                        .access_keys
                }
                AccessKeysCommand::Create {
                    name,
                    groups,
                    models,
                    protocols,
                    expires_at,
                } => vec![
                    client
                        .create_access_key(authed(
                            CreateAccessKeyRequest {
                                name,
                                groups,
                                models,
                                protocols,
                                expires_at,
                            },
                            &secret,
                        ))
                        .await
                        .map_err(status_msg)?
                        .into_inner(),
                ],
                AccessKeysCommand::Disable { key } => vec![
                    client
                        .disable_access_key(authed(DisableAccessKeyRequest { key }, &secret))
                        .await
                        .map_err(status_msg)?
                        .into_inner(),
                ],
            };
            Ok(access_keys_text(&keys, args.json))
        }
    }
}

/// Access keys as a table, or as JSON with `--json`.
fn access_keys_text(keys: &[AccessKeyInfo], as_json: bool) -> String {
    let any = |v: &[String]| {
        if v.is_empty() {
            "*".to_owned()
        } else {
            v.join(",")
        }
    };
    if as_json {
        let v: Vec<_> = keys
            .iter()
            .map(|k| {
                json!({"id": k.id, "name": k.name, "key": k.key, "status": k.status,
                       "groups": k.groups, "models": k.models, "protocols": k.protocols,
                       "expires_at": k.expires_at, "request_count": k.request_count,
                       "last_used_at": k.last_used_at})
            })
            .collect();
        return serde_json::Value::Array(v).to_string();
    }
    let mut out = format!(
        "{:<6} {:<20} {:<52} {:<9} {:<20} {:<20} {:>9}\n",
        "id", "name", "key", "status", "groups", "models", "requests"
    );
    for k in keys {
        out.push_str(&format!(
            "{:<6} {:<20} {:<52} {:<9} {:<20} {:<20} {:>9}\n",
            k.id,
            k.name,
            k.key,
            k.status,
            any(&k.groups),
            any(&k.models),
            k.request_count
        ));
    }
    out
}
