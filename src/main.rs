//! The `shiftright` binary: parses the command line, wires SIGINT/SIGTERM to a cancellation token,
//! dispatches to the libraries, and maps the outcome to an exit code (printing the whole cause
//! chain of an error).

mod bench;
mod cli;
mod commands;
mod demo;
mod live;

use std::process::ExitCode;

use clap::Parser;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(1)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<u8> {
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    match command {
        Command::Ingest(args) => commands::ingest(args, shutdown).await,
        Command::Analyze(args) => commands::analyze(args).await,
        Command::Report(args) => commands::report(args).await,
        Command::Query(args) => commands::query(args).await,
        Command::Compact(args) => commands::compact(args).await,
        Command::Generate(args) => commands::generate(args).await,
        Command::Demo(args) => demo::run(args, shutdown).await,
        Command::Broker(args) => commands::broker(args, shutdown).await,
        Command::Serve(args) => live::serve(args, shutdown).await,
        Command::Watch(args) => live::watch(args, shutdown).await,
        Command::Produce(args) => commands::produce(args).await,
        Command::Scheduler(args) => commands::scheduler(args, shutdown).await,
        Command::Executor(args) => commands::executor(args, shutdown).await,
        Command::Simulate(args) => commands::simulate(args),
        Command::Bench(command) => bench::run(command).await,
    }
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                tracing::warn!("cannot install signal handlers; stop with SIGKILL");
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        shutdown.cancel();
    });
}

fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: a log file or a pipe (a scheduler's, an executor's) gets text.
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}
