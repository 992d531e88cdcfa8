//! Logs to standard error (journald under systemd), as text or JSON lines, with structured
//! fields (mailbox, folder, ...). What goes into a log line is decided where it is logged:
//! passwords live in `Secret`, whose `Debug` hides them, and message bodies are never logged.

use crmsync_config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(config: &LogConfig, format: Option<LogFormat>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::new(format!("{},async_imap=warn,notify=warn", config.level))
    });
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(false);
    let result = match format.unwrap_or(config.format) {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    if let Err(error) = result {
        eprintln!("crmsync: logging could not be set up: {error}");
    }
}
