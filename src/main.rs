//! `oxidex`: the one binary. `serve` runs core (gRPC, storage, keys) and the HTTP gateway in one
//! process; `check-config` validates a config file; `hash-password` prints a bcrypt hash;
//! `version` prints the version.

mod serve;
mod tls;

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use oxidex_core::config::{self, LoadOptions};

/// Oxidex: an OpenID Connect identity provider, drop-in for Dex.
#[derive(Debug, Parser)]
#[command(name = "oxidex", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Oxidex: gRPC core, HTTP gateway and telemetry, from one config file.
    Serve(ServeArgs),
    /// Validate a config file: exit 0 if it is usable, otherwise list every problem.
    CheckConfig {
        /// The config file (YAML).
        config: PathBuf,
        /// Treat unknown keys as errors instead of warnings.
        #[arg(long)]
        strict: bool,
    },
    /// Read a password from standard input and print its bcrypt hash (for `staticPasswords`).
    HashPassword {
        /// The bcrypt cost (10 to 16).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(10..=16))]
        cost: u32,
    },
    /// Print the version.
    Version,
}

/// Arguments of `oxidex serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The config file (YAML).
    pub config: PathBuf,
    /// Override `web.http`.
    #[arg(long)]
    pub web_http_addr: Option<String>,
    /// Override `web.https`.
    #[arg(long)]
    pub web_https_addr: Option<String>,
    /// Override `grpc.addr`.
    #[arg(long)]
    pub grpc_addr: Option<String>,
    /// Override `telemetry.http`.
    #[arg(long)]
    pub telemetry_addr: Option<String>,
    /// Treat unknown config keys as errors instead of warnings.
    #[arg(long)]
    pub strict: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("oxidex {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::HashPassword { cost } => hash_password(cost),
        Command::CheckConfig { config, strict } => check_config(&config, strict),
        Command::Serve(args) => serve::main(args),
    }
}

fn hash_password(cost: u32) -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("error: cannot read the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    // One trailing newline comes from `echo` or the terminal; it is not part of the password.
    let password = input.strip_suffix('\n').map(|p| p.strip_suffix('\r').unwrap_or(p)).unwrap_or(&input);
    if password.is_empty() {
        eprintln!(
            "error: the password is empty; pipe it in, for example: echo -n 'secret' | oxidex hash-password"
        );
        return ExitCode::FAILURE;
    }
    if password.len() > 72 {
        eprintln!(
            "error: the password is longer than 72 bytes, which bcrypt cannot hash; choose a shorter one"
        );
        return ExitCode::FAILURE;
    }
    match bcrypt::hash(password, cost) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: hashing failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path, strict: bool) -> ExitCode {
    match config::load_file(path, &LoadOptions { strict, ..Default::default() }) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            let problems = serve::check_listeners(&loaded.config);
            if problems.is_empty() {
                println!("{}: configuration is valid", path.display());
                ExitCode::SUCCESS
            } else {
                for p in &problems {
                    eprintln!("error: {p}");
                }
                eprintln!("{}: {} problem(s)", path.display(), problems.len());
                ExitCode::FAILURE
            }
        }
        Err(errors) => {
            for p in &errors.0 {
                eprintln!("error: {p}");
            }
            eprintln!("{}: {} problem(s)", path.display(), errors.0.len());
            ExitCode::FAILURE
        }
    }
}
