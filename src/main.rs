//! The `warden` command line: parse arguments, load the config, hand over to `app`.
//! Errors are printed with their whole chain; exit codes are documented per command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use warden::clock::Clock;
use warden::config::Config;
use warden::engine::Status;
use warden::reload::DeployId;
use warden::{app, telemetry};

/// warden: a continuous health and SLO watchdog.
///
/// It polls HTTP endpoints, Redis, Postgres, TCP ports and TLS certificates on schedules,
/// evaluates warning and critical thresholds, and exports its own Prometheus metrics.
#[derive(Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: schedule every check, evaluate rules, serve /metrics and the API.
    ///
    /// Reloads the config on SIGHUP, on `POST /-/reload` and when a config file changes (a bad
    /// new config is reported and the running one stays). Stops gracefully on SIGTERM or
    /// SIGINT (in-flight probes get up to 10 s).
    Run {
        #[command(flatten)]
        config: ConfigArg,
        /// Do not reload when a config file changes (SIGHUP and POST /-/reload still do).
        #[arg(long)]
        no_watch_config: bool,
        /// Hooks record what they would run and run nothing (notifications are still sent).
        #[arg(long)]
        dry_run: bool,
        /// The deploy that new incidents name (`deploy` in pages, `WARDEN_DEPLOY` for hooks),
        /// until `POST /-/reload?deploy=ID` marks the next one: 1 to 128 printable ASCII
        /// characters. Without it, `WARDEN_DEPLOY` when set and not empty.
        #[arg(long, value_name = "ID", value_parser = DeployId::parse)]
        deploy: Option<DeployId>,
    },
    /// Send a test page through one notifier and report how the receiver answered.
    ///
    /// Sent once, directly (not through the outbox). Exit 0 when the receiver accepted it,
    /// 1 when it did not (the reason is printed), 2 when the config has no such notifier.
    NotifyTest {
        #[command(flatten)]
        config: ConfigArg,
        /// The `[[notifier]]` name.
        #[arg(long)]
        notifier: String,
    },
    /// Watch one URL without a config file; print each state change on the terminal.
    ///
    /// The URL is up while it answers with a 2xx within the timeout, critical otherwise.
    /// Stops on Ctrl-C (exit 0). `--print-config` prints the equivalent config file instead,
    /// the start of your own (`warden run -c` it).
    Watch {
        /// An http:// or https:// URL, e.g. https://my-app.example/health.
        url: String,
        /// Time between probes.
        #[arg(long, default_value = "10s")]
        interval: String,
        /// How long a probe may take (default: 5s, or the interval when shorter).
        #[arg(long)]
        timeout: Option<String>,
        /// Print the config file this command runs, and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Validate a config file and its includes; print every error as file:line:col.
    ///
    /// Exit 0 when valid, 1 otherwise. A valid config without checks is reported with a
    /// warning on stderr (`run` refuses it).
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run every check once, evaluate every rule on that one sample, print the states.
    ///
    /// Thresholds apply immediately (a `for` or `count` needs a running daemon). Exit codes
    /// follow Nagios: 0 ok, 1 warning, 2 critical, 3 unknown (the worst state wins; a check
    /// without rules counts as critical when its probe fails).
    Once {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Run a post-deploy validation window in the foreground and exit with its verdict.
    ///
    /// With `--url`, the window runs in that daemon (started through its API); without it,
    /// this command runs warden on the config itself for the window's length. Prints each
    /// mark as it is judged. Exit 0 passed, 2 failed (after the failure actions fired, or
    /// refused for want of error budget before anything moved), 3 inconclusive (no data,
    /// aborted, superseded), 1 for a usage, config or API error.
    Gate {
        #[command(flatten)]
        config: ConfigArg,
        /// The `[[window]]` name.
        #[arg(long)]
        window: String,
        /// The deploy's id (`deploy` label of the window's pages, `WARDEN_DEPLOY` for hooks).
        #[arg(long, value_name = "ID", value_parser = DeployId::parse)]
        deploy: DeployId,
        /// The deploy's version (`$version` in the window's expressions).
        #[arg(long)]
        version: Option<String>,
        /// A label for the window's expressions (`$name`) and pages: name=value, repeatable.
        #[arg(long = "label", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// End a running window of the same service instead of being refused.
        #[arg(long)]
        supersede: bool,
        /// For this run only: what a mark without data does (fail, pass, inconclusive).
        #[arg(long, value_name = "POLICY")]
        no_data: Option<String>,
        /// For this run only: look once more this much later at a mark without data.
        #[arg(long, value_name = "DURATION")]
        extend: Option<String>,
        /// A running daemon's base URL, e.g. http://127.0.0.1:9731 (token: WARDEN_TOKEN, else
        /// the config's).
        #[arg(long)]
        url: Option<String>,
    },
    /// Acknowledge a firing alert in a running daemon: its repeats and further on-call policy
    /// steps stop until it resolves or turns critical.
    ///
    /// ALERT is its dedup key or its name (`api-down`, `queue-depth{queue="a"}`). Exit 0
    /// acknowledged, 1 when the daemon refuses (no such firing alert) or cannot be reached.
    Ack {
        #[command(flatten)]
        config: ConfigArg,
        /// The daemon's base URL (default: the config's listen address).
        #[arg(long)]
        url: Option<String>,
        /// Who acknowledges (default: $USER).
        #[arg(long)]
        by: Option<String>,
        alert: String,
    },
    /// Silence alerts in a running daemon: their pages (and re-sends) are held back while
    /// the silence lasts; evaluation and resolves go on.
    Silence {
        #[command(flatten)]
        config: ConfigArg,
        /// The daemon's base URL (default: the config's listen address; token: WARDEN_TOKEN,
        /// else the config's).
        #[arg(long)]
        url: Option<String>,
        #[command(subcommand)]
        action: SilenceAction,
    },
    /// Talk to a running daemon's validation windows.
    Window {
        #[command(flatten)]
        config: ConfigArg,
        /// The daemon's base URL (default: the config's listen address).
        #[arg(long)]
        url: Option<String>,
        #[command(subcommand)]
        action: WindowAction,
    },
    /// Run every check (scrapes included) for `--rounds` rounds, then evaluate a PromQL
    /// expression over what they read and print the result.
    ///
    /// One round gives instant values; `rate` and other range functions need two samples,
    /// so ask for `--rounds 2` or more (rounds are the shortest check interval apart). Exit
    /// 0 with a result (possibly empty), 1 for a usage, config or expression error.
    Query {
        #[command(flatten)]
        config: ConfigArg,
        /// The expression, e.g. 'sum by (route) (rate(http_requests_total[1m]))'.
        expr: String,
        /// Evaluation time: unix seconds or RFC 3339 (default: after the last round).
        #[arg(long)]
        time: Option<String>,
        /// Rounds of probes before evaluating.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
        rounds: u32,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Subcommand)]
enum WindowAction {
    /// Every run the daemon keeps (running ones and the latest finished), newest first.
    List,
    /// One run as JSON: marks, each rule's value and level there, baseline, verdict, actions.
    Show { id: u64 },
    /// Abort a running run: no verdict, no actions.
    Abort { id: u64 },
}

#[derive(Subcommand)]
enum SilenceAction {
    /// Add a silence: every matcher must match an alert's labels (`rule="api-p95"`,
    /// `severity!="warning"`, `check=~"db.*"`, `service!~"test-.*"`; labels: alertname and
    /// rule (the rule's name), check, severity, the rule's and the series' labels).
    /// Prints its id.
    Add {
        /// One or more matchers.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long from its start (Prometheus duration, e.g. 2h; default 1h).
        #[arg(long, conflicts_with = "end")]
        duration: Option<String>,
        /// When it ends (RFC 3339).
        #[arg(long)]
        end: Option<String>,
        /// When it starts (RFC 3339; default now).
        #[arg(long)]
        start: Option<String>,
        /// Why (required).
        #[arg(long)]
        comment: String,
        /// Who (default: $USER).
        #[arg(long, env = "USER")]
        author: String,
    },
    /// The silences: active and pending ones (`--all`: expired ones too), newest first.
    List {
        #[arg(long)]
        all: bool,
        /// Print the daemon's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End silences now; the alerts they muted that still fire are paged.
    Expire {
        #[arg(required = true)]
        ids: Vec<u64>,
    },
}

/// `label=value`.
fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?}: expected name=value"))
}

/// `-c FILE`, shared by every command that reads a config.
#[derive(clap::Args)]
struct ConfigArg {
    /// The config file.
    #[arg(
        short,
        long,
        env = "WARDEN_CONFIG",
        default_value = "config/warden.toml"
    )]
    config: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig {
            config: ConfigArg { config },
        } => match app::load_config(&config, app::LOAD_TIMEOUT) {
            Ok(cfg) => {
                println!(
                    "{}: ok ({} checks, {} rules, {} notifiers, {} hooks, {} files; state {})",
                    config.display(),
                    cfg.checks.len(),
                    cfg.rules.len(),
                    cfg.alerting.notifiers.len(),
                    cfg.alerting.hooks.len(),
                    cfg.files.len(),
                    cfg.state.path.display()
                );
                if let Some(why) = app::nothing_to_do(&cfg) {
                    eprintln!("warning: {why}; `warden run` refuses to start on it");
                }
                for warning in cfg.warnings() {
                    eprintln!("warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(failure) => {
                report(&config, &failure);
                ExitCode::from(1)
            }
        },
        Command::Run {
            config: ConfigArg { config },
            no_watch_config,
            dry_run,
            deploy,
        } => {
            // An empty WARDEN_DEPLOY is unset, as `${VAR:-}` is in a config (a unit file's
            // `Environment=WARDEN_DEPLOY=` must not stop warden); a bad one is refused.
            let deploy = match deploy {
                Some(d) => Some(d),
                None => match std::env::var("WARDEN_DEPLOY") {
                    Ok(v) if !v.is_empty() => match DeployId::parse(&v) {
                        Ok(d) => Some(d),
                        Err(e) => {
                            eprintln!("warden: WARDEN_DEPLOY: {e}");
                            return ExitCode::from(2);
                        }
                    },
                    _ => None,
                },
            };
            let Some(cfg) = load_or_report(&config) else {
                return ExitCode::from(1);
            };
            telemetry::init_logging(cfg.log.format, &cfg.log.level);
            app::raise_descriptor_limit();
            let options = app::RunOptions {
                watch_config: !no_watch_config,
                dry_run,
                deploy,
            };
            let ran = runtime().and_then(|rt| {
                let ran = rt.block_on(run_daemon(cfg, options));
                // Every task that matters was awaited; a stuck config load is not waited for.
                app::shut_down(rt);
                ran
            });
            match ran {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "warden failed");
                    eprintln!("warden: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Watch {
            url,
            interval,
            timeout,
            print_config,
        } => watch(&url, &interval, timeout.as_deref(), print_config),
        Command::Gate {
            config: ConfigArg { config },
            window,
            deploy,
            version,
            labels,
            supersede,
            no_data,
            extend,
            url,
        } => {
            let start = warden::window::Start {
                window,
                deploy: deploy.into_string(),
                version,
                labels: labels.into_iter().collect(),
                supersede,
                overrides: warden::window::Overrides { no_data, extend },
            };
            gate(&config, start, url)
        }
        Command::Silence {
            config,
            url,
            action,
        } => silence_command(&config.config, url, action),
        Command::Window {
            config: ConfigArg { config },
            url,
            action,
        } => window_command(&config, url, action),
        Command::Ack {
            config: ConfigArg { config },
            url,
            by,
            alert,
        } => {
            let api = match api_for(&config, url) {
                Ok(api) => api,
                Err(code) => return ExitCode::from(code),
            };
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_else(|| "warden ack".into());
            match runtime().and_then(|rt| rt.block_on(api.ack(&alert, &by))) {
                Ok(Ok(v)) => {
                    println!(
                        "acknowledged {} (by {by})",
                        v["alert"].as_str().unwrap_or(&alert)
                    );
                    ExitCode::SUCCESS
                }
                Ok(Err(r)) => {
                    eprintln!("warden: {} ({})", r.message, r.status);
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("warden: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::NotifyTest {
            config: ConfigArg { config },
            notifier,
        } => {
            let Some(cfg) = load_or_report(&config) else {
                return ExitCode::from(1);
            };
            telemetry::init_logging(cfg.log.format, "warn");
            let Some(nc) = cfg.alerting.notifier(&notifier) else {
                let known: Vec<&str> = cfg
                    .alerting
                    .notifiers
                    .iter()
                    .map(|n| n.name.as_str())
                    .collect();
                eprintln!(
                    "warden: {} has no notifier {notifier:?}; configured: {}",
                    config.display(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                return ExitCode::from(2);
            };
            match runtime().and_then(|rt| rt.block_on(notify_test(nc))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("warden: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Query {
            config: ConfigArg { config },
            expr,
            time,
            rounds,
            format,
        } => {
            let query = match warden::promql::Query::parse(&expr) {
                Ok(q) => q,
                Err(e) => {
                    eprintln!("warden: invalid expression {expr:?}: {e}");
                    return ExitCode::from(1);
                }
            };
            let at = match time.as_deref().map(warden::query_api::parse_time) {
                None => None,
                Some(Ok(t)) => Some(t),
                Some(Err(e)) => {
                    eprintln!("warden: --time: {e}");
                    return ExitCode::from(1);
                }
            };
            let Some(cfg) = load_or_report(&config) else {
                return ExitCode::from(1);
            };
            telemetry::init_logging(cfg.log.format, "warn");
            let clock = Clock::system();
            let result =
                runtime().and_then(|rt| rt.block_on(app::query(&cfg, &clock, &query, at, rounds)));
            match result {
                Ok((t, value)) => {
                    match format {
                        Format::Json => println!("{}", render_query_json(t, &value)),
                        Format::Table => print!("{}", render_query_table(&value)),
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("warden: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Once {
            config: ConfigArg { config },
            format,
        } => {
            let Some(cfg) = load_or_report(&config) else {
                return ExitCode::from(3);
            };
            telemetry::init_logging(cfg.log.format, "warn");
            let clock = Clock::system();
            match runtime().and_then(|rt| rt.block_on(app::once(&cfg, &clock))) {
                Ok(status) => {
                    match format {
                        Format::Json => match serde_json::to_string_pretty(&status) {
                            Ok(s) => println!("{s}"),
                            Err(e) => eprintln!("warden: encoding status: {e}"),
                        },
                        Format::Table => print!("{}", render_table(&status)),
                    }
                    ExitCode::from(status.state.exit_code() as u8)
                }
                Err(e) => {
                    eprintln!("warden: {e:#}");
                    ExitCode::from(3)
                }
            }
        }
    }
}

/// `warden watch`: writes the one-URL config to a private temp file, loads it like any config
/// (so it is validated the same way), and prints each state change until Ctrl-C.
fn watch(url: &str, interval: &str, timeout: Option<&str>, print_config: bool) -> ExitCode {
    let spec = match warden::watch::WatchSpec::new(url, interval, timeout) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warden watch: {e}");
            return ExitCode::from(2);
        }
    };
    let text = spec.config_text();
    if print_config {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let path = std::env::temp_dir().join(format!(
        "warden-watch-{}-{:016x}.toml",
        std::process::id(),
        fastrand::u64(..)
    ));
    // create_new: never follow a link someone planted at that name in a shared /tmp.
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()));
    let loaded = written
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
        .and_then(|()| app::load_config(&path, app::LOAD_TIMEOUT).map_err(|e| e.to_string()));
    let _ = std::fs::remove_file(&path);
    let cfg = match loaded {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("warden watch: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(cfg.log.format, "warn");
    eprintln!(
        "warden: watching {} every {} (timeout {}); Ctrl-C stops",
        spec.url,
        warden::config::format_duration(spec.interval),
        warden::config::format_duration(spec.timeout)
    );
    let clock = Clock::system();
    let run = async {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            wait_for_stop_signal().await;
            stop.cancel();
        });
        app::watch(&cfg, &clock, &cancel, |t, error| {
            use std::io::Write;
            let at = clock.now().to_rfc3339();
            let line = warden::watch::change_line(&t, &at, error.as_deref());
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        })
        .await
    };
    match runtime().and_then(|rt| rt.block_on(run)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden watch: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn load_or_report(path: &std::path::Path) -> Option<Config> {
    match app::load_config(path, app::LOAD_TIMEOUT) {
        Ok(cfg) => Some(cfg),
        Err(failure) => {
            report(path, &failure);
            None
        }
    }
}

/// Prints why the config at `path` could not be loaded: every error as `file:line:col`, or
/// what stopped the loading.
fn report(path: &std::path::Path, failure: &app::LoadFailure) {
    match failure {
        app::LoadFailure::Invalid(diags) => eprintln!("{diags}"),
        other => eprintln!("warden: {}: {other}", path.display()),
    }
}

/// One worker thread unless `TOKIO_WORKER_THREADS` says otherwise. warden's work is many
/// small I/O-bound tasks; a second worker mostly adds cross-thread wake-ups (10,000 HTTP checks
/// every 10 s: 12.5% of a core with two workers, 7.9% with one; see docs/performance.md).
/// Large renderings (`/metrics`, `/api/v1/status`) run on the blocking pool, and the HTTP
/// surface on a thread of its own (`app::serve_on_own_thread`), so neither waits for this
/// worker nor stalls it.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    Ok(builder.enable_all().thread_name("warden").build()?)
}

async fn notify_test(nc: &warden::config::notifier::NotifierConfig) -> anyhow::Result<()> {
    use warden::alert::Delivery;
    let clock = Clock::system();
    let notifier = warden::notify::Notifier::new(nc, &clock).map_err(anyhow::Error::msg)?;
    let event = warden::notify::test_event(&nc.name, clock.now());
    let kind = nc.kind.as_str();
    match notifier.deliver(&event).await {
        Delivery::Ok => {
            println!(
                "notifier {:?} ({kind}): test page accepted (dedup key {})",
                nc.name, event.dedup_key
            );
            Ok(())
        }
        Delivery::Retryable { reason, .. } => anyhow::bail!(
            "notifier {:?} ({kind}): not delivered, the daemon would retry: {reason}",
            nc.name
        ),
        Delivery::Permanent { reason } => anyhow::bail!(
            "notifier {:?} ({kind}): rejected, the daemon would not retry: {reason}",
            nc.name
        ),
    }
}

async fn run_daemon(cfg: Config, options: app::RunOptions) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        signals.cancel();
    });
    app::run(cfg, options, Clock::system(), shutdown).await
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop warden with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "stop requested"),
        _ = int.recv() => tracing::info!(signal = "SIGINT", "stop requested"),
    }
}

/// A table a person can read at 3 a.m.: rules first (they carry the verdict), then checks,
/// then what was not run and why.
fn render_table(status: &Status) -> String {
    use std::fmt::Write;
    use warden::rule::TransitionReason;
    let mut out = String::new();
    let fmt_value = |v: Option<f64>| v.map(round_for_people).unwrap_or_else(|| "-".into());
    let error_of = |check: &str| {
        status
            .checks
            .iter()
            .find(|c| c.name == check)
            .and_then(|c| c.last_error.as_ref())
            .map(|e| format!("{}: {}", e.kind, e.message))
    };
    if !status.rules.is_empty() {
        let _ = writeln!(out, "{:<32} {:<9} {:>12}  DETAIL", "RULE", "STATE", "VALUE");
        for r in &status.rules {
            let detail = [("warning", &r.warning), ("critical", &r.critical)]
                .iter()
                .filter_map(|(l, t)| {
                    t.as_ref()
                        .map(|t| format!("{l} {} {}", t.op, round_for_people(t.value)))
                })
                .collect::<Vec<_>>()
                .join(", ");
            // Say when the level is the rule's policy for a failed probe or an absent value,
            // not a threshold the value crossed.
            let cause = match r.last_transition.as_ref().map(|t| t.reason) {
                Some(TransitionReason::ProbeFailed) => format!(
                    "; {} by on_error: the probe failed ({})",
                    r.state.as_str(),
                    error_of(&r.check).unwrap_or_else(|| "no detail".into())
                ),
                Some(TransitionReason::ValueMissing) => format!(
                    "; {} by on_missing: the check returned no {}",
                    r.state.as_str(),
                    r.value_name
                ),
                _ => String::new(),
            };
            // A rule reading labelled series: a line per series, or one saying it has none.
            let name = match &r.series {
                Some(labels) if labels.is_empty() => format!("{} (no series)", r.name),
                _ => r.title(),
            };
            let _ = writeln!(
                out,
                "{:<32} {:<9} {:>12}  {} of {} ({}){}",
                name,
                r.state.as_str(),
                fmt_value(r.value),
                r.value_name,
                r.check,
                detail,
                cause
            );
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "{:<32} {:<9} {:>12}  DETAIL",
        "CHECK", "STATE", "SECONDS"
    );
    for c in &status.checks {
        let state = match c.state {
            warden::engine::CheckState::Up => "up",
            warden::engine::CheckState::Down => "down",
            warden::engine::CheckState::Pending => "pending",
        };
        let detail = c
            .last_error
            .as_ref()
            .map(|e| format!("{}: {}", e.kind, e.message))
            .unwrap_or_else(|| c.kind.to_string());
        let _ = writeln!(
            out,
            "{:<32} {:<9} {:>12}  {}",
            c.name,
            state,
            c.duration_seconds
                .map(|d| format!("{d:.3}"))
                .unwrap_or_else(|| "-".into()),
            detail
        );
    }
    for s in &status.skipped {
        let rules = if s.rules.is_empty() {
            String::new()
        } else {
            format!(" (rules {})", s.rules.join(", "))
        };
        let _ = writeln!(
            out,
            "{:<32} {:<9} {:>12}  not run: {}{rules}",
            s.check, "skipped", "-", s.reason
        );
    }
    let _ = writeln!(out, "\noverall: {}", status.state.as_str());
    out
}

/// A value as a person reads it: whole numbers as they are, others to 4 significant digits
/// (`0.0784313725490196` prints `0.07843`), very small or large ones in exponent form.
fn round_for_people(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let magnitude = v.abs();
    if !(1e-4..1e15).contains(&magnitude) {
        return format!("{v:.3e}");
    }
    let digits = (3 - magnitude.log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.digits$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// `warden query --format table`: a line per series, `{labels} value`, sorted; a scalar alone.
fn render_query_table(value: &warden::promql::Value) -> String {
    use warden::promql::Value;
    let fmt = warden::query_api::format_value;
    match value {
        Value::Scalar(v) => format!("{}\n", fmt(*v)),
        Value::String(s) => format!("{s}\n"),
        Value::Vector(v) if v.is_empty() => "(no data)\n".into(),
        Value::Vector(v) => {
            let mut lines: Vec<String> = v
                .iter()
                .map(|s| format!("{} {}", series_name(&s.labels), fmt(s.value)))
                .collect();
            lines.sort();
            lines.iter().map(|l| format!("{l}\n")).collect()
        }
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                let points: Vec<String> = s
                    .points
                    .iter()
                    .map(|(t, v)| format!("{} @{}", fmt(*v), *t as f64 / 1000.0))
                    .collect();
                format!("{} {}\n", series_name(&s.labels), points.join(" "))
            })
            .collect(),
    }
}

/// `name{labels}` as Prometheus prints a series.
fn series_name(labels: &warden::labels::Labels) -> String {
    let mut labels = labels.clone();
    let name = labels.remove("__name__").unwrap_or_default();
    let rest = warden::labels::render(&labels);
    if name.is_empty() && rest.is_empty() {
        "{}".into()
    } else {
        format!("{name}{rest}")
    }
}

/// `warden query --format json`: the `data` of Prometheus' query API answer.
fn render_query_json(t: i64, value: &warden::promql::Value) -> String {
    serde_json::to_string_pretty(&warden::query_api::value_json(t, value)).unwrap_or_default()
}

/// The daemon's base URL and token for a client command: `--url`, else the config's listen
/// address; `WARDEN_TOKEN`, else the config's token.
fn api_for(config: &std::path::Path, url: Option<String>) -> Result<warden::gate::Api, u8> {
    let loaded = app::load_config(config, app::LOAD_TIMEOUT);
    let base = match (url, &loaded) {
        (Some(u), _) => u,
        (None, Ok(cfg)) => base_url(cfg.server.listen),
        (None, Err(failure)) => {
            report(config, failure);
            return Err(warden::gate::USAGE);
        }
    };
    let token = std::env::var("WARDEN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| {
            loaded
                .ok()
                .and_then(|c| c.server.token.map(|t| t.expose().to_string()))
        });
    warden::gate::Api::new(&base, token).map_err(|e| {
        eprintln!("warden: {e:#}");
        warden::gate::USAGE
    })
}

/// `http://ADDR` for a listen address (an unspecified one is reached on loopback).
fn base_url(listen: std::net::SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, listen.port()))
}

fn window_command(config: &std::path::Path, url: Option<String>, action: WindowAction) -> ExitCode {
    let api = match api_for(config, url) {
        Ok(api) => api,
        Err(code) => return ExitCode::from(code),
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(async {
            match action {
                WindowAction::List => api.list().await,
                WindowAction::Show { id } => api.run(id).await,
                WindowAction::Abort { id } => api.abort(id).await,
            }
        })
    });
    match result {
        Ok(Ok(value)) => {
            if matches!(action, WindowAction::List) {
                print!("{}", warden::gate::render_list(&value));
            } else {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Ok(Err(refusal)) => {
            eprintln!("warden: {} ({})", refusal.message, refusal.status);
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn silence_command(
    config: &std::path::Path,
    url: Option<String>,
    action: SilenceAction,
) -> ExitCode {
    let api = match api_for(config, url) {
        Ok(api) => api,
        Err(code) => return ExitCode::from(code),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("warden: {e:#}");
            return ExitCode::from(1);
        }
    };
    let outcome: anyhow::Result<Result<String, warden::gate::Refusal>> = rt.block_on(async {
        match action {
            SilenceAction::Add {
                matchers,
                duration,
                end,
                start,
                comment,
                author,
            } => {
                // Without --end or --duration: an hour, as amtool's default.
                let duration = match end {
                    Some(_) => None,
                    None => Some(duration.unwrap_or_else(|| "1h".into())),
                };
                let request = serde_json::to_value(warden::actions::SilenceRequest {
                    matchers,
                    starts_at: start,
                    ends_at: end,
                    duration,
                    created_by: author,
                    comment,
                })?;
                Ok(api.add_silence(request).await?.map(|s| {
                    format!(
                        "silence {} added, {} until {}\n",
                        s["id"].as_u64().unwrap_or_default(),
                        s["state"].as_str().unwrap_or_default(),
                        s["ends_at"].as_str().unwrap_or_default()
                    )
                }))
            }
            SilenceAction::List { all, json } => Ok(api.silences().await?.map(|list| {
                if json {
                    format!(
                        "{}\n",
                        serde_json::to_string_pretty(&list).unwrap_or_default()
                    )
                } else {
                    warden::gate::render_silences(&list, all)
                }
            })),
            SilenceAction::Expire { ids } => {
                let mut out = String::new();
                for id in ids {
                    match api.expire_silence(id).await? {
                        Ok(_) => out.push_str(&format!("silence {id} expired\n")),
                        Err(r) => return Ok(Err(r)),
                    }
                }
                Ok(Ok(out))
            }
        }
    });
    match outcome {
        Ok(Ok(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Err(refusal)) => {
            eprintln!("warden: {} ({})", refusal.message, refusal.status);
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("warden: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `warden gate`: against `--url`, or a warden run here for the window.
fn gate(config: &std::path::Path, start: warden::window::Start, url: Option<String>) -> ExitCode {
    use std::io::IsTerminal as _;
    let tty = std::io::stdout().is_terminal();
    if url.is_some() {
        let api = match api_for(config, url) {
            Ok(api) => api,
            Err(code) => return ExitCode::from(code),
        };
        let code = runtime().and_then(|rt| {
            rt.block_on(warden::gate::gate(
                &api,
                &start,
                &mut std::io::stdout(),
                tty,
            ))
        });
        return match code {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("warden gate: {e:#}");
                ExitCode::from(warden::gate::USAGE)
            }
        };
    }
    let Some(cfg) = load_or_report(config) else {
        return ExitCode::from(warden::gate::USAGE);
    };
    telemetry::init_logging(cfg.log.format, "warn");
    let Some(window) = cfg.window(&start.window) else {
        eprintln!(
            "warden gate: {} has no [[window]] named {:?}",
            config.display(),
            start.window
        );
        return ExitCode::from(warden::gate::USAGE);
    };
    if !window.baseline.is_empty() {
        eprintln!(
            "warden gate: window {:?} takes a baseline from the data before the deploy, which a \
             warden started now does not have: run it in the daemon that watches the service \
             (--url)",
            start.window
        );
        return ExitCode::from(warden::gate::USAGE);
    }
    // A run left running by a gate killed mid-window (a CI timeout) ends superseded, without
    // actions, rather than refuse this deploy's start.
    let start = warden::window::Start {
        supersede: true,
        ..start
    };
    let base = base_url(cfg.server.listen);
    let token = cfg.server.token.as_ref().map(|t| t.expose().to_string());
    let deploy = DeployId::parse(&start.deploy).ok();
    let result = runtime().and_then(|rt| {
        let out = rt.block_on(async move {
            let shutdown = CancellationToken::new();
            let options = app::RunOptions {
                watch_config: false,
                dry_run: false,
                deploy,
            };
            let mut daemon = tokio::spawn(app::run(cfg, options, Clock::system(), shutdown.clone()));
            let api = warden::gate::Api::new(&base, token)?;
            // Ready within a minute, or the daemon's own error.
            let ready = async {
                let client = reqwest::Client::new();
                for _ in 0..600 {
                    let ok = client
                        .get(format!("{base}/readyz"))
                        .timeout(std::time::Duration::from_secs(2))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    if ok {
                        return true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                false
            };
            tokio::select! {
                ended = &mut daemon => {
                    let e = match ended {
                        Ok(Err(e)) => e,
                        Ok(Ok(())) => anyhow::anyhow!("warden stopped before it was ready"),
                        Err(e) => anyhow::anyhow!("warden panicked: {e}"),
                    };
                    return Err(e.context("starting warden for the window (is a daemon running on this config? then pass --url)"));
                }
                ready = ready => if !ready {
                    shutdown.cancel();
                    let _ = daemon.await;
                    anyhow::bail!("warden was not ready within 60 s");
                }
            }
            let code = warden::gate::gate(&api, &start, &mut std::io::stdout(), tty).await;
            // The pages and the success message the verdict queued go out before warden stops.
            if !warden::gate::drain(&base, std::time::Duration::from_secs(30)).await {
                eprintln!("warden gate: notifications still pending after 30 s; they stay in the state file for the next start");
            }
            shutdown.cancel();
            let _ = daemon.await;
            code
        });
        app::shut_down(rt);
        out
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("warden gate: {e:#}");
            ExitCode::from(warden::gate::USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::round_for_people;

    #[test]
    fn values_are_rounded_for_people() {
        for (v, shown) in [
            (0.0784313725490196, "0.07843"),
            (0.5, "0.5"),
            (1.5, "1.5"),
            (12.345678, "12.35"),
            (1234.5678, "1235"),
            (3.0, "3"),
            (0.0, "0"),
            (-0.25, "-0.25"),
            (0.00001234, "1.234e-5"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(round_for_people(v), shown, "{v}");
        }
    }
}
