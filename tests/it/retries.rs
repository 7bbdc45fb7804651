//! Re-checks within an interval (issue 13): a failing check is probed again at its
//! `retry_interval` until its rules could confirm the failure, so a 10 s check with `count = 3`
//! pages seconds after the fault rather than three intervals later.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::daemon::Daemon;
use crate::harness::receiver::Receiver;
use crate::target::HttpTarget;

/// Check `api` on `target`'s `/health` every `interval`, re-checked every `retry`, with rule
/// `api-down` (critical after `count` failures in a row) paging the webhook `pager`.
fn paged_check(
    pager: &Receiver,
    target: &HttpTarget,
    interval: &str,
    timeout: &str,
    retry: &str,
    count: u32,
) -> String {
    format!(
        r#"
{ops}
[[check]]
name = "api"
kind = "http"
url = "{url}"
interval = "{interval}"
timeout = "{timeout}"
retry_interval = "{retry}"

[[rule]]
name = "api-down"
check = "api"
critical = {{ when = "< 1", count = {count} }}
"#,
        ops = crate::paging::ops_pager(&pager.url()),
        url = target.url("/health"),
    )
}

#[test]
fn a_ten_second_check_with_retries_pages_before_its_second_interval() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let pager = Receiver::start();
    let d = Daemon::start(&paged_check(&pager, &target, "10s", "1s", "1s", 3));
    let runs = |d: &Daemon| d.check("api")["runs"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while runs(&d) < 1 {
        assert!(Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(Duration::from_millis(20));
    }

    // The fault starts right after a healthy run: the next run is up to 10 s away.
    target.set_json("/health", 503, json!({"status": "down"}));
    let fault = Instant::now();
    let mut first_failure = None;
    let mut soft_seen = Vec::new();
    let deadline = fault + Duration::from_secs(30);
    while pager.accepted().is_empty() {
        let check = d.check("api");
        if check["state"] == "down" && first_failure.is_none() {
            first_failure = Some(Instant::now());
        }
        if let Some(text) = check["failing"]["text"].as_str() {
            if !soft_seen.iter().any(|s| s == text) {
                soft_seen.push(text.to_string());
            }
        }
        assert!(
            Instant::now() < deadline,
            "no page 30 s after the fault:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let paged = pager.received()[0].at;
    let first_failure = first_failure.expect("the check was seen down before the page");
    // Three failures at the full interval would take 20 s from the first; re-checked every
    // second they take about 2 s (bounded loosely for a busy machine).
    let confirm = paged.saturating_duration_since(first_failure);
    assert!(
        confirm < Duration::from_secs(8),
        "paged {confirm:?} after the first failure"
    );
    assert!(
        paged.duration_since(fault) < Duration::from_secs(20),
        "paged {:?} after the fault: not before the second full interval",
        paged.duration_since(fault)
    );
    assert!(
        soft_seen
            .iter()
            .any(|s| s == "failing 1/3" || s == "failing 2/3"),
        "the soft state shows in the status: {soft_seen:?}"
    );
    assert_eq!(pager.accepted()[0]["alert"], "api-down");

    // Confirmed: back to the normal interval (no re-check storm while it stays down).
    let at_page = target.hits("/health");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        target.hits("/health") <= at_page + 1,
        "re-checks went on after the failure was confirmed"
    );
    assert_eq!(d.check("api")["failing"]["state"], "hard");
}

#[test]
fn a_single_blip_is_rechecked_and_pages_nobody() {
    let target = HttpTarget::start();
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let pager = Receiver::start();
    let d = Daemon::start(&paged_check(&pager, &target, "2s", "500ms", "300ms", 5));
    let runs = |d: &Daemon| d.check("api")["runs"].as_u64().unwrap_or(0);
    let wait_runs = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while runs(&d) < n {
            assert!(Instant::now() < deadline, "{}", d.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_runs(1);
    // Fail one probe: the re-check 300 ms later finds the target answering (the rule wants 5
    // failures, so the status publishing's 500 ms delay leaves a wide margin). (A probe
    // in flight when the target flips may still see it healthy: then flip again.)
    let mut before = runs(&d);
    for attempt in 0.. {
        assert!(attempt < 5, "never caught a failing probe:\n{}", d.log());
        target.set_json("/health", 503, json!({"status": "down"}));
        wait_runs(before + 1);
        if d.check("api")["state"] == "down" {
            break;
        }
        before = runs(&d);
    }
    target.set_json("/health", 200, json!({"status": "healthy"}));
    let failed_at = Instant::now();
    wait_runs(before + 2);
    let recheck = failed_at.elapsed();
    assert!(
        recheck < Duration::from_millis(1500),
        "the re-check came {recheck:?} after the failure, not at the retry interval"
    );
    wait_runs(before + 4);
    assert_eq!(d.rule("api-down")["state"], "ok");
    assert!(pager.accepted().is_empty(), "a blip paged someone");
    assert!(d.check("api").get("failing").is_none());
}
