//! `kind = "postgres"`: connections against `max_connections`, and named queries, each a
//! number, a row count or labelled series.

use super::{builtin_values, KindSpec};
use crate::config::compile::{Compiler, Span};
use crate::config::raw::{RawCheck, RawQuery};
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

impl Compiler<'_> {
    pub(in crate::config) fn postgres(
        &mut self,
        r: &RawCheck,
        header: &Span,
    ) -> Option<PostgresCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", PostgresCheck::NAME)
            .and_then(|v| {
                let text = self.text(v)?;
                if !is_postgres_conninfo(&text) {
                    // The URL may hold a password: name the field, not the value.
                    self.error(
                        v.span(),
                        r#"postgres url must be a postgres:// URL or a key=value connection string, e.g. "host=127.0.0.1 user=postgres""#,
                    );
                }
                Some(Secret::new(text))
            });
        let builtin = builtin_values::<PostgresCheck>();
        let mut queries: Vec<NamedQuery> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for q in r.query.iter().flat_map(|l| l.get_ref().iter()) {
            let qr = q.get_ref();
            let section = "[[check.query]]";
            self.unknown_keys(&qr.unknown, "in [[check.query]]", RawQuery::KEYS);
            let name = match &qr.name {
                None => {
                    self.missing(q.span(), "name", section);
                    None
                }
                Some(v) => {
                    let name = v.get_ref();
                    if !self.value_name(name, v.span(), "query name") {
                        None
                    } else if builtin.contains(name) {
                        self.error(
                            v.span(),
                            format!(
                                "query name {name:?} is already a built-in value of postgres checks ({})",
                                builtin.join(", ")
                            ),
                        );
                        None
                    } else if names.contains(name) {
                        self.error(
                            v.span(),
                            format!("query name {name:?} is used twice in this check"),
                        );
                        None
                    } else {
                        names.push(name.clone());
                        Some(name.clone())
                    }
                }
            };
            let sql = match &qr.sql {
                None => {
                    self.missing(q.span(), "sql", section);
                    None
                }
                Some(v) => self.text(v).and_then(|sql| {
                    if sql.trim().is_empty() {
                        self.error(v.span(), "query sql must not be empty");
                        None
                    } else {
                        Some(sql)
                    }
                }),
            };
            let result = match &qr.result {
                None => Some(QueryResult::Scalar),
                Some(v) => self.one_of(
                    v,
                    "query result",
                    &[
                        ("scalar", QueryResult::Scalar),
                        ("rows", QueryResult::Rows),
                        ("series", QueryResult::Series),
                    ],
                ),
            };
            if let (Some(name), Some(sql), Some(result)) = (name, sql, result) {
                queries.push(NamedQuery { name, sql, result });
            }
        }
        let url = url?;
        (self.problems.len() == before).then_some(PostgresCheck { url, queries })
    }
}

/// `postgres://...`, `postgresql://...`, or libpq `key=value` pairs.
fn is_postgres_conninfo(s: &str) -> bool {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return true;
    }
    // libpq values may be quoted and hold spaces: only the first pair is checked.
    s.split_whitespace().next().is_some_and(|first| {
        first.split_once('=').is_some_and(|(key, _)| {
            !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_conninfo() {
        for (s, ok) in [
            ("postgres://postgres@127.0.0.1:5432/app", true),
            ("postgresql://x", true),
            ("host=127.0.0.1 port=5432 user=postgres", true),
            ("", false),
            ("mysql://x", false),
            ("just words", false),
        ] {
            assert_eq!(is_postgres_conninfo(s), ok, "{s:?}");
        }
    }
}
