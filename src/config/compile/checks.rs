//! Compiling `[[check]]`: the closed set of kinds ([`Kind`]), the keys each uses, one method
//! per kind, and an exec check's implicit status rule. [`compile`](super::compile) drives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{
    is_postgres_conninfo, split_host_port, Compiler, Defaults, KindKeys, Span,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_OUTPUT_BYTES, MAX_BODY_BYTES, MAX_OUTPUT_BYTES,
    MIN_INTERVAL, MIN_TIMEOUT,
};
use crate::config::checks::*;
use crate::config::model::*;
use crate::config::raw::*;
use crate::config::{format_duration, parse_assertion, parse_path};
use crate::secret::Secret;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Http,
    Tcp,
    Tls,
    Redis,
    Postgres,
    Exec,
    System,
}

const KINDS: [(&str, Kind); 7] = [
    ("http", Kind::Http),
    ("tcp", Kind::Tcp),
    ("tls", Kind::Tls),
    ("redis", Kind::Redis),
    ("postgres", Kind::Postgres),
    ("exec", Kind::Exec),
    ("system", Kind::System),
];

impl Kind {
    pub(super) fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(name, _)| name)
    }

    /// Value names every check of this kind has, before extracts, info fields and queries.
    fn builtin_values(self) -> Vec<String> {
        let url = Secret::new("");
        let kind = match self {
            Kind::Http => CheckKind::Http(HttpCheck {
                url: String::new(),
                method: String::new(),
                headers: Vec::new(),
                body: None,
                expect_status: Vec::new(),
                assertions: Vec::new(),
                extract: BTreeMap::new(),
                max_body_bytes: 0,
                tls_verify: true,
                ca_file: None,
                follow_redirects: false,
            }),
            Kind::Tcp => CheckKind::Tcp(TcpCheck {
                address: String::new(),
            }),
            Kind::Tls => CheckKind::Tls(TlsCheck {
                address: String::new(),
                server_name: String::new(),
                verify: true,
                ca_file: None,
            }),
            Kind::Redis => CheckKind::Redis(RedisCheck {
                url,
                info_fields: Vec::new(),
                ca_file: None,
            }),
            Kind::Postgres => CheckKind::Postgres(PostgresCheck {
                url,
                queries: Vec::new(),
            }),
            Kind::Exec => CheckKind::Exec(ExecCheck {
                program: ExecProgram::Shell(String::new()),
                env: Vec::new(),
                workdir: None,
                max_output_bytes: 0,
                status_rule: true,
            }),
            Kind::System => CheckKind::System(SystemCheck {
                scope: SystemScope::Auto,
                disk_path: None,
            }),
        };
        kind.value_names()
    }
}

const CHECK_KEYS: KindKeys<Kind> = KindKeys {
    plural: "checks",
    all: RawCheck::KEYS,
    using: kinds_using,
};

/// The kinds that use a `[[check]]` key; `None` for keys every kind has.
fn kinds_using(key: &str) -> Option<&'static [Kind]> {
    use Kind::*;
    match key {
        "url" => Some(&[Http, Redis, Postgres]),
        "method" | "headers" | "body" | "expect_status" | "assert" | "extract"
        | "max_body_bytes" | "tls_verify" | "follow_redirects" => Some(&[Http]),
        "ca_file" => Some(&[Http, Tls, Redis]),
        "address" => Some(&[Tcp, Tls]),
        "server_name" | "verify" => Some(&[Tls]),
        "info_fields" => Some(&[Redis]),
        "query" => Some(&[Postgres]),
        "command" | "shell" | "env" | "workdir" | "max_output_bytes" | "status_rule" => {
            Some(&[Exec])
        }
        "scope" | "disk_path" => Some(&[System]),
        _ => None,
    }
}

impl Compiler<'_> {
    /// Returns the check's valid name (even when the rest is invalid), its kind, and the
    /// compiled check when it has no error.
    pub(super) fn check(
        &mut self,
        raw: &Spanned<RawCheck>,
        defaults: &Defaults,
    ) -> (Option<Spanned<String>>, Option<Kind>, Option<CheckConfig>) {
        let before = self.problems.len();
        let header = raw.span();
        let r = raw.get_ref();
        let name = self.name(r.name.as_ref(), &header, "check");
        let kind = self.kind(r.kind.as_ref(), &header, "check", &KINDS);
        self.kind_keys(
            &CHECK_KEYS,
            "check",
            kind.map(|k| (k, k.name())),
            &r.keys,
            &r.unknown,
        );

        let interval = match &r.interval {
            Some(v) => self.duration(v, "interval", MIN_INTERVAL),
            None => Some(defaults.interval),
        };
        let timeout = match &r.timeout {
            Some(v) => self.duration(v, "timeout", MIN_TIMEOUT),
            None => Some(defaults.timeout),
        };
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            if timeout > interval {
                let mut message = format!(
                    "timeout {} must not exceed interval {}",
                    format_duration(timeout),
                    format_duration(interval)
                );
                if r.timeout.is_none() {
                    message.push_str(" (the timeout comes from [defaults] or the built-in 10s)");
                }
                let span = r
                    .timeout
                    .as_ref()
                    .or(r.interval.as_ref())
                    .map_or(header.clone(), Spanned::span);
                self.error(span, message);
            }
        }
        let retry_interval = match (&r.retry_interval, interval) {
            (None, _) => Ok(None),
            (Some(v), interval) => match self.duration(v, "retry_interval", MIN_INTERVAL) {
                Some(d) if interval.is_some_and(|i| d >= i) => {
                    self.error(
                        v.span(),
                        format!(
                            "retry_interval {} must be shorter than interval {}: it re-checks a \
                             failing target sooner",
                            format_duration(d),
                            format_duration(interval.unwrap_or_default())
                        ),
                    );
                    Err(())
                }
                Some(d) => Ok(Some(d)),
                None => Err(()),
            },
        };
        let labels = self.labels(r.labels.as_ref());

        let compiled = match kind {
            Some(Kind::Http) => self.http(r, &header).map(CheckKind::Http),
            Some(Kind::Tcp) => self.tcp(r, &header).map(CheckKind::Tcp),
            Some(Kind::Tls) => self.tls(r, &header).map(CheckKind::Tls),
            Some(Kind::Redis) => self.redis(r, &header).map(CheckKind::Redis),
            Some(Kind::Postgres) => self.postgres(r, &header).map(CheckKind::Postgres),
            Some(Kind::Exec) => self.exec(r, &header).map(CheckKind::Exec),
            Some(Kind::System) => self.system(r).map(CheckKind::System),
            None => None,
        };

        let config = match (&name, interval, timeout, retry_interval, labels, compiled) {
            (Some(name), Some(interval), Some(timeout), Ok(retry), Some(labels), Some(kind))
                if self.problems.len() == before =>
            {
                Some(CheckConfig {
                    name: name.get_ref().clone(),
                    interval,
                    timeout,
                    // `attempts` is known once the rules are: see `retry_attempts`.
                    retry: retry.map(|interval| Retry {
                        interval,
                        attempts: 1,
                    }),
                    labels,
                    kind,
                })
            }
            _ => None,
        };
        (name, kind, config)
    }

    fn required<'r>(
        &mut self,
        v: &'r Option<Spanned<String>>,
        header: &Span,
        key: &str,
        kind: Kind,
    ) -> Option<&'r Spanned<String>> {
        if v.is_none() {
            self.missing(
                header.clone(),
                key,
                &format!("[[check]] of kind {:?}", kind.name()),
            );
        }
        v.as_ref()
    }

    fn http(&mut self, r: &RawCheck, header: &Span) -> Option<HttpCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", Kind::Http)
            .and_then(|v| self.http_url(v, "url"));
        let method = match &r.method {
            None => Some("GET".to_string()),
            Some(v) => self.text(v).map(|text| {
                if text.is_empty() || !text.chars().all(|c| c.is_ascii_alphabetic()) {
                    self.error(
                        v.span(),
                        format!("invalid method {text:?}: expected an HTTP method such as GET, HEAD or POST"),
                    );
                }
                text.to_ascii_uppercase()
            }),
        };
        let headers = self.headers(r.headers.as_ref());
        let body = r.body.as_ref().and_then(|v| self.text(v));
        let mut expect_status = Vec::new();
        for v in r.expect_status.iter().flat_map(|l| l.get_ref().iter()) {
            if let Some(code) = self.int(v, "expect_status", 100, 599) {
                expect_status.extend(u16::try_from(code).ok());
            }
        }
        let mut assertions = Vec::new();
        for v in r.assert.iter().flat_map(|l| l.get_ref().iter()) {
            if let Some(text) = self.text(v) {
                match parse_assertion(&text) {
                    Ok(a) => assertions.push(a),
                    Err(e) => self.error(v.span(), e),
                }
            }
        }
        let builtin = Kind::Http.builtin_values();
        let mut extract = BTreeMap::new();
        for (key, value) in r.extract.iter().flat_map(|m| m.get_ref().0.iter()) {
            let name = key.get_ref();
            if self.value_name(name, key.span(), "value name") && builtin.contains(name) {
                self.error(
                    key.span(),
                    format!(
                        "value name {name:?} is already a built-in value of http checks ({})",
                        builtin.join(", ")
                    ),
                );
            }
            if let Some(text) = self.text(value) {
                match parse_path(&text) {
                    Ok(path) => {
                        extract.insert(name.clone(), path);
                    }
                    Err(e) => self.error(value.span(), e),
                }
            }
        }
        let max_body_bytes = match &r.max_body_bytes {
            None => Some(DEFAULT_MAX_BODY_BYTES),
            Some(v) => self.int(v, "max_body_bytes", 1, MAX_BODY_BYTES),
        };
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let (url, method, max_body_bytes, ca_file) = (url?, method?, max_body_bytes?, ca_file?);
        (self.problems.len() == before).then(|| HttpCheck {
            url,
            method,
            headers,
            body,
            expect_status,
            assertions,
            extract,
            max_body_bytes: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            tls_verify: r.tls_verify.as_ref().is_none_or(|v| *v.get_ref()),
            ca_file,
            follow_redirects: r.follow_redirects.as_ref().is_some_and(|v| *v.get_ref()),
        })
    }

    /// A `host:port` address; returns it and its host (without IPv6 brackets).
    fn address(&mut self, v: &Spanned<String>) -> Option<(String, String)> {
        let text = self.text(v)?;
        match split_host_port(&text) {
            Some(host) => {
                let host = host.to_string();
                Some((text, host))
            }
            None => {
                self.error(
                    v.span(),
                    format!(r#"invalid address {text:?}: expected host:port with a numeric port, e.g. "127.0.0.1:5432""#),
                );
                None
            }
        }
    }

    fn tcp(&mut self, r: &RawCheck, header: &Span) -> Option<TcpCheck> {
        let v = self.required(&r.address, header, "address", Kind::Tcp)?;
        let (address, _) = self.address(v)?;
        Some(TcpCheck { address })
    }

    fn tls(&mut self, r: &RawCheck, header: &Span) -> Option<TlsCheck> {
        let address = self
            .required(&r.address, header, "address", Kind::Tls)
            .and_then(|v| self.address(v));
        let server_name = match &r.server_name {
            None => Some(None),
            Some(v) => self.text(v).and_then(|name| {
                if name.is_empty() || name.contains(char::is_whitespace) {
                    self.error(
                        v.span(),
                        format!(r#"invalid server_name {name:?}: expected a host name, e.g. "example.com""#),
                    );
                    None
                } else {
                    Some(Some(name))
                }
            }),
        };
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let ((address, host), server_name, ca_file) = (address?, server_name?, ca_file?);
        Some(TlsCheck {
            address,
            server_name: server_name.unwrap_or(host),
            verify: r.verify.as_ref().is_none_or(|v| *v.get_ref()),
            ca_file,
        })
    }

    fn redis(&mut self, r: &RawCheck, header: &Span) -> Option<RedisCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", Kind::Redis)
            .and_then(|v| {
                let text = self.text(v)?;
                let schemes = ["redis://", "rediss://", "redis+unix://", "unix://"];
                if !schemes.iter().any(|s| text.starts_with(s)) {
                    // The URL may hold a password: name the field, not the value.
                    self.error(v.span(), "redis url must start with redis:// or rediss://");
                }
                Some(Secret::new(text))
            });
        let builtin = Kind::Redis.builtin_values();
        let mut info_fields: Vec<String> = Vec::new();
        for v in r.info_fields.iter().flat_map(|l| l.get_ref().iter()) {
            let name = v.get_ref();
            if !self.value_name(name, v.span(), "info field") {
                continue;
            }
            if builtin.contains(name) {
                self.error(
                    v.span(),
                    format!("info field {name:?} is already a built-in value of redis checks"),
                );
            } else if info_fields.contains(name) {
                self.error(v.span(), format!("info field {name:?} is listed twice"));
            } else {
                info_fields.push(name.clone());
            }
        }
        let ca_file = self.ca_file(r.ca_file.as_ref());
        let (url, ca_file) = (url?, ca_file?);
        (self.problems.len() == before).then_some(RedisCheck {
            url,
            info_fields,
            ca_file,
        })
    }

    fn postgres(&mut self, r: &RawCheck, header: &Span) -> Option<PostgresCheck> {
        let before = self.problems.len();
        let url = self
            .required(&r.url, header, "url", Kind::Postgres)
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
        let builtin = Kind::Postgres.builtin_values();
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

    fn exec(&mut self, r: &RawCheck, header: &Span) -> Option<ExecCheck> {
        let before = self.problems.len();
        let program = self.program(
            r.command.as_ref(),
            r.shell.as_ref(),
            r.key_span("shell"),
            header,
            r#"[[check]] of kind "exec", e.g. command = ["check_tcp", "-H", "127.0.0.1", "-p", "6379"]"#,
        );
        let env = self.env(r.env.as_ref());
        let workdir = self.workdir(r.workdir.as_ref());
        let max_output_bytes = match &r.max_output_bytes {
            None => Some(DEFAULT_MAX_OUTPUT_BYTES),
            Some(v) => self.int(v, "max_output_bytes", 1, MAX_OUTPUT_BYTES),
        };
        let (program, workdir, max_output_bytes) = (program?, workdir?, max_output_bytes?);
        (self.problems.len() == before).then(|| ExecCheck {
            program,
            env,
            workdir,
            max_output_bytes: usize::try_from(max_output_bytes).unwrap_or(usize::MAX),
            status_rule: r.status_rule.as_ref().is_none_or(|v| *v.get_ref()),
        })
    }

    fn system(&mut self, r: &RawCheck) -> Option<SystemCheck> {
        let scope = match &r.scope {
            None => Some(SystemScope::Auto),
            Some(v) => self.one_of(
                v,
                "scope",
                &[
                    ("auto", SystemScope::Auto),
                    ("host", SystemScope::Host),
                    ("cgroup", SystemScope::Cgroup),
                ],
            ),
        };
        let disk_path = match &r.disk_path {
            None => Some(None),
            Some(v) => self.text(v).and_then(|text| {
                if Path::new(&text).is_absolute() {
                    Some(Some(PathBuf::from(text)))
                } else {
                    self.error(
                        v.span(),
                        format!(r#"disk_path must be an absolute path, e.g. "/" or "/var/lib/warden", got {text:?}"#),
                    );
                    None
                }
            }),
        };
        Some(SystemCheck {
            scope: scope?,
            disk_path: disk_path?,
        })
    }
}

/// The implicit rule of an exec check with `status_rule`, named like the check: the plugin's
/// exit status read the way Nagios reads it (1 warning, 2 critical, a failed run unknown).
pub(super) fn status_rule(check: &CheckConfig) -> Option<RuleConfig> {
    let CheckKind::Exec(exec) = &check.kind else {
        return None;
    };
    if !exec.status_rule {
        return None;
    }
    let level = |threshold| LevelConfig {
        when: Condition {
            op: CmpOp::Ge,
            threshold,
        },
        clear: None,
        trigger: Trigger::Immediate,
        recover: Recovery::default(),
    };
    Some(RuleConfig {
        name: check.name.clone(),
        check: check.name.clone(),
        value: "status".into(),
        description: Some(format!("exit status of {}", exec.program_name())),
        labels: check.labels.clone(),
        warning: Some(level(1.0)),
        critical: Some(level(2.0)),
        on_error: MissingPolicy::Unknown,
        on_missing: MissingPolicy::Unknown,
        min_samples: 1,
        flapping: None,
        series: None,
    })
}
