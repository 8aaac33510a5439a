//! `ferrumx`: the Electrum server. Configured like ElectrumX, by environment variables
//! (each also a flag; see `ferrumx --help`).

use clap::{Parser, Subcommand};
use ferrumx::config::{Config, Settings};
use ferrumx_actors::server;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferrumx",
    version,
    about = "Electrum protocol server (a drop-in replacement for ElectrumX)"
)]
struct Cli {
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print every record of the index as text, in key order (for comparing indexes).
    /// Safe while the server runs: it reads one consistent snapshot.
    DumpIndex,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_settings(cli.settings, &|name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("ferrumx: {e}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new()
        .filter_level(config.log_level)
        .format_timestamp_millis()
        .init();
    match cli.command {
        Some(Command::DumpIndex) => dump_index(&config),
        None => serve(config),
    }
}

fn serve(config: Config) -> ExitCode {
    if is_root() && !config.allow_root {
        eprintln!(
            "ferrumx: running as root is strongly discouraged; create an unprivileged user, or set ALLOW_ROOT to a non-empty value to continue as root"
        );
        return ExitCode::from(2);
    }
    // A file-size limit (ulimit -f) must fail the write, which is then reported and
    // retried like a full disk, rather than kill the process with SIGXFSZ.
    // SAFETY: setting a signal's disposition to "ignore" before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    log::info!(
        "ferrumx {} starting: {} {}",
        env!("CARGO_PKG_VERSION"),
        config.coin.name,
        config.coin.net
    );
    match server::run(config) {
        Ok(()) => {
            log::info!("ferrumx stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("{e}");
            eprintln!("ferrumx: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dump_index(config: &Config) -> ExitCode {
    let result = server::open_store(config)
        .map_err(|e| e.to_string())
        .and_then(|store| {
            let snapshot = store.snapshot().map_err(|e| e.to_string())?;
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            snapshot.dump(&mut out).map_err(|e| e.to_string())?;
            std::io::Write::flush(&mut out).map_err(|e| e.to_string())
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrumx: {e}");
            ExitCode::FAILURE
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
