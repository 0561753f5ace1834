//! The attempt loop: retry on another key after a failover status, blacklisting at the
//! threshold, cool-downs after a 429, all keys gone, transport failures, aggregate members —
//! with the log records and key events each produces.

use gpt_load_common::log_record::RequestType;
use gpt_load_common::model::KeyStatus;
use gpt_load_integration_tests::mock_upstream::Behavior;
use serde_json::json;

use crate::harness::{CLIENT, GroupSpec, Harness, closed_port_url};

#[tokio::test]
async fn a_failover_status_is_retried_on_another_key_with_retry_and_final_records() {
    let h = Harness::openai("retry", ["sk-bad", "sk-good"], json!({})).await;
    h.mock.set_behavior(
        Some("sk-bad"),
        Behavior::openai_error(500, "upstream exploded", "server_error", None),
    );
    for _ in 0..4 {
        let a = h
            .fetch(h.chat("retry").header("user-agent", "retry-test/1.0"))
            .await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.json()["choices"][0]["message"]["content"], "echo: hello");
    }
    let logs = h.logs();
    let finals: Vec<_> = logs
        .iter()
        .filter(|l| l.request_type == RequestType::Final)
        .collect();
    let retries: Vec<_> = logs
        .iter()
        .filter(|l| l.request_type == RequestType::Retry)
        .collect();
    assert_eq!(finals.len(), 4, "{logs:#?}");
    assert!(!retries.is_empty(), "{logs:#?}");
    for r in &retries {
        assert_eq!(r.status_code, 500);
        assert!(!r.is_success);
        assert_eq!(r.error_message, "upstream exploded");
        assert_eq!(r.key_value, "sk-bad");
    }
    for f in &finals {
        assert!(f.is_success, "{f:?}");
        assert_eq!(f.status_code, 200);
        assert_eq!(f.key_value, "sk-good");
        assert_eq!(f.error_message, "");
    }
    // Every attempt's record carries the request's own facts.
    for l in &logs {
        assert_eq!(l.request_path, "/proxy/retry/v1/chat/completions", "{l:?}");
        assert_eq!(l.model, "gpt-4o-mini");
        assert_eq!(l.source_ip, CLIENT.ip().to_string());
        assert_eq!(l.user_agent, "retry-test/1.0");
        assert_eq!(l.group_name, "retry");
        assert_eq!(
            l.upstream_addr,
            format!("{}/v1/chat/completions", h.mock.url())
        );
    }
    // Each failure was counted against sk-bad, one key event each (blacklisted at the default
    // threshold of 3).
    let bad = h.key_id("retry", "sk-bad");
    let events: Vec<_> = h
        .key_events()
        .into_iter()
        .map(|e| (e.key_id, e.failure_count))
        .collect();
    let expected: Vec<_> = (1..=retries.len() as u32).map(|n| (bad, n)).collect();
    assert_eq!(events, expected);
    let counts = h.counts("retry").await;
    assert_eq!(
        counts.invalid,
        usize::from(retries.len() >= 3),
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_key_is_blacklisted_at_the_threshold_and_skipped_afterwards() {
    let h = Harness::openai(
        "bl",
        ["sk-dead", "sk-live"],
        json!({"blacklist_threshold": 2}),
    )
    .await;
    h.mock
        .set_behavior(Some("sk-dead"), Behavior::openai_invalid_key("sk-dead"));
    let statuses = h.chats("bl", 10).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        h.mock.requests_for_key("sk-dead").len(),
        2,
        "blacklisted after exactly the threshold"
    );
    let counts = h.counts("bl").await;
    assert_eq!((counts.active, counts.invalid), (1, 1), "{counts:?}");
    let dead = h.key_id("bl", "sk-dead");
    let events: Vec<_> = h
        .key_events()
        .into_iter()
        .map(|e| (e.key_id, e.failure_count, e.status))
        .collect();
    assert_eq!(
        events,
        [(dead, 1, KeyStatus::Active), (dead, 2, KeyStatus::Invalid)],
        "one event per counted failure, the last one marks the key invalid"
    );

    let statuses = h.chats("bl", 10).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        h.mock.requests_for_key("sk-dead").len(),
        2,
        "never used again while invalid"
    );
}

#[tokio::test]
async fn a_rate_limited_key_cools_down_without_counting() {
    let h = Harness::openai(
        "cool",
        ["sk-limited", "sk-free"],
        json!({"blacklist_threshold": 1}),
    )
    .await;
    h.mock
        .set_behavior(Some("sk-limited"), Behavior::rate_limited(30));
    let statuses = h.chats("cool", 6).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        h.mock.requests_for_key("sk-limited").len(),
        1,
        "skipped while cooling down"
    );
    let counts = h.counts("cool").await;
    assert_eq!(
        (counts.active, counts.invalid, counts.cooling),
        (2, 0, 1),
        "a 429 is not a failure: {counts:?}"
    );
    assert!(h.key_events().is_empty(), "{:?}", h.key_events());
    let retry: Vec<_> = h
        .logs()
        .into_iter()
        .filter(|l| l.request_type == RequestType::Retry)
        .collect();
    assert_eq!(retry.len(), 1, "{retry:?}");
    assert_eq!(retry[0].status_code, 429);
    assert_eq!(retry[0].key_value, "sk-limited");
}

#[tokio::test]
async fn all_keys_dead_answers_503_no_keys_available_without_an_upstream_call() {
    let h = Harness::openai(
        "dead",
        ["sk-1", "sk-2"],
        json!({"blacklist_threshold": 1, "max_retries": 1}),
    )
    .await;
    h.mock.set_behavior(
        None,
        Behavior::openai_error(401, "invalid key", "invalid_request_error", None),
    );
    let a = h.fetch(h.chat("dead")).await;
    assert_eq!(a.status, 401, "the upstream's error after retries");
    assert_eq!(a.json()["error"]["message"], "invalid key");
    assert_eq!(h.mock.request_count(), 2);
    assert_eq!(h.counts("dead").await.invalid, 2);

    let a = h.fetch(h.chat("dead")).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.json()["code"], "NO_KEYS_AVAILABLE");
    assert_eq!(a.header("retry-after"), None);
    assert_eq!(h.mock.request_count(), 2, "nothing more sent upstream");
    let last = h.logs().pop().unwrap();
    assert_eq!(
        (last.status_code, last.request_type, last.key_value.as_str()),
        (503, RequestType::Final, "")
    );
}

#[tokio::test]
async fn every_key_cooling_answers_503_with_retry_after() {
    let h = Harness::openai("cooling", ["sk-x"], json!({})).await;
    h.mock
        .set_behavior(Some("sk-x"), Behavior::rate_limited(30));
    let a = h.fetch(h.chat("cooling")).await;
    assert_eq!(a.status, 429, "the upstream's answer to the last attempt");
    let a = h.fetch(h.chat("cooling")).await;
    assert_eq!(a.status, 503, "{}", a.text());
    assert_eq!(a.json()["code"], "NO_KEYS_AVAILABLE");
    let secs: u64 = a.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=30).contains(&secs), "{secs}");
    assert_eq!(h.mock.request_count(), 1);
}

#[tokio::test]
async fn a_transport_failure_is_502_and_not_counted() {
    let h = Harness::builder()
        .group(
            GroupSpec::openai("down")
                .keys(["sk-1", "sk-2"])
                .config(json!({"max_retries": 1, "blacklist_threshold": 1}))
                .upstream(closed_port_url().await),
        )
        .build()
        .await;
    let a = h.fetch(h.chat("down")).await;
    assert_eq!(a.status, 502, "{}", a.text());
    assert_eq!(a.json()["code"], "UPSTREAM_ERROR");
    let logs = h.logs();
    let kinds: Vec<_> = logs
        .iter()
        .map(|l| (l.request_type, l.status_code, l.is_success))
        .collect();
    assert_eq!(
        kinds,
        [
            (RequestType::Retry, 502, false),
            (RequestType::Final, 502, false)
        ],
        "one attempt per key"
    );
    assert_ne!(
        logs[0].key_value, logs[1].key_value,
        "the retry used the other key"
    );
    let counts = h.counts("down").await;
    assert_eq!((counts.active, counts.invalid), (2, 0), "{counts:?}");
    assert!(h.key_events().is_empty());
}

#[tokio::test]
async fn a_reset_connection_is_retried_on_the_next_key_and_not_counted() {
    let h = Harness::openai(
        "reset",
        ["sk-reset", "sk-ok"],
        json!({"blacklist_threshold": 1}),
    )
    .await;
    h.mock.set_behavior(Some("sk-reset"), Behavior::Reset);
    let statuses = h.chats("reset", 4).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(!h.mock.requests_for_key("sk-reset").is_empty());
    let counts = h.counts("reset").await;
    assert_eq!((counts.active, counts.invalid), (2, 0), "{counts:?}");
    assert!(h.key_events().is_empty());
    assert!(
        h.logs()
            .iter()
            .any(|l| l.request_type == RequestType::Retry && l.key_value == "sk-reset")
    );
}

#[tokio::test]
async fn an_aggregate_balances_by_weight_and_skips_members_without_keys() {
    let h = Harness::builder()
        .group(GroupSpec::openai("member-a").keys(["sk-ma"]))
        .group(GroupSpec::openai("member-b").keys(["sk-mb"]))
        .group(GroupSpec::openai("member-empty"))
        .group(GroupSpec::aggregate(
            "agg",
            [("member-a", 3), ("member-b", 1), ("member-empty", 100)],
        ))
        .build()
        .await;
    let statuses = h.chats("agg", 40).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let (na, nb) = (
        h.mock.requests_for_key("sk-ma").len(),
        h.mock.requests_for_key("sk-mb").len(),
    );
    assert_eq!(na + nb, 40);
    assert!(
        (28..=32).contains(&na),
        "weights 3:1 among the members with keys: {na}:{nb}"
    );
    let logs = h.logs();
    assert_eq!(
        logs.len(),
        40,
        "one final record per request, none for the empty member"
    );
    let agg = h.group_id("agg");
    for l in &logs {
        assert_eq!(l.parent_group_id, Some(agg));
        assert_eq!(l.parent_group_name, "agg");
        assert!(
            l.group_name == "member-a" || l.group_name == "member-b",
            "{l:?}"
        );
        assert_eq!(l.request_path, "/proxy/agg/v1/chat/completions");
    }
}
