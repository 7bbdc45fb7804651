//! Configuration: TOML files in, a validated [`Config`] out.
//!
//! Two types, two steps (see ARCHITECTURE.md): raw serde structs that mirror the file, and the
//! validated model that the rest of warden runs on. Compiling raw into valid collects every
//! error as `file:line:col: message`. This module reads files and the environment and nothing
//! else: no sockets, no clocks.

pub mod model;

pub use model::*;
