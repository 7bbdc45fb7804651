//! Rule timelines as snapshots, and the state machine's invariants as properties.

use std::collections::BTreeMap;
use std::time::Duration;

use expect_test::{expect, Expect};
use proptest::prelude::*;

use super::*;
use crate::config::model::{
    CmpOp, Condition, FlapConfig, LevelConfig, MissingPolicy, Recovery, RuleConfig, Trigger,
};

const F: Sample = Sample::Failed;
const M: Sample = Sample::Missing;

fn v(x: f64) -> Sample {
    Sample::Value(x)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn rule() -> RuleConfig {
    RuleConfig {
        name: "api".into(),
        check: "api".into(),
        value: "up".into(),
        description: None,
        labels: BTreeMap::new(),
        warning: None,
        critical: None,
        on_error: MissingPolicy::Unknown,
        on_missing: MissingPolicy::Unknown,
        min_samples: 1,
        flapping: None,
        series: None,
        expr: None,
    }
}

/// `when` with an immediate trigger and the default recovery.
fn level(op: CmpOp, threshold: f64) -> LevelConfig {
    LevelConfig {
        when: Condition { op, threshold },
        clear: None,
        trigger: Trigger::Immediate,
        recover: Recovery::default(),
    }
}

/// The runbook's health rule: critical when `up < 1`.
fn down() -> LevelConfig {
    level(CmpOp::Lt, 1.0)
}

/// Samples every `every_s` seconds from t=0.
fn every(every_s: i64, samples: &[Sample]) -> Vec<(i64, Sample)> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| (i as i64 * every_s, *s))
        .collect()
}

fn values(xs: &[f64]) -> Vec<Sample> {
    xs.iter().map(|x| v(*x)).collect()
}

fn fmt_value(value: Option<f64>) -> String {
    value.map_or_else(|| "none".to_string(), |x| x.to_string())
}

/// Runs `rule` over `(t_seconds, sample)` and renders one line per transition, then the end
/// state. Also checks that the state changes exactly when a transition is returned.
fn run(rule: &RuleConfig, samples: &[(i64, Sample)]) -> String {
    let mut state = RuleState::new(Timestamp::from_millis(0));
    let mut out = String::new();
    for (t, sample) in samples {
        let now = Timestamp::from_millis(t * 1000);
        let before = state.state();
        match step(rule, &mut state, *sample, now) {
            Some(tr) => {
                assert_eq!(tr.from, before);
                assert_eq!(tr.to, state.state());
                assert_ne!(tr.from, tr.to);
                assert_eq!(state.since(), now);
                out += &format!(
                    "t={t}s {} -> {} value={} ({})\n",
                    tr.from,
                    tr.to,
                    fmt_value(tr.value),
                    tr.reason
                );
            }
            None => assert_eq!(state.state(), before),
        }
    }
    out += &format!(
        "end: {} (level {}) since t={}s samples={} flap={:.1}%\n",
        state.state(),
        state.level(),
        state.since().as_millis() / 1000,
        state.samples(),
        state.flap_percent()
    );
    out
}

fn check(rule: &RuleConfig, samples: &[(i64, Sample)], expect: Expect) {
    expect.assert_eq(&run(rule, samples));
}

#[test]
fn immediate() {
    let r = RuleConfig {
        critical: Some(down()),
        ..rule()
    };
    check(
        &r,
        &every(30, &values(&[1.0, 1.0, 0.0, 0.0, 1.0, 1.0])),
        expect![[r#"
            t=0s unknown -> ok value=1 (recovered)
            t=60s ok -> critical value=0 (threshold_crossed)
            t=120s critical -> ok value=1 (recovered)
            end: ok (level ok) since t=120s samples=6 flap=0.0%
        "#]],
    );
}

#[test]
fn for_one_minute_needs_sixty_seconds_of_continuous_breach() {
    let r = RuleConfig {
        critical: Some(LevelConfig {
            trigger: Trigger::For(secs(60)),
            ..level(CmpOp::Gt, 0.8)
        }),
        ..rule()
    };
    // Breach 0..45 s, a single good sample at 60 s resets, breach again from 75 s: entered at
    // 135 s, not before.
    check(
        &r,
        &every(
            15,
            &values(&[0.9, 0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.2]),
        ),
        expect![[r#"
            t=60s unknown -> ok value=0.5 (recovered)
            t=135s ok -> critical value=0.9 (threshold_crossed)
            t=150s critical -> ok value=0.2 (recovered)
            end: ok (level ok) since t=150s samples=11 flap=0.0%
        "#]],
    );
}

#[test]
fn for_trigger_spans_a_failed_probe() {
    // Trackers are frozen on a failed probe: the breach run that began at 0 s continues.
    let r = RuleConfig {
        critical: Some(LevelConfig {
            trigger: Trigger::For(secs(60)),
            ..level(CmpOp::Gt, 0.8)
        }),
        ..rule()
    };
    check(
        &r,
        &every(20, &[v(0.9), v(0.9), F, v(0.9)]),
        expect![[r#"
            t=60s unknown -> critical value=0.9 (threshold_crossed)
            end: critical (level critical) since t=60s samples=4 flap=0.0%
        "#]],
    );
}

#[test]
fn health_failing_more_than_three_consecutive_times() {
    // Runbook: "health failing > 3 consecutive times" is `up < 1` with count 4.
    let r = RuleConfig {
        critical: Some(LevelConfig {
            trigger: Trigger::Consecutive(4),
            ..down()
        }),
        ..rule()
    };
    check(
        &r,
        &every(
            10,
            &values(&[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]),
        ),
        expect![[r#"
            t=0s unknown -> ok value=1 (recovered)
            t=80s ok -> critical value=0 (threshold_crossed)
            t=100s critical -> ok value=1 (recovered)
            end: ok (level ok) since t=100s samples=11 flap=0.0%
        "#]],
    );
}

#[test]
fn a_pending_breach_never_reads_as_ok() {
    // Down from the first sample: unknown until the fourth failure, never ok in between.
    let mut r = rule();
    r.critical = Some(LevelConfig {
        trigger: Trigger::Consecutive(4),
        ..down()
    });
    check(
        &r,
        &every(10, &values(&[0.0, 0.0, 0.0, 0.0, 1.0])),
        expect![[r#"
            t=30s unknown -> critical value=0 (threshold_crossed)
            t=40s critical -> ok value=1 (recovered)
            end: ok (level ok) since t=40s samples=5 flap=0.0%
        "#]],
    );
    // On the way down from critical, a still-pending warning holds critical, not ok.
    let mut r = rule();
    r.value = "p95".into();
    r.warning = Some(LevelConfig {
        trigger: Trigger::Consecutive(2),
        ..level(CmpOp::Gt, 0.5)
    });
    r.critical = Some(level(CmpOp::Gt, 2.0));
    check(
        &r,
        &every(10, &values(&[0.1, 3.0, 1.0, 1.0, 0.1])),
        expect![[r#"
            t=0s unknown -> ok value=0.1 (recovered)
            t=10s ok -> critical value=3 (threshold_crossed)
            t=20s critical -> warning value=1 (recovered)
            t=40s warning -> ok value=0.1 (recovered)
            end: ok (level ok) since t=40s samples=5 flap=0.0%
        "#]],
    );
}

#[test]
fn three_out_of_five() {
    let r = RuleConfig {
        critical: Some(LevelConfig {
            trigger: Trigger::OutOf {
                count: 3,
                window: 5,
            },
            ..down()
        }),
        ..rule()
    };
    // Breaches (up = 0) at 0, 20, 60, 80, 100 s: never three in five samples until 100 s
    // (60, 80, 100 among 60..100 s).
    check(
        &r,
        &every(
            10,
            &values(&[0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]),
        ),
        expect![[r#"
            t=10s unknown -> ok value=1 (recovered)
            t=100s ok -> critical value=0 (threshold_crossed)
            t=110s critical -> ok value=1 (recovered)
            end: ok (level ok) since t=110s samples=12 flap=0.0%
        "#]],
    );
}

#[test]
fn value_hysteresis() {
    let r = RuleConfig {
        value: "memory_ratio".into(),
        warning: Some(LevelConfig {
            clear: Some(Condition {
                op: CmpOp::Lt,
                threshold: 0.7,
            }),
            ..level(CmpOp::Gt, 0.8)
        }),
        ..rule()
    };
    // 0.75 is neither breaching nor clearing: it keeps warning active, and does not enter it.
    check(
        &r,
        &every(
            10,
            &values(&[0.5, 0.85, 0.75, 0.79, 0.75, 0.65, 0.75, 0.8, 0.81]),
        ),
        expect![[r#"
            t=0s unknown -> ok value=0.5 (recovered)
            t=10s ok -> warning value=0.85 (threshold_crossed)
            t=50s warning -> ok value=0.65 (recovered)
            t=80s ok -> warning value=0.81 (threshold_crossed)
            end: warning (level warning) since t=80s samples=9 flap=0.0%
        "#]],
    );
}

#[test]
fn hysteresis_sample_between_clear_and_when_resets_the_clear_run() {
    let r = RuleConfig {
        warning: Some(LevelConfig {
            clear: Some(Condition {
                op: CmpOp::Lt,
                threshold: 0.7,
            }),
            recover: Recovery {
                count: 2,
                for_: Duration::ZERO,
            },
            ..level(CmpOp::Gt, 0.8)
        }),
        ..rule()
    };
    check(
        &r,
        &every(10, &values(&[0.9, 0.6, 0.75, 0.6, 0.6])),
        expect![[r#"
            t=0s unknown -> warning value=0.9 (threshold_crossed)
            t=40s warning -> ok value=0.6 (recovered)
            end: ok (level ok) since t=40s samples=5 flap=0.0%
        "#]],
    );
}

#[test]
fn recovery_count() {
    let r = RuleConfig {
        critical: Some(LevelConfig {
            recover: Recovery {
                count: 3,
                for_: Duration::ZERO,
            },
            ..down()
        }),
        ..rule()
    };
    check(
        &r,
        &every(10, &values(&[0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])),
        expect![[r#"
            t=0s unknown -> critical value=0 (threshold_crossed)
            t=60s critical -> ok value=1 (recovered)
            end: ok (level ok) since t=60s samples=7 flap=0.0%
        "#]],
    );
}

#[test]
fn recovery_for() {
    let r = RuleConfig {
        critical: Some(LevelConfig {
            recover: Recovery {
                count: 1,
                for_: secs(120),
            },
            ..down()
        }),
        ..rule()
    };
    // Clear from 30 s; a relapse at 90 s restarts the clock; clear from 120 s, left at 240 s.
    check(
        &r,
        &every(30, &values(&[0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])),
        expect![[r#"
            t=0s unknown -> critical value=0 (threshold_crossed)
            t=240s critical -> ok value=1 (recovered)
            end: ok (level ok) since t=240s samples=9 flap=0.0%
        "#]],
    );
}

#[test]
fn warning_and_critical_escalate_and_deescalate() {
    let r = RuleConfig {
        value: "p95_seconds".into(),
        warning: Some(level(CmpOp::Gt, 0.5)),
        critical: Some(level(CmpOp::Gt, 2.0)),
        ..rule()
    };
    check(
        &r,
        &every(10, &values(&[0.1, 0.6, 2.5, 3.0, 1.0, 0.3, 5.0, 0.1])),
        expect![[r#"
            t=0s unknown -> ok value=0.1 (recovered)
            t=10s ok -> warning value=0.6 (threshold_crossed)
            t=20s warning -> critical value=2.5 (threshold_crossed)
            t=40s critical -> warning value=1 (recovered)
            t=50s warning -> ok value=0.3 (recovered)
            t=60s ok -> critical value=5 (threshold_crossed)
            t=70s critical -> ok value=0.1 (recovered)
            end: ok (level ok) since t=70s samples=8 flap=0.0%
        "#]],
    );
}

#[test]
fn on_error_critical() {
    let r = RuleConfig {
        critical: Some(down()),
        on_error: MissingPolicy::Critical,
        ..rule()
    };
    check(
        &r,
        &every(10, &[v(1.0), F, F, v(1.0), v(0.0), F, v(0.0)]),
        expect![[r#"
            t=0s unknown -> ok value=1 (recovered)
            t=10s ok -> critical value=none (probe_failed)
            t=30s critical -> ok value=1 (recovered)
            t=40s ok -> critical value=0 (threshold_crossed)
            end: critical (level critical) since t=40s samples=7 flap=0.0%
        "#]],
    );
}

#[test]
fn on_error_unknown() {
    let r = RuleConfig {
        critical: Some(down()),
        ..rule()
    };
    // A failure while critical reports unknown; the next value finds critical still active.
    check(
        &r,
        &every(10, &[v(1.0), F, v(1.0), v(0.0), F, v(0.0), F, v(1.0)]),
        expect![[r#"
            t=0s unknown -> ok value=1 (recovered)
            t=10s ok -> unknown value=none (probe_failed)
            t=20s unknown -> ok value=1 (recovered)
            t=30s ok -> critical value=0 (threshold_crossed)
            t=40s critical -> unknown value=none (probe_failed)
            t=50s unknown -> critical value=0 (threshold_crossed)
            t=60s critical -> unknown value=none (probe_failed)
            t=70s unknown -> ok value=1 (recovered)
            end: ok (level ok) since t=70s samples=8 flap=0.0%
        "#]],
    );
}

#[test]
fn on_missing_and_on_error_are_separate() {
    let r = RuleConfig {
        value: "connections_ratio".into(),
        critical: Some(level(CmpOp::Gt, 0.9)),
        on_error: MissingPolicy::Critical,
        on_missing: MissingPolicy::Warning,
        ..rule()
    };
    check(
        &r,
        &every(10, &[v(0.5), M, M, F, M, v(0.5)]),
        expect![[r#"
            t=0s unknown -> ok value=0.5 (recovered)
            t=10s ok -> warning value=none (value_missing)
            t=30s warning -> critical value=none (probe_failed)
            t=40s critical -> warning value=none (value_missing)
            t=50s warning -> ok value=0.5 (recovered)
            end: ok (level ok) since t=50s samples=6 flap=0.0%
        "#]],
    );
}

#[test]
fn min_samples() {
    let r = RuleConfig {
        critical: Some(down()),
        on_error: MissingPolicy::Critical,
        min_samples: 3,
        ..rule()
    };
    // Failed samples do not count toward the warm-up but do apply `on_error`.
    check(
        &r,
        &every(10, &[v(1.0), F, v(1.0), v(1.0)]),
        expect![[r#"
            t=10s unknown -> critical value=none (probe_failed)
            t=20s critical -> unknown value=1 (not_enough_samples)
            t=30s unknown -> ok value=1 (recovered)
            end: ok (level ok) since t=30s samples=4 flap=0.0%
        "#]],
    );
    // Levels track through the warm-up: a breach throughout is reported when it ends.
    check(
        &r,
        &every(10, &values(&[0.0, 0.0, 0.0, 0.0])),
        expect![[r#"
            t=20s unknown -> critical value=0 (threshold_crossed)
            end: critical (level critical) since t=20s samples=4 flap=0.0%
        "#]],
    );
}

#[test]
fn flapping_pages_once_then_settles() {
    let r = RuleConfig {
        critical: Some(down()),
        flapping: Some(FlapConfig::default()),
        ..rule()
    };
    let mut samples: Vec<f64> = (0..40).map(|i| f64::from(i % 2 == 0)).collect();
    samples.extend([1.0; 30]);
    let timeline = run(&r, &every(10, &values(&samples)));
    expect![[r#"
            t=0s unknown -> ok value=1 (recovered)
            t=10s ok -> critical value=0 (threshold_crossed)
            t=20s critical -> ok value=1 (recovered)
            t=30s ok -> critical value=0 (threshold_crossed)
            t=40s critical -> flapping value=1 (flapping_started)
            t=590s flapping -> ok value=1 (flapping_stopped)
            end: ok (level ok) since t=590s samples=70 flap=0.0%
        "#]]
    .assert_eq(&timeline);
    // 40 alternating samples and 30 stable ones: 6 transitions, not 40.
    assert_eq!(timeline.lines().count() - 1, 6);
}

#[test]
fn flapping_keeps_tracking_the_underlying_level() {
    let r = RuleConfig {
        critical: Some(down()),
        flapping: Some(FlapConfig::default()),
        ..rule()
    };
    // Settles on critical: flapping stops into critical, not into a stale level.
    let mut samples: Vec<f64> = (0..10).map(|i| f64::from(i % 2 == 0)).collect();
    samples.extend([0.0; 25]);
    check(
        &r,
        &every(10, &values(&samples)),
        expect![[r#"
            t=0s unknown -> ok value=1 (recovered)
            t=10s ok -> critical value=0 (threshold_crossed)
            t=20s critical -> ok value=1 (recovered)
            t=30s ok -> critical value=0 (threshold_crossed)
            t=40s critical -> flapping value=1 (flapping_started)
            t=280s flapping -> critical value=0 (flapping_stopped)
            end: critical (level critical) since t=280s samples=35 flap=0.0%
        "#]],
    );
}

#[test]
fn nan_is_a_missing_value() {
    // With `up < 1` and no clear condition, comparing NaN would clear the level: a silent ok.
    let r = RuleConfig {
        critical: Some(down()),
        ..rule()
    };
    check(
        &r,
        &every(10, &values(&[0.0, f64::NAN, 0.0, f64::NAN, 1.0])),
        expect![[r#"
            t=0s unknown -> critical value=0 (threshold_crossed)
            t=10s critical -> unknown value=none (value_missing)
            t=20s unknown -> critical value=0 (threshold_crossed)
            t=30s critical -> unknown value=none (value_missing)
            t=40s unknown -> ok value=1 (recovered)
            end: ok (level ok) since t=40s samples=5 flap=0.0%
        "#]],
    );
    // `!= 1` would be satisfied by NaN; it is not compared at all.
    let r = RuleConfig {
        warning: Some(level(CmpOp::Ne, 1.0)),
        on_missing: MissingPolicy::Critical,
        ..rule()
    };
    check(
        &r,
        &every(10, &values(&[1.0, f64::NAN, 1.0])),
        expect![[r#"
            t=0s unknown -> ok value=1 (recovered)
            t=10s ok -> critical value=none (value_missing)
            t=20s critical -> ok value=1 (recovered)
            end: ok (level ok) since t=20s samples=3 flap=0.0%
        "#]],
    );
}

#[test]
fn state_names_and_exit_codes() {
    let rendered: Vec<String> = State::ALL
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s.as_str(),
                s.exit_code(),
                serde_json::to_string(s).unwrap()
            )
        })
        .collect();
    expect![[r#"
        [
            "ok 0 \"ok\"",
            "warning 1 \"warning\"",
            "critical 2 \"critical\"",
            "unknown 3 \"unknown\"",
            "flapping 1 \"flapping\"",
        ]
    "#]]
    .assert_debug_eq(&rendered);
}

#[test]
fn transition_serializes() {
    let r = RuleConfig {
        critical: Some(down()),
        ..rule()
    };
    let mut state = RuleState::new(Timestamp::from_millis(0));
    let tr = step(&r, &mut state, v(0.0), Timestamp::from_millis(1_500)).unwrap();
    expect![[
        r#"{"from":"unknown","to":"critical","at":1500,"value":0.0,"reason":"threshold_crossed"}"#
    ]]
    .assert_eq(&serde_json::to_string(&tr).unwrap());
}

// ---- properties ----

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    prop_oneof![
        Just(CmpOp::Eq),
        Just(CmpOp::Ne),
        Just(CmpOp::Lt),
        Just(CmpOp::Le),
        Just(CmpOp::Gt),
        Just(CmpOp::Ge),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    (cmp_op(), -4i32..=4).prop_map(|(op, t)| Condition {
        op,
        threshold: f64::from(t) * 0.5,
    })
}

fn trigger() -> impl Strategy<Value = Trigger> {
    prop_oneof![
        Just(Trigger::Immediate),
        (0u64..120).prop_map(|s| Trigger::For(secs(s))),
        (0u32..5).prop_map(Trigger::Consecutive),
        (0u32..5, 0u32..6).prop_map(|(count, window)| Trigger::OutOf { count, window }),
    ]
}

fn recovery() -> impl Strategy<Value = Recovery> {
    (0u32..4, 0u64..120).prop_map(|(count, s)| Recovery {
        count,
        for_: secs(s),
    })
}

fn level_with(when: impl Strategy<Value = Condition>) -> impl Strategy<Value = LevelConfig> {
    (
        when,
        proptest::option::of(condition()),
        trigger(),
        recovery(),
    )
        .prop_map(|(when, clear, trigger, recover)| LevelConfig {
            when,
            clear,
            trigger,
            recover,
        })
}

fn policy() -> impl Strategy<Value = MissingPolicy> {
    prop_oneof![
        Just(MissingPolicy::Unknown),
        Just(MissingPolicy::Warning),
        Just(MissingPolicy::Critical),
    ]
}

fn flap_config() -> impl Strategy<Value = FlapConfig> {
    (0u32..25, 0.0..100.0f64, 0.0..100.0f64).prop_map(|(window, a, b)| FlapConfig {
        window,
        high: a.max(b),
        low: a.min(b),
    })
}

fn rule_config() -> impl Strategy<Value = RuleConfig> {
    (
        proptest::option::of(level_with(condition())),
        proptest::option::of(level_with(condition())),
        policy(),
        policy(),
        0u32..5,
        proptest::option::of(flap_config()),
    )
        .prop_map(
            |(warning, critical, on_error, on_missing, min_samples, flapping)| RuleConfig {
                warning,
                critical,
                on_error,
                on_missing,
                min_samples,
                flapping,
                ..rule()
            },
        )
}

fn sample() -> impl Strategy<Value = Sample> {
    prop_oneof![
        6 => (-6i32..=6).prop_map(|x| v(f64::from(x) * 0.5)),
        2 => Just(F),
        1 => Just(M),
        1 => Just(v(f64::NAN)),
    ]
}

/// Samples with non-decreasing times (steps of 0 to 90 s).
fn timeline() -> impl Strategy<Value = Vec<(Timestamp, Sample)>> {
    proptest::collection::vec((0i64..90_000, sample()), 0..80).prop_map(|steps| {
        let mut t = 0;
        steps
            .into_iter()
            .map(|(dt, s)| {
                t += dt;
                (Timestamp::from_millis(t), s)
            })
            .collect()
    })
}

fn allowed(rule: &RuleConfig, s: State) -> bool {
    let policies = [State::from(rule.on_error), State::from(rule.on_missing)];
    match s {
        State::Ok | State::Unknown => true,
        State::Warning => rule.warning.is_some() || policies.contains(&State::Warning),
        State::Critical => rule.critical.is_some() || policies.contains(&State::Critical),
        State::Flapping => rule.flapping.is_some(),
    }
}

proptest! {
    #[test]
    fn failed_or_missing_never_yields_ok(rule in rule_config(), samples in timeline()) {
        let mut state = RuleState::new(Timestamp::from_millis(0));
        for (now, sample) in samples {
            let tr = step(&rule, &mut state, sample, now);
            let absent = match sample {
                Sample::Value(x) => x.is_nan(),
                Sample::Failed | Sample::Missing => true,
            };
            if absent {
                prop_assert_ne!(state.level(), State::Ok);
                prop_assert_ne!(state.state(), State::Ok);
                prop_assert_eq!(state.value(), None);
                if let Some(tr) = tr {
                    prop_assert_ne!(tr.to, State::Ok);
                }
            }
        }
    }

    #[test]
    fn reports_only_configured_states(rule in rule_config(), samples in timeline()) {
        let mut state = RuleState::new(Timestamp::from_millis(0));
        for (now, sample) in samples {
            step(&rule, &mut state, sample, now);
            prop_assert!(allowed(&rule, state.state()), "{:?}", state.state());
            prop_assert!(allowed(&rule, state.level()), "{:?}", state.level());
            prop_assert_ne!(state.level(), State::Flapping);
        }
    }

    #[test]
    fn transitions_chain_and_match_state_changes(
        rule in rule_config(),
        no_flapping in any::<bool>(),
        samples in timeline(),
    ) {
        let rule = if no_flapping { RuleConfig { flapping: None, ..rule } } else { rule };
        let mut state = RuleState::new(Timestamp::from_millis(0));
        let mut last_to = State::Unknown;
        let mut last_at = Timestamp::from_millis(0);
        for (now, sample) in samples {
            let before = state.state();
            match step(&rule, &mut state, sample, now) {
                Some(tr) => {
                    prop_assert_eq!(tr.from, last_to);
                    prop_assert_ne!(tr.from, tr.to);
                    prop_assert_eq!(tr.to, state.state());
                    prop_assert_eq!(tr.at, now);
                    last_to = tr.to;
                    last_at = now;
                }
                None => prop_assert_eq!(state.state(), before),
            }
            prop_assert_eq!(state.since(), last_at);
            if rule.flapping.is_none() {
                prop_assert_eq!(state.state(), state.level());
            }
        }
    }

    #[test]
    fn constant_non_breaching_series_ends_ok(
        warning in proptest::option::of(level_with(Just(Condition { op: CmpOp::Gt, threshold: 10.0 }))),
        critical in proptest::option::of(level_with(Just(Condition { op: CmpOp::Ge, threshold: 10.0 }))),
        min_samples in 0u32..5,
        flapping in proptest::option::of(flap_config()),
        x in -5.0..5.0f64,
        extra in 0usize..30,
        dt in 0i64..90_000,
    ) {
        let rule = RuleConfig { warning, critical, min_samples, flapping, ..rule() };
        // Past the warm-up, plus a flap window for good measure.
        let window = flapping.map_or(0, |f| f.window as usize);
        let n = (min_samples as usize).max(1) + window + extra;
        let mut state = RuleState::new(Timestamp::from_millis(0));
        for i in 0..n {
            step(&rule, &mut state, v(x), Timestamp::from_millis(i as i64 * dt));
        }
        prop_assert_eq!(state.state(), State::Ok);
        prop_assert_eq!(state.level(), State::Ok);
        prop_assert_eq!(state.samples(), n as u64);
    }
}
