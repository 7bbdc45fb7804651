//! The state store: one SQLite file holding what warden must remember across a restart, so a
//! restart neither loses a page, nor pages twice, nor rolls back twice. One file per table's
//! queries: `alerts.rs` (the alert stage's records, per `(rule, labels)`), `outbox.rs`
//! (notifications waiting for delivery), `hook_runs.rs` (every hook run), `meta.rs` (the
//! file's own facts: this warden's [`Identity`](crate::alert::Identity)), `slo.rs` (each
//! SLO's events per minute); `schema.rs` holds
//! the migrations that build them, and `admission.rs` the pure decision whether a hook may
//! run. A new table (windows, silences, acknowledgements, error budgets) is a migration in
//! `schema.rs` and a file here.
//!
//! The file is opened in WAL mode with `synchronous = FULL`: every commit is fsynced before
//! [`Store`] returns, so a row an `enqueue` reported is on disk even if the machine loses
//! power the next moment (`NORMAL` with WAL survives a process crash but may lose the last
//! commits on power loss; a page is a promise, and paging volume is tiny, so the extra fsync
//! per commit is the right price). The schema is versioned with `PRAGMA user_version` and
//! migrated forward on open by [`MIGRATIONS`]; a file from a newer warden is refused. A
//! `flock` on `<db>.lock` allows one warden per file.
//!
//! Every SQLite call runs off the async runtime: the async methods hand a closure to
//! `spawn_blocking`, which takes the connection's mutex. The synchronous `*_blocking`
//! functions are the same code for callers that already are off the runtime (startup, tests).
//!
//! This module decides nothing about retries or hooks and never delivers, renders or runs
//! anything: it stores facts and applies [`admit`] inside the transaction that records a hook
//! run. It knows `alert` (the events it stores) and `clock`, nothing of the outbox, hooks,
//! notifiers or rules.

mod admission;
mod alerts;
mod groups;
mod hook_runs;
mod meta;
mod outbox;
mod schema;
mod silences;
mod slo;
mod windows;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::alert::{AlertId, Event};
use crate::clock::Timestamp;

pub use admission::{admit, Admission, LastRun, SkipReason, Verdict};
pub use hook_runs::{HookFinish, HookRunRecord, HookRunState};
pub use meta::instance_from_host;
pub use outbox::{Committed, DroppedRow, OutboxRow, Poll, RowState};
pub use schema::{migrate, MIGRATIONS};
pub use silences::SilenceRow;
pub use slo::{SloMinute, SloRows};
pub use windows::{WindowRow, LOAD_FINISHED};

/// A store failure, naming the file and the operation.
#[derive(Debug)]
pub struct StoreError {
    pub path: PathBuf,
    pub operation: &'static str,
    pub detail: String,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state store {}: {}: {}",
            self.path.display(),
            self.operation,
            self.detail
        )
    }
}

impl std::error::Error for StoreError {}

/// Things to write in one transaction: alert states (one per [`AlertId`]) and events, each
/// event for some sinks. The alert stage commits a transition's new state and its pages together, so a crash can
/// neither record "paged" without the page nor the page without the state.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub alerts: Vec<(AlertId, serde_json::Value)>,
    pub events: Vec<(Event, Vec<String>)>,
    /// Validation window runs to save (insert or replace by id).
    pub windows: Vec<WindowRow>,
    /// Notification groups to save (`Some`: the group as JSON) or delete (`None`), by key.
    pub groups: Vec<(String, Option<String>)>,
}

/// What opening the store found from the previous run.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// Hook runs that were `started` when warden stopped: now `interrupted`, never re-run.
    pub interrupted_hooks: Vec<HookRunRecord>,
    /// Pending outbox rows per sink, to be delivered again.
    pub pending: BTreeMap<String, u64>,
}

/// A handle on the store. Cheap to clone; every clone shares one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
    /// `<path>.lock`, flock'ed exclusively for the store's life: one warden per state file
    /// (a second one would mark the first one's running hooks `interrupted`). Readers such as
    /// `sqlite3 warden.db` are not affected.
    _lock: Arc<std::fs::File>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn millis(t: Timestamp) -> i64 {
    t.as_millis()
}

impl Store {
    /// Opens (creating if needed) the store at `path`, migrates it, and marks hook runs left
    /// `started` by a previous process as `interrupted`. Blocking: call it at startup or from
    /// `spawn_blocking`.
    pub fn open(path: &Path, now: Timestamp) -> Result<(Store, Recovery), StoreError> {
        let err = |operation: &'static str| {
            let path = path.to_path_buf();
            move |e: rusqlite::Error| StoreError {
                path,
                operation,
                detail: e.to_string(),
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(StoreError {
                    path: path.to_path_buf(),
                    operation: "open",
                    detail: format!("directory {} does not exist", dir.display()),
                });
            }
        }
        let lock = lock_file(path)?;
        let mut conn = Connection::open(path).map_err(err("open"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(err("set busy timeout"))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(err("enable WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError {
                path: path.to_path_buf(),
                operation: "enable WAL",
                detail: format!("journal mode is {mode}"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err("set synchronous"))?;
        migrate(&mut conn).map_err(|detail| StoreError {
            path: path.to_path_buf(),
            operation: "migrate",
            detail,
        })?;
        let store = Store {
            conn: Arc::new(Mutex::new(conn)),
            path: Arc::new(path.to_path_buf()),
            _lock: Arc::new(lock),
        };
        let recovery = store.blocking("recover", move |c| recover(c, now))?;
        Ok((store, recovery))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, on this thread. For callers already off the runtime.
    pub fn blocking<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // A panic while the lock was held cannot leave a half-done write behind (an open
        // transaction is rolled back when dropped), so a poisoned lock is still usable.
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn).map_err(|e| StoreError {
            path: self.path.to_path_buf(),
            operation,
            detail: e.to_string(),
        })
    }

    /// Runs `f` on the connection on tokio's blocking pool.
    pub async fn call<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.blocking(operation, f)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError {
                path: self.path.to_path_buf(),
                operation,
                detail: format!("store task failed: {e}"),
            }),
        }
    }

    /// Writes `batch` in one transaction; returns only once it is durably committed. Per
    /// sink, at most `max_pending` rows stay pending: the oldest ones beyond are `dropped`.
    pub async fn commit(
        &self,
        batch: Batch,
        now: Timestamp,
        max_pending: u64,
    ) -> Result<Committed, StoreError> {
        let mut rows = Vec::new();
        for (event, sinks) in &batch.events {
            let json = serde_json::to_string(event).map_err(|e| StoreError {
                path: self.path.to_path_buf(),
                operation: "encode event",
                detail: e.to_string(),
            })?;
            for sink in sinks {
                rows.push((sink.clone(), event.dedup_key.clone(), json.clone()));
            }
        }
        let alerts: Vec<(String, String, String)> = batch
            .alerts
            .iter()
            .map(|(id, state)| (id.rule.clone(), alerts::labels_text(id), state.to_string()))
            .collect();
        let windows = batch.windows;
        let groups = batch.groups;
        self.call("enqueue", move |c| {
            commit(c, &alerts, &rows, &windows, &groups, now, max_pending)
        })
        .await
    }

    /// Deletes outbox rows that finished before `rows_before`, and hook runs that finished and
    /// validation window runs that started before `hooks_before` (the newest finished runs
    /// stay); returns how many went.
    pub async fn prune(
        &self,
        rows_before: Timestamp,
        hooks_before: Timestamp,
    ) -> Result<usize, StoreError> {
        self.call("prune", move |c| {
            let a = outbox::prune(c, rows_before)?;
            let b = hook_runs::prune(c, hooks_before)?;
            let w = windows::prune(c, millis(hooks_before))?;
            Ok(a + b + w)
        })
        .await
    }
}

/// `<path>.lock`, the file whose flock says a warden holds the store at `path`.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Whether a running warden holds the store at `path` (without opening the store).
pub fn held_by_a_warden(path: &Path) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(file) = std::fs::OpenOptions::new().read(true).open(lock_path(path)) else {
        return false;
    };
    // SAFETY: flock(2) on a descriptor this function owns; closing it releases the lock.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

fn lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::os::fd::AsRawFd;
    let lock_path = lock_path(path);
    let fail = |detail: String| StoreError {
        path: path.to_path_buf(),
        operation: "lock",
        detail,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| fail(format!("{}: {e}", lock_path.display())))?;
    // SAFETY: flock(2) on a descriptor this function owns; no memory is shared with it. The
    // lock lives as long as the file (closing it, or the process dying, releases it).
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(fail(if e.kind() == std::io::ErrorKind::WouldBlock {
            format!(
                "{} is held by another process; is another warden using this state file? \
                 Give each config its own with `[state] path`",
                lock_path.display()
            )
        } else {
            format!("{}: {e}", lock_path.display())
        }));
    }
    Ok(file)
}

fn recover(c: &mut Connection, now: Timestamp) -> rusqlite::Result<Recovery> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let interrupted = hook_runs::interrupt_started(&tx, now)?;
    tx.commit()?;
    Ok(Recovery {
        interrupted_hooks: interrupted,
        pending: outbox::pending_by_sink(c)?,
    })
}

/// A batch's one transaction: the alert records, then the outbox rows they imply.
fn commit(
    c: &mut Connection,
    alerts: &[(String, String, String)],
    rows: &[(String, String, String)],
    windows: &[WindowRow],
    groups: &[(String, Option<String>)],
    now: Timestamp,
    max_pending: u64,
) -> rusqlite::Result<Committed> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (rule, labels, json) in alerts {
        alerts::save(&tx, rule, labels, json, now)?;
    }
    for row in windows {
        windows::save(&tx, row)?;
    }
    for (key, group) in groups {
        groups::save(&tx, key, group.as_deref())?;
    }
    let committed = outbox::insert(&tx, rows, now, max_pending)?;
    tx.commit()?;
    Ok(committed)
}

#[cfg(test)]
mod tests;
