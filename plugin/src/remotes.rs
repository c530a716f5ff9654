//! The git credentials of a plugin run, from its settings: the tokens, the `known_hosts` file and
//! the SSH key. The key setting holds the key itself while git wants a file, so it is written to a
//! private file that lives as long as the [`GitAccess`] value.

use std::io::Write;

use canon_shared::mirror::Credentials;
use canon_shared::secret::Secret;

use crate::settings::Settings;

/// The credentials for every remote of a run, and the SSH key file they point at.
#[derive(Debug)]
pub struct GitAccess {
    credentials: Credentials,
    /// Removed when dropped.
    _key_file: Option<tempfile::NamedTempFile>,
}

impl GitAccess {
    /// Returns the credentials the settings give, writing the SSH key (if any) to a private file.
    pub fn from_settings(settings: &Settings) -> std::io::Result<Self> {
        let key_file = settings.ssh_key.as_ref().map(write_ssh_key).transpose()?;
        Ok(Self {
            credentials: Credentials {
                upstream_token: settings.upstream_token.clone(),
                mirror_token: settings.mirror_token.clone(),
                ssh_key: key_file.as_ref().map(|f| f.path().to_path_buf()),
                known_hosts: settings.known_hosts.clone(),
                ..Credentials::default()
            },
            _key_file: key_file,
        })
    }

    /// Binds each token to its side's forge base URL the enrollment names: a remote on another
    /// host gets no token.
    pub fn bind_to(mut self, enrollment: &canon_shared::recipe::Enrollment) -> Self {
        let bases = enrollment.token_bases();
        self.credentials.upstream_base = bases.upstream;
        self.credentials.mirror_base = bases.mirror;
        self
    }

    /// Returns the credentials, which build every remote.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }
}

/// Writes the SSH private key to a file only the owner can read (removed when dropped).
fn write_ssh_key(key: &Secret) -> std::io::Result<tempfile::NamedTempFile> {
    // NamedTempFile is created with mode 0600.
    let mut f = tempfile::Builder::new()
        .prefix("canon-ssh-key-")
        .tempfile()?;
    f.write_all(key.expose().as_bytes())?;
    if !key.expose().ends_with('\n') {
        f.write_all(b"\n")?;
    }
    f.flush()?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_file_is_private_ends_with_a_newline_and_goes_away_with_the_value() {
        let settings = crate::settings::testing::parse(&[
            ("PLUGIN_MODE", "tag"),
            ("PLUGIN_CONFIG", "e"),
            ("PLUGIN_RECIPE", "app"),
            ("PLUGIN_TAG", "1.0.0+1"),
            ("PLUGIN_SSH_KEY", "-----KEY-----"),
        ])
        .unwrap();
        let access = GitAccess::from_settings(&settings).unwrap();
        let path = access.credentials().ssh_key.clone().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "-----KEY-----\n");
        drop(access);
        assert!(!path.exists());
    }
}
