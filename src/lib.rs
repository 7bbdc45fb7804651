//! warden: a continuous health and SLO watchdog daemon.
//!
//! The pipeline is the import graph: `config → check → rule → (alert, actions)`.
//! See ARCHITECTURE.md for the map and the invariants.

pub mod actions;
pub mod alert;
pub mod app;
pub mod check;
pub mod clock;
pub mod command;
pub mod config;
pub mod engine;
pub mod evaluator;
pub mod exposition;
pub mod files;
pub mod gate;
pub mod heartbeat;
pub mod hook;
pub mod labels;
pub mod matcher;
pub mod notify;
pub mod outbox;
pub mod promql;
pub mod query_api;
pub mod reload;
pub mod rule;
pub mod scheduler;
pub mod secret;
pub mod series;
pub mod server;
pub mod slo;
pub mod state;
pub mod systemd;
pub mod telemetry;
pub mod vitals;
pub mod watch;
pub mod window;
