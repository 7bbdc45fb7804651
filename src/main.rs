//! The `warden` command line: parse arguments, load the config, hand over to `app`.
//! Errors are printed with their whole chain; exit codes are documented per command.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use warden::clock::Clock;
use warden::config::Config;
use warden::engine::Status;
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
        } => {
            let Some(cfg) = load_or_report(&config) else {
                return ExitCode::from(1);
            };
            telemetry::init_logging(cfg.log.format, &cfg.log.level);
            let options = app::RunOptions {
                watch_config: !no_watch_config,
                dry_run,
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
/// Large renderings (`/metrics`, `/api/v1/status`) run on the blocking pool, so the worker
/// never stalls on them.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        builder.worker_threads(1);
    }
    Ok(builder.enable_all().thread_name("warden").build()?)
}

async fn notify_test(nc: &warden::notify::NotifierConfig) -> anyhow::Result<()> {
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

/// A table a person can read at 3 a.m.: rules first (they carry the verdict), then checks.
fn render_table(status: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let fmt_value = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_else(|| "-".into());
    if !status.rules.is_empty() {
        let _ = writeln!(out, "{:<32} {:<9} {:>12}  DETAIL", "RULE", "STATE", "VALUE");
        for r in &status.rules {
            let detail = [("warning", &r.warning), ("critical", &r.critical)]
                .iter()
                .filter_map(|(l, t)| t.as_ref().map(|t| format!("{l} {} {}", t.op, t.value)))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                out,
                "{:<32} {:<9} {:>12}  {} of {} ({})",
                r.name,
                r.state.as_str(),
                fmt_value(r.value),
                r.value_name,
                r.check,
                detail
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
    let _ = writeln!(out, "\noverall: {}", status.state.as_str());
    out
}
