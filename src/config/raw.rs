//! Raw config: serde structs that mirror the TOML file, with a span on every value an error
//! may point at. Nothing here validates, interpolates or reads a file; `compile/` does.
//!
//! The format, in short:
//!
//! ```toml
//! include = ["../alerts/*.toml"]   # globs relative to this file's directory, sorted matches;
//!                                  # a file reached twice is read once; a cycle is an error
//!
//! [server]                         # main file only
//! listen = "127.0.0.1:9731"        # a non-loopback listen needs token or token_file
//! token = "${WARDEN_TOKEN}"        # or token_file = "/path" (trailing newline trimmed)
//!                                  # (token_file and ca_file: relative to this file's directory)
//!
//! [log]                            # main file only
//! format = "human"                 # human | json
//! level = "info"
//!
//! [defaults]                       # main file only; for every check that omits them
//! interval = "30s"
//! timeout = "10s"
//! keep_alive_targets = 1000        # http, scrape and prometheus checks run at most 60s
//!                                  # apart keep their connection, up to this many origins
//!                                  # (and half the descriptor limit); 0: connect anew
//!
//! [[check]]                        # name, kind (http | tcp | tls | redis | postgres | exec
//! name = "api-health"              # | system | scrape | prometheus), interval, timeout, retry_interval, labels, then per-kind keys:
//! kind = "http"                    #   http: url method headers body expect_status assert
//! url = "http://127.0.0.1:8080/health" #     extract max_body_bytes tls_verify ca_file follow_redirects
//! assert = ['status == "healthy"'] #   tcp: address   tls: address server_name verify ca_file
//!                                  #   redis: url info_fields   postgres: url [[check.query]]
//!                                  #   exec: command (argv) | shell, env workdir max_output_bytes
//!                                  #     status_rule (default true: adds a rule named like the
//!                                  #     check reading `status`, warning >= 1, critical >= 2)
//!                                  #   system: scope (auto | host | cgroup) disk_path
//!                                  #   scrape: url headers max_body_bytes tls_verify ca_file
//!                                  #     honor_timestamps job instance sample_limit label_limit
//!                                  #     label_name_length_limit label_value_length_limit
//!                                  #     bearer_token bearer_token_file retention
//!                                  #   prometheus: url (the server's base URL) expr headers
//!                                  #     tls_verify ca_file
//! [[rule]]
//! name = "api-health-down"
//! check = "api-health"
//! value = "up"                     # a value name of the check's kind (default up); exec
//!                                  # checks: any identifier (perfdata labels, known at run time)
//! critical = { when = "< 1", count = 3, window = 5 }
//! # levels: when, clear, for | count [+ window], recover_count, recover_for
//! # also: description, labels, on_error, on_missing, min_samples, flapping
//! notify = { warning = ["chat"], critical = ["oncall", "chat"] } # or ["chat"]: both levels;
//!                                  # [] : none; without notify: [alerting]'s route
//! hooks = [{ hook = "rollback-api", on = "critical", after = "5m" }] # on: warning | critical
//!                                  # (default critical), after: default 0s; a hook once per rule
//!                                  # guarded: confirm = ["api-health"] (other rules at `on`),
//!                                  # verify = "10m" (page "did not help" if still firing then)
//! depends_on = ["postgres-down"]   # while one of these (or what they depend on) fires, this
//!                                  # rule is evaluated but its new pages are held
//!
//! [[slo]]                          # name, then the SLI: check = "api" (each probe an
//! name = "api-availability"        # event, good when up) or good and total (counter
//! check = "api-health"             # expressions over the scraped series; check: the check
//! objective = 99.5                 # after whose runs they are read, default the one scrape)
//! period = "30d"                   # whole minutes; also description, min_events, notify, hooks
//! [[slo.alert]]                    # default: the SRE workbook's four (14.4x 1h/5m, 6x 6h/30m
//! severity = "critical"            # critical; 3x 1d/2h, 1x 3d/6h warning)
//! burn_rate = 14.4
//! long = "1h"
//! short = "5m"
//!
//! [state]                          # main file only
//! path = "warden.db"               # relative to this file's directory; default, NAME
//!                                  # being this file's name without .toml:
//!                                  # $STATE_DIRECTORY/NAME.db (first entry), else
//!                                  # $XDG_STATE_HOME/warden/NAME.db, else
//!                                  # $HOME/.local/state/warden/NAME.db, else
//!                                  # NAME-state.db beside this file; a "${VAR:-}"
//!                                  # that comes out empty means the default
//!
//! [alerting]                       # main file only
//! dry_run = false                  # every hook records what it would run and runs nothing
//! warning = ["chat"]               # the route of rules without notify
//! critical = ["chat", "oncall"]
//! external_url = "https://warden.example"  # pages carry a signed acknowledgement link
//! ack_link_ttl = "24h"                      # how long such a link works
//!
//! [[notifier]]                     # name, kind (webhook | slack | pagerduty | alertmanager
//! name = "chat"                    # | email), timeout (default 10s), then per-kind keys:
//! kind = "slack"                   #   webhook: url | url_file, headers (values secret),
//! webhook_url_file = "slack.url"   #     format (warden | alertmanager), template, external_url
//!                                  #   slack: webhook_url | webhook_url_file, channel, username
//!                                  #   pagerduty: routing_key | routing_key_file, url, source
//!                                  #     (default: the host name), component, group, class
//!                                  #   alertmanager: url, resend_every (default 1m), generator_url
//!                                  #   email: smtp (host[:port]), tls (none | starttls |
//!                                  #     implicit, default starttls), username, password |
//!                                  #     password_file, from, to (list), ca_file,
//!                                  #     accept_invalid_certs
//!                                  # x_file: the secret x read from a file (relative to this
//!                                  # file's directory, trailing newline trimmed); not both
//!
//! [heartbeat]                      # main file only: a dead man's switch, pinged only while
//! url = "${HEARTBEAT_URL}"         # warden's own pipeline is on time; url | url_file (secret)
//! interval = "60s"                 # default 60s; timeout default 10s (at most the interval)
//! method = "GET"                   # GET (default) | POST; headers (values secret)
//!
//! [[hook]]
//! name = "rollback-api"
//! command = ["kubectl", "rollout", "undo", "deployment/api"] # or shell = "..." (not both)
//! timeout = "5m"                   # default 5m; cooldown (default 10m, zero allowed)
//! # also: dry_run, diagnostic (runs before the other hooks due at once), env, workdir,
//! # max_output_bytes (default 64 KiB), notify (notifier names for the outcome)
//!
//! [[maintenance]]                  # a recurring silence: pages (and hooks) of the alerts
//! name = "nightly-backup"          # matching every matcher are held while it is on
//! matchers = ['check="db"']        # at least one; alert labels as for silences
//! time_zone = "Europe/Berlin"      # IANA name (default UTC)
//! weekdays = ["sun", "mon-fri"]    # days a range starts on (default every day)
//! times = ["02:00-04:00"]          # local HH:MM-HH:MM, end exclusive, up to 24:00; an end
//!                                  # before the start crosses midnight (default all day)
//! comment = "pg_dump locks the db"
//!
//! [[inhibit]]                      # while an alert matching source_matchers fires,
//! source_matchers = ['rule="api-down"'] # alerts matching target_matchers (and not the
//! target_matchers = ['rule="api-p95"']  # source) with the same equal labels are not paged
//! equal = ["service"]
//! ```
//!
//! Durations are Prometheus-style (`1h30m`). Strings may use `${NAME}` (environment),
//! `${NAME:-default}` (used when NAME is unset or empty) and `$${`
//! for a literal `${`. Every table keeps its unknown keys (with spans) instead of failing at the
//! first one, so that all of them are reported.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A string table in file order: `labels`, `headers`, `extract`.
pub type StringMap = OrderedMap<Spanned<String>>;

/// A TOML table kept as `(key, value)` pairs in file order, keys with their spans.
#[derive(Debug, Default)]
pub struct OrderedMap<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    out.push((key, map.next_value()?));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

/// Declares a raw table: every field optional, the keys present (with spans) and the unknown
/// keys recorded rather than rejected. A field may name its TOML key (`for_ = "for"`).
macro_rules! raw_table {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            $( $(#[doc = $fdoc:literal])* $field:ident $(= $key:literal)? : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Default)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: Option<$ty>, )*
            /// Known keys present in the table, in file order.
            pub keys: Vec<Spanned<String>>,
            /// Keys this table does not have.
            pub unknown: Vec<Spanned<String>>,
        }

        impl $name {
            /// Every key this table accepts.
            pub const KEYS: &'static [&'static str] = &[$(raw_table!(@key $field $($key)?)),*];

            /// Span of a key present in the table.
            #[allow(dead_code)] // generated for every table, used by some
            pub fn key_span(&self, key: &str) -> Option<std::ops::Range<usize>> {
                self.keys.iter().find(|k| k.get_ref() == key).map(|k| k.span())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct TableVisitor;
                impl<'de> Visitor<'de> for TableVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a table")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(key) = map.next_key::<Spanned<String>>()? {
                            let k = key.get_ref().as_str();
                            $(
                                if k == raw_table!(@key $field $($key)?) {
                                    out.$field = Some(map.next_value()?);
                                    out.keys.push(key);
                                    continue;
                                }
                            )*
                            map.next_value::<IgnoredAny>()?;
                            out.unknown.push(key);
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(TableVisitor)
            }
        }
    };
    (@key $field:ident $key:literal) => { $key };
    (@key $field:ident) => { stringify!($field) };
}

raw_table! {
    /// One config file.
    pub struct RawFile {
        include: Spanned<Vec<Spanned<String>>>,
        server: Spanned<RawServer>,
        log: Spanned<RawLog>,
        defaults: Spanned<RawDefaults>,
        check: Vec<Spanned<RawCheck>>,
        rule: Vec<Spanned<RawRule>>,
        state: Spanned<RawState>,
        alerting: Spanned<RawAlerting>,
        notifier: Vec<Spanned<RawNotifier>>,
        hook: Vec<Spanned<RawHook>>,
        window: Vec<Spanned<RawWindow>>,
        policy: Vec<Spanned<RawPolicy>>,
        route: Vec<Spanned<RawRoute>>,
        slo: Vec<Spanned<RawSlo>>,
        heartbeat: Spanned<RawHeartbeat>,
        maintenance: Vec<Spanned<RawMaintenance>>,
        inhibit: Vec<Spanned<RawInhibit>>,
    }
}

raw_table! {
    /// `[heartbeat]`: the outbound heartbeat (dead man's switch).
    pub struct RawHeartbeat {
        url: Spanned<String>,
        url_file: Spanned<String>,
        interval: Spanned<String>,
        timeout: Spanned<String>,
        method: Spanned<String>,
        headers: Spanned<StringMap>,
    }
}

raw_table! {
    /// `[[maintenance]]`: a recurring silence: matchers and a weekly schedule in a time zone.
    pub struct RawMaintenance {
        name: Spanned<String>,
        matchers: NameList,
        time_zone: Spanned<String>,
        weekdays: NameList,
        times: NameList,
        comment: Spanned<String>,
    }
}

raw_table! {
    /// `[[inhibit]]`: while an alert matching `source_matchers` fires, alerts matching
    /// `target_matchers` with the same `equal` labels are not paged.
    pub struct RawInhibit {
        source_matchers: NameList,
        target_matchers: NameList,
        equal: NameList,
    }
}

raw_table! {
    /// `[server]`: the HTTP listener.
    pub struct RawServer {
        listen: Spanned<String>,
        token: Spanned<String>,
        token_file: Spanned<String>,
    }
}

raw_table! {
    /// `[log]`.
    pub struct RawLog {
        format: Spanned<String>,
        level: Spanned<String>,
    }
}

raw_table! {
    /// `[defaults]`: check settings applied where a check omits them.
    pub struct RawDefaults {
        interval: Spanned<String>,
        timeout: Spanned<String>,
        keep_alive_targets: Spanned<i64>,
    }
}

raw_table! {
    /// `[[check]]`: one flat struct for every kind (an internally tagged enum would lose the
    /// spans); `compile/checks.rs` rejects keys the kind does not take (its `KindSpec::KEYS`).
    pub struct RawCheck {
        name: Spanned<String>,
        kind: Spanned<String>,
        interval: Spanned<String>,
        timeout: Spanned<String>,
        retry_interval: Spanned<String>,
        labels: Spanned<StringMap>,
        url: Spanned<String>,
        method: Spanned<String>,
        headers: Spanned<StringMap>,
        body: Spanned<String>,
        expect_status: Spanned<Vec<Spanned<i64>>>,
        assert: Spanned<Vec<Spanned<String>>>,
        extract: Spanned<StringMap>,
        max_body_bytes: Spanned<i64>,
        tls_verify: Spanned<bool>,
        ca_file: Spanned<String>,
        follow_redirects: Spanned<bool>,
        address: Spanned<String>,
        server_name: Spanned<String>,
        verify: Spanned<bool>,
        info_fields: Spanned<Vec<Spanned<String>>>,
        query: Spanned<Vec<Spanned<RawQuery>>>,
        command: Spanned<Vec<Spanned<String>>>,
        shell: Spanned<String>,
        env: Spanned<StringMap>,
        workdir: Spanned<String>,
        max_output_bytes: Spanned<i64>,
        status_rule: Spanned<bool>,
        scope: Spanned<String>,
        disk_path: Spanned<String>,
        honor_timestamps: Spanned<bool>,
        job: Spanned<String>,
        instance: Spanned<String>,
        sample_limit: Spanned<i64>,
        label_limit: Spanned<i64>,
        label_name_length_limit: Spanned<i64>,
        label_value_length_limit: Spanned<i64>,
        expr: Spanned<String>,
        bearer_token: Spanned<String>,
        bearer_token_file: Spanned<String>,
        retention: Spanned<String>,
    }
}

raw_table! {
    /// `[[check.query]]` of a postgres check.
    pub struct RawQuery {
        name: Spanned<String>,
        sql: Spanned<String>,
        result: Spanned<String>,
    }
}

raw_table! {
    /// `[[rule]]`.
    pub struct RawRule {
        name: Spanned<String>,
        check: Spanned<String>,
        value: Spanned<String>,
        description: Spanned<String>,
        labels: Spanned<StringMap>,
        warning: Spanned<RawLevel>,
        critical: Spanned<RawLevel>,
        on_error: Spanned<String>,
        on_missing: Spanned<String>,
        min_samples: Spanned<i64>,
        flapping: Spanned<RawFlapping>,
        gone_after: Spanned<String>,
        expr: Spanned<String>,
        notify: Spanned<RawNotify>,
        hooks: Spanned<Vec<Spanned<RawHookTrigger>>>,
        depends_on: NameList,
        policy: Spanned<String>,
    }
}

raw_table! {
    /// `[[policy]]`: an on-call policy, steps and a repeat.
    pub struct RawPolicy {
        name: Spanned<String>,
        repeat: Spanned<String>,
        group_by: NameList,
        group_wait: Spanned<String>,
        group_interval: Spanned<String>,
        step: Vec<Spanned<RawPolicyStep>>,
    }
}

raw_table! {
    /// `[[route]]`: alerts whose labels match get this on-call policy.
    pub struct RawRoute {
        matchers: NameList,
        policy: Spanned<String>,
    }
}

raw_table! {
    /// `[[policy.step]]`: who is told, after how long, in which hours.
    pub struct RawPolicyStep {
        after: Spanned<String>,
        notify: NameList,
        hours: Spanned<RawHours>,
    }
}

raw_table! {
    /// A step's `hours = { days = "mon-fri", from = "09:00", to = "18:00", tz = "..." }`.
    pub struct RawHours {
        days: Spanned<String>,
        from: Spanned<String>,
        to: Spanned<String>,
        tz: Spanned<String>,
    }
}

raw_table! {
    /// `warning = { ... }` or `critical = { ... }` of a rule.
    pub struct RawLevel {
        when: Spanned<String>,
        clear: Spanned<String>,
        for_ = "for": Spanned<String>,
        count: Spanned<i64>,
        window: Spanned<i64>,
        recover_count: Spanned<i64>,
        recover_for: Spanned<String>,
    }
}

raw_table! {
    /// `flapping = { window = 21, high = 20.0, low = 5.0 }`.
    pub struct RawFlapTable {
        window: Spanned<i64>,
        high: Spanned<f64>,
        low: Spanned<f64>,
    }
}

/// `flapping = true | false | { ... }`.
#[derive(Debug)]
pub enum RawFlapping {
    Enabled(bool),
    Table(RawFlapTable),
}

impl<'de> Deserialize<'de> for RawFlapping {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FlapVisitor;
        impl<'de> Visitor<'de> for FlapVisitor {
            type Value = RawFlapping;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or a table { window, high, low }")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RawFlapping, E> {
                Ok(RawFlapping::Enabled(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawFlapping, A::Error> {
                RawFlapTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawFlapping::Table)
            }
        }
        d.deserialize_any(FlapVisitor)
    }
}

/// A list of names: notifiers, `to` addresses, argv.
pub type NameList = Spanned<Vec<Spanned<String>>>;

raw_table! {
    /// `[state]`.
    pub struct RawState {
        path: Spanned<String>,
    }
}

raw_table! {
    /// `[alerting]`: global hook dry-run and the default route.
    pub struct RawAlerting {
        dry_run: Spanned<bool>,
        instance: Spanned<String>,
        warning: NameList,
        critical: NameList,
        policy: Spanned<StringMap>,
        external_url: Spanned<String>,
        ack_link_ttl: Spanned<String>,
    }
}

raw_table! {
    /// `[[notifier]]`: one flat struct for every kind, like [`RawCheck`]; `compile` rejects
    /// keys the kind does not use. `x_file` keys read the secret `x` from a file.
    pub struct RawNotifier {
        name: Spanned<String>,
        kind: Spanned<String>,
        timeout: Spanned<String>,
        url: Spanned<String>,
        url_file: Spanned<String>,
        headers: Spanned<StringMap>,
        format: Spanned<String>,
        template: Spanned<String>,
        external_url: Spanned<String>,
        webhook_url: Spanned<String>,
        webhook_url_file: Spanned<String>,
        channel: Spanned<String>,
        username: Spanned<String>,
        routing_key: Spanned<String>,
        routing_key_file: Spanned<String>,
        source: Spanned<String>,
        component: Spanned<String>,
        group: Spanned<String>,
        class: Spanned<String>,
        resend_every: Spanned<String>,
        generator_url: Spanned<String>,
        smtp: Spanned<String>,
        tls: Spanned<String>,
        password: Spanned<String>,
        password_file: Spanned<String>,
        from: Spanned<String>,
        to: NameList,
        ca_file: Spanned<String>,
        accept_invalid_certs: Spanned<bool>,
    }
}

raw_table! {
    /// `[[hook]]`.
    pub struct RawHook {
        name: Spanned<String>,
        command: NameList,
        shell: Spanned<String>,
        timeout: Spanned<String>,
        cooldown: Spanned<String>,
        dry_run: Spanned<bool>,
        diagnostic: Spanned<bool>,
        env: Spanned<StringMap>,
        workdir: Spanned<String>,
        max_output_bytes: Spanned<i64>,
        notify: NameList,
    }
}

raw_table! {
    /// `[[window]]`: a post-deploy validation window.
    pub struct RawWindow {
        name: Spanned<String>,
        service: Spanned<String>,
        never_critical: NameList,
        baseline: Spanned<StringMap>,
        no_data: Spanned<String>,
        extend: Spanned<String>,
        severity: Spanned<String>,
        notify: Spanned<RawNotify>,
        hooks: NameList,
        step_hook: Spanned<String>,
        hold: NameList,
        hold_for: Spanned<String>,
        budget_floor: Spanned<f64>,
        slos: NameList,
        on_success: Spanned<RawOnSuccess>,
        mark: Vec<Spanned<RawMark>>,
        step: Vec<Spanned<RawMark>>,
    }
}

raw_table! {
    /// `[[window.mark]]` (`at`) or `[[window.step]]` (`weight`, `hold`): what must hold then.
    pub struct RawMark {
        at: Spanned<String>,
        weight: Spanned<i64>,
        hold: Spanned<String>,
        require: NameList,
        allow_warning: Spanned<bool>,
        expect: Vec<Spanned<RawExpect>>,
    }
}

raw_table! {
    /// `[[window.mark.expect]]`: an expression and the bound it must keep.
    pub struct RawExpect {
        name: Spanned<String>,
        expr: Spanned<String>,
        when: Spanned<String>,
    }
}

raw_table! {
    /// A window's `on_success = { notify = [...], message = "..." }`.
    pub struct RawOnSuccess {
        notify: NameList,
        message: Spanned<String>,
        hooks: NameList,
    }
}

raw_table! {
    /// `[[slo]]`: an SLI (`check`, or `good` and `total`), the objective, the period and the
    /// burn-rate alerts (`[[slo.alert]]`, default the SRE workbook's four).
    pub struct RawSlo {
        name: Spanned<String>,
        description: Spanned<String>,
        check: Spanned<String>,
        good: Spanned<String>,
        total: Spanned<String>,
        objective: Spanned<f64>,
        period: Spanned<String>,
        min_events: Spanned<i64>,
        alert: Spanned<Vec<Spanned<RawSloAlert>>>,
        notify: Spanned<RawNotify>,
        hooks: Spanned<Vec<Spanned<RawHookTrigger>>>,
    }
}

raw_table! {
    /// `[[slo.alert]]`: `severity`, `burn_rate`, `long`, `short`.
    pub struct RawSloAlert {
        severity: Spanned<String>,
        burn_rate: Spanned<f64>,
        long: Spanned<String>,
        short: Spanned<String>,
    }
}

raw_table! {
    /// One entry of a rule's `hooks = [{ hook = "...", on = "critical", after = "5m" }]`,
    /// optionally guarded: `confirm = ["api-health"]`, `verify = "10m"`.
    pub struct RawHookTrigger {
        hook: Spanned<String>,
        on: Spanned<String>,
        after: Spanned<String>,
        confirm: NameList,
        verify: Spanned<String>,
    }
}

raw_table! {
    /// `notify = { warning = [...], critical = [...] }` of a rule.
    pub struct RawNotifyTable {
        warning: NameList,
        critical: NameList,
    }
}

/// A rule's `notify = ["a", "b"] | { warning = [...], critical = [...] }`.
#[derive(Debug)]
pub enum RawNotify {
    /// The same notifiers at both levels.
    Both(Vec<Spanned<String>>),
    Table(RawNotifyTable),
}

impl<'de> Deserialize<'de> for RawNotify {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NotifyVisitor;
        impl<'de> Visitor<'de> for NotifyVisitor {
            type Value = RawNotify;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a list of notifier names or a table { warning = [...], critical = [...] }",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawNotify, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawNotify::Both)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawNotify, A::Error> {
                RawNotifyTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawNotify::Table)
            }
        }
        d.deserialize_any(NotifyVisitor)
    }
}
