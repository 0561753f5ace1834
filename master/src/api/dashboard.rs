//! `/api/dashboard/*`: stat cards, the 24-hour chart, encryption status and security warnings.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{Duration, Local, SecondsFormat, Utc};
use gpt_load_common::crypto::sha256_hex;
use serde_json::{Value, json};

use super::response::{ApiError, ApiQuery, ApiResult, ReqLang, ok};
use crate::db::repo::logs::{self as logrepo, hour_bucket};
use crate::db::repo::stats::{self, Scope};
use crate::db::repo::{groups, keys};
use crate::i18n::{self, Lang};
use crate::state::AppState;

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

pub async fn stats(State(state): State<AppState>, ReqLang(lang): ReqLang) -> ApiResult {
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
            lang,
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
            lang,
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
            lang,
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
    let mut key_card = json!({"value": active, "sub_value_tip": i18n::t(lang, "dashboard.invalid_keys"), "trend": 0, "trend_is_growth": false});
    if invalid > 0 {
        key_card["sub_value"] = json!(invalid);
    }
    let warnings = security_warnings(&state, lang).await?;
    ok(
        lang,
        json!({
            "key_count": key_card,
            "rpm": {"value": rpm, "trend": rpm_trend, "trend_is_growth": rpm_growth},
            "request_count": {"value": cur_total, "trend": req_trend, "trend_is_growth": req_growth},
            "error_rate": {"value": cur_rate, "trend": err_trend, "trend_is_growth": err_growth},
            "security_warnings": if warnings.is_empty() { Value::Null } else { Value::Array(warnings) },
        }),
    )
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

fn check_secret(lang: Lang, kind: &str, secret: &str, out: &mut Vec<Value>) {
    let len = secret.len().to_string();
    let vars = [("keyType", kind), ("length", len.as_str())];
    let warn = |msg: &str, sev: &str, sug: &str, extra: &[(&str, &str)]| {
        let mut v: Vec<(&str, &str)> = vars.to_vec();
        v.extend_from_slice(extra);
        json!({"type": kind, "message": i18n::tf(lang, msg, &v), "severity": sev, "suggestion": i18n::tf(lang, sug, &v)})
    };
    if secret.len() < 16 {
        out.push(warn(
            "security.password_too_short",
            "high",
            "security.password_recommendation_16",
            &[],
        ));
    } else if secret.len() < 32 {
        out.push(warn(
            "security.password_short",
            "medium",
            "security.password_recommendation_32",
            &[],
        ));
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(p) = WEAK.iter().find(|p| lower.contains(*p)) {
        out.push(warn(
            "security.password_weak_pattern",
            "high",
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
                "medium",
                "security.password_complexity",
                &[],
            ));
        }
    }
}

/// Weak-secret warnings (spec §9.1) plus one GPT-Load lacks: the admin key also being a proxy key.
pub async fn security_warnings(state: &AppState, lang: Lang) -> Result<Vec<Value>, ApiError> {
    let mut out = Vec::new();
    check_secret(lang, "AUTH_KEY", state.cfg.auth_key.expose(), &mut out);
    match &state.cfg.encryption_key {
        Some(k) => check_secret(lang, "ENCRYPTION_KEY", k.expose(), &mut out),
        None => out.push(json!({
            "type": "ENCRYPTION_KEY",
            "message": i18n::t(lang, "dashboard.encryption_key_missing"),
            "severity": "high",
            "suggestion": i18n::t(lang, "dashboard.encryption_key_recommended"),
        })),
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
            json!({
                "type": "AUTH_KEY",
                "message": i18n::tf(lang, "security.admin_key_is_proxy_key", &[("where", &where_)]),
                "severity": "high",
                "suggestion": i18n::t(lang, "security.admin_key_is_proxy_key_suggestion"),
            }),
        );
    }
    Ok(out)
}

pub async fn chart(
    State(state): State<AppState>,
    ReqLang(lang): ReqLang,
    ApiQuery(q): ApiQuery,
) -> ApiResult {
    let scope = match q
        .get("groupId")
        .or_else(|| q.get("group_id"))
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        Some(raw) => Scope::Group(raw.parse::<i64>().map_err(|_| {
            ApiError::i18n(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                lang,
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
                lang,
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
    ok(
        lang,
        json!({
            "labels": labels,
            "datasets": [
                {"label": i18n::t(lang, "dashboard.success_requests"), "data": success, "color": "rgba(10, 200, 110, 1)"},
                {"label": i18n::t(lang, "dashboard.failed_requests"), "data": failure, "color": "rgba(255, 70, 70, 1)"},
            ]
        }),
    )
}

/// Spec §2.3: compares a sample of stored keys with the configured `ENCRYPTION_KEY`.
pub async fn encryption_status(State(state): State<AppState>, ReqLang(lang): ReqLang) -> ApiResult {
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
    ok(
        lang,
        json!({"has_mismatch": !scenario.is_empty(), "message": t(msg), "scenario_type": scenario, "suggestion": t(sug)}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_secrets_are_reported_like_gpt_load() {
        let mut out = Vec::new();
        check_secret(Lang::EnUs, "AUTH_KEY", "admin", &mut out);
        let sev: Vec<_> = out
            .iter()
            .map(|w| w["severity"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(sev, ["high", "high"]);
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
        assert!(out.iter().any(|w| w["severity"] == "medium"));
    }

    #[test]
    fn trends() {
        assert_eq!(trend_pct(5.0, 0.0), (100.0, true));
        assert_eq!(trend_pct(0.0, 0.0), (0.0, true));
        assert_eq!(trend_pct(50.0, 100.0), (-50.0, false));
    }
}
