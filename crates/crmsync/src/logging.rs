//! Logs to standard error (journald under systemd), as text or JSON lines, with structured
//! fields (mailbox, folder, ...). What goes into a log line is decided where it is logged:
//! passwords live in `Secret`, whose `Debug` hides them, and message bodies are never logged.
//!
//! Libraries log too, and some log what crmsync never would: the IMAP library traces every
//! protocol line it sends and receives, `LOGIN` with its password and `FETCH` with message
//! bodies among them. Those targets are silenced here at every level, whatever `RUST_LOG` or
//! the config asks for: their `log` records are dropped before they become events, and a
//! filter on the subscriber drops their events should a later version trace them directly.
//! The file-notification crates are held to warnings and errors: their event lines about the
//! daemon's own log file, when it sits in a watched directory, would feed themselves.

use crmsync_config::{LogConfig, LogFormat};
use tracing_log::AsLog;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::{Layer, SubscriberExt};

/// Crates whose log output carries protocol lines: passwords, message bodies, headers. The
/// HTTP stack of the CalDAV/CardDAV adapter is among them: its lines name requests and
/// connections, and a later version might print a header.
const PROTOCOL_TARGETS: [&str; 5] = ["async_imap", "imap_proto", "reqwest", "hyper", "hyper_util"];

/// Crates that log every file-system event they see, warnings and errors excepted: the
/// config's directory and a collection's may hold the daemon's own log file, and a line about
/// each change of that file changes it again (a loop of tens of megabytes a second).
const FILE_EVENT_TARGETS: [&str; 2] = ["notify", "inotify"];

/// Whether a target (`crate::module`) belongs to one of `crates`.
fn is_target_of(crates: &[&str], target: &str) -> bool {
    crates.iter().any(|name| {
        target
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

fn is_protocol_target(target: &str) -> bool {
    is_target_of(&PROTOCOL_TARGETS, target)
}

/// What is never logged, whatever the levels asked for: protocol crates at any level, file
/// event crates below warnings.
fn never_logged(metadata: &tracing::Metadata<'_>) -> bool {
    is_protocol_target(metadata.target())
        || (is_target_of(&FILE_EVENT_TARGETS, metadata.target())
            && *metadata.level() > tracing::Level::WARN)
}

pub fn init(config: &LogConfig, format: Option<LogFormat>) {
    let levels = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},notify=warn", config.level)));
    let filter = levels.and(filter_fn(|metadata| !never_logged(metadata)));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let layer = match format.unwrap_or(config.format) {
        LogFormat::Json => layer.json().flatten_event(true).with_filter(filter).boxed(),
        LogFormat::Text => layer.with_filter(filter).boxed(),
    };
    let subscriber = tracing_subscriber::registry().with(layer);
    if let Err(error) = tracing::subscriber::set_global_default(subscriber) {
        eprintln!("crmsync: logging could not be set up: {error}");
        return;
    }
    let bridged = tracing_log::LogTracer::builder()
        .with_max_level(tracing::level_filters::LevelFilter::current().as_log())
        .ignore_all(PROTOCOL_TARGETS)
        .init();
    if let Err(error) = bridged {
        eprintln!("crmsync: library logs could not be set up: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::is_protocol_target;

    #[test]
    fn protocol_targets_are_whole_crate_names() {
        for target in [
            "async_imap",
            "async_imap::imap_stream",
            "imap_proto::parser",
            "reqwest::connect",
            "hyper_util::client::legacy::pool",
        ] {
            assert!(is_protocol_target(target), "{target}");
        }
        for target in [
            "crmsync_imap",
            "crmsync_engine::email",
            "async_imap_extra",
            "rustls",
        ] {
            assert!(!is_protocol_target(target), "{target}");
        }
    }
}
