//! The `bottomline-relay` command.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bottomline_relay::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bottomline-relay",
    version,
    about = "Bottomline relay: store-and-forward custody of county links to their city across networks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay from its TOML config: children dial it as their parent, it dials the
    /// parent, keeps custody of the traffic both ways, and serves gRPC health and reflection.
    /// Stops in order on SIGTERM/SIGINT (stop accepting, end the links, flush).
    Serve {
        /// The relay's config file.
        #[arg(short, long, env = "BOTTOMLINE_RELAY_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    // The allocator as a node sets it up (one arena, fixed thresholds; nothing with jemalloc).
    bottomline::memory::setup();
    let cli = Cli::parse();
    // The config's `log_format` (a config that does not load is reported by `run`, in text).
    let configured = match &cli.command {
        Command::Serve { config } => bottomline_relay::config::Config::load(config)
            .ok()
            .map(|c| c.log_format),
    };
    bottomline::config::LogFormat::chosen(configured).init("info");
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            rt.block_on(async move {
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let shutdown = bottomline::node::shutdown_signal();
                tokio::spawn(async move {
                    shutdown.await;
                    tracing::info!("shutting down");
                    let _ = stop_tx.send(true);
                });
                bottomline_relay::run(config, stop_rx).await?;
                Ok(())
            })
        }
    }
}
