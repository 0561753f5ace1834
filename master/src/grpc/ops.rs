//! The ops service behind `gpt-load ctl`.

use gpt_load_proto::ops::v1::ops_server::Ops;
use gpt_load_proto::ops::v1::{
    AccessKeyInfo, ClusterStatusRequest, ClusterStatusResponse, CreateAccessKeyRequest,
    DisableAccessKeyRequest, GroupInfo, ImportKeysRequest, ImportKeysResponse,
    ListAccessKeysRequest, ListAccessKeysResponse, ListGroupsRequest, ListGroupsResponse,
    ValidateGroupRequest, ValidateGroupResponse, WorkerInfo,
};
use tonic::{Request, Response, Status};

use crate::db::repo::{groups, keys};
use crate::service::access_keys::{
    self as ak_svc, AccessKeyCreate, AccessKeyFilters, AccessKeyResponse, AccessKeyUpdate,
};
use crate::service::error::{Msg, ServiceError};
use crate::service::{keys as key_svc, validation};
use crate::state::AppState;

pub struct OpsService {
    state: AppState,
}

impl OpsService {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    async fn group_by_name(&self, name: &str) -> Result<groups::GroupRecord, Status> {
        let all = groups::list(&self.state.db)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        all.into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| Status::not_found(format!("no group named {name:?}")))
    }
}

/// A service refusal as a gRPC status, its message in English.
fn service_status(e: ServiceError) -> Status {
    let text = |m: &Msg| crate::api::response::render(crate::i18n::Lang::EnUs, m);
    match e {
        ServiceError::Invalid(m) | ServiceError::BadRequest(m) => {
            Status::invalid_argument(text(&m))
        }
        ServiceError::NotFound(m) => Status::not_found(text(&m)),
        ServiceError::Busy(m) => Status::failed_precondition(text(&m)),
        ServiceError::Duplicate => Status::already_exists("the key exists already"),
        ServiceError::Database | ServiceError::Internal => Status::internal("internal error"),
    }
}

fn access_key_info(k: AccessKeyResponse, names: &[groups::GroupRecord]) -> AccessKeyInfo {
    AccessKeyInfo {
        id: k.id,
        name: k.name,
        key: k.key,
        status: k.status,
        groups: k
            .filters
            .groups
            .iter()
            .map(|id| {
                names
                    .iter()
                    .find(|g| g.id == *id)
                    .map_or_else(|| format!("#{id}"), |g| g.name.clone())
            })
            .collect(),
        models: k.filters.models,
        protocols: k.filters.protocols,
        expires_at: k.expires_at.unwrap_or_default(),
        request_count: k.request_count,
        last_used_at: k.last_used_at.unwrap_or_default(),
    }
}

impl OpsService {
    async fn all_groups(&self) -> Result<Vec<groups::GroupRecord>, Status> {
        groups::list(&self.state.db)
            .await
            .map_err(|e| service_status(e.into()))
    }

    async fn publish(&self) -> Result<(), Status> {
        self.state
            .publish()
            .await
            .map_err(|_| Status::internal("the new configuration could not be published"))
    }
}

#[tonic::async_trait]
impl Ops for OpsService {
    async fn list_access_keys(
        &self,
        _: Request<ListAccessKeysRequest>,
    ) -> Result<Response<ListAccessKeysResponse>, Status> {
        let all = ak_svc::list(&self.state.db, &self.state.cipher)
            .await
            .map_err(service_status)?;
        let names = self.all_groups().await?;
        Ok(Response::new(ListAccessKeysResponse {
            access_keys: all
                .into_iter()
                .map(|k| access_key_info(k, &names))
                .collect(),
        }))
    }

    async fn create_access_key(
        &self,
        request: Request<CreateAccessKeyRequest>,
    ) -> Result<Response<AccessKeyInfo>, Status> {
        let req = request.into_inner();
        let names = self.all_groups().await?;
        let mut group_ids = Vec::with_capacity(req.groups.len());
        for name in &req.groups {
            let g = names
                .iter()
                .find(|g| &g.name == name)
                .ok_or_else(|| Status::not_found(format!("no group named {name:?}")))?;
            group_ids.push(g.id);
        }
        let create = AccessKeyCreate {
            name: Some(req.name),
            filters: Some(AccessKeyFilters {
                groups: group_ids,
                models: req.models,
                protocols: req.protocols,
            }),
            expires_at: Some(req.expires_at).filter(|e| !e.is_empty()),
            ..Default::default()
        };
        let created = ak_svc::create(&self.state.db, &self.state.cipher, &create)
            .await
            .map_err(service_status)?;
        self.publish().await?;
        Ok(Response::new(access_key_info(created, &names)))
    }

    async fn disable_access_key(
        &self,
        request: Request<DisableAccessKeyRequest>,
    ) -> Result<Response<AccessKeyInfo>, Status> {
        let wanted = request.into_inner().key;
        let all = ak_svc::list(&self.state.db, &self.state.cipher)
            .await
            .map_err(service_status)?;
        let by_id = wanted.parse::<i64>().ok();
        let found: Vec<&AccessKeyResponse> = all
            .iter()
            .filter(|k| Some(k.id) == by_id || k.name == wanted)
            .collect();
        let id = match found.as_slice() {
            [one] => one.id,
            [] => return Err(Status::not_found(format!("no access key {wanted:?}"))),
            _ => {
                return Err(Status::invalid_argument(format!(
                    "{} access keys are named {wanted:?}: give the id",
                    found.len()
                )));
            }
        };
        let update = AccessKeyUpdate {
            status: Some("disabled".to_owned()),
            ..Default::default()
        };
        let updated = ak_svc::update(&self.state.db, &self.state.cipher, id, &update)
            .await
            .map_err(service_status)?;
        self.publish().await?;
        let names = self.all_groups().await?;
        Ok(Response::new(access_key_info(updated, &names)))
    }

    async fn cluster_status(
        &self,
        _: Request<ClusterStatusRequest>,
    ) -> Result<Response<ClusterStatusResponse>, Status> {
        let workers = self
            .state
            .workers
            .list()
            .into_iter()
            .map(|w| WorkerInfo {
                worker_id: w.status.worker_id,
                hostname: w.status.hostname,
                listen_addr: w.status.listen_addr,
                snapshot_version: w.status.snapshot_version,
                last_seen_seconds_ago: w.last_seen.elapsed().as_secs(),
                connected: w.streams > 0,
                in_flight: w.status.in_flight,
                records_dropped: w.status.records_dropped,
                version: w.status.version,
            })
            .collect();
        Ok(Response::new(ClusterStatusResponse {
            snapshot_version: self.state.publisher.current().version,
            master_id: self.state.instance_id.clone(),
            holds_job_lease: self.state.is_leader(),
            database: self.state.db.backend_name().to_owned(),
            workers,
        }))
    }

    async fn list_groups(
        &self,
        _: Request<ListGroupsRequest>,
    ) -> Result<Response<ListGroupsResponse>, Status> {
        let all = groups::list(&self.state.db)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let counts = keys::counts_by_group(&self.state.db)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let groups = all
            .into_iter()
            .map(|g| {
                let (t, a) = counts
                    .iter()
                    .find(|(id, _, _)| *id == g.id)
                    .map_or((0, 0), |(_, t, a)| (*t, *a));
                GroupInfo {
                    id: g.id,
                    name: g.name,
                    channel_type: g.channel_type,
                    group_type: g.group_type,
                    total_keys: t,
                    active_keys: a,
                    invalid_keys: t - a,
                }
            })
            .collect();
        Ok(Response::new(ListGroupsResponse { groups }))
    }

    async fn import_keys(
        &self,
        request: Request<ImportKeysRequest>,
    ) -> Result<Response<ImportKeysResponse>, Status> {
        let req = request.into_inner();
        let g = self.group_by_name(&req.group_name).await?;
        if g.group_type == "aggregate" {
            return Err(Status::invalid_argument(
                "aggregate groups hold no keys of their own",
            ));
        }
        let parsed = key_svc::parse_keys(&req.keys_text);
        if parsed.is_empty() {
            return Err(Status::invalid_argument(
                "no valid keys found in the input text",
            ));
        }
        // The admin API's limit on a key's length holds here too.
        if let Some(e) = key_svc::find_too_long(&req.keys_text, &parsed) {
            return Err(Status::invalid_argument(e.to_string()));
        }
        let r = key_svc::add(&self.state, g.id, &parsed, |_| {})
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ImportKeysResponse {
            added_count: r.added_count as i64,
            ignored_count: r.ignored_count as i64,
            total_in_group: r.total_in_group,
        }))
    }

    async fn validate_group(
        &self,
        request: Request<ValidateGroupRequest>,
    ) -> Result<Response<ValidateGroupResponse>, Status> {
        let req = request.into_inner();
        let g = self.group_by_name(&req.group_name).await?;
        let status = match req.status.as_str() {
            "" => None,
            s @ ("active" | "invalid") => Some(s),
            other => {
                return Err(Status::invalid_argument(format!(
                    "status must be empty, active or invalid, not {other:?}"
                )));
            }
        };
        let rt = self
            .state
            .worker
            .runtime()
            .group_by_id(g.id)
            .cloned()
            .ok_or_else(|| Status::not_found("group not loaded"))?;
        let s = validation::validate_group(&self.state, rt, status, |_| {})
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(ValidateGroupResponse {
            total_keys: s.total_keys as i64,
            valid_keys: s.valid_keys as i64,
            invalid_keys: s.invalid_keys as i64,
        }))
    }
}
