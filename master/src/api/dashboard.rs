//! `/api/dashboard/*`: stat cards, the 24-hour chart, encryption status and security warnings.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Duration, Local, SecondsFormat, Utc};
use gpt_load_common::crypto::sha256_hex;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::response::{ApiError, ApiQuery, ApiResult, ReqLang, ok};
use super::schema::Envelope;
use crate::db::repo::logs::{self as logrepo, hour_bucket};
use crate::db::repo::stats::{self, Scope};
use crate::db::repo::{groups, keys};
use crate::i18n::{self, Lang};
use crate::state::AppState;

/// A dashboard card: a value and its change against the previous period.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatCard {
    #[serde(serialize_with = "go_float")]
    pub value: f64,
    /// Only on `key_count`, only when there are invalid keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub_value: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub_value_tip: Option<String>,
    /// Percent change (error rate: percentage points).
    #[serde(serialize_with = "go_float")]
    pub trend: f64,
    /// For the error rate: true when it fell.
    pub trend_is_growth: bool,
}

/// A float as Go's `encoding/json` writes it: integral values without a fraction (`4`, not
/// `4.0`).
fn go_float<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

impl StatCard {
    fn new(value: f64, (trend, trend_is_growth): (f64, bool)) -> Self {
        Self {
            value,
            sub_value: None,
            sub_value_tip: None,
            trend,
            trend_is_growth,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
}

/// A weak or misused secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityWarning {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub severity: Severity,
    pub suggestion: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardStats {
    pub key_count: StatCard,
    pub rpm: StatCard,
    pub request_count: StatCard,
    pub error_rate: StatCard,
    /// `null` when there is none.
    pub security_warnings: Option<Vec<SecurityWarning>>,
}

fn trend_pct(cur: f64, prev: f64) -> (f64, bool) {
    if prev == 0.0 {
        return if cur > 0.0 {
            (100.0, true)
        } else {
            (0.0, true)
        };
    }
    let t = (cur - prev) / prev * 100.0;
    ((t * 100.0).round() / 100.0, t >= 0.0)
}

#[utoipa::path(get, path = "/api/dashboard/stats", tag = "dashboard", operation_id = "dashboardStats",
    summary = "The dashboard's cards and security warnings (localised)",
    responses((status = 200, body = Envelope<DashboardStats>)))]
pub async fn stats(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
) -> ApiResult<DashboardStats> {
    let now = Utc::now();
    let (_, active, invalid) = keys::counts(&state.db, None).await?;
    let cur_final = logrepo::count_final_between(
        &state.db,
        now - Duration::minutes(10),
        now + Duration::seconds(1),
    )
    .await
    .map_err(|_| {
        ApiError::i18n(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DATABASE_ERROR",
            "database.rpm_stats_failed",
        )
    })?;
    let prev_final = logrepo::count_final_between(
        &state.db,
        now - Duration::minutes(20),
        now - Duration::minutes(10),
    )
    .await?;
    let rpm = cur_final as f64 / 10.0;
    let (rpm_trend, rpm_growth) = trend_pct(rpm, prev_final as f64 / 10.0);
    let (cs, cf) = stats::sum(
        &state.db,
        Scope::AllStandard,
        now - Duration::hours(24),
        now,
    )
    .await
    .map_err(|_| {
        ApiError::i18n(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DATABASE_ERROR",
            "database.current_stats_failed",
        )
    })?;
    let (ps, pf) = stats::sum(
        &state.db,
        Scope::AllStandard,
        now - Duration::hours(48),
        now - Duration::hours(24),
    )
    .await
    .map_err(|_| {
        ApiError::i18n(
            StatusCode::INTERNAL_SERVER_ERROR,
            "DATABASE_ERROR",
            "database.previous_stats_failed",
        )
    })?;
    let (cur_total, prev_total) = (cs + cf, ps + pf);
    let (req_trend, req_growth) = trend_pct(cur_total as f64, prev_total as f64);
    let rate = |f: i64, t: i64| {
        if t > 0 {
            ((f as f64 / t as f64) * 10_000.0).round() / 100.0
        } else {
            0.0
        }
    };
    let (cur_rate, prev_rate) = (rate(cf, cur_total), rate(pf, prev_total));
    let (err_trend, err_growth) = match (cur_total, prev_total) {
        (0, 0) => (0.0, true),
        (_, 0) => (cur_rate, cur_rate == 0.0),
        _ => {
            let d = ((cur_rate - prev_rate) * 100.0).round() / 100.0;
            (d, d < 0.0)
        }
    };
    let key_count = StatCard {
        sub_value: (invalid > 0).then_some(invalid),
        sub_value_tip: Some(i18n::t(lang, "dashboard.invalid_keys")),
        ..StatCard::new(active as f64, (0.0, false))
    };
    let warnings = security_warnings(&state, lang).await?;
    ok(DashboardStats {
        key_count,
        rpm: StatCard::new(rpm, (rpm_trend, rpm_growth)),
        request_count: StatCard::new(cur_total as f64, (req_trend, req_growth)),
        error_rate: StatCard::new(cur_rate, (err_trend, err_growth)),
        security_warnings: (!warnings.is_empty()).then_some(warnings),
    })
}

const WEAK: &[&str] = &[
    "password",
    "123456",
    "admin",
    "secret",
    "test",
    "demo",
    "sk-123456",
    "key",
    "token",
    "pass",
    "pwd",
    "qwerty",
    "abc",
    "default",
    "user",
    "login",
    "auth",
    "temp",
];

fn check_secret(lang: Lang, kind: &str, secret: &str, out: &mut Vec<SecurityWarning>) {
    let len = secret.len().to_string();
    let vars = [("keyType", kind), ("length", len.as_str())];
    let warn = |msg: &str, severity: Severity, sug: &str, extra: &[(&str, &str)]| {
        let mut v: Vec<(&str, &str)> = vars.to_vec();
        v.extend_from_slice(extra);
        SecurityWarning {
            kind: kind.to_owned(),
            message: i18n::tf(lang, msg, &v),
            severity,
            suggestion: i18n::tf(lang, sug, &v),
        }
    };
    if secret.len() < 16 {
        out.push(warn(
            "security.password_too_short",
            Severity::High,
            "security.password_recommendation_16",
            &[],
        ));
    } else if secret.len() < 32 {
        out.push(warn(
            "security.password_short",
            Severity::Medium,
            "security.password_recommendation_32",
            &[],
        ));
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(p) = WEAK.iter().find(|p| lower.contains(*p)) {
        out.push(warn(
            "security.password_weak_pattern",
            Severity::High,
            "security.password_avoid_common",
            &[("pattern", p)],
        ));
    }
    if secret.len() >= 16 {
        let classes = [
            secret.chars().any(|c| c.is_ascii_uppercase()),
            secret.chars().any(|c| c.is_ascii_lowercase()),
            secret.chars().any(|c| c.is_ascii_digit()),
            secret.chars().any(|c| !c.is_ascii_alphanumeric()),
        ];
        if classes.iter().filter(|b| **b).count() < 3 {
            out.push(warn(
                "security.password_low_complexity",
                Severity::Medium,
                "security.password_complexity",
                &[],
            ));
        }
    }
}

/// Weak-secret warnings (spec §9.1) plus one GPT-Load lacks: the admin key also being a proxy key.
pub async fn security_warnings(
    state: &AppState,
    lang: Lang,
) -> Result<Vec<SecurityWarning>, ApiError> {
    let mut out = Vec::new();
    check_secret(lang, "AUTH_KEY", state.cfg.auth_key.expose(), &mut out);
    match &state.cfg.encryption_key {
        Some(k) => check_secret(lang, "ENCRYPTION_KEY", k.expose(), &mut out),
        None => out.push(SecurityWarning {
            kind: "ENCRYPTION_KEY".to_owned(),
            message: i18n::t(lang, "dashboard.encryption_key_missing"),
            severity: Severity::High,
            suggestion: i18n::t(lang, "dashboard.encryption_key_recommended"),
        }),
    }
    let snap = state.worker.snapshot();
    let global_name = i18n::t(lang, "dashboard.global_proxy_key");
    let auth = state.cfg.auth_key.expose();
    let mut admin_reuse: Vec<String> = Vec::new();
    for (i, k) in snap.settings.str("proxy_keys").split(',').enumerate() {
        let k = k.trim();
        if k.is_empty() {
            continue;
        }
        if state.cfg.auth_key.matches(k) {
            admin_reuse.push(global_name.clone());
        }
        check_secret(lang, &format!("{global_name} #{}", i + 1), k, &mut out);
    }
    let group_name = i18n::t(lang, "dashboard.group_proxy_key");
    for g in groups::list(&state.db).await? {
        for (i, k) in g.proxy_keys.split(',').enumerate() {
            let k = k.trim();
            if k.is_empty() {
                continue;
            }
            if state.cfg.auth_key.matches(k) {
                admin_reuse.push(format!("{group_name} [{}]", g.name));
            }
            check_secret(
                lang,
                &format!("{group_name} [{}] #{}", g.name, i + 1),
                k,
                &mut out,
            );
        }
    }
    if !admin_reuse.is_empty() && !auth.is_empty() {
        let where_ = admin_reuse.join(", ");
        out.insert(
            0,
            SecurityWarning {
                kind: "AUTH_KEY".to_owned(),
                message: i18n::tf(
                    lang,
                    "security.admin_key_is_proxy_key",
                    &[("where", &where_)],
                ),
                severity: Severity::High,
                suggestion: i18n::t(lang, "security.admin_key_is_proxy_key_suggestion"),
            },
        );
    }
    Ok(out)
}

/// `GET /api/dashboard/chart` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChartQuery {
    /// One group; absent: every standard group.
    #[serde(rename = "groupId")]
    #[param(rename = "groupId", value_type = Option<i64>)]
    pub group_id_camel: Option<String>,
    /// The same as `groupId`.
    #[param(value_type = Option<i64>)]
    pub group_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChartDataset {
    pub label: String,
    pub data: Vec<i64>,
    /// A CSS colour.
    pub color: &'static str,
}

/// Hourly request counts of the last 24 hours.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChartData {
    pub labels: Vec<String>,
    pub datasets: Vec<ChartDataset>,
}

#[utoipa::path(get, path = "/api/dashboard/chart", tag = "dashboard", operation_id = "dashboardChart",
    summary = "Successes and failures per hour over the last 24 hours", params(ChartQuery),
    responses((status = 200, body = Envelope<ChartData>)))]
pub async fn chart(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiQuery(q): ApiQuery<ChartQuery>,
) -> ApiResult<ChartData> {
    let scope = match q
        .group_id_camel
        .as_deref()
        .or(q.group_id.as_deref())
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(raw) => Scope::Group(raw.parse::<i64>().map_err(|_| {
            ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "validation.invalid_group_id",
            )
        })?),
        None => Scope::AllStandard,
    };
    let end_hour = hour_bucket(Utc::now());
    let start = end_hour - Duration::hours(23);
    let rows = stats::hourly(&state.db, scope, start, end_hour + Duration::hours(1))
        .await
        .map_err(|_| {
            ApiError::i18n(
                StatusCode::INTERNAL_SERVER_ERROR,
                "DATABASE_ERROR",
                "database.chart_data_failed",
            )
        })?;
    let mut labels = Vec::with_capacity(24);
    let mut success = vec![0i64; 24];
    let mut failure = vec![0i64; 24];
    for i in 0..24 {
        labels.push(
            (start + Duration::hours(i))
                .with_timezone(&Local)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        );
    }
    for (t, s, f) in rows {
        let idx = (t - start).num_hours();
        if (0..24).contains(&idx) {
            success[idx as usize] += s;
            failure[idx as usize] += f;
        }
    }
    ok(ChartData {
        labels,
        datasets: vec![
            ChartDataset {
                label: i18n::t(lang, "dashboard.success_requests"),
                data: success,
                color: "rgba(10, 200, 110, 1)",
            },
            ChartDataset {
                label: i18n::t(lang, "dashboard.failed_requests"),
                data: failure,
                color: "rgba(255, 70, 70, 1)",
            },
        ],
    })
}

/// Whether the stored keys agree with the configured `ENCRYPTION_KEY`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EncryptionStatus {
    pub has_mismatch: bool,
    pub message: String,
    /// Empty, `data_not_encrypted`, `key_not_configured` or `key_mismatch`.
    pub scenario_type: &'static str,
    pub suggestion: String,
}

/// Spec §2.3: compares a sample of stored keys with the configured `ENCRYPTION_KEY`.
#[utoipa::path(get, path = "/api/dashboard/encryption-status", tag = "dashboard",
    operation_id = "encryptionStatus", summary = "Whether stored keys match ENCRYPTION_KEY",
    responses((status = 200, body = Envelope<EncryptionStatus>)))]
pub async fn encryption_status(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
) -> ApiResult<EncryptionStatus> {
    let sample = keys::sample(&state.db, 20).await.unwrap_or_default();
    let n = sample.len() as f64;
    let mut scenario = "";
    if n > 0.0 {
        let plain = sample.iter().filter(|(v, h)| sha256_hex(v) == *h).count() as f64 / n;
        let decryptable = if state.cipher.is_enabled() {
            sample
                .iter()
                .filter(|(v, h)| {
                    state
                        .cipher
                        .decrypt(v)
                        .is_ok_and(|p| state.cipher.hash(&p) == *h)
                })
                .count() as f64
                / n
        } else {
            0.0
        };
        scenario = match (state.cipher.is_enabled(), plain, decryptable) {
            (true, p, _) if p > 0.8 => "data_not_encrypted",
            (false, p, _) if p < 0.2 => "key_not_configured",
            (true, p, d) if p < 0.2 && d < 0.2 => "key_mismatch",
            _ => "",
        };
    }
    let (msg, sug) = match scenario {
        "data_not_encrypted" => (
            "dashboard.encryption_key_configured_but_data_not_encrypted",
            "dashboard.encryption_key_migration_required",
        ),
        "key_not_configured" => (
            "dashboard.data_encrypted_but_key_not_configured",
            "dashboard.configure_same_encryption_key",
        ),
        "key_mismatch" => (
            "dashboard.encryption_key_mismatch",
            "dashboard.use_correct_encryption_key",
        ),
        _ => ("", ""),
    };
    let t = |id: &str| {
        if id.is_empty() {
            String::new()
        } else {
            i18n::t(lang, id)
        }
    };
    ok(EncryptionStatus {
        has_mismatch: !scenario.is_empty(),
        message: t(msg),
        scenario_type: scenario,
        suggestion: t(sug),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_reported_like_gpt_load() {
        let mut out = Vec::new();
        check_secret(Lang::EnUs, "AUTH_KEY", "admin", &mut out);
        let sev: Vec<_> = out.iter().map(|w| format!("{:?}", w.severity)).collect();
        assert_eq!(sev, ["High", "High"]);
        out.clear();
        check_secret(
            Lang::EnUs,
            "AUTH_KEY",
            "Zq8#mV2!rT6$wK9@pL4^nB7&cX1*yH5%",
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        check_secret(
            Lang::EnUs,
            "K",
            "abcdefghijklmnopqrstuvwxyzabcdefgh",
            &mut out,
        );
        assert!(out.iter().any(|w| matches!(w.severity, Severity::Medium)));
    }

    #[test]
    fn trends() {
        assert_eq!(trend_pct(5.0, 0.0), (100.0, true));
        assert_eq!(trend_pct(0.0, 0.0), (0.0, true));
        assert_eq!(trend_pct(50.0, 100.0), (-50.0, false));
    }
}
