//! The schema of the state file: the migrations that build it, in order, and the step that
//! applies the ones a file lacks. The version is `PRAGMA user_version`: the number of
//! [`MIGRATIONS`] applied. A new table is a new migration appended here, never an edit of an
//! old one (files written by earlier wardens hold the old ones already applied).

use rusqlite::{Connection, TransactionBehavior};

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
    // 2: alerts keyed by (rule, labels), the canonical JSON of the series' label set (`{}`
    // for a rule's unlabelled series, which every version-1 row is); `meta`, facts about the
    // file itself (the identity's instance and epoch). SQLite cannot change a primary key:
    // the alerts move to a new table that takes the old one's name.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE alerts_by_series (
        rule       TEXT    NOT NULL,
        labels     TEXT    NOT NULL DEFAULT '{}',
        state      TEXT    NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (rule, labels)
    );
    INSERT INTO alerts_by_series (rule, labels, state, updated_at)
        SELECT rule, '{}', state, updated_at FROM alerts;
    DROP TABLE alerts;
    ALTER TABLE alerts_by_series RENAME TO alerts;",
    // 3: validation window runs, the run as JSON (`window::Run`), by id (never reused).
    "CREATE TABLE windows (
        id         INTEGER PRIMARY KEY,
        window     TEXT    NOT NULL,
        state      TEXT    NOT NULL,
        started_at INTEGER NOT NULL,
        run        TEXT    NOT NULL
    );
    CREATE INDEX windows_by_state ON windows (state, id);",
    // 4: SLO history, events per minute (`state/slo.rs`).
    "CREATE TABLE slo_minutes (
        slo    TEXT    NOT NULL,
        minute INTEGER NOT NULL,
        good   REAL    NOT NULL,
        total  REAL    NOT NULL,
        PRIMARY KEY (slo, minute)
    ) WITHOUT ROWID;",
    // 5: silences, the silence as JSON (`actions::Silence`), by id (never reused).
    "CREATE TABLE silences (
        id      INTEGER PRIMARY KEY,
        ends_at INTEGER NOT NULL,
        silence TEXT    NOT NULL
    );
    CREATE INDEX silences_by_end ON silences (ends_at);",
    // 6: notification groups (`[[policy]] group_by`), the group as JSON
    // (`actions::GroupState`), by key (policy, notifier, label values).
    "CREATE TABLE notification_groups (
        key   TEXT PRIMARY KEY,
        grp   TEXT NOT NULL
    ) WITHOUT ROWID;",
];

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
