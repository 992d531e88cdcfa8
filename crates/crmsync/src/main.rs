//! The `crmsync` binary: the command line and the glue between the crates.
//!
//! It parses arguments, loads and validates the config, opens the CRM store, runs one command
//! and prints its result. Reusable logic lives in the crates (`crmsync-core`,
//! `crmsync-store`, `crmsync-config`); what is here is argument parsing, output formatting and
//! the mapping of failures to exit codes (0 success, 1 something failed, 2 bad usage or
//! config).
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod daemon;
mod logging;
mod output;
mod sd_notify;
mod status;
mod when;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// jemalloc: with its background thread on (the daemon turns it on), the memory a large pass
/// freed goes back to the system within seconds. glibc's allocator kept it in its arenas: a
/// daemon that had imported 10,000 messages held 115 MiB, 25 MiB of it in use.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A problem with what the user typed: exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::User(command) => commands::users::run(&cli.config, command),
        Command::Record(command) => commands::records::run(&cli.config, command),
        Command::Activity(command) => commands::activities::run(&cli.config, command),
        Command::Run { log_format } => daemon::run(
            &cli.config,
            log_format.map(|format| match format {
                cli::LogFormatArg::Text => crmsync_config::LogFormat::Text,
                cli::LogFormatArg::Json => crmsync_config::LogFormat::Json,
            }),
        ),
        Command::Check { mailbox, output } => {
            commands::check::run(&cli.config, mailbox.as_deref(), output.json)
        }
        Command::Item(command) => commands::items::run(&cli.config, command),
        Command::Sync {
            mailbox,
            accept_empty,
            accept_deletes,
            backfill,
            dry_run,
            output,
        } => commands::sync::options(
            accept_empty || accept_deletes,
            accept_deletes,
            backfill.as_deref(),
            dry_run,
        )
        .and_then(|options| {
            commands::sync::run(&cli.config, mailbox.as_deref(), options, output.json)
        }),
        Command::Never(command) => commands::never::run(&cli.config, command),
        Command::Connection(command) => commands::connections::run(&cli.config, command),
        Command::Template(command) => commands::library::template(&cli.config, command),
        Command::Article(command) => commands::library::article(&cli.config, command),
        Command::Literature(command) => commands::library::literature(&cli.config, command),
        Command::Items {
            mailbox,
            failed,
            output,
        } => commands::tracked::run(&cli.config, mailbox.as_deref(), failed, output.json),
        Command::Conflicts {
            mailbox,
            limit,
            output,
        } => commands::conflicts::run(&cli.config, mailbox.as_deref(), limit, output.json),
        Command::Status(flags) => status::run(&cli.config, &flags),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Every line of the message gets the program's name, so that a config file with
            // three problems prints three clear lines.
            for line in format!("{error:#}").lines() {
                eprintln!("crmsync: {line}");
            }
            ExitCode::from(exit_code(&error))
        }
    }
}

/// 2 for bad usage or config, 1 for everything else.
fn exit_code(error: &anyhow::Error) -> u8 {
    let bad_usage = error.chain().any(|cause| {
        cause.is::<UsageError>()
            || cause.is::<crmsync_config::ConfigErrors>()
            || cause.is::<crmsync_core::model::InvalidValue>()
            || matches!(
                cause.downcast_ref::<crmsync_store::StoreError>(),
                Some(crmsync_store::StoreError::Invalid(_))
            )
    });
    if bad_usage { 2 } else { 1 }
}
