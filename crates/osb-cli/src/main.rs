//! `osb`: the platform side of the Open Service Broker API v2.17 on the
//! command line. This file parses, dispatches and maps errors to exit codes:
//! 0 success, 1 the operation failed, 2 usage or connection error.

mod check;
mod cli;
mod client;
mod clock;
mod commands;
mod credentials_format;
mod error;
mod output;
mod platform;
mod record;
mod target;

use std::process::ExitCode;

use clap::Parser;

use crate::error::{CliError, ErrorKind};

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let message = format!("could not start the async runtime: {error}");
            return report(&CliError::usage(message));
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(&error),
    }
}

/// Prints `osb: message` and a hint on stderr, and returns the exit code.
fn report(error: &CliError) -> ExitCode {
    if error.kind != ErrorKind::BrokenPipe {
        eprintln!("osb: {}", error.message);
        if let Some(hint) = &error.hint {
            eprintln!("hint: {hint}");
        }
    }
    ExitCode::from(error.exit_code() as u8)
}
