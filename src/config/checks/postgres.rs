//! `kind = "postgres"`: connections against `max_connections`, and named queries, each a
//! number, a row count or labelled series.

use super::KindSpec;
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq)]
pub struct PostgresCheck {
    /// libpq-style URL or key/value connection string.
    pub url: Secret,
    pub queries: Vec<NamedQuery>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamedQuery {
    /// Also the name of the value it produces.
    pub name: String,
    pub sql: String,
    pub result: QueryResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryResult {
    /// The first column of the first row, as a number (a query returning no row fails).
    Scalar,
    /// The number of rows returned.
    Rows,
    /// One series per row: every column but the last is a label (named by its column), the
    /// last is the value. At most [`MAX_SERIES_ROWS`] rows.
    Series,
}

/// The most rows a `result = "series"` query may return: more fail the probe (a query
/// grouping by an unbounded column would otherwise make a series, an alert and a page each).
pub const MAX_SERIES_ROWS: usize = 1000;

impl KindSpec for PostgresCheck {
    const NAME: &'static str = "postgres";
    const KEYS: &'static [&'static str] = &["url", "query"];
    const VALUES: &'static [&'static str] =
        &["connections", "max_connections", "connections_ratio"];

    fn more_values(&self) -> Vec<String> {
        self.queries.iter().map(|q| q.name.clone()).collect()
    }

    fn series_values(&self) -> Vec<String> {
        self.queries
            .iter()
            .filter(|q| q.result == QueryResult::Series)
            .map(|q| q.name.clone())
            .collect()
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.url]
    }
}
