//! The daemon's typed command channel: what its HTTP API asks of the running daemon, each
//! command answered with its result through the reply it carries.
//!
//! `Reload`, `Window` and `Silence` today; acknowledgements come next, a variant with its own
//! reply type. `app` applies commands one at a time, in order, with reloads from
//! SIGHUP and the file watcher. This module holds types only.

use tokio::sync::oneshot;

use crate::reload;
use crate::window;

/// A request to the running daemon.
#[derive(Debug)]
pub enum Command {
    /// Reload the config (`POST /-/reload`), and with a deploy id mark the deploy; the reply
    /// gets the reload's [`reload::Outcome`].
    Reload(reload::Request),
    /// Start or abort a validation window (`POST /api/v1/windows`, `.../ID/abort`).
    Window(WindowCommand),
    /// Acknowledge a firing alert (`POST /api/v1/alerts/KEY/ack`, `warden ack`): `key` is its
    /// dedup key or its name; the reply is the acknowledged alert, or why not.
    Ack {
        key: String,
        by: String,
        reply: WindowReply,
    },
    /// Acknowledge by a signed link from a page (`/api/v1/ack`): no token, the signature is
    /// the credential.
    AckLink {
        key: String,
        exp: i64,
        sig: String,
        reply: WindowReply,
    },
    /// Add or expire a silence (`POST /api/v1/silences`, `DELETE /api/v1/silences/ID`,
    /// `POST /api/v1/silences/ID/expire`).
    Silence(SilenceCommand),
}

/// What a silence command answers: the silence as `GET /api/v1/silences` shows it, or why
/// not (the HTTP status and the message).
pub type SilenceReply = oneshot::Sender<Result<serde_json::Value, WindowError>>;

#[derive(Debug)]
pub enum SilenceCommand {
    /// The body of `POST /api/v1/silences` (`actions::SilenceRequest`), validated by the
    /// actions task.
    Add {
        request: serde_json::Value,
        reply: SilenceReply,
    },
    Expire {
        id: u64,
        reply: SilenceReply,
    },
}

/// What a window command answers: the run as `GET /api/v1/windows/ID` shows it, or why not.
pub type WindowReply = oneshot::Sender<Result<serde_json::Value, WindowError>>;

#[derive(Debug)]
pub enum WindowCommand {
    Start {
        start: window::Start,
        reply: WindowReply,
    },
    Abort {
        id: u64,
        /// Who asked, for the timeline (`api`, `warden window abort`).
        who: String,
        reply: WindowReply,
    },
}

/// A refused window or silence command: the HTTP status and the message.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowError {
    pub status: u16,
    pub message: String,
}
