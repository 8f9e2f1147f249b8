//! `agora`: the registry server and its command-line client. This crate only wires the
//! library crates together; behaviour lives in them.

mod cli;
mod commands;
mod config;
mod credentials;
mod memory;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    memory::cap_malloc_arenas();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", output::one_line(&e));
            ExitCode::FAILURE
        }
    }
}
