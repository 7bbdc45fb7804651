//! The `notification_groups` table: the alert stage's notification groups (`[[policy]]
//! group_by`), one row per group key, stored as JSON the store never reads
//! (`actions::GroupState`). Saved in the transaction of the pages they hold, deleted when a
//! group has nothing left to tell.

use rusqlite::{params, Connection};

use super::{Store, StoreError};

/// Saves (`Some`) or deletes (`None`) the group `key`.
pub(super) fn save(c: &Connection, key: &str, group: Option<&str>) -> rusqlite::Result<()> {
    match group {
        Some(json) => c.execute(
            "INSERT INTO notification_groups (key, grp) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET grp = excluded.grp",
            params![key, json],
        ),
        None => c.execute("DELETE FROM notification_groups WHERE key = ?1", [key]),
    }
    .map(|_| ())
}

impl Store {
    /// Every stored notification group: (key, group as JSON), by key.
    pub async fn load_groups(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.call("load notification groups", |c| {
            let mut stmt = c.prepare("SELECT key, grp FROM notification_groups ORDER BY key")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, String)>>>()?;
            Ok(rows)
        })
        .await
    }
}
