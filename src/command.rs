//! The daemon's typed command channel: what its HTTP API asks of the running daemon, each
//! command answered with its result through the reply it carries.
//!
//! `Reload` today; validation windows, silences and acknowledgements come next, each a variant
//! with its own reply type. `app` applies commands one at a time, in order, with reloads from
//! SIGHUP and the file watcher. This module holds types only.

use crate::reload;

/// A request to the running daemon.
#[derive(Debug)]
pub enum Command {
    /// Reload the config (`POST /-/reload`), and with a deploy id mark the deploy; the reply
    /// gets the reload's [`reload::Outcome`].
    Reload(reload::Request),
}
