//! The embedded state store: one SQLite file holding the outbox, the alert states and the
//! hook runs, so a restart neither loses a page, nor pages twice, nor rolls back twice.
//!
//! The file is opened in WAL mode with `synchronous = FULL`: every commit is fsynced before
//! [`Store`] returns, so a row an `enqueue` reported is on disk even if the machine loses
//! power the next moment (`NORMAL` with WAL survives a process crash but may lose the last
//! commits on power loss; a page is a promise, and paging volume is tiny, so the extra fsync
//! per commit is the right price). The schema is versioned with `PRAGMA user_version` and
//! migrated forward on open by [`MIGRATIONS`]; a file from a newer warden is refused.
//!
//! Every SQLite call runs off the async runtime: the async methods hand a closure to
//! `spawn_blocking`, which takes the connection's mutex. The synchronous `*_blocking`
//! functions are the same code for callers that already are off the runtime (startup, tests).
//!
//! This module decides nothing about retries or hooks: it stores facts and runs the
//! admission check [`super::hooks::admit`] inside the transaction that records a run.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::alert::Event;
use crate::clock::Timestamp;

use super::hooks::{admit, Admission, LastRun, Verdict};

/// Schema migrations, in order; `PRAGMA user_version` is the number applied. Append only.
pub const MIGRATIONS: &[&str] = &[
    // 1: the outbox, alert states and hook runs.
    "CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        sink            TEXT    NOT NULL,
        dedup_key       TEXT    NOT NULL,
        event           TEXT    NOT NULL,
        enqueued_at     INTEGER NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL,
        last_error      TEXT,
        state           TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'delivered', 'failed', 'dropped')),
        finished_at     INTEGER
    );
    CREATE INDEX outbox_by_key ON outbox (sink, state, dedup_key, id);
    CREATE INDEX outbox_by_due ON outbox (sink, state, next_attempt_at);
    CREATE TABLE alerts (
        rule       TEXT    PRIMARY KEY,
        state      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE hook_runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        hook        TEXT    NOT NULL,
        incident    TEXT    NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        exit_code   INTEGER,
        timed_out   INTEGER NOT NULL DEFAULT 0,
        dry_run     INTEGER NOT NULL,
        argv        TEXT    NOT NULL,
        event       TEXT    NOT NULL,
        stdout      TEXT,
        stderr      TEXT,
        error       TEXT,
        state       TEXT    NOT NULL
                    CHECK (state IN ('started', 'finished', 'interrupted'))
    );
    CREATE INDEX hook_runs_by_hook ON hook_runs (hook, state, incident);",
];

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

/// Where an outbox row is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowState {
    Pending,
    Delivered,
    Failed,
    Dropped,
}

impl RowState {
    pub fn as_str(self) -> &'static str {
        match self {
            RowState::Pending => "pending",
            RowState::Delivered => "delivered",
            RowState::Failed => "failed",
            RowState::Dropped => "dropped",
        }
    }

    fn parse(s: &str) -> RowState {
        match s {
            "delivered" => RowState::Delivered,
            "failed" => RowState::Failed,
            "dropped" => RowState::Dropped,
            _ => RowState::Pending,
        }
    }
}

/// One outbox row as stored (the event kept as its JSON text).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub sink: String,
    pub dedup_key: String,
    pub event: String,
    pub enqueued_at: Timestamp,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub last_error: Option<String>,
    pub state: RowState,
}

/// A pending row that was marked `dropped` to make room (the bound was reached).
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedRow {
    pub id: i64,
    pub sink: String,
    pub dedup_key: String,
    pub enqueued_at: Timestamp,
    pub attempts: u32,
}

/// What a commit wrote: the new row ids, one per (event, sink), and what it dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Committed {
    pub ids: Vec<i64>,
    pub dropped: Vec<DroppedRow>,
}

/// What one sink's delivery loop needs to know right now.
#[derive(Debug, Clone, Default)]
pub struct Poll {
    /// Rows that are due, each the oldest pending row of its dedup key (never a key in flight).
    pub due: Vec<OutboxRow>,
    /// The earliest future `next_attempt_at` among the heads of the keys.
    pub next_due: Option<Timestamp>,
    pub depth: u64,
    pub oldest: Option<Timestamp>,
}

/// Things to write in one transaction: alert states and events, each event for some sinks.
/// The alert stage commits a transition's new state and its pages together, so a crash can
/// neither record "paged" without the page nor the page without the state.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub alerts: Vec<(String, serde_json::Value)>,
    pub events: Vec<(Event, Vec<String>)>,
}

/// Where a hook run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookRunState {
    /// Recorded before the process was spawned; still running (or warden died meanwhile).
    Started,
    Finished,
    /// Found `started` when the store was opened: warden died while it ran. Never re-run.
    Interrupted,
}

impl HookRunState {
    pub fn as_str(self) -> &'static str {
        match self {
            HookRunState::Started => "started",
            HookRunState::Finished => "finished",
            HookRunState::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> HookRunState {
        match s {
            "finished" => HookRunState::Finished,
            "interrupted" => HookRunState::Interrupted,
            _ => HookRunState::Started,
        }
    }
}

/// One hook run as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRunRecord {
    pub id: i64,
    pub hook: String,
    pub incident: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub dry_run: bool,
    pub argv: Vec<String>,
    /// The event that fired the hook (absent only if its JSON no longer parses).
    pub event: Option<Event>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
    pub state: HookRunState,
}

/// How a recorded hook run ended, for [`Store::finish_hook_run`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookFinish {
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<String>,
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
        let alerts: Vec<(String, String)> = batch
            .alerts
            .iter()
            .map(|(rule, state)| (rule.clone(), state.to_string()))
            .collect();
        self.call("enqueue", move |c| {
            commit_rows(c, &alerts, &rows, now, max_pending)
        })
        .await
    }

    /// The due heads of `sink`'s keys (skipping `busy` keys, at most `limit`), when the
    /// next one falls due, and the sink's depth.
    pub async fn poll(
        &self,
        sink: &str,
        now: Timestamp,
        busy: Vec<String>,
        limit: usize,
    ) -> Result<Poll, StoreError> {
        let sink = sink.to_string();
        self.call("poll", move |c| poll(c, &sink, now, &busy, limit))
            .await
    }

    pub async fn mark_delivered(&self, id: i64, now: Timestamp) -> Result<(), StoreError> {
        self.call("mark delivered", move |c| {
            // A row dropped while its send was in flight was delivered after all: say so.
            c.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1,
                     finished_at = ?2, last_error = NULL
                 WHERE id = ?1 AND state IN ('pending', 'dropped')",
                params![id, millis(now)],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn mark_retry(
        &self,
        id: i64,
        next_attempt_at: Timestamp,
        error: String,
    ) -> Result<(), StoreError> {
        self.call("mark retry", move |c| {
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
                params![id, millis(next_attempt_at), error],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn mark_failed(
        &self,
        id: i64,
        now: Timestamp,
        error: String,
    ) -> Result<(), StoreError> {
        self.call("mark failed", move |c| {
            c.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, finished_at = ?2,
                     last_error = ?3
                 WHERE id = ?1 AND state = 'pending'",
                params![id, millis(now), error],
            )
            .map(|_| ())
        })
        .await
    }

    /// Pending rows per sink.
    pub async fn pending_by_sink(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        self.call("count pending", pending_by_sink).await
    }

    /// Every outbox row of `sink`, oldest first (for inspection and tests).
    pub fn rows_blocking(&self, sink: &str) -> Result<Vec<OutboxRow>, StoreError> {
        self.blocking("list rows", |c| {
            let mut stmt = c.prepare(
                "SELECT id, sink, dedup_key, event, enqueued_at, attempts, next_attempt_at,
                        last_error, state
                 FROM outbox WHERE sink = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([sink], read_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
    }

    /// Deletes outbox rows that finished before `rows_before` and hook runs that finished
    /// before `hooks_before`; returns how many went.
    pub async fn prune(
        &self,
        rows_before: Timestamp,
        hooks_before: Timestamp,
    ) -> Result<usize, StoreError> {
        self.call("prune", move |c| {
            let a = c.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND finished_at < ?1",
                [millis(rows_before)],
            )?;
            let b = c.execute(
                "DELETE FROM hook_runs WHERE state != 'started' AND finished_at < ?1",
                [millis(hooks_before)],
            )?;
            Ok(a + b)
        })
        .await
    }

    /// Stores the alert stage's state for `rule` (any serialisable record, as JSON).
    pub async fn save_alert<T: Serialize>(
        &self,
        rule: &str,
        state: &T,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(state).map_err(|e| StoreError {
            path: self.path.to_path_buf(),
            operation: "encode alert state",
            detail: format!("rule {rule}: {e}"),
        })?;
        let rule = rule.to_string();
        self.call("save alert", move |c| {
            save_alert(c, &rule, &json, now).map(|_| ())
        })
        .await
    }

    pub async fn delete_alert(&self, rule: &str) -> Result<(), StoreError> {
        let rule = rule.to_string();
        self.call("delete alert", move |c| {
            c.execute("DELETE FROM alerts WHERE rule = ?1", [rule])
                .map(|_| ())
        })
        .await
    }

    /// Every stored alert state. A row that no longer decodes as `T` is logged (naming the
    /// rule) and left out, but kept in the file.
    pub async fn load_alerts<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let raw = self
            .call("load alerts", |c| {
                let mut stmt = c.prepare("SELECT rule, state FROM alerts ORDER BY rule")?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        let mut out = BTreeMap::new();
        for (rule, json) in raw {
            match serde_json::from_str(&json) {
                Ok(state) => {
                    out.insert(rule, state);
                }
                Err(e) => tracing::error!(
                    rule = %rule,
                    store = %self.path.display(),
                    error = %e,
                    "stored alert state does not decode; the rule starts fresh"
                ),
            }
        }
        Ok(out)
    }

    /// Records a hook run as `started` if [`admit`] lets it run, in one transaction that is
    /// durably committed before this returns, so the process is spawned only after.
    #[allow(clippy::too_many_arguments)]
    pub async fn begin_hook_run(
        &self,
        hook: &str,
        incident: &str,
        now: Timestamp,
        cooldown: Duration,
        dry_run: bool,
        argv: &[String],
        event: &Event,
    ) -> Result<Admission, StoreError> {
        let (hook, incident) = (hook.to_string(), incident.to_string());
        let argv = serde_json::to_string(argv).unwrap_or_else(|_| "[]".into());
        let event = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
        self.call("record hook start", move |c| {
            begin_hook_run(c, &hook, &incident, now, cooldown, dry_run, &argv, &event)
        })
        .await
    }

    pub async fn finish_hook_run(
        &self,
        id: i64,
        now: Timestamp,
        finish: HookFinish,
    ) -> Result<(), StoreError> {
        self.call("record hook end", move |c| {
            c.execute(
                "UPDATE hook_runs SET state = 'finished', finished_at = ?2, exit_code = ?3,
                     timed_out = ?4, stdout = ?5, stderr = ?6, error = ?7
                 WHERE id = ?1",
                params![
                    id,
                    millis(now),
                    finish.exit_code,
                    finish.timed_out,
                    finish.stdout,
                    finish.stderr,
                    finish.error
                ],
            )
            .map(|_| ())
        })
        .await
    }

    /// Every recorded run of `hook`, oldest first.
    pub async fn hook_runs(&self, hook: &str) -> Result<Vec<HookRunRecord>, StoreError> {
        let hook = hook.to_string();
        self.call("list hook runs", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {HOOK_COLUMNS} FROM hook_runs WHERE hook = ?1 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map([hook], read_hook_run)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }
}

fn lock_file(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::os::fd::AsRawFd;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
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

/// Brings the schema to the newest version; refuses a file from a newer warden.
pub fn migrate(conn: &mut Connection) -> Result<(), String> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    let newest = MIGRATIONS.len() as i64;
    if version > newest {
        return Err(format!(
            "schema version {version} is newer than this warden understands ({newest}); \
             use a newer warden or another state file"
        ));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let to = i as i64 + 1;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .map_err(|e| e.to_string())?;
        tx.execute_batch(sql)
            .map_err(|e| format!("migration to version {to}: {e}"))?;
        tx.pragma_update(None, "user_version", to)
            .map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn recover(c: &mut Connection, now: Timestamp) -> rusqlite::Result<Recovery> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let interrupted = {
        let mut stmt = tx.prepare(&format!(
            "UPDATE hook_runs SET state = 'interrupted', finished_at = ?1
             WHERE state = 'started' RETURNING {HOOK_COLUMNS}"
        ))?;
        let mut rows = stmt
            .query_map([millis(now)], read_hook_run)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.sort_by_key(|r| r.id);
        rows
    };
    tx.commit()?;
    Ok(Recovery {
        interrupted_hooks: interrupted,
        pending: pending_by_sink(c)?,
    })
}

fn pending_by_sink(c: &mut Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
    let mut stmt = c.prepare(
        "SELECT sink, count(*) FROM outbox WHERE state = 'pending' GROUP BY sink ORDER BY sink",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?
        .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
    Ok(rows)
}

fn save_alert(c: &Connection, rule: &str, json: &str, now: Timestamp) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO alerts (rule, state, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (rule) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        params![rule, json, millis(now)],
    )
}

fn commit_rows(
    c: &mut Connection,
    alerts: &[(String, String)],
    rows: &[(String, String, String)],
    now: Timestamp,
    max_pending: u64,
) -> rusqlite::Result<Committed> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut committed = Committed::default();
    for (rule, json) in alerts {
        save_alert(&tx, rule, json, now)?;
    }
    // Pending rows per sink, counted once per batch and kept up to date below.
    let mut pending: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (sink, key, json) in rows {
        let count = match pending.get(sink.as_str()) {
            Some(n) => *n,
            None => tx.query_row(
                "SELECT count(*) FROM outbox WHERE sink = ?1 AND state = 'pending'",
                [sink],
                |r| r.get(0),
            )?,
        };
        let excess = count + 1 - max_pending.max(1) as i64;
        if excess > 0 {
            let mut stmt = tx.prepare(
                "UPDATE outbox SET state = 'dropped', finished_at = ?2,
                     last_error = 'dropped: outbox full'
                 WHERE id IN (SELECT id FROM outbox WHERE sink = ?1 AND state = 'pending'
                              ORDER BY id LIMIT ?3)
                 RETURNING id, sink, dedup_key, enqueued_at, attempts",
            )?;
            let dropped = stmt
                .query_map(params![sink, millis(now), excess], |r| {
                    Ok(DroppedRow {
                        id: r.get(0)?,
                        sink: r.get(1)?,
                        dedup_key: r.get(2)?,
                        enqueued_at: Timestamp::from_millis(r.get(3)?),
                        attempts: r.get::<_, i64>(4)? as u32,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            committed.dropped.extend(dropped);
        }
        pending.insert(sink, count.min(max_pending.max(1) as i64 - 1) + 1);
        tx.execute(
            "INSERT INTO outbox (sink, dedup_key, event, enqueued_at, next_attempt_at, state)
             VALUES (?1, ?2, ?3, ?4, ?4, 'pending')",
            params![sink, key, json, millis(now)],
        )?;
        committed.ids.push(tx.last_insert_rowid());
    }
    tx.commit()?;
    committed.dropped.sort_by_key(|d| d.id);
    Ok(committed)
}

const ROW_COLUMNS: &str = "o.id, o.sink, o.dedup_key, o.event, o.enqueued_at, o.attempts, \
     o.next_attempt_at, o.last_error, o.state";

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        sink: r.get(1)?,
        dedup_key: r.get(2)?,
        event: r.get(3)?,
        enqueued_at: Timestamp::from_millis(r.get(4)?),
        attempts: r.get::<_, i64>(5)?.clamp(0, u32::MAX as i64) as u32,
        next_attempt_at: Timestamp::from_millis(r.get(6)?),
        last_error: r.get(7)?,
        state: RowState::parse(&r.get::<_, String>(8)?),
    })
}

fn poll(
    c: &mut Connection,
    sink: &str,
    now: Timestamp,
    busy: &[String],
    limit: usize,
) -> rusqlite::Result<Poll> {
    // The head of a key is its oldest pending row; only heads are ever sent, so per key the
    // rows go out in enqueue order. A busy key's head is in flight and is skipped.
    let heads = "o.sink = ?1 AND o.state = 'pending' AND o.id = (
                     SELECT min(p.id) FROM outbox p
                     WHERE p.sink = ?1 AND p.state = 'pending' AND p.dedup_key = o.dedup_key)";
    let mut due = Vec::new();
    if limit > 0 {
        let mut stmt = c.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM outbox o WHERE {heads} AND o.next_attempt_at <= ?2
             ORDER BY o.next_attempt_at, o.id LIMIT ?3"
        ))?;
        let fetch = (limit + busy.len()) as i64;
        for row in stmt.query_map(params![sink, millis(now), fetch], read_row)? {
            let row = row?;
            if !busy.contains(&row.dedup_key) && due.len() < limit {
                due.push(row);
            }
        }
    }
    let next_due: Option<i64> = c.query_row(
        &format!(
            "SELECT min(o.next_attempt_at) FROM outbox o WHERE {heads} AND o.next_attempt_at > ?2"
        ),
        params![sink, millis(now)],
        |r| r.get(0),
    )?;
    let (depth, oldest): (i64, Option<i64>) = c.query_row(
        "SELECT count(*), min(enqueued_at) FROM outbox WHERE sink = ?1 AND state = 'pending'",
        [sink],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Poll {
        due,
        next_due: next_due.map(Timestamp::from_millis),
        depth: depth.max(0) as u64,
        oldest: oldest.map(Timestamp::from_millis),
    })
}

const HOOK_COLUMNS: &str = "id, hook, incident, started_at, finished_at, exit_code, timed_out, \
     dry_run, argv, event, stdout, stderr, error, state";

fn read_hook_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<HookRunRecord> {
    let argv: String = r.get(8)?;
    let event: String = r.get(9)?;
    Ok(HookRunRecord {
        id: r.get(0)?,
        hook: r.get(1)?,
        incident: r.get(2)?,
        started_at: Timestamp::from_millis(r.get(3)?),
        finished_at: r.get::<_, Option<i64>>(4)?.map(Timestamp::from_millis),
        exit_code: r.get(5)?,
        timed_out: r.get(6)?,
        dry_run: r.get(7)?,
        argv: serde_json::from_str(&argv).unwrap_or_default(),
        event: serde_json::from_str(&event).ok(),
        stdout: r.get::<_, Option<String>>(10)?.unwrap_or_default(),
        stderr: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        error: r.get(12)?,
        state: HookRunState::parse(&r.get::<_, String>(13)?),
    })
}

#[allow(clippy::too_many_arguments)]
fn begin_hook_run(
    c: &mut Connection,
    hook: &str,
    incident: &str,
    now: Timestamp,
    cooldown: Duration,
    dry_run: bool,
    argv: &str,
    event: &str,
) -> rusqlite::Result<Admission> {
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Any `started` row is a run of this process: `open` turned older ones `interrupted`.
    let running: Option<i64> = tx
        .query_row(
            "SELECT id FROM hook_runs WHERE hook = ?1 AND state = 'started' LIMIT 1",
            [hook],
            |r| r.get(0),
        )
        .optional()?;
    // Dry runs and real runs are counted apart: a dry run never uses up a real one.
    let same_incident: Option<i64> = tx
        .query_row(
            "SELECT id FROM hook_runs WHERE hook = ?1 AND incident = ?2 AND dry_run = ?3
             ORDER BY id LIMIT 1",
            params![hook, incident, dry_run],
            |r| r.get(0),
        )
        .optional()?;
    let last: Option<LastRun> = tx
        .query_row(
            "SELECT coalesce(finished_at, started_at) AS ended, incident FROM hook_runs
             WHERE hook = ?1 AND dry_run = ?2 ORDER BY ended DESC, id DESC LIMIT 1",
            params![hook, dry_run],
            |r| {
                Ok(LastRun {
                    ended: Timestamp::from_millis(r.get(0)?),
                    incident: r.get(1)?,
                })
            },
        )
        .optional()?;
    let verdict = admit(now, cooldown, running, same_incident, last);
    match verdict {
        Verdict::Skip(reason) => Ok(Admission::Skipped(reason)),
        Verdict::Run => {
            tx.execute(
                "INSERT INTO hook_runs (hook, incident, started_at, dry_run, argv, event, state)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'started')",
                params![hook, incident, millis(now), dry_run, argv, event],
            )?;
            let run = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Admission::Started { run })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{EventKind, Severity};

    pub(crate) fn event(key: &str, n: u32) -> Event {
        Event {
            value_name: None,
            kind: EventKind::Firing,
            alert: key.to_string(),
            check: "api".into(),
            severity: Severity::Critical,
            value: Some(n as f64),
            threshold: Some(1.0),
            condition: Some("> 1".into()),
            description: None,
            labels: BTreeMap::new(),
            since: "2026-01-01T00:00:00.000Z".into(),
            at: "2026-01-01T00:00:00.000Z".into(),
            deploy: None,
            dedup_key: format!("warden/{key}/1"),
            hook: None,
        }
    }

    fn open(dir: &tempfile::TempDir) -> (Store, Recovery) {
        Store::open(&dir.path().join("warden.db"), Timestamp(1_000)).expect("open store")
    }

    #[tokio::test]
    async fn migrates_an_empty_file_and_refuses_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.db");
        std::fs::write(&path, b"").unwrap();
        let (store, recovery) = Store::open(&path, Timestamp(0)).expect("empty file migrates");
        assert!(recovery.interrupted_hooks.is_empty() && recovery.pending.is_empty());
        let (version, mode, sync): (i64, String, i64) = store
            .blocking("inspect", |c| {
                Ok((
                    c.query_row("PRAGMA user_version", [], |r| r.get(0))?,
                    c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?,
                    c.query_row("PRAGMA synchronous", [], |r| r.get(0))?,
                ))
            })
            .unwrap();
        assert_eq!(
            (version, mode.as_str(), sync),
            (MIGRATIONS.len() as i64, "wal", 2)
        );
        drop(store);
        // Opening again is a no-op migration.
        let (store, _) = Store::open(&path, Timestamp(0)).expect("reopen");
        store
            .blocking("bump", |c| c.pragma_update(None, "user_version", 99))
            .unwrap();
        drop(store);
        let err = Store::open(&path, Timestamp(0)).unwrap_err().to_string();
        assert!(
            err.contains("schema version 99 is newer") && err.contains("warden.db"),
            "{err}"
        );
    }

    #[test]
    fn one_process_per_state_file_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.db");
        let (first, _) = Store::open(&path, Timestamp(0)).unwrap();
        let err = Store::open(&path, Timestamp(0)).unwrap_err().to_string();
        assert!(
            err.contains("warden.db.lock is held by another process; is another warden using this state file?"),
            "{err}"
        );
        drop(first);
        Store::open(&path, Timestamp(0)).expect("the lock went with the first store");
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![b'x'; 8192]).unwrap();
        let err = Store::open(&junk, Timestamp(0)).unwrap_err().to_string();
        assert!(
            err.contains("junk.db") && err.contains("not a database"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_directory_is_named() {
        let err = Store::open(Path::new("/nonexistent/dir/warden.db"), Timestamp(0))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "state store /nonexistent/dir/warden.db: open: directory /nonexistent/dir does not exist"
        );
    }

    #[tokio::test]
    async fn only_the_head_of_each_key_is_due_and_busy_keys_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir);
        let sinks = vec!["pd".to_string()];
        let batch = Batch {
            alerts: vec![],
            events: vec![
                (event("a", 1), sinks.clone()),
                (event("b", 1), sinks.clone()),
                (event("a", 2), sinks.clone()),
            ],
        };
        let c = store.commit(batch, Timestamp(5_000), 100).await.unwrap();
        assert_eq!(c.ids.len(), 3);
        let p = store
            .poll("pd", Timestamp(5_000), vec![], 10)
            .await
            .unwrap();
        let keys: Vec<_> = p.due.iter().map(|r| (r.dedup_key.as_str(), r.id)).collect();
        assert_eq!(keys, [("warden/a/1", c.ids[0]), ("warden/b/1", c.ids[1])]);
        assert_eq!((p.depth, p.oldest), (3, Some(Timestamp(5_000))));
        // Key a is in flight: only b is due.
        let p = store
            .poll("pd", Timestamp(5_000), vec!["warden/a/1".into()], 10)
            .await
            .unwrap();
        assert_eq!(p.due.len(), 1);
        assert_eq!(p.due[0].dedup_key, "warden/b/1");
        // a's head waits for a retry: a's second event is not due before it, b is.
        store
            .mark_retry(c.ids[0], Timestamp(9_000), "503".into())
            .await
            .unwrap();
        let p = store
            .poll("pd", Timestamp(6_000), vec![], 10)
            .await
            .unwrap();
        let ids: Vec<_> = p.due.iter().map(|r| r.id).collect();
        assert_eq!(ids, [c.ids[1]]);
        assert_eq!(p.next_due, Some(Timestamp(9_000)));
        // Once a's head is delivered, its second event becomes the head.
        store
            .mark_delivered(c.ids[0], Timestamp(9_000))
            .await
            .unwrap();
        let p = store
            .poll("pd", Timestamp(9_000), vec![], 10)
            .await
            .unwrap();
        let ids: Vec<_> = p.due.iter().map(|r| r.id).collect();
        assert_eq!(ids, [c.ids[1], c.ids[2]]);
        // Another sink's rows are its own.
        let p = store
            .poll("slack", Timestamp(9_000), vec![], 10)
            .await
            .unwrap();
        assert_eq!((p.due.len(), p.depth), (0, 0));
    }

    #[tokio::test]
    async fn a_full_outbox_drops_the_oldest_pending_rows_of_that_sink() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir);
        let mut ids = Vec::new();
        for n in 0..5 {
            let batch = Batch {
                alerts: vec![],
                events: vec![(event(&format!("k{n}"), n), vec!["pd".into()])],
            };
            let c = store
                .commit(batch, Timestamp(1_000 + n as i64), 3)
                .await
                .unwrap();
            if n < 3 {
                assert!(c.dropped.is_empty());
            } else {
                let d: Vec<_> = c.dropped.iter().map(|d| d.id).collect();
                assert_eq!(d, [ids[n as usize - 3]], "event {n}");
                assert_eq!(c.dropped[0].sink, "pd");
            }
            ids.extend(c.ids);
        }
        // Another sink is not affected by pd's bound.
        let c = store
            .commit(
                Batch {
                    alerts: vec![],
                    events: vec![(event("x", 0), vec!["slack".into()])],
                },
                Timestamp(2_000),
                3,
            )
            .await
            .unwrap();
        assert!(c.dropped.is_empty());
        let states: Vec<_> = store
            .rows_blocking("pd")
            .unwrap()
            .into_iter()
            .map(|r| r.state)
            .collect();
        use RowState::*;
        assert_eq!(states, [Dropped, Dropped, Pending, Pending, Pending]);
    }

    #[tokio::test]
    async fn one_batch_beyond_the_bound_keeps_its_newest_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir);
        let events = (0..5)
            .map(|n| (event(&format!("k{n}"), n), vec!["pd".to_string()]))
            .collect();
        let c = store
            .commit(
                Batch {
                    alerts: vec![],
                    events,
                },
                Timestamp(1_000),
                3,
            )
            .await
            .unwrap();
        let dropped: Vec<_> = c.dropped.iter().map(|d| d.id).collect();
        assert_eq!(dropped, c.ids[..2]);
        let p = store
            .poll("pd", Timestamp(1_000), vec![], 10)
            .await
            .unwrap();
        assert_eq!(p.depth, 3);
    }

    #[tokio::test]
    async fn restart_resumes_pending_rows_and_interrupts_started_hook_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir);
        let c = store
            .commit(
                Batch {
                    alerts: vec![("api-down".into(), serde_json::json!({"incident": 3}))],
                    events: vec![(event("a", 1), vec!["pd".into(), "slack".into()])],
                },
                Timestamp(1_000),
                100,
            )
            .await
            .unwrap();
        store
            .mark_delivered(c.ids[1], Timestamp(1_100))
            .await
            .unwrap();
        let admitted = store
            .begin_hook_run(
                "rollback",
                "warden/a/1",
                Timestamp(1_200),
                Duration::ZERO,
                false,
                &["kubectl".into()],
                &event("a", 1),
            )
            .await
            .unwrap();
        assert!(matches!(admitted, Admission::Started { .. }));
        drop(store);

        let (store, recovery) =
            Store::open(&dir.path().join("warden.db"), Timestamp(5_000)).expect("reopen");
        assert_eq!(
            recovery.pending.into_iter().collect::<Vec<_>>(),
            [("pd".to_string(), 1)]
        );
        assert_eq!(recovery.interrupted_hooks.len(), 1);
        let run = &recovery.interrupted_hooks[0];
        assert_eq!(
            (run.hook.as_str(), run.state, run.finished_at),
            (
                "rollback",
                HookRunState::Interrupted,
                Some(Timestamp(5_000))
            )
        );
        assert_eq!(run.event.as_ref().map(|e| e.alert.as_str()), Some("a"));
        let p = store
            .poll("pd", Timestamp(5_000), vec![], 10)
            .await
            .unwrap();
        assert_eq!(p.due.len(), 1);
        let alerts: BTreeMap<String, serde_json::Value> = store.load_alerts().await.unwrap();
        assert_eq!(alerts["api-down"]["incident"], 3);
        // The interrupted run still counts for its incident: it is never re-run.
        let again = store
            .begin_hook_run(
                "rollback",
                "warden/a/1",
                Timestamp(6_000),
                Duration::ZERO,
                false,
                &[],
                &event("a", 1),
            )
            .await
            .unwrap();
        assert_eq!(
            again,
            Admission::Skipped(super::super::hooks::SkipReason::AlreadyRanForIncident {
                run: run.id
            })
        );
    }

    #[tokio::test]
    async fn prune_deletes_only_finished_rows_past_their_retention() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir);
        let batch = Batch {
            alerts: vec![],
            events: vec![
                (event("a", 1), vec!["pd".into()]),
                (event("b", 1), vec!["pd".into()]),
            ],
        };
        let c = store.commit(batch, Timestamp(1_000), 100).await.unwrap();
        store
            .mark_delivered(c.ids[0], Timestamp(2_000))
            .await
            .unwrap();
        let started = store
            .begin_hook_run(
                "h",
                "i",
                Timestamp(2_000),
                Duration::ZERO,
                false,
                &[],
                &event("a", 1),
            )
            .await
            .unwrap();
        let Admission::Started { run } = started else {
            panic!("{started:?}")
        };
        // Too early for the rows, and a started hook run is never pruned.
        assert_eq!(
            store
                .prune(Timestamp(2_000), Timestamp(9_000))
                .await
                .unwrap(),
            0
        );
        store
            .finish_hook_run(run, Timestamp(3_000), HookFinish::default())
            .await
            .unwrap();
        assert_eq!(
            store
                .prune(Timestamp(2_001), Timestamp(3_000))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .prune(Timestamp(9_000), Timestamp(3_001))
                .await
                .unwrap(),
            1
        );
        let left: Vec<_> = store
            .rows_blocking("pd")
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(left, [c.ids[1]]);
        assert!(store.hook_runs("h").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn undecodable_alert_state_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = open(&dir);
        store
            .save_alert("good", &serde_json::json!({"n": 1}), Timestamp(1))
            .await
            .unwrap();
        store
            .save_alert("bad", &"a string", Timestamp(1))
            .await
            .unwrap();
        #[derive(serde::Deserialize)]
        struct S {
            n: u32,
        }
        let loaded: BTreeMap<String, S> = store.load_alerts().await.unwrap();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["good"]);
        assert_eq!(loaded["good"].n, 1);
        store.delete_alert("good").await.unwrap();
        let loaded: BTreeMap<String, serde_json::Value> = store.load_alerts().await.unwrap();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["bad"]);
    }
}
