//! The `hook_runs` table: one row per hook run, committed `started` before its process is
//! spawned and `finished` after, so a hook runs at most once per incident even across a crash
//! (a run left `started` by a dead process is turned `interrupted` on open, never re-run).
//! Whether a run may start is [`super::admission::admit`]'s decision, taken here inside the
//! transaction that records the start.

use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::admission::{admit, Admission, LastRun, Verdict};
use super::{millis, Store, StoreError};
use crate::alert::Event;
use crate::clock::Timestamp;

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

impl Store {
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

/// Marks every run left `started` as `interrupted`, ended `now`; returns them, oldest first.
/// Only `Store::open` calls it, before this process has started any run.
pub(super) fn interrupt_started(
    tx: &Transaction<'_>,
    now: Timestamp,
) -> rusqlite::Result<Vec<HookRunRecord>> {
    let mut stmt = tx.prepare(&format!(
        "UPDATE hook_runs SET state = 'interrupted', finished_at = ?1
         WHERE state = 'started' RETURNING {HOOK_COLUMNS}"
    ))?;
    let mut rows = stmt
        .query_map([millis(now)], read_hook_run)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Deletes runs that finished before `before` (a `started` run is never deleted).
pub(super) fn prune(c: &Connection, before: Timestamp) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM hook_runs WHERE state != 'started' AND finished_at < ?1",
        [millis(before)],
    )
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
