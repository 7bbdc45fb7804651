//! warden's integration tests: one binary, real servers (see `harness`).

// These tests watch real processes in real time (a daemon's schedule, a server's timeout), so
// std's Instant is the right clock here; the ban in clippy.toml is for the product's code.
#![allow(clippy::disallowed_types)]

mod harness;

// Test modules, one per area. Add new ones below, in alphabetical order.
mod admin;
mod cli;
mod conformance;
mod connections;
mod daemon;
mod exec_checks;
mod exposition;
mod first_hour;
mod guarded;
mod heartbeat;
mod hooks;
mod http_checks;
mod imitation;
mod metrics;
mod metrics_matcher;
mod notifiers;
mod oncall;
mod outbox;
mod paging;
mod probes;
mod prometheus_source;
mod reload;
mod retries;
mod runbook_policies;
mod runbook_windows;
mod runbooks;
mod scrape;
mod scrape_bad_input;
mod series;
mod services;
mod silences;
mod slo;
mod system_checks;
mod systemd;
mod target;
mod tidy;
mod upgrade;
mod windows;
