//! The `alerts` table: the alert stage's record per alert, `(rule, labels)`, stored as JSON it
//! alone reads (`actions::AlertRecord`). `labels` is the canonical JSON of the series' label
//! set (serde_json of the sorted map: `{}` for a rule's unlabelled series), so one series is
//! one row. The store neither reads nor checks what a record says; a row whose labels or
//! record no longer decode is logged and left out, never fatal.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{millis, Store, StoreError};
use crate::alert::AlertId;
use crate::clock::Timestamp;

/// The `labels` column of `id`: its label set as JSON, names sorted (a `BTreeMap`), so equal
/// sets are equal text.
pub(super) fn labels_text(id: &AlertId) -> String {
    // A map of strings to strings always serialises.
    serde_json::to_string(&id.labels).expect("a label set encodes as JSON")
}

impl Store {
    /// Stores the alert stage's state for `id` (any serialisable record, as JSON).
    pub async fn save_alert<T: Serialize>(
        &self,
        id: &AlertId,
        state: &T,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(state).map_err(|e| StoreError {
            path: self.path.to_path_buf(),
            operation: "encode alert state",
            detail: format!("alert {id}: {e}"),
        })?;
        let (rule, labels) = (id.rule.clone(), labels_text(id));
        self.call("save alert", move |c| {
            save(c, &rule, &labels, &json, now).map(|_| ())
        })
        .await
    }

    pub async fn delete_alert(&self, id: &AlertId) -> Result<(), StoreError> {
        let (rule, labels) = (id.rule.clone(), labels_text(id));
        self.call("delete alert", move |c| {
            c.execute(
                "DELETE FROM alerts WHERE rule = ?1 AND labels = ?2",
                [rule, labels],
            )
            .map(|_| ())
        })
        .await
    }

    /// Every stored alert state. A row whose labels do not decode as a label set, or whose
    /// state does not decode as `T`, is logged (naming the rule and the labels' text) and
    /// left out, but kept in the file.
    pub async fn load_alerts<T: DeserializeOwned + Send + 'static>(
        &self,
    ) -> Result<BTreeMap<AlertId, T>, StoreError> {
        let raw = self
            .call("load alerts", |c| {
                let mut stmt =
                    c.prepare("SELECT rule, labels, state FROM alerts ORDER BY rule, labels")?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        let mut out = BTreeMap::new();
        for (rule, labels, json) in raw {
            let decoded = serde_json::from_str(&labels)
                .map_err(|e| format!("labels: {e}"))
                .and_then(|l| {
                    let state = serde_json::from_str(&json).map_err(|e| format!("state: {e}"))?;
                    Ok((AlertId::new(rule.clone(), l), state))
                });
            match decoded {
                Ok((id, state)) => {
                    out.insert(id, state);
                }
                Err(e) => tracing::error!(
                    rule = %rule,
                    labels = %labels,
                    store = %self.path.display(),
                    error = %e,
                    "stored alert state does not decode; the alert starts fresh"
                ),
            }
        }
        Ok(out)
    }
}

/// Inserts or replaces the record of `(rule, labels)`; inside a caller's transaction when `c`
/// is one. `labels` is [`labels_text`].
pub(super) fn save(
    c: &Connection,
    rule: &str,
    labels: &str,
    json: &str,
    now: Timestamp,
) -> rusqlite::Result<usize> {
    c.execute(
        "INSERT INTO alerts (rule, labels, state, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (rule, labels)
         DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        params![rule, labels, json, millis(now)],
    )
}
