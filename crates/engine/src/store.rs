//! Opening the CRM store the configuration names: a SQLite file, or a PostgreSQL database
//! with its password (from a file or a systemd credential) and crmsync's TLS configuration.

use crmsync_config::DatabaseConfig;
use crmsync_store::{Database, PgOptions, StoreError, StoreLocation};

/// Where the store is, with its secret read and its TLS configuration built.
pub fn location(database: &DatabaseConfig) -> Result<StoreLocation, StoreError> {
    match database {
        DatabaseConfig::Sqlite(path) => Ok(StoreLocation::Sqlite(path.clone())),
        DatabaseConfig::Postgres(postgres) => {
            let open_error = |message: String| StoreError::Open {
                path: postgres.url.clone(),
                message,
            };
            let password = match &postgres.password {
                Some(source) => Some(
                    source
                        .read()
                        .map_err(|e| open_error(e.to_string()))?
                        .expose()
                        .to_owned(),
                ),
                None => None,
            };
            let tls = crmsync_imap::tls_client_config(&postgres.tls)
                .map_err(|e| open_error(e.to_string()))?;
            if !postgres.tls.verify_certificates {
                tracing::warn!(
                    database = %postgres.url,
                    "verify_certificates = false: the database server's certificate is not checked"
                );
            }
            Ok(StoreLocation::Postgres(PgOptions {
                url: postgres.url.clone(),
                password,
                tls: Some(tls),
                pool_size: postgres.pool_size,
            }))
        }
    }
}

/// Opens the store's database once for this process (for PostgreSQL: connects and migrates).
pub fn open_database(database: &DatabaseConfig) -> Result<Database, StoreError> {
    Database::open(&location(database)?)
}
