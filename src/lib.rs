//! warden: a continuous health and SLO watchdog daemon.
//!
//! The pipeline is the import graph: `config → check → rule → (alert, actions)`.
//! See ARCHITECTURE.md for the map and the invariants.

pub mod check;
pub mod clock;
pub mod config;
pub mod secret;
