//! The `alerts` table: the alert stage's record per rule, stored as JSON it alone reads
//! (`actions::AlertRecord`). The store neither reads nor checks what a record says; a record
//! that no longer decodes is logged and left out, never fatal.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{millis, Store, StoreError};
use crate::clock::Timestamp;

impl Store {
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
            save(c, &rule, &json, now).map(|_| ())
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
}

/// Inserts or replaces `rule`'s record; inside a caller's transaction when `c` is one.
pub(super) fn save(
    c: &Connection,
    rule: &str,
    json: &str,
    now: Timestamp,
) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO alerts (rule, state, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (rule) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        params![rule, json, millis(now)],
    )
}
