//! `postgres`: connect, `SELECT 1`, read connection usage, run the named queries.
//!
//! Values: `connections` (client backends in `pg_stat_activity`, the probe's own connection
//! included, as `psql` would show it; background workers such as the checkpointer are not
//! counted because `max_connections` does not limit them), `max_connections`,
//! `connections_ratio` (= connections / max_connections), and one value per named query:
//! `scalar` is the first column of the first row as a number (no row, `NULL` or a
//! non-number fail the probe), `rows` is the number of rows returned, `series` is one
//! labelled value per row: every column but the last is a label named by its column (`NULL`
//! is the empty string), the last column is the value (`SELECT datname, count(*) FROM
//! pg_stat_activity GROUP BY datname` gives `{datname="orders"} 12`, ...). A series query
//! fails the probe on a column name that is not a label name (name it with `AS`), a `NULL` or
//! non-number value, two rows with the same labels, no column, or more than
//! `MAX_SERIES_ROWS` rows.
//!
//! Every probe opens its own connection (keepalives on, connect timeout = the check timeout)
//! in a read-only session with `statement_timeout` = the check timeout, and closes it
//! afterwards. The whole probe runs under the timeout too, since tokio-postgres bounds only
//! the TCP connect: a server that accepts but never answers (stopped, overloaded) is a
//! `timeout`. Connections are plain TCP (`NoTls`): TLS to postgres is not supported yet.
//! The connection string is a secret: targets are named by host, port and database only.

use std::error::Error as _;
use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use super::{Probe, ProbeError, ProbeErrorKind, Reading, Values};
use crate::config::{NamedQuery, PostgresCheck, QueryResult, MAX_SERIES_ROWS};
use crate::labels::{self, Labels};

const CONNECTIONS_SQL: &str =
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'";

pub struct PostgresProbe {
    config: Config,
    /// `postgres host:port/db`, without credentials, for messages.
    target: String,
    queries: Vec<NamedQuery>,
    timeout: Duration,
}

impl PostgresProbe {
    /// Fails (`setup`) only when the connection string cannot be parsed.
    pub fn new(spec: &PostgresCheck, timeout: Duration) -> Result<Self, ProbeError> {
        let mut config: Config = spec.url.expose().parse().map_err(|e| {
            // The parse error names an option, never a value, so it cannot leak the password.
            ProbeError::new(
                ProbeErrorKind::Setup,
                format!("postgres connection string: {}", chain(&e)),
            )
        })?;
        let ms = timeout.as_millis().max(1);
        let session = format!("-c statement_timeout={ms} -c default_transaction_read_only=on");
        let options = match config.get_options() {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {session}"),
            _ => session,
        };
        config
            .options(options)
            .connect_timeout(timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if config.get_application_name().is_none() {
            config.application_name("warden");
        }
        Ok(PostgresProbe {
            target: describe(&config),
            config,
            queries: spec.queries.clone(),
            timeout,
        })
    }

    async fn probe(&self) -> Result<Reading, ProbeError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| self.error("connect to", &e))?;
        // The connection future drives the socket; it ends when `client` is dropped.
        let driver = tokio::spawn(connection);
        let result = self.session(&client).await;
        drop(client);
        // The connection future finishes on its own once the client is gone; don't wait for
        // it here (a stopped server would keep it pending), aborting is enough.
        driver.abort();
        result
    }

    async fn session(&self, client: &Client) -> Result<Reading, ProbeError> {
        let one = self.scalar(client, "SELECT 1", "select 1").await?;
        if one != 1.0 {
            return Err(ProbeError::new(
                ProbeErrorKind::Protocol,
                format!("select 1 on {}: got {one}", self.target),
            ));
        }
        let mut values = Values::new();
        let connections = self.scalar(client, CONNECTIONS_SQL, "connections").await?;
        values.insert("connections".into(), connections);
        let max = self
            .scalar(client, "SHOW max_connections", "max_connections")
            .await
            .map_err(|e| e.with_values(values.clone()))?;
        values.insert("max_connections".into(), max);
        if max > 0.0 {
            values.insert("connections_ratio".into(), connections / max);
        }
        let mut reading = Reading::default();
        for query in &self.queries {
            let value = match query.result {
                QueryResult::Scalar => self.scalar(client, &query.sql, &query.name).await,
                QueryResult::Rows => self.row_count(client, &query.sql, &query.name).await,
                QueryResult::Series => match self.series(client, &query.sql, &query.name).await {
                    Ok(rows) => {
                        reading.vectors.insert(query.name.clone(), rows);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match value {
                Ok(v) => {
                    values.insert(query.name.clone(), v);
                }
                Err(e) => return Err(e.with_values(values)),
            }
        }
        reading.values = values;
        Ok(reading)
    }

    /// Runs `sql` and reads one series per row (see the module doc).
    async fn series(
        &self,
        client: &Client,
        sql: &str,
        name: &str,
    ) -> Result<Vec<(Labels, f64)>, ProbeError> {
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| self.query_error(name, &e))?;
        let fail = |kind, what: String| {
            ProbeError::new(kind, format!("query {name} on {}: {what}", self.target))
        };
        let mut out: Vec<(Labels, f64)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for row in messages.iter().filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        }) {
            if out.len() == MAX_SERIES_ROWS {
                return Err(fail(
                    ProbeErrorKind::BadBody,
                    format!("returned more than {MAX_SERIES_ROWS} rows (series)"),
                ));
            }
            let columns = row.columns();
            let Some((value_column, label_columns)) = columns.split_last() else {
                return Err(fail(ProbeErrorKind::Protocol, "returned no column".into()));
            };
            let mut labels = Labels::new();
            for (i, column) in label_columns.iter().enumerate() {
                let label = column.name();
                if !labels::is_valid_name(label) {
                    return Err(fail(
                        ProbeErrorKind::Protocol,
                        format!(
                            "column {label:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*); \
                             name it with AS"
                        ),
                    ));
                }
                let text = row.try_get(i).map_err(|e| self.query_error(name, &e))?;
                labels.insert(label.to_string(), text.unwrap_or_default().to_string());
            }
            let text = row
                .try_get(label_columns.len())
                .map_err(|e| self.query_error(name, &e))?;
            let what = value_column.name();
            let value = match text {
                None => {
                    return Err(fail(
                        ProbeErrorKind::Protocol,
                        format!(
                            "value column {what:?} is null for {}",
                            labels::render(&labels)
                        ),
                    ))
                }
                Some(text) => parse_number(text).ok_or_else(|| {
                    fail(
                        ProbeErrorKind::BadBody,
                        format!(
                            "value column {what:?}: {:?} is not a number",
                            text.chars().take(64).collect::<String>()
                        ),
                    )
                })?,
            };
            if !seen.insert(labels.clone()) {
                return Err(fail(
                    ProbeErrorKind::Protocol,
                    format!(
                        "two rows with the labels {}; group by every label column",
                        labels::render(&labels)
                    ),
                ));
            }
            out.push((labels, value));
        }
        Ok(out)
    }

    /// Runs `sql` and reads the first column of the first row as a number.
    ///
    /// The simple query protocol returns every value as text, so any numeric type
    /// (int, float, numeric) and booleans (as 1/0) convert the same way.
    async fn scalar(&self, client: &Client, sql: &str, name: &str) -> Result<f64, ProbeError> {
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| self.query_error(name, &e))?;
        let Some(row) = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        }) else {
            return Err(ProbeError::new(
                ProbeErrorKind::Protocol,
                format!("query {name} on {}: returned no row", self.target),
            ));
        };
        let text = row.try_get(0).map_err(|e| self.query_error(name, &e))?;
        let Some(text) = text else {
            return Err(ProbeError::new(
                ProbeErrorKind::Protocol,
                format!("query {name} on {}: returned null", self.target),
            ));
        };
        parse_number(text).ok_or_else(|| {
            ProbeError::new(
                ProbeErrorKind::BadBody,
                format!(
                    "query {name} on {}: {:?} is not a number",
                    self.target,
                    text.chars().take(64).collect::<String>()
                ),
            )
        })
    }

    async fn row_count(&self, client: &Client, sql: &str, name: &str) -> Result<f64, ProbeError> {
        let messages = client
            .simple_query(sql)
            .await
            .map_err(|e| self.query_error(name, &e))?;
        let rows = messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count();
        Ok(rows as f64)
    }

    fn query_error(&self, name: &str, err: &tokio_postgres::Error) -> ProbeError {
        let (kind, detail) = classify(err);
        // A statement cancelled by `statement_timeout` is the server saying "too slow".
        let kind = match err.code() {
            Some(code) if *code == tokio_postgres::error::SqlState::QUERY_CANCELED => {
                ProbeErrorKind::Timeout
            }
            _ => kind,
        };
        ProbeError::new(kind, format!("query {name} on {}: {detail}", self.target))
    }

    fn error(&self, action: &str, err: &tokio_postgres::Error) -> ProbeError {
        let (kind, detail) = classify(err);
        ProbeError::new(kind, format!("{action} {}: {detail}", self.target))
    }
}

impl Probe for PostgresProbe {
    async fn run(&self) -> Result<Values, ProbeError> {
        self.read().await.map(|r| r.values)
    }

    async fn read(&self) -> Result<Reading, ProbeError> {
        super::within(self.timeout, &self.target, self.probe()).await
    }
}

/// Maps a client error to a probe error kind and a message. Server errors (SQL errors,
/// authentication failures) are `protocol`; I/O errors are `connect`, or `timeout` when
/// the I/O timed out.
fn classify(err: &tokio_postgres::Error) -> (ProbeErrorKind, String) {
    if let Some(db) = err.as_db_error() {
        return (
            ProbeErrorKind::Protocol,
            format!("{} ({})", db.message(), db.code().code()),
        );
    }
    let mut source = err.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return (ProbeErrorKind::Timeout, chain(err));
            }
            return (ProbeErrorKind::Connect, chain(err));
        }
        source = e.source();
    }
    let kind = if err.is_closed() {
        ProbeErrorKind::Connect
    } else {
        ProbeErrorKind::Protocol
    };
    (kind, chain(err))
}

/// An error and its sources, `outer: inner: innermost`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let s = e.to_string();
        if !text.ends_with(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        source = e.source();
    }
    text
}

/// `postgres host:port/db` (several hosts joined by `,`), never the user or password.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                Host::Unix(path) => format!("{}:{port}", path.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_string()
    } else {
        hosts.join(",")
    };
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("postgres {hosts}/{db}")
}

fn parse_number(text: &str) -> Option<f64> {
    match text.trim() {
        "t" | "true" => Some(1.0),
        "f" | "false" => Some(0.0),
        other => other.parse::<f64>().ok().filter(|v| v.is_finite()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn probe(url: &str) -> PostgresProbe {
        let spec = PostgresCheck {
            url: Secret::new(url),
            queries: Vec::new(),
        };
        match PostgresProbe::new(&spec, Duration::from_secs(2)) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn target_names_host_port_and_database_only() {
        let p = probe("postgres://app:hunter2@db.internal:6432/orders");
        assert_eq!(p.target, "postgres db.internal:6432/orders");
        let p = probe("host=10.0.0.1 user=app password=hunter2");
        assert_eq!(p.target, "postgres 10.0.0.1:5432/app");
    }

    #[test]
    fn session_options_are_appended() {
        let p = probe("postgres://u@h/d?options=-c%20search_path%3Dx");
        assert_eq!(
            p.config.get_options(),
            Some("-c search_path=x -c statement_timeout=2000 -c default_transaction_read_only=on")
        );
    }

    #[test]
    fn numbers_parse_from_text() {
        assert_eq!(parse_number("42"), Some(42.0));
        assert_eq!(parse_number("12.50"), Some(12.5));
        assert_eq!(parse_number("t"), Some(1.0));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("NaN"), None);
    }
}
