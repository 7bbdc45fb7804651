//! The `windows` table: validation window runs (`window::Run`, stored as JSON the store never
//! reads), one row per run by id, with the columns the store queries by (window, state,
//! start). Written in the same transaction as the pages a run's verdict implies.

use rusqlite::{params, Connection};

use super::{Store, StoreError};

/// Finished runs loaded at start (running ones are always loaded).
pub const LOAD_FINISHED: u32 = 100;

/// A run as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowRow {
    pub id: u64,
    pub window: String,
    pub state: String,
    pub started_at: i64,
    /// The run as JSON.
    pub run: String,
}

impl Store {
    /// Every running run and the newest finished ones (at most [`LOAD_FINISHED`]), oldest
    /// first, and one past the highest id ever stored (ids are never reused).
    pub async fn load_windows(&self) -> Result<(Vec<WindowRow>, u64), StoreError> {
        self.call("load windows", |c| {
            let mut stmt = c.prepare(
                "SELECT id, window, state, started_at, run FROM windows
                 WHERE state = 'running'
                    OR id IN (SELECT id FROM windows WHERE state != 'running'
                              ORDER BY id DESC LIMIT ?1)
                 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([LOAD_FINISHED], |r| {
                    Ok(WindowRow {
                        id: r.get::<_, i64>(0)? as u64,
                        window: r.get(1)?,
                        state: r.get(2)?,
                        started_at: r.get(3)?,
                        run: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let max: Option<i64> = c.query_row("SELECT max(id) FROM windows", [], |r| r.get(0))?;
            Ok((rows, max.map_or(1, |m| m as u64 + 1)))
        })
        .await
    }

    /// One run by id, running or not, however old.
    pub async fn load_window(&self, id: u64) -> Result<Option<WindowRow>, StoreError> {
        self.call("load window", move |c| {
            let mut stmt =
                c.prepare("SELECT id, window, state, started_at, run FROM windows WHERE id = ?1")?;
            let mut rows = stmt.query_map([id as i64], |r| {
                Ok(WindowRow {
                    id: r.get::<_, i64>(0)? as u64,
                    window: r.get(1)?,
                    state: r.get(2)?,
                    started_at: r.get(3)?,
                    run: r.get(4)?,
                })
            })?;
            rows.next().transpose()
        })
        .await
    }
}

/// Deletes finished runs that ended before `before` (ms), keeping the newest
/// [`LOAD_FINISHED`] finished ones whatever their age; running runs are never touched.
pub(super) fn prune(c: &Connection, before: i64) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM windows
         WHERE state != 'running' AND started_at < ?1
           AND id NOT IN (SELECT id FROM windows WHERE state != 'running'
                          ORDER BY id DESC LIMIT ?2)",
        params![before, LOAD_FINISHED],
    )
}

/// Inserts or replaces a run, inside the caller's transaction.
pub(super) fn save(c: &Connection, row: &WindowRow) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO windows (id, window, state, started_at, run) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, run = excluded.run",
        params![
            row.id as i64,
            row.window,
            row.state,
            row.started_at,
            row.run
        ],
    )?;
    Ok(())
}
