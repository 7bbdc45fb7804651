//! `warden gate`, `warden window` and `warden silence`: a client of a running daemon's window
//! and silence APIs.
//!
//! `gate` starts a validation window (`POST /api/v1/windows`), then follows its run (`GET
//! /api/v1/windows/ID`, once a second), printing each timeline entry as a line a CI log reads
//! well (and, on a terminal, a progress line that says what it waits for), until the run
//! ends. A failed run is followed until its actions are done (the rollback hook ran), so the
//! exit comes after them. Exit codes: [`PASSED`] 0, [`FAILED`] 2, [`INCONCLUSIVE`] 3 (also an
//! aborted or superseded run: no verdict), [`USAGE`] 1 (a usage, config or API error).

use std::io::Write;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use serde_json::Value;

use crate::window::Start;

pub const PASSED: u8 = 0;
pub const USAGE: u8 = 1;
pub const FAILED: u8 = 2;
pub const INCONCLUSIVE: u8 = 3;

/// How often a run is looked at.
const POLL: Duration = Duration::from_secs(1);
/// How long a failed run's actions (the rollback) are waited for at most.
const ACTIONS_WAIT: Duration = Duration::from_secs(15 * 60);
/// One API call's bound.
const CALL_TIMEOUT: Duration = Duration::from_secs(40);

/// A daemon's API.
pub struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// An API answer that is not a success: its status and message.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Api {
    /// `base`: `http://127.0.0.1:9731`; `token`: the bearer token for the POSTs.
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Api> {
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the HTTP client")?;
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            client,
        })
    }

    async fn call(
        &self,
        post: bool,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Result<Value, Refusal>> {
        let url = format!("{}{path}", self.base);
        let mut req = if post {
            self.client.post(&url)
        } else {
            self.client.get(&url)
        };
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach warden at {}", self.base))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            Ok(Ok(value))
        } else {
            let message = value["error"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| value.to_string());
            Ok(Err(Refusal { status, message }))
        }
    }

    pub async fn start(&self, start: &Start) -> anyhow::Result<Result<Value, Refusal>> {
        let body = serde_json::to_value(start)?;
        self.call(true, "/api/v1/windows", Some(body)).await
    }

    pub async fn run(&self, id: u64) -> anyhow::Result<Result<Value, Refusal>> {
        self.call(false, &format!("/api/v1/windows/{id}"), None)
            .await
    }

    pub async fn list(&self) -> anyhow::Result<Result<Value, Refusal>> {
        self.call(false, "/api/v1/windows", None).await
    }

    /// Acknowledges a firing alert (its dedup key or name) as `by`.
    pub async fn ack(&self, key: &str, by: &str) -> anyhow::Result<Result<Value, Refusal>> {
        let path = format!(
            "/api/v1/alerts/{}/ack?by={}",
            crate::alert::percent_encode(key),
            crate::alert::percent_encode(by)
        );
        self.call(true, &path, None).await
    }

    pub async fn abort(&self, id: u64) -> anyhow::Result<Result<Value, Refusal>> {
        self.call(true, &format!("/api/v1/windows/{id}/abort"), None)
            .await
    }

    /// `POST /api/v1/silences` with an `actions::SilenceRequest`.
    pub async fn add_silence(&self, request: Value) -> anyhow::Result<Result<Value, Refusal>> {
        self.call(true, "/api/v1/silences", Some(request)).await
    }

    pub async fn silences(&self) -> anyhow::Result<Result<Value, Refusal>> {
        self.call(false, "/api/v1/silences", None).await
    }

    pub async fn expire_silence(&self, id: u64) -> anyhow::Result<Result<Value, Refusal>> {
        self.call(true, &format!("/api/v1/silences/{id}/expire"), None)
            .await
    }
}

/// Starts `start` and follows it to its end; the exit code. `tty`: draw a progress line.
pub async fn gate(api: &Api, start: &Start, out: &mut dyn Write, tty: bool) -> anyhow::Result<u8> {
    let run = match api.start(start).await? {
        Ok(run) => run,
        Err(r) => {
            writeln!(
                out,
                "warden gate: window {} not started: {}",
                start.window, r.message
            )?;
            // Refused for want of error budget: the gate's verdict, before any traffic moves.
            return Ok(if r.status == 412 { FAILED } else { USAGE });
        }
    };
    let id = run["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("the daemon's answer has no run id: {run}"))?;
    writeln!(
        out,
        "warden gate: window {} run {id} started for deploy {}{}",
        start.window,
        start.deploy,
        run["ends"]
            .as_str()
            .map(|e| format!(", ends {e}"))
            .unwrap_or_default()
    )?;
    follow(api, id, out, tty).await
}

/// Follows run `id` to its end (and a failed run's actions to theirs); the exit code.
pub async fn follow(api: &Api, id: u64, out: &mut dyn Write, tty: bool) -> anyhow::Result<u8> {
    let mut printed = 0usize;
    let mut ended_at: Option<tokio::time::Instant> = None;
    let mut errors = 0u32;
    loop {
        let run = match api.run(id).await {
            Ok(Ok(run)) => {
                errors = 0;
                run
            }
            Ok(Err(r)) => anyhow::bail!("window run {id}: {}", r.message),
            // The daemon restarting mid-window: it resumes the run; keep asking (bounded).
            Err(e) if errors < 120 => {
                errors += 1;
                if errors == 1 {
                    writeln!(out, "warden gate: {e:#}; retrying")?;
                }
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let started = run["started_at"].as_i64().unwrap_or_default();
        let timeline = run["timeline"].as_array().cloned().unwrap_or_default();
        if tty && printed < timeline.len() {
            write!(out, "\r\x1b[2K")?;
        }
        for entry in timeline.iter().skip(printed) {
            let at = entry["at"].as_i64().unwrap_or(started);
            writeln!(
                out,
                "[+{}] {}",
                offset(at - started),
                entry["what"].as_str().unwrap_or_default()
            )?;
        }
        printed = timeline.len();
        let state = run["state"].as_str().unwrap_or_default().to_string();
        if state == "running" {
            if tty {
                let next = run["marks"]
                    .as_array()
                    .and_then(|m| m.iter().find(|m| m["verdict"].is_null()))
                    .map(|m| format!("waiting for mark {}", m["at"].as_str().unwrap_or("?")))
                    .unwrap_or_else(|| "waiting".into());
                write!(out, "\r\x1b[2K{next}…")?;
                out.flush()?;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let pending = run["actions"]["pending"].as_bool().unwrap_or(false);
        let since = *ended_at.get_or_insert_with(tokio::time::Instant::now);
        if state == "failed" && pending && since.elapsed() < ACTIONS_WAIT {
            if tty {
                write!(out, "\r\x1b[2Kwaiting for the failure actions…")?;
                out.flush()?;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        if tty {
            write!(out, "\r\x1b[2K")?;
        }
        let reason = run["reason"].as_str().unwrap_or_default();
        writeln!(out, "warden gate: window run {id} {state}: {reason}")?;
        if let Some(hooks) = run["actions"]["hooks"].as_object() {
            for (hook, note) in hooks {
                writeln!(
                    out,
                    "warden gate: hook {hook}: {}{}",
                    note["outcome"].as_str().unwrap_or("?"),
                    note["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                )?;
            }
        }
        if state == "failed" && pending {
            writeln!(
                out,
                "warden gate: the failure actions did not finish within {} min; see warden's log",
                ACTIONS_WAIT.as_secs() / 60
            )?;
        }
        return Ok(match state.as_str() {
            "passed" => PASSED,
            "failed" => FAILED,
            _ => INCONCLUSIVE,
        });
    }
}

/// Waits (at most `limit`) until warden at `base` has no notification pending in its outbox
/// (`warden_outbox_depth` all 0); whether it got there.
pub async fn drain(base: &str, limit: Duration) -> bool {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        let body = match client
            .get(format!("{base}/metrics"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(resp) => resp.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let pending: f64 = body
            .lines()
            .filter(|l| l.starts_with("warden_outbox_depth"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if !body.is_empty() && pending == 0.0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// `01:30:05` from milliseconds.
fn offset(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// `warden window list`: one line per run.
pub fn render_list(list: &Value) -> String {
    let mut out = String::new();
    let runs = list["windows"].as_array().cloned().unwrap_or_default();
    if runs.is_empty() {
        return "no window runs\n".into();
    }
    out.push_str(&format!(
        "{:<6} {:<20} {:<13} {:<24} {:<25} REASON\n",
        "ID", "WINDOW", "STATE", "DEPLOY", "STARTED"
    ));
    for r in runs {
        out.push_str(&format!(
            "{:<6} {:<20} {:<13} {:<24} {:<25} {}\n",
            r["id"].as_u64().unwrap_or_default(),
            r["window"].as_str().unwrap_or_default(),
            r["state"].as_str().unwrap_or_default(),
            r["deploy"].as_str().unwrap_or_default(),
            r["started"].as_str().unwrap_or_default(),
            r["reason"].as_str().unwrap_or_default()
        ));
    }
    out
}

/// `warden silence list`: one line per silence (`all`: expired ones too), newest first.
pub fn render_silences(list: &Value, all: bool) -> String {
    let silences: Vec<&Value> = list["silences"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|s| all || s["state"] != "expired")
                .collect()
        })
        .unwrap_or_default();
    if silences.is_empty() {
        return "no silences\n".into();
    }
    let mut out = format!(
        "{:<6} {:<8} {:<25} {:<12} {:<40} COMMENT\n",
        "ID", "STATE", "ENDS", "BY", "MATCHERS"
    );
    for s in silences {
        let matchers: Vec<&str> = s["matchers"]
            .as_array()
            .map(|m| m.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<6} {:<8} {:<25} {:<12} {:<40} {}\n",
            s["id"].as_u64().unwrap_or_default(),
            s["state"].as_str().unwrap_or_default(),
            s["ends_at"].as_str().unwrap_or_default(),
            s["created_by"].as_str().unwrap_or_default(),
            matchers.join(","),
            s["comment"].as_str().unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_as_clock_time() {
        assert_eq!(offset(0), "00:00:00");
        assert_eq!(offset(30 * 60_000 + 5_000), "00:30:05");
        assert_eq!(offset(25 * 3_600_000), "25:00:00");
        assert_eq!(offset(-5), "00:00:00");
    }
}
