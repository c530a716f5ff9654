//! A git remote as canon configures it ([`GitRemote`]) and as libgit2 is handed it.
//!
//! Everything that touches credentials lives here, so one file shows where a token can go: the
//! URL is split from its user info (what reports and logs show is [`GitRemote::display_url`]),
//! the token and SSH key travel only inside libgit2's credential callback, SSH host keys are
//! checked against an explicit `known_hosts` file when one is set, and every git message is
//! scrubbed of the token before it reaches an error.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::path::{Path, PathBuf};

use git2::cert::CertHostkey;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

use super::known_hosts::{self, HostKeyRefusal, KnownHosts};
use super::{MirrorError, Side};
use crate::secret::Secret;

/// The user name sent with a token over HTTPS when the URL names none. Gitea and Forgejo accept
/// any user name with a token as password; GitHub expects this one.
const TOKEN_USER: &str = "x-access-token";

/// A git remote: where it is and how to authenticate.
#[derive(Clone, Default)]
pub struct GitRemote {
    /// A URL (`https://`, `http://`, `ssh://`, `git@host:path`, `file://`) or a local path. A
    /// password inside the URL is treated as the token and never shown.
    pub url: String,
    /// A token sent as the basic-auth password over HTTP(S).
    pub token: Option<Secret>,
    /// A private key file for SSH remotes (without one, the SSH agent is asked). The server's
    /// host key must be listed in `~/.ssh/known_hosts` of the user canon runs as (libgit2 reads
    /// that file; an unknown or changed host key fails the connection before any key is offered),
    /// or in [`GitRemote::known_hosts`] when that is set.
    pub ssh_key: Option<PathBuf>,
    /// An OpenSSH `known_hosts` file that alone decides which SSH host keys are trusted
    /// ([`known_hosts`]); `~/.ssh/known_hosts` is then not consulted. Unset: libgit2's
    /// own check against `~/.ssh/known_hosts`. Either way an unknown host key is refused.
    pub known_hosts: Option<PathBuf>,
}

impl fmt::Debug for GitRemote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitRemote")
            .field("url", &self.display_url())
            .field("token", &self.token)
            .field("ssh_key", &self.ssh_key)
            .field("known_hosts", &self.known_hosts)
            .finish()
    }
}

impl GitRemote {
    /// Returns a remote with no credentials (a local path, `file://`, or a public URL).
    pub fn local(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// Returns a remote authenticated by `token` (HTTPS basic auth, token as password).
    pub fn with_token(url: impl Into<String>, token: Option<Secret>) -> Self {
        Self {
            url: url.into(),
            token,
            ..Self::default()
        }
    }

    /// Returns the URL with any user name, password or token removed: safe to print.
    pub fn display_url(&self) -> String {
        split_userinfo(&self.url).url
    }

    /// Returns the directory of a remote on this machine's filesystem: a plain path (absolute or
    /// relative) or a `file://` URL; `None` for a network remote. libgit2 writes such a remote
    /// itself, with no server to keep two writers apart.
    pub fn local_dir(&self) -> Option<PathBuf> {
        if let Some(path) = local_path(&self.url) {
            return Some(path);
        }
        let url = self.url.as_str();
        if url.is_empty() || url.contains("://") {
            return None;
        }
        // git's rule: a `:` before any `/` makes an scp-like `host:path` address.
        let scp_like = match (url.find(':'), url.find('/')) {
            (Some(colon), Some(slash)) => colon < slash,
            (Some(_), None) => true,
            (None, _) => false,
        };
        (!scp_like).then(|| PathBuf::from(url))
    }

    pub(super) fn resolved(&self) -> Resolved {
        let parts = split_userinfo(&self.url);
        let token = self
            .token
            .clone()
            .filter(|t| !t.is_empty())
            .or_else(|| parts.password.clone().map(Secret::new));
        Resolved {
            port: ssh_port(&parts.url),
            url: parts.url,
            user: parts.user,
            token,
            ssh_key: self.ssh_key.clone(),
            known_hosts: self.known_hosts.clone(),
            host_key_refusal: RefCell::new(None),
            raw: self.url.clone(),
        }
    }
}

/// A remote with its credentials separated from its URL.
pub(super) struct Resolved {
    /// The URL without user info: what libgit2 is given and what messages show.
    pub(super) url: String,
    user: Option<String>,
    token: Option<Secret>,
    ssh_key: Option<PathBuf>,
    /// See [`GitRemote::known_hosts`].
    known_hosts: Option<PathBuf>,
    /// The SSH port the URL names (22 when it names none); libgit2 gives the certificate callback
    /// only the host name.
    port: u16,
    /// Why the certificate callback refused the host key: libgit2 replaces the callback's error
    /// message with its own, so the reason is kept here for [`git_message`].
    host_key_refusal: RefCell<Option<String>>,
    /// The URL as configured, only used to scrub it out of messages.
    raw: String,
}

impl Resolved {
    /// Removes the token and the raw URL (which may hold user info) from a message.
    pub(super) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if self.raw != self.url && !self.raw.is_empty() {
            out = out.replace(&self.raw, &self.url);
        }
        if let Some(t) = &self.token {
            out = t.redact(&out);
        }
        out
    }
}

struct UrlParts {
    url: String,
    user: Option<String>,
    password: Option<String>,
}

/// Splits user info out of a URL. Local paths and scp-like `user@host:path` addresses keep their
/// form (the latter carries no password).
fn split_userinfo(raw: &str) -> UrlParts {
    let plain = || UrlParts {
        url: raw.to_string(),
        user: None,
        password: None,
    };
    if !raw.contains("://") || raw.starts_with("file://") {
        return plain();
    }
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let user = (!u.username().is_empty()).then(|| decode(u.username()));
            let password = u.password().map(decode);
            // Setting these can only fail for URLs that cannot have user info (e.g. `mailto:`);
            // then there is none to strip.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            UrlParts {
                url: u.to_string(),
                user,
                password,
            }
        }
        // Not parseable: show nothing after the scheme's user info marker, to be safe.
        Err(_) => match (raw.find("://"), raw.rfind('@')) {
            (Some(s), Some(at)) if at > s => UrlParts {
                url: format!("{}{}", &raw[..s + 3], &raw[at + 1..]),
                user: None,
                password: None,
            },
            _ => plain(),
        },
    }
}

/// Returns the port of an `ssh://` URL, or 22 (scp-like `host:path` addresses cannot name one).
fn ssh_port(url: &str) -> u16 {
    if !url.contains("://") {
        return known_hosts::DEFAULT_SSH_PORT;
    }
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(known_hosts::DEFAULT_SSH_PORT)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Returns the filesystem path of a local remote (an absolute path or a `file://` URL).
pub(super) fn local_path(url: &str) -> Option<PathBuf> {
    if url.starts_with('/') {
        return Some(PathBuf::from(url));
    }
    let rest = url.strip_prefix("file://")?;
    rest.starts_with('/').then(|| PathBuf::from(decode(rest)))
}

/// Builds the credential callback for `remote`. Each kind of credential is offered once, so a
/// refused token fails at once instead of looping.
pub(super) fn callbacks<'a>(remote: &'a Resolved, tried: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    const USERPASS: u32 = 1;
    const SSH: u32 = 2;
    const USERNAME: u32 = 4;
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |asked_url, user_from_url, allowed| {
        let done = tried.get();
        let user = remote.user.as_deref().or(user_from_url);
        if allowed.contains(CredentialType::SSH_KEY) && done & SSH == 0 {
            tried.set(done | SSH);
            let user = user.unwrap_or("git");
            return match &remote.ssh_key {
                Some(key) => Cred::ssh_key(user, None, key, None),
                None => Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(CredentialType::USERNAME) && done & USERNAME == 0 {
            tried.set(done | USERNAME);
            return Cred::username(user.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if done & USERPASS != 0 {
                return Err(git2::Error::new(
                    git2::ErrorCode::Auth,
                    git2::ErrorClass::Http,
                    "the server refused the token",
                ));
            }
            tried.set(done | USERPASS);
            if remote.token.is_some() {
                if let Some(refusal) = token_refusal(&remote.url, asked_url) {
                    return Err(git2::Error::new(
                        git2::ErrorCode::Auth,
                        git2::ErrorClass::Http,
                        refusal,
                    ));
                }
            }
            return match &remote.token {
                Some(token) => Cred::userpass_plaintext(user.unwrap_or(TOKEN_USER), token.expose()),
                None => Err(git2::Error::new(
                    git2::ErrorCode::Auth,
                    git2::ErrorClass::Http,
                    "the server asks for credentials and no token was given",
                )),
            };
        }
        Err(git2::Error::new(
            git2::ErrorCode::Auth,
            git2::ErrorClass::Net,
            "no usable credentials for this remote",
        ))
    });
    if let Some(path) = &remote.known_hosts {
        cb.certificate_check(move |cert, host| {
            // TLS certificates stay with libgit2's own verification.
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            match check_host_key(path, host, remote.port, hostkey) {
                Ok(()) => {
                    tracing::debug!(host, port = remote.port, known_hosts = %path.display(), "SSH host key matches the known_hosts file.");
                    Ok(CertificateCheckStatus::CertificateOk)
                }
                Err(refusal) => {
                    let message = refusal.to_string();
                    *remote.host_key_refusal.borrow_mut() = Some(message.clone());
                    Err(git2::Error::new(
                        git2::ErrorCode::Certificate,
                        git2::ErrorClass::Ssh,
                        message,
                    ))
                }
            }
        });
    }
    cb
}

/// Returns true when both URLs parse and name the same scheme, host (any case) and port (the
/// scheme's default when unnamed): the origin a token is bound to.
pub fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => origin(&a).is_some() && origin(&a) == origin(&b),
        _ => false,
    }
}

fn origin(u: &url::Url) -> Option<(String, String, u16)> {
    Some((
        u.scheme().to_string(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?,
    ))
}

/// Returns why the token for `configured` must not be sent to `asked` (the URL libgit2 asks
/// credentials for, which after a redirect may be another server), or `None` when it may: only
/// to the configured scheme, host and port, and over plain `http://` only to a loopback host.
pub(super) fn token_refusal(configured: &str, asked: &str) -> Option<String> {
    let (Ok(configured), Ok(asked)) = (url::Url::parse(configured), url::Url::parse(asked)) else {
        return Some("the token is sent only to the configured HTTPS host".into());
    };
    let origin = |u: &url::Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_ascii_lowercase),
            u.port_or_known_default(),
        )
    };
    if origin(&configured) != origin(&asked) {
        return Some(format!(
            "refusing to send the token to {}: it is configured for {}",
            asked.host_str().unwrap_or("another host"),
            configured.host_str().unwrap_or("another host")
        ));
    }
    let loopback = match asked.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    (asked.scheme() == "http" && !loopback).then(|| {
        format!(
            "refusing to send the token over plain http to {}: use https",
            asked.host_str().unwrap_or("the server")
        )
    })
}

/// Checks the server's host key against the `known_hosts` file at `path`.
fn check_host_key(
    path: &Path,
    host: &str,
    port: u16,
    hostkey: &CertHostkey<'_>,
) -> Result<(), HostKeyRefusal> {
    let file = KnownHosts::load(path)?;
    if !file.skipped().is_empty() {
        tracing::warn!(known_hosts = %path.display(), lines = ?file.skipped(), "Skipped known_hosts lines that do not parse.");
    }
    let (Some(key), Some(key_type)) = (hostkey.hostkey(), hostkey.hostkey_type()) else {
        return Err(HostKeyRefusal::NoKey {
            path: path.to_path_buf(),
            host: known_hosts::lookup_name(host, port),
        });
    };
    file.check(host, port, key_type.name(), key)
}

/// The host key hint added to libgit2's "invalid or unknown remote ssh hostkey".
const HOST_KEY_HINT: &str = "canon trusts an SSH server only when its host key is listed in \
    ~/.ssh/known_hosts of the user it runs as (a non-standard port as `[host]:port`), or in the \
    file the known_hosts setting names; add the server's key there, e.g. from \
    `ssh-keyscan -p PORT HOST` checked against the forge's published fingerprints";

/// A git error's message with the token removed; an SSH host key refusal says how to fix it.
fn git_message(r: &Resolved, e: &git2::Error) -> String {
    let message = r.scrub(e.message());
    if e.code() == git2::ErrorCode::Certificate && e.class() == git2::ErrorClass::Ssh {
        match r.host_key_refusal.borrow().as_deref() {
            Some(refusal) => format!("{message}: {}", r.scrub(refusal)),
            None => format!("{message}: {HOST_KEY_HINT}"),
        }
    } else {
        message
    }
}

/// Returns the error for a git2 failure talking to `r`: [`MirrorError::Auth`] when credentials
/// were refused, else what `other` makes of the URL and the cleaned message.
pub(super) fn git_error(
    r: &Resolved,
    side: Side,
    e: &git2::Error,
    tried: &Cell<u32>,
    other: impl FnOnce(String, String) -> MirrorError,
) -> MirrorError {
    let message = git_message(r, e);
    if is_auth_error(e, tried) {
        MirrorError::Auth {
            side,
            url: r.url.clone(),
            message,
        }
    } else {
        other(r.url.clone(), message)
    }
}

fn is_auth_error(e: &git2::Error, tried: &Cell<u32>) -> bool {
    e.code() == git2::ErrorCode::Auth
        || (tried.get() != 0 && e.class() == git2::ErrorClass::Http)
        || e.message().contains("authentication")
        || e.message().contains("401")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_only_to_its_own_host_and_over_http_only_to_loopback() {
        let cases = [
            (
                "https://git.example/o/r.git",
                "https://git.example/o/r.git/info/refs",
                None,
            ),
            (
                "https://git.example/o/r.git",
                "https://GIT.example:443/o/r.git",
                None,
            ),
            (
                "http://127.0.0.1:3000/o/r",
                "http://127.0.0.1:3000/o/r/info/refs",
                None,
            ),
            ("http://localhost:3000/o/r", "http://localhost:3000/x", None),
            (
                "https://git.example/o/r.git",
                "https://evil.example/o/r.git",
                Some("evil.example"),
            ),
            (
                "https://git.example/o/r.git",
                "http://git.example/o/r.git",
                Some("git.example"),
            ),
            (
                "https://git.example/o/r.git",
                "https://git.example:8443/o/r.git",
                Some("git.example"),
            ),
            (
                "http://127.0.0.1:3000/o/r",
                "http://127.0.0.2:3000/o/r",
                Some("127.0.0.2"),
            ),
            (
                "http://git.example/o/r.git",
                "http://git.example/o/r.git",
                Some("plain http"),
            ),
        ];
        for (configured, asked, want) in cases {
            let got = token_refusal(configured, asked);
            match (want, &got) {
                (None, None) => {}
                (Some(w), Some(g)) => assert!(g.contains(w), "{configured} -> {asked}: {g}"),
                _ => panic!("{configured} -> {asked}: {got:?}"),
            }
        }
    }

    #[test]
    fn display_url_strips_user_info_and_tokens() {
        let r = GitRemote::local("https://bot:s3cret@git.example.org/o/r.git");
        assert_eq!(r.display_url(), "https://git.example.org/o/r.git");
        assert!(!format!("{r:?}").contains("s3cret"));
        let res = r.resolved();
        assert_eq!(res.user.as_deref(), Some("bot"));
        assert_eq!(res.token.as_ref().map(|t| t.expose()), Some("s3cret"));
        assert_eq!(
            res.scrub("failed https://bot:s3cret@git.example.org/o/r.git s3cret"),
            "failed https://git.example.org/o/r.git ***"
        );
    }

    #[test]
    fn the_ssh_port_comes_from_the_url() {
        for (url, port) in [
            ("ssh://git@git.example.org:2222/o/r.git", 2222),
            ("ssh://git@git.example.org/o/r.git", 22),
            ("git@git.example.org:o/r.git", 22),
            ("ssh://[::1]:2200/o/r.git", 2200),
        ] {
            assert_eq!(GitRemote::local(url).resolved().port, port, "{url}");
        }
    }

    #[test]
    fn plain_paths_and_file_urls_are_local_and_network_remotes_are_not() {
        for (url, want) in [
            ("/srv/git/state.git", Some("/srv/git/state.git")),
            ("file:///srv/git/state.git", Some("/srv/git/state.git")),
            ("state/repo.git", Some("state/repo.git")),
            ("./a:b/state.git", Some("./a:b/state.git")),
            ("git@host:o/r.git", None),
            ("host:state.git", None),
            ("https://git.example/o/r.git", None),
            ("ssh://git@host/o/r.git", None),
        ] {
            assert_eq!(
                GitRemote::local(url).local_dir(),
                want.map(PathBuf::from),
                "{url}"
            );
        }
    }

    #[test]
    fn local_paths_and_scp_addresses_are_kept() {
        assert_eq!(
            GitRemote::local("/srv/git/r.git").display_url(),
            "/srv/git/r.git"
        );
        assert_eq!(
            GitRemote::local("git@host:o/r.git").display_url(),
            "git@host:o/r.git"
        );
        assert_eq!(
            GitRemote::local("file:///srv/r.git").display_url(),
            "file:///srv/r.git"
        );
    }
}
