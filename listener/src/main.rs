//! canon-listener's entry point: reads the environment once, sets up JSON logs, then serves
//! (default) or registers webhooks (`register-hooks`).

use std::process::ExitCode;

use canon_listener::app;
use canon_listener::config::{Purpose, Settings};
use canon_listener::register::{self, HookResult};
use clap::{Parser, Subcommand};

/// Receives tag webhooks, journals them durably, syncs mirrors and starts Drone builds.
///
/// Configured only through CANON_* environment variables (see the README).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve webhooks (the default).
    Serve,
    /// Create, find or repair the webhook on every enrolled upstream repository.
    RegisterHooks,
}

fn report(e: &dyn std::error::Error) {
    canon_shared::error_chain::print("canon-listener", e);
}

fn main() -> ExitCode {
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
    let cli = Cli::parse();
    let purpose = match cli.command {
        Some(Command::RegisterHooks) => Purpose::RegisterHooks,
        Some(Command::Serve) | None => Purpose::Serve,
    };
    let settings = match Settings::from_pairs_for(std::env::vars(), purpose) {
        Ok(s) => s,
        Err(e) => {
            report(&e);
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
            Command::Serve => serve(settings).await,
            Command::RegisterHooks => match register::register_hooks(&settings).await {
                Ok(results) => {
                    let failed = results
                        .iter()
                        .filter(|r| matches!(r, HookResult::Failed { .. }))
                        .count();
                    for r in &results {
                        canon_shared::outln!("{r:?}");
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
