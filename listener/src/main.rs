//! canon-listener's entry point: reads the environment once, sets up JSON logs, then serves
//! (default) or registers webhooks (`register-hooks`).

use std::process::ExitCode;

use canon_listener::app;
use canon_listener::config::{unknown_variables, variables_help, Purpose, Settings};
use canon_listener::register::{self, HookResult};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Receives tag webhooks, journals them durably, syncs mirrors and starts Drone builds.
///
/// Configured only through CANON_* environment variables, listed below (and in
/// docs/reference/listener.md).
#[derive(Parser)]
#[command(version = canon_shared::build_info::VERSION_LINE, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks (the default).
    #[command(
        after_help = "Example:\n  CANON_ENROLLMENT=/etc/canon/enrollment.yml CANON_WEBHOOK_SECRETS=… CANON_DRONE_SERVER=https://drone.example.org CANON_DRONE_TOKEN=… CANON_DRONE_REPO=ops/canon canon-listener serve"
    )]
    Serve,
    /// Create, find or repair the webhook on every enrolled upstream repository. Exit 1 when one
    /// failed.
    #[command(
        after_help = "Example:\n  CANON_ENROLLMENT=/etc/canon/enrollment.yml CANON_WEBHOOK_SECRETS=… CANON_FORGE_URL=https://git.coopcloud.tech CANON_FORGE_TOKEN=… CANON_PUBLIC_URL=https://canon.example.org canon-listener register-hooks"
    )]
    RegisterHooks,
    /// Check the settings offline before deploying them: every variable, the enrollment, the
    /// SSH key file (closed to other users) and the state dir (a folder this user can write).
    /// Every problem at once with exit 2, or `ok` with exit 0. Starts nothing.
    #[command(after_help = "Example:
  env $(cat /etc/canon/listener.env) canon-listener check")]
    Check,
}

/// What `--help` says after the subcommands: every variable, the exit codes and an example.
fn after_help() -> String {
    format!(
        "{}\nExit codes:\n  0  stopped cleanly on SIGTERM or Ctrl-C; register-hooks: every hook is in place; check: ok\n  1  a failure while running: the address cannot be bound, the journal cannot be opened; register-hooks: a hook failed\n  2  bad settings (every problem is listed) or bad usage; check: the problems it found\n\nExample:\n  CANON_ENROLLMENT=/etc/canon/enrollment.yml CANON_WEBHOOK_SECRETS=… CANON_DRONE_SERVER=https://drone.example.org CANON_DRONE_TOKEN=… CANON_DRONE_REPO=ops/canon canon-listener",
        variables_help()
    )
}

/// Returns the process environment as it was started with, as pairs (variables that are not
/// UTF-8 are skipped: `std::env::vars` would panic on one).
fn environment() -> Vec<(String, String)> {
    canon_shared::process_env::variables()
}

fn report(e: &dyn std::error::Error) {
    canon_shared::error_chain::print("canon-listener", e);
}

fn main() -> ExitCode {
    // Before any thread starts: credentials leave the environment children inherit and
    // `/proc/<pid>/environ`; the settings read them from the copy kept in memory.
    canon_shared::process_env::protect();
    // SAFETY: umask only reads and sets this process's file creation mask; no thread runs yet.
    unsafe {
        let started_with = libc::umask(0o022);
        libc::umask(canon_shared::state::shared_umask(started_with as u32) as libc::mode_t);
    }
    // A reader that stops early (`register-hooks | head -1`) ends it as SIGPIPE would.
    canon_shared::console::finish(run())
}

/// Parses the command line and runs the command it names.
fn run() -> ExitCode {
    let parsed = Cli::command()
        .after_help(after_help())
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let purpose = match cli.command {
        Some(Command::RegisterHooks) => Purpose::RegisterHooks,
        Some(Command::Check) => return check(environment()),
        Some(Command::Serve) | None => Purpose::Serve,
    };
    let pairs = environment();
    let unknown = unknown_variables(pairs.iter().map(|(k, _)| k.as_str()));
    let settings = match Settings::from_pairs_for(pairs, purpose) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            // A typo in a variable's name is the likeliest cause of a missing one.
            for name in &unknown {
                eprintln!(
                    "warning: {name} is not a canon-listener variable (a typo?); it was ignored"
                );
            }
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .init();
    for name in &unknown {
        tracing::warn!(variable = %name, "Unknown variable ignored (a typo?); `canon-listener --help` lists the variables.");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            // `check` returned before the settings were read as `serve` reads them.
            Command::Serve | Command::Check => serve(settings).await,
            Command::RegisterHooks => match register::register_hooks(&settings).await {
                Ok(results) => {
                    let failed = results
                        .iter()
                        .filter(|r| matches!(r, HookResult::Failed { .. }))
                        .count();
                    for r in &results {
                        canon_shared::outln!("{r}");
                    }
                    if failed > 0 {
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    report(&e);
                    ExitCode::from(2)
                }
            },
        }
    })
}

/// `canon-listener check`: the settings as `serve` reads them, then the files they name.
fn check(pairs: Vec<(String, String)>) -> ExitCode {
    use canon_shared::preflight;
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| std::path::PathBuf::from(v))
    };
    let mut problems = Vec::new();
    for name in unknown_variables(pairs.iter().map(|(k, _)| k.as_str())) {
        problems.push(format!(
            "{name} is not a canon-listener variable (a typo?); `canon-listener --help` lists them"
        ));
    }
    let settings = match Settings::from_pairs_for(pairs.clone(), Purpose::Serve) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.extend(e.problems);
            None
        }
    };
    if let Some(path) = value("CANON_ENROLLMENT") {
        problems.extend(preflight::enrollment("CANON_ENROLLMENT", &path));
    }
    if let Some(path) = value("CANON_SSH_KEY") {
        problems.extend(preflight::credential_file("CANON_SSH_KEY", &path));
    }
    if let Some(s) = &settings {
        // The listener creates its journal in the state dir, not the folder itself.
        problems.extend(preflight::state_dir("CANON_STATE_DIR", &s.state_dir, false));
    }
    ExitCode::from(preflight::finish("the listener's configuration", &problems))
}

async fn serve(settings: Settings) -> ExitCode {
    let running = match app::start(&settings, app::SHUTDOWN_GRACE).await {
        Ok(r) => r,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received; shutting down."),
        _ = tokio::signal::ctrl_c() => tracing::info!("Interrupt received; shutting down."),
    }
    running.stop().await;
    tracing::info!("Stopped.");
    ExitCode::SUCCESS
}
