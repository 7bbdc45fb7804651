//! warden's integration tests: one binary, real servers (see `harness`).

// These tests watch real processes in real time (a daemon's schedule, a server's timeout), so
// std's Instant is the right clock here; the ban in clippy.toml is for the product's code.
#![allow(clippy::disallowed_types)]

mod harness;

// Test modules, one per area. Add new ones below, in alphabetical order.
mod cli;
mod daemon;
mod http_checks;
mod metrics;
mod metrics_matcher;
mod notifiers;
mod probes;
mod reload;
mod services;
mod systemd;
mod target;
mod tidy;
