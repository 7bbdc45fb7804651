//! The SLO arithmetic against numbers worked out by hand. Traffic is 100 events a minute
//! unless a test says otherwise; the objective is 99.5 % (a budget of 0.5 % bad events), so
//! the burn-rate thresholds of the SRE workbook's table are error ratios of 7.2 % (14.4x),
//! 3 % (6x), 1.5 % (3x) and 0.5 % (1x).

use std::time::Duration;

use super::*;
use crate::config::{AlertConfig, Sli, SloConfig};

/// A minute late in 2025: the minute in progress when the tests evaluate.
const NOW: u32 = 29_000_000;
const DAY: u32 = 24 * 60;

fn at(minute: u32) -> Timestamp {
    Timestamp::from_millis(i64::from(minute) * 60_000)
}

/// Half-way through the minute `NOW`.
fn now() -> Timestamp {
    at(NOW) + Duration::from_secs(30)
}

fn slo() -> SloConfig {
    SloConfig {
        name: "api".into(),
        sli: Sli::Probes,
        check: "api".into(),
        objective: 0.995,
        period: Duration::from_secs(30 * 86_400),
        min_events: None,
        alerts: AlertConfig::workbook(),
    }
}

/// 100 events a minute over the minutes `from..=to` (counted back from `NOW`), `bad` of each
/// minute's 100 not good.
fn traffic(h: &mut History, from_ago: u32, to_ago: u32, bad: f64) {
    for m in (NOW - from_ago)..=(NOW - to_ago) {
        h.record(at(m), 100.0 - bad, 100.0);
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_budget_over_30_days_is_what_the_bad_events_left_of_it() {
    // 30 days and the minute in progress of 100 events: 4,320,100 events, of which 0.5 %
    // (21,600.5) may be bad.
    let mut h = History::new();
    traffic(&mut h, 30 * DAY, 0, 0.0);
    let e = evaluate(&slo(), &h, now());
    assert_eq!(e.period.total, 4_320_100.0);
    assert!(close(e.budget_remaining, 1.0));
    // 10,800.25 minutes' worth of bad events would be half: 108 minutes all bad is 10,800.
    let mut h = History::new();
    traffic(&mut h, 30 * DAY, 108, 0.0);
    traffic(&mut h, 107, 0, 100.0);
    let e = evaluate(&slo(), &h, now());
    let expected = 1.0 - (10_800.0 / 4_320_100.0) / 0.005;
    assert!(
        close(e.budget_remaining, expected),
        "{}",
        e.budget_remaining
    );
    assert!((0.49..0.51).contains(&e.budget_remaining));
    // Overspent: not clamped, it says by how much (324 bad minutes: about -0.5).
    let mut h = History::new();
    traffic(&mut h, 30 * DAY, 324, 0.0);
    traffic(&mut h, 323, 0, 100.0);
    let e = evaluate(&slo(), &h, now());
    assert!(close(
        e.budget_remaining,
        1.0 - (32_400.0 / 4_320_100.0) / 0.005
    ));
    assert!(e.budget_remaining < -0.49);
    // No events: nothing spent.
    let e = evaluate(&slo(), &History::new(), now());
    assert_eq!(e.budget_remaining, 1.0);
    assert_eq!(e.level, Level::Ok);
    assert!(e.windows.iter().all(|w| w.burn_rate == 0.0));
}

#[test]
fn windows_are_the_workbooks_shortest_first() {
    let e = evaluate(&slo(), &History::new(), now());
    let windows: Vec<u64> = e.windows.iter().map(|w| w.window.as_secs() / 60).collect();
    assert_eq!(windows, [5, 30, 60, 120, 360, 1440, 4320]);
}

fn burn(e: &Evaluation, minutes: u64) -> f64 {
    e.windows
        .iter()
        .find(|w| w.window.as_secs() == minutes * 60)
        .unwrap()
        .burn_rate
}

#[test]
fn an_outage_of_ten_minutes_pages_through_the_1h_and_5m_pair_only() {
    // Three days of clean traffic, then the last 10 minutes all bad (the minute in progress
    // among them): 1,000 bad events.
    let mut h = History::new();
    traffic(&mut h, 3 * DAY, 10, 0.0);
    traffic(&mut h, 9, 0, 100.0);
    let e = evaluate(&slo(), &h, now());
    // 1 h: 1,000 of 6,100 events → 16.4 % → 32.8x; 5 m: all bad → 200x.
    assert!(close(burn(&e, 60), (1000.0 / 6100.0) / 0.005));
    assert!(close(burn(&e, 5), 200.0));
    // 6 h: 1,000 of 36,100 → 5.5x, under 6x; 1 d: 1.39x, under 3x; 3 d: 0.46x.
    assert!(burn(&e, 360) < 6.0 && burn(&e, 360) > 5.5);
    assert!(burn(&e, 1440) < 3.0);
    assert!(burn(&e, 4320) < 1.0);
    assert_eq!(e.firing, [0]);
    assert_eq!(e.level, Level::Critical);
}

#[test]
fn the_page_stops_once_the_short_window_recovers() {
    // The same 10 bad minutes, over 30 minutes ago: the hour still burns at 32.8x, the last
    // 5 minutes do not burn at all.
    let mut h = History::new();
    traffic(&mut h, 3 * DAY, 40, 0.0);
    traffic(&mut h, 39, 30, 100.0);
    traffic(&mut h, 29, 0, 0.0);
    let e = evaluate(&slo(), &h, now());
    assert!(close(burn(&e, 60), (1000.0 / 6100.0) / 0.005));
    assert_eq!(burn(&e, 5), 0.0);
    assert!(e.firing.is_empty());
    assert_eq!(e.level, Level::Ok);
}

#[test]
fn a_slow_burn_over_6h_pages_through_the_6h_and_30m_pair() {
    // 5 % bad (10x) for the last 6 hours: under 14.4x over the hour, above 6x over 6 h and
    // 30 m; over the day 1,805 of 144,100 (2.5x, under 3x).
    let mut h = History::new();
    traffic(&mut h, 3 * DAY, 361, 0.0);
    traffic(&mut h, 360, 0, 5.0);
    let e = evaluate(&slo(), &h, now());
    assert!(close(burn(&e, 60), 10.0));
    assert!(close(burn(&e, 360), 10.0));
    assert!(close(burn(&e, 1440), (361.0 * 5.0 / 144_100.0) / 0.005));
    assert_eq!(e.firing, [1]);
    assert_eq!(e.level, Level::Critical);
    // 2.5 % (5x) over the same 6 hours is under 6x: no page.
    let mut h = History::new();
    traffic(&mut h, 3 * DAY, 361, 0.0);
    traffic(&mut h, 360, 0, 2.5);
    let e = evaluate(&slo(), &h, now());
    assert!(close(burn(&e, 360), 5.0));
    assert_eq!(e.level, Level::Ok);
}

#[test]
fn a_day_of_2_percent_bad_tickets_through_both_ticket_pairs() {
    // 2 % bad (4x) for the last day: over 3x on 1 d and 2 h; the 3 days then burn at
    // 1,441 × 2 / 432,100 / 0.005 = 1.33x, over 1x, with 4x over the last 6 h: both tickets.
    let mut h = History::new();
    traffic(&mut h, 3 * DAY, DAY + 1, 0.0);
    traffic(&mut h, DAY, 0, 2.0);
    let e = evaluate(&slo(), &h, now());
    assert!(close(burn(&e, 1440), 4.0));
    assert!(close(burn(&e, 4320), (1441.0 * 2.0 / 432_100.0) / 0.005));
    assert_eq!(e.firing, [2, 3]);
    assert_eq!(e.level, Level::Warning);
}

#[test]
fn three_days_at_1_5x_ticket_through_the_3d_and_6h_pair_only() {
    // 0.75 % bad (1.5x) throughout: over 1x on 3 d and 6 h, under every other threshold.
    let mut h = History::new();
    for m in (NOW - 3 * DAY)..=NOW {
        h.record(at(m), 99.25, 100.0);
    }
    let e = evaluate(&slo(), &h, now());
    assert!(close(burn(&e, 4320), 1.5));
    assert_eq!(e.firing, [3]);
    assert_eq!(e.level, Level::Warning);
    // 0.4 % bad (0.8x) is within budget: nothing.
    let mut h = History::new();
    for m in (NOW - 3 * DAY)..=NOW {
        h.record(at(m), 99.6, 100.0);
    }
    assert_eq!(evaluate(&slo(), &h, now()).level, Level::Ok);
}

#[test]
fn low_traffic_does_not_page_on_one_bad_event() {
    // One request an hour, the last one failed: 100 % bad over 1 h and 5 m, but the hour has
    // 1 event; 14.4x at 99.5 % needs ⌈1 / 0.072⌉ = 14 before one bad event cannot fire it.
    let mut h = History::new();
    for hour in (1..=72).rev() {
        h.record(at(NOW - hour * 60), 1.0, 1.0);
    }
    h.record(at(NOW - 2), 0.0, 1.0);
    let e = evaluate(&slo(), &h, now());
    assert!(close(burn(&e, 5), 200.0));
    assert_eq!(min_events(&slo(), &slo().alerts[0]), 14.0);
    assert_eq!(min_events(&slo(), &slo().alerts[3]), 200.0);
    assert_eq!(e.level, Level::Ok);
    // With min_events = 1 the same bad event pages.
    let mut one = slo();
    one.min_events = Some(1.0);
    assert_eq!(evaluate(&one, &h, now()).level, Level::Critical);
    // And a configured minimum holds back a real outage with too little traffic: 20 events
    // an hour, all bad for the last 5 minutes, under min_events = 100.
    let mut h = History::new();
    for m in (NOW - 60)..=NOW {
        let bad = m + 5 > NOW;
        h.record(at(m), if bad { 0.0 } else { 0.33 }, 0.33);
    }
    let mut hundred = slo();
    hundred.min_events = Some(100.0);
    assert_eq!(evaluate(&hundred, &h, now()).level, Level::Ok);
    hundred.min_events = Some(20.0);
    assert_eq!(evaluate(&hundred, &h, now()).level, Level::Critical);
}

#[test]
fn minutes_older_than_the_period_are_dropped() {
    let period = Duration::from_secs(30 * 86_400);
    let mut h = History::new();
    // A bad minute 30 days and one minute ago, outside the period, and a good one now.
    h.record(at(NOW - 30 * DAY - 1), 0.0, 100.0);
    h.record(at(NOW), 100.0, 100.0);
    assert!(evaluate(&slo(), &h, now()).budget_remaining == 1.0);
    h.prune(now(), period);
    assert_eq!(h.len(), 1);
    // A month of minutes and more never keeps more than the period's minutes (plus the one
    // in progress).
    let mut h = History::new();
    for m in (NOW - 31 * DAY)..=NOW {
        h.record(at(m), 1.0, 1.0);
        h.prune(at(m), period);
    }
    assert_eq!(h.len(), 30 * DAY as usize + 1);
    assert_eq!(h.buckets().next().unwrap().minute, NOW - 30 * DAY);
}

#[test]
fn closed_minutes_are_handed_out_once_and_loaded_ones_never() {
    let mut h = History::from_buckets([Bucket {
        minute: NOW - 5,
        good: 1.0,
        total: 2.0,
    }]);
    h.record(at(NOW - 1), 1.0, 1.0);
    h.record(at(NOW), 1.0, 1.0);
    // The minute in progress stays; the closed one goes; the loaded one was stored already.
    assert_eq!(
        h.take_closed(now()),
        [Bucket {
            minute: NOW - 1,
            good: 1.0,
            total: 1.0
        }]
    );
    assert!(h.take_closed(now()).is_empty());
    h.record(now(), 0.0, 1.0);
    let next = at(NOW + 1);
    assert_eq!(
        h.take_closed(next),
        [Bucket {
            minute: NOW,
            good: 1.0,
            total: 2.0
        }]
    );
    assert!(h.take_closed(next).is_empty());
    // Repeated minutes of stored buckets add up, in any order.
    let h = History::from_buckets([
        Bucket {
            minute: 3,
            good: 1.0,
            total: 1.0,
        },
        Bucket {
            minute: 1,
            good: 1.0,
            total: 1.0,
        },
        Bucket {
            minute: 3,
            good: 0.0,
            total: 1.0,
        },
    ]);
    let b: Vec<(u32, f64, f64)> = h.buckets().map(|b| (b.minute, b.good, b.total)).collect();
    assert_eq!(b, [(1, 1.0, 1.0), (3, 1.0, 2.0)]);
}

#[test]
fn counter_increases_count_per_row_with_resets_and_new_rows_as_baselines() {
    let row = |code: &str, v: f64| {
        let mut l = Labels::new();
        l.insert("code".into(), code.into());
        (l, v)
    };
    let mut prev = Vec::new();
    // The first reading is a baseline.
    assert_eq!(
        counter_increase(&mut prev, vec![row("200", 1000.0), row("500", 10.0)]),
        0.0
    );
    assert_eq!(
        counter_increase(&mut prev, vec![row("500", 15.0), row("200", 1100.0)]),
        105.0
    );
    // 200 reset to 40 (a restart): its 40 count; a new row (404) is a baseline; NaN is left
    // out, and its row then starts over.
    assert_eq!(
        counter_increase(
            &mut prev,
            vec![row("200", 40.0), row("500", f64::NAN), row("404", 7.0)]
        ),
        40.0
    );
    assert_eq!(
        counter_increase(
            &mut prev,
            vec![row("200", 50.0), row("500", 20.0), row("404", 9.0)]
        ),
        12.0
    );
}

#[test]
fn a_probe_or_a_count_that_makes_no_sense_is_not_recorded() {
    let mut h = History::new();
    h.record(now(), f64::NAN, 1.0);
    h.record(now(), -1.0, 1.0);
    h.record(now(), 0.0, 0.0);
    assert!(h.is_empty());
    // Good beyond total (an expression's good counter ahead of its total) is capped.
    h.record(now(), 5.0, 3.0);
    assert_eq!(h.window(now(), Duration::from_secs(60)).bad(), 0.0);
    assert_eq!(h.window(now(), Duration::from_secs(60)).good, 3.0);
}
