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
    limit_malloc_arenas();
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

/// glibc gives threads that allocate at once arenas of their own, up to eight per core,
/// and freed reply buffers then linger in all of them. Two per core keep the resident
/// memory of 256 wallets opening at once under ElectrumX's at the same speed
/// (bench/query, wallet-load). MALLOC_ARENA_MAX in the environment still decides.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = libc::c_int::try_from(cores * 2).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt before any other thread starts; a refusal changes nothing.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
