//! The `outbox` table: one row per (event, notifier), `pending` until its notifier's delivery
//! task records it `delivered` or `failed` (or the bound marks it `dropped`). Only the oldest
//! pending row of a dedup key is ever due, so per notifier an alert's events go out in order.
//! The rows are written with the alert records they imply (`Store::commit`); how and when
//! they are sent is the `outbox` module's business, not this table's.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, Transaction};

use super::{millis, Store, StoreError};
use crate::clock::Timestamp;

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

impl Store {
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
}

/// Inserts one pending row per `(sink, dedup key, event JSON)` inside the caller's transaction.
/// Per sink, at most `max_pending` rows stay pending: the oldest ones beyond are `dropped` —
/// never a resolve (a page that went out always gets its resolve; resolves are bounded by the
/// alerts that fired, so the bound can be exceeded by them alone).
pub(super) fn insert(
    tx: &Transaction<'_>,
    rows: &[(String, String, String)],
    now: Timestamp,
    max_pending: u64,
) -> rusqlite::Result<Committed> {
    let mut committed = Committed::default();
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
                                AND json_extract(event, '$.kind') IS NOT 'resolved'
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
            let gone = dropped.len() as i64;
            committed.dropped.extend(dropped);
            pending.insert(sink, count - gone + 1);
        } else {
            pending.insert(sink, count + 1);
        }
        tx.execute(
            "INSERT INTO outbox (sink, dedup_key, event, enqueued_at, next_attempt_at, state)
             VALUES (?1, ?2, ?3, ?4, ?4, 'pending')",
            params![sink, key, json, millis(now)],
        )?;
        committed.ids.push(tx.last_insert_rowid());
    }
    committed.dropped.sort_by_key(|d| d.id);
    Ok(committed)
}

/// Deletes rows that finished (delivered, failed or dropped) before `before`.
pub(super) fn prune(c: &Connection, before: Timestamp) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM outbox WHERE state != 'pending' AND finished_at < ?1",
        [millis(before)],
    )
}

pub(super) fn pending_by_sink(c: &mut Connection) -> rusqlite::Result<BTreeMap<String, u64>> {
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
