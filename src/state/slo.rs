//! The `slo_minutes` table: each SLO's events per minute (good and total), keyed by SLO name
//! and minute (minutes since the Unix epoch), so an SLO's budget over 30 days survives a
//! restart without keeping 30 days of raw samples. Rows are upserted as minutes close (a
//! minute written again replaces its row) and deleted once the SLO's period no longer covers
//! them; an SLO no longer configured loses its rows at the next start.

use std::collections::BTreeMap;

use rusqlite::{params, TransactionBehavior};

use super::{Store, StoreError};

/// One minute of one SLO: (minute since the epoch, good, total).
pub type SloMinute = (u32, f64, f64);

/// An SLO's minutes to store, and the oldest minute to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct SloRows {
    pub slo: String,
    pub minutes: Vec<SloMinute>,
    pub keep_from: u32,
}

impl Store {
    /// Writes every SLO's minutes and drops its rows before `keep_from`, in one transaction.
    pub async fn save_slo_minutes(&self, rows: Vec<SloRows>) -> Result<(), StoreError> {
        self.call("save slo minutes", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut upsert = tx.prepare_cached(
                    "INSERT INTO slo_minutes (slo, minute, good, total) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (slo, minute)
                     DO UPDATE SET good = excluded.good, total = excluded.total",
                )?;
                let mut prune =
                    tx.prepare_cached("DELETE FROM slo_minutes WHERE slo = ?1 AND minute < ?2")?;
                for r in &rows {
                    for (minute, good, total) in &r.minutes {
                        upsert.execute(params![r.slo, minute, good, total])?;
                    }
                    prune.execute(params![r.slo, r.keep_from])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// The stored minutes of `slos` (oldest first), each from its `keep_from` on; the rows of
    /// SLOs not named, and those before `keep_from`, are deleted.
    pub async fn load_slo_minutes(
        &self,
        slos: Vec<(String, u32)>,
    ) -> Result<BTreeMap<String, Vec<SloMinute>>, StoreError> {
        self.call("load slo minutes", move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let names: Vec<String> = slos.iter().map(|(n, _)| n.clone()).collect();
            let known: Vec<String> = {
                let mut stmt = tx.prepare("SELECT DISTINCT slo FROM slo_minutes")?;
                let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            for gone in known.iter().filter(|k| !names.contains(k)) {
                tx.execute("DELETE FROM slo_minutes WHERE slo = ?1", [gone])?;
            }
            let mut out = BTreeMap::new();
            for (slo, keep_from) in &slos {
                tx.execute(
                    "DELETE FROM slo_minutes WHERE slo = ?1 AND minute < ?2",
                    params![slo, keep_from],
                )?;
                let mut stmt = tx.prepare(
                    "SELECT minute, good, total FROM slo_minutes WHERE slo = ?1 ORDER BY minute",
                )?;
                let rows = stmt
                    .query_map([slo], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<SloMinute>>>()?;
                out.insert(slo.clone(), rows);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn rows(slo: &str, minutes: &[SloMinute], keep_from: u32) -> SloRows {
        SloRows {
            slo: slo.into(),
            minutes: minutes.to_vec(),
            keep_from,
        }
    }

    #[tokio::test]
    async fn minutes_survive_a_reopen_rewritten_pruned_and_forgotten_with_their_slo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        {
            let (store, _) = Store::open(&path, Timestamp(0)).unwrap();
            store
                .save_slo_minutes(vec![
                    rows("api", &[(100, 59.0, 60.0), (101, 60.0, 60.0)], 0),
                    rows("old", &[(100, 1.0, 1.0)], 0),
                ])
                .await
                .unwrap();
            // A minute written again replaces its row; minutes before keep_from go.
            store
                .save_slo_minutes(vec![rows(
                    "api",
                    &[(101, 30.0, 61.0), (102, 1.0, 2.0)],
                    101,
                )])
                .await
                .unwrap();
        }
        let (store, _) = Store::open(&path, Timestamp(0)).unwrap();
        let loaded = store
            .load_slo_minutes(vec![("api".into(), 0), ("new".into(), 0)])
            .await
            .unwrap();
        assert_eq!(loaded["api"], [(101, 30.0, 61.0), (102, 1.0, 2.0)]);
        assert!(loaded["new"].is_empty());
        // "old" is no longer configured: its rows went with the load.
        let left: i64 = store
            .blocking("count", |c| {
                c.query_row(
                    "SELECT count(*) FROM slo_minutes WHERE slo = 'old'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(left, 0);
        // Loading prunes what the period no longer covers.
        let loaded = store
            .load_slo_minutes(vec![("api".into(), 102)])
            .await
            .unwrap();
        assert_eq!(loaded["api"], [(102, 1.0, 2.0)]);
    }
}
