//! The `silences` table: silences (`actions::Silence`, stored as JSON the store never reads),
//! one row per silence by id, with its end, the one column the store queries by. Ended
//! silences are deleted once past the retention the caller gives.

use rusqlite::params;

use super::{Store, StoreError};

/// A silence as the store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct SilenceRow {
    pub id: u64,
    /// Milliseconds since the epoch.
    pub ends_at: i64,
    /// The silence as JSON.
    pub silence: String,
}

impl Store {
    /// Every silence that ends at or after `since`, by id, and one past the highest id ever
    /// stored (ids are never reused while the file lives).
    pub async fn load_silences(&self, since: i64) -> Result<(Vec<SilenceRow>, u64), StoreError> {
        self.call("load silences", move |c| {
            let mut stmt = c.prepare(
                "SELECT id, ends_at, silence FROM silences WHERE ends_at >= ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([since], |r| {
                    Ok(SilenceRow {
                        id: r.get::<_, i64>(0)? as u64,
                        ends_at: r.get(1)?,
                        silence: r.get(2)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let max: Option<i64> = c.query_row("SELECT max(id) FROM silences", [], |r| r.get(0))?;
            Ok((rows, max.map_or(1, |m| m as u64 + 1)))
        })
        .await
    }

    /// Inserts or replaces a silence and deletes those that ended before `prune_before`, in
    /// one transaction; returns once durable. The highest id is kept even when pruned (a
    /// pruned row leaves the row with the highest id in place: only ended ones older than it
    /// go), so ids are not reused.
    pub async fn save_silence(&self, row: SilenceRow, prune_before: i64) -> Result<(), StoreError> {
        self.call("save silence", move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO silences (id, ends_at, silence) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET ends_at = excluded.ends_at,
                                                silence = excluded.silence",
                params![row.id as i64, row.ends_at, row.silence],
            )?;
            tx.execute(
                "DELETE FROM silences WHERE ends_at < ?1
                   AND id < (SELECT max(id) FROM silences)",
                [prune_before],
            )?;
            tx.commit()
        })
        .await
    }
}
