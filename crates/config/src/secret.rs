//! Where passwords come from, and the type that carries one.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The source of one password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file that only its owner may read (mode 600 or 400).
    File(PathBuf),
    /// A systemd credential (`LoadCredential=NAME:...` in the unit): the file `NAME` in the
    /// directory `$CREDENTIALS_DIRECTORY`, which systemd makes private to the service.
    Credential(String),
}

/// A password in memory. Its `Debug` and `Display` never show it, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for the one call that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<hidden>)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("password file {path}: no such file")]
    Missing { path: String },
    #[error("password file {path} is not a regular file")]
    NotAFile { path: String },
    #[error(
        "password file {path} is readable by group or others (mode {mode:03o}); fix it with: chmod 600 {path}"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("password file {path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("password file {path} is empty")]
    Empty { path: String },
    #[error(
        "systemd credential {name:?} is not available: CREDENTIALS_DIRECTORY is not set (is crmsync running under systemd with LoadCredential={name}:...?)"
    )]
    NoCredentialsDirectory { name: String },
}

impl SecretSource {
    /// Checks what can be checked without reading the secret: that a password file exists and
    /// that group and others have no access to it. Credentials exist only inside the service,
    /// so they are checked when read.
    pub fn check(&self) -> Result<(), SecretError> {
        match self {
            SecretSource::File(path) => check_file(path),
            SecretSource::Credential(_) => Ok(()),
        }
    }

    /// Reads the secret. A trailing newline (as `echo` writes) is not part of it.
    pub fn read(&self) -> Result<Secret, SecretError> {
        let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        self.read_from(credentials.as_deref())
    }

    /// [`SecretSource::read`] with the credentials directory given rather than taken from the
    /// environment.
    fn read_from(&self, credentials_directory: Option<&Path>) -> Result<Secret, SecretError> {
        let path = match self {
            SecretSource::File(path) => path.clone(),
            SecretSource::Credential(name) => credentials_directory
                .ok_or_else(|| SecretError::NoCredentialsDirectory { name: name.clone() })?
                .join(name),
        };
        check_file(&path)?;
        let text = std::fs::read_to_string(&path).map_err(|e| SecretError::Unreadable {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let secret = text.strip_suffix('\n').unwrap_or(&text);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        if secret.is_empty() {
            return Err(SecretError::Empty {
                path: path.display().to_string(),
            });
        }
        Ok(Secret(secret.to_owned()))
    }
}

fn check_file(path: &Path) -> Result<(), SecretError> {
    let shown = path.display().to_string();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SecretError::Missing { path: shown });
        }
        Err(e) => {
            return Err(SecretError::Unreadable {
                path: shown,
                message: e.to_string(),
            });
        }
    };
    if !metadata.is_file() {
        return Err(SecretError::NotAFile { path: shown });
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::TooOpen { path: shown, mode });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_is_read_without_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "pw", "s3cret\n", 0o600);
        let secret = SecretSource::File(path).read().unwrap();
        assert_eq!(secret.expose(), "s3cret");
        assert_eq!(format!("{secret:?}"), "Secret(<hidden>)");
    }

    #[test]
    fn an_open_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620] {
            let path = write(dir.path(), "pw", "s3cret", mode);
            let error = SecretSource::File(path.clone()).check().unwrap_err();
            let message = error.to_string();
            assert!(
                message.contains(&format!("chmod 600 {}", path.display())),
                "{message}"
            );
            assert!(message.contains(&format!("mode {mode:03o}")), "{message}");
        }
    }

    #[test]
    fn systemd_credentials_are_read_from_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        // systemd makes credential files 0400, owned by the service user.
        write(dir.path(), "alice-imap", "from-systemd\n", 0o400);
        let source = SecretSource::Credential("alice-imap".into());
        assert_eq!(source.check(), Ok(()));
        let secret = source.read_from(Some(dir.path())).unwrap();
        assert_eq!(secret.expose(), "from-systemd");
        let error = source.read_from(None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("CREDENTIALS_DIRECTORY is not set"),
            "{error}"
        );
        let missing = SecretSource::Credential("bob-imap".into());
        assert!(matches!(
            missing.read_from(Some(dir.path())),
            Err(SecretError::Missing { .. })
        ));
    }

    #[test]
    fn missing_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = SecretSource::File(dir.path().join("nope"));
        assert!(matches!(missing.check(), Err(SecretError::Missing { .. })));
        let empty = write(dir.path(), "empty", "\n", 0o400);
        assert!(matches!(
            SecretSource::File(empty).read(),
            Err(SecretError::Empty { .. })
        ));
        assert!(matches!(
            SecretSource::File(dir.path().to_owned()).check(),
            Err(SecretError::NotAFile { .. })
        ));
    }
}
