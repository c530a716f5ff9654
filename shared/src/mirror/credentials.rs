//! The credentials canon holds for git, and the one place that turns them into a recipe's
//! [`GitRemote`]s. Tag mode, the sweep, `mirror-sync` and the listener's worker all build their
//! remotes here, so a new way to authenticate is added once.

use std::path::PathBuf;

use crate::recipe::Recipe;
use crate::secret::Secret;

use super::GitRemote;

/// Tokens and SSH settings for the upstream and mirror sides.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// Token for the upstream (fetch) side over HTTPS.
    pub upstream_token: Option<Secret>,
    /// Token for the mirror (push) side over HTTPS.
    pub mirror_token: Option<Secret>,
    /// A private key file for SSH remotes.
    pub ssh_key: Option<PathBuf>,
    /// The `known_hosts` file that alone decides which SSH host keys are trusted.
    pub known_hosts: Option<PathBuf>,
}

impl Credentials {
    /// Returns the remote for `url` on the upstream side.
    pub fn upstream_remote(&self, url: &str) -> GitRemote {
        self.remote(url, self.upstream_token.clone())
    }

    /// Returns the remote for `url` on the mirror side.
    pub fn mirror_remote(&self, url: &str) -> GitRemote {
        self.remote(url, self.mirror_token.clone())
    }

    /// Returns `recipe`'s upstream remote.
    pub fn upstream(&self, recipe: &Recipe) -> GitRemote {
        self.upstream_remote(&recipe.upstream.url)
    }

    /// Returns `recipe`'s mirror remote.
    pub fn mirror(&self, recipe: &Recipe) -> GitRemote {
        self.mirror_remote(&recipe.mirror.url)
    }

    fn remote(&self, url: &str, token: Option<Secret>) -> GitRemote {
        GitRemote {
            url: url.to_string(),
            token,
            ssh_key: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_gets_its_own_token_and_both_share_the_ssh_settings() {
        let creds = Credentials {
            upstream_token: Some(Secret::new("up")),
            mirror_token: Some(Secret::new("down")),
            ssh_key: Some("/k".into()),
            known_hosts: Some("/kh".into()),
        };
        let up = creds.upstream_remote("https://u/x.git");
        let mirror = creds.mirror_remote("https://m/x.git");
        assert_eq!(up.token.as_ref().map(Secret::expose), Some("up"));
        assert_eq!(mirror.token.as_ref().map(Secret::expose), Some("down"));
        for r in [&up, &mirror] {
            assert_eq!(r.ssh_key.as_deref(), Some(std::path::Path::new("/k")));
            assert_eq!(r.known_hosts.as_deref(), Some(std::path::Path::new("/kh")));
        }
        assert_eq!(up.url, "https://u/x.git");
    }
}
