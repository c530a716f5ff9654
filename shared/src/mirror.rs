//! Faithful git mirror sync (git2, blocking).
//!
//! A mirror must equal its upstream for one branch (`main` by default) and for the complete set of
//! tags, while keeping every other ref it has: the pull-request head branches that CI tests live
//! there, and deleting them would close the PRs. So this module never uses `--mirror` semantics:
//! it fetches upstream into a per-recipe bare cache (reused, so only new objects move), then pushes
//! exactly the branch and the `refs/tags/*` that differ, deletes mirror tags upstream no longer has,
//! and lists the mirror again to prove the result.
//!
//! A sync where both ref listings already agree costs one listing per side and nothing else. For
//! repositories on the local filesystem a listing reads the ref files directly (`packed-refs` and
//! loose refs, no libgit2 repository open), and upstream's tags are peeled from a table the cache
//! keeps ([`PEELS_FILE`]) instead of the object database, so a fleet-wide no-op sync is a few
//! small file reads per repository.
//!
//! Tokens travel only inside libgit2's credential callback (as the basic-auth password); every URL
//! that reaches a report, a log or an error is [`GitRemote::display_url`], with user info removed,
//! and every git message is passed through [`Secret::redact`].
//!
//! [`close_merged_prs`] closes mirror PRs whose head commit upstream has merged (section 3 of the
//! design: reachability from the synced upstream branch; squash and rebase merges stay open).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use git2::cert::CertHostkey;
use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, FetchOptions,
    FetchPrune, Oid, PushOptions, Remote, RemoteCallbacks, Repository,
};
use serde::Serialize;

use crate::forge::{CloseOutcome, Forge, ForgeError};
use crate::recipe::RecipeName;
use crate::secret::Secret;

pub mod known_hosts;

use known_hosts::{HostKeyRefusal, KnownHosts};

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
    /// ([`known_hosts`](crate::mirror::known_hosts)); `~/.ssh/known_hosts` is then not consulted. Unset: libgit2's
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

    fn resolved(&self) -> Resolved {
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
struct Resolved {
    /// The URL without user info: what libgit2 is given and what messages show.
    url: String,
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
    fn scrub(&self, text: &str) -> String {
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

/// A tag as a remote advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRef {
    /// The object the ref points to: the tag object for an annotated tag, else the commit.
    pub target: String,
    /// The commit the tag finally points to.
    pub peeled: String,
}

impl TagRef {
    /// Returns true for an annotated tag (the ref points to a tag object).
    pub fn is_annotated(&self) -> bool {
        self.target != self.peeled
    }
}

/// A remote's branches and tags, from one ref listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoteRefs {
    /// Branch short name -> commit.
    pub branches: BTreeMap<String, String>,
    /// Tag name -> tag ref.
    pub tags: BTreeMap<String, TagRef>,
}

/// Which end of a sync a failure happened at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The upstream repository (read only).
    Upstream,
    /// The mirror repository (pushed to).
    Mirror,
    /// A remote listed on its own ([`ls_remote`]).
    Remote,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Upstream => "upstream",
            Side::Mirror => "mirror",
            Side::Remote => "remote",
        })
    }
}

/// Why a sync (or a step of it) failed. URLs are shown without user info; git messages have the
/// token removed.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{side} {url}: cannot list refs: {message}")]
    List {
        side: Side,
        url: String,
        message: String,
    },
    #[error("{side} {url}: authentication failed ({message}); check the token or SSH key")]
    Auth {
        side: Side,
        url: String,
        message: String,
    },
    #[error("upstream {url} has no branch `{branch}`")]
    MissingBranch { url: String, branch: String },
    #[error("invalid branch name {branch:?}")]
    InvalidBranch { branch: String },
    #[error("cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
    #[error("cache {path}: cannot lock it: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("upstream {url}: fetch into the cache failed: {message}")]
    Fetch { url: String, message: String },
    #[error("mirror {url}: push failed: {message}")]
    Push { url: String, message: String },
    #[error("mirror {url}: the push was rejected for {}", .refs.iter().map(|(r, m)| format!("{r} ({m})")).collect::<Vec<_>>().join(", "))]
    Rejected {
        url: String,
        refs: Vec<(String, String)>,
    },
    #[error("mirror {url}: after the push it still differs from upstream: {}", .mismatches.join("; "))]
    Verify {
        url: String,
        mismatches: Vec<String>,
    },
    #[error("cache {path} does not hold upstream commit {commit}; sync first")]
    NotCached { path: PathBuf, commit: String },
    #[error("forge: {0}")]
    Forge(#[from] ForgeError),
}

/// What to sync: one upstream/mirror pair, one branch, one cache.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Where refs come from (only read).
    pub upstream: GitRemote,
    /// Where refs go (the branch and tags only).
    pub mirror: GitRemote,
    /// The branch kept equal (short name, e.g. `main`).
    pub branch: String,
    /// The per-recipe bare cache ([`cache_dir`]); created when missing.
    pub cache_dir: PathBuf,
}

/// A tag whose target changed (same name, new object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedTag {
    /// The tag name.
    pub name: String,
    /// The object the mirror had (tag object or commit).
    pub old: String,
    /// The object upstream has now.
    pub new: String,
    /// The commit the mirror's tag peeled to (empty when the old tag object is unknown).
    pub old_commit: String,
    /// The commit upstream's tag peels to.
    pub new_commit: String,
}

/// An annotated tag and its peeled commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnotatedTag {
    /// The tag name.
    pub name: String,
    /// The tag object.
    pub tag_object: String,
    /// The commit it peels to.
    pub commit: String,
}

/// The outcome of a faithful sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The upstream URL (no user info).
    pub upstream: String,
    /// The mirror URL (no user info).
    pub mirror: String,
    /// The branch kept equal.
    pub branch: String,
    /// True when both listings already agreed: nothing was fetched or pushed.
    pub no_op: bool,
    /// Refs the mirror did not have (full names, e.g. `refs/tags/1.0.0+2.0`).
    pub created: Vec<String>,
    /// Refs the mirror had with another value.
    pub updated: Vec<String>,
    /// Mirror tags upstream no longer has, now deleted.
    pub deleted: Vec<String>,
    /// Synced refs that were already equal.
    pub unchanged: Vec<String>,
    /// Upstream tags that moved (same name, new target). Canonicals care.
    pub moved_tags: Vec<MovedTag>,
    /// Upstream's annotated tags with their peeled commits.
    pub annotated_tags: Vec<AnnotatedTag>,
    /// Objects received from upstream into the cache.
    pub objects_fetched: usize,
    /// Bytes received from upstream into the cache.
    pub bytes_fetched: usize,
    /// Wall time of the whole sync, in milliseconds.
    pub duration_ms: u64,
    /// Upstream's branch head commit.
    pub upstream_head: String,
    /// Upstream's tags: name -> peeled commit.
    pub upstream_tags: BTreeMap<String, String>,
}

impl SyncReport {
    /// Returns true when the mirror had to change.
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty())
    }

    /// Returns a one-line summary: `created 1, updated 0, deleted 0, unchanged 31 (12 ms)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "created {}, updated {}, deleted {}, unchanged {}",
            self.created.len(),
            self.updated.len(),
            self.deleted.len(),
            self.unchanged.len()
        );
        if self.no_op {
            s.push_str(", no-op");
        } else {
            s.push_str(&format!(", {} objects fetched", self.objects_fetched));
        }
        if !self.moved_tags.is_empty() {
            let names: Vec<&str> = self.moved_tags.iter().map(|m| m.name.as_str()).collect();
            s.push_str(&format!(", moved tags: {}", names.join(" ")));
        }
        s.push_str(&format!(" ({} ms)", self.duration_ms));
        s
    }
}

/// Returns the per-recipe bare cache: `<state>/<recipe>/upstream.git`.
pub fn cache_dir(state_root: &Path, recipe: &RecipeName) -> PathBuf {
    state_root.join(recipe.as_str()).join("upstream.git")
}

/// Builds the credential callback for `remote`. Each kind of credential is offered once, so a
/// refused token fails at once instead of looping.
fn callbacks<'a>(remote: &'a Resolved, tried: &'a Cell<u32>) -> RemoteCallbacks<'a> {
    const USERPASS: u32 = 1;
    const SSH: u32 = 2;
    const USERNAME: u32 = 4;
    let mut cb = RemoteCallbacks::new();
    cb.credentials(move |_url, user_from_url, allowed| {
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
fn git_error(
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

/// Lists a remote's branches and tags (one ref listing, no fetch).
pub fn ls_remote(remote: &GitRemote) -> Result<RemoteRefs, MirrorError> {
    list(remote, Side::Remote, &mut Peels::default())
}

/// Returns the filesystem path of a local remote (an absolute path or a `file://` URL).
fn local_path(url: &str) -> Option<PathBuf> {
    if url.starts_with('/') {
        return Some(PathBuf::from(url));
    }
    let rest = url.strip_prefix("file://")?;
    rest.starts_with('/').then(|| PathBuf::from(decode(rest)))
}

/// The file in a cache that remembers what upstream's tag targets peel to ([`Peels`]).
const PEELS_FILE: &str = "canon-peeled-tags";

/// What tag targets peel to: object id -> the first non-tag object it leads to (the commit, for a
/// release tag; itself for a lightweight tag).
///
/// Objects are named by their content, so an entry can never go stale: a tag object always peels
/// to the same commit. The sync keeps the table for upstream's current tags in the cache
/// ([`PEELS_FILE`]), so a no-op sync of a local upstream needs no object database at all: it reads
/// ref files and this table. `packed-refs` `^` lines teach it too. A target it does not know is
/// peeled through the repository's objects, as before, and learned.
#[derive(Debug, Default)]
struct Peels {
    known: HashMap<String, String>,
    /// True when an entry was found through an object database (worth saving).
    learned: bool,
}

impl Peels {
    /// Reads the table kept in `cache_dir`; missing, unreadable or malformed lines are skipped
    /// (their targets are then peeled through the objects).
    fn load(cache_dir: &Path) -> Self {
        let mut peels = Self::default();
        if let Ok(text) = std::fs::read_to_string(cache_dir.join(PEELS_FILE)) {
            for line in text.lines() {
                if let Some((target, peeled)) = line.split_once(' ') {
                    if is_oid(target) && is_oid(peeled) {
                        peels.known.insert(target.to_string(), peeled.to_string());
                    }
                }
            }
        }
        peels
    }

    fn get(&self, target: &str) -> Option<&String> {
        self.known.get(target)
    }

    /// Records a peel read from `packed-refs` (already on disk, so not worth saving).
    fn note(&mut self, target: &str, peeled: &str) {
        self.known.insert(target.to_string(), peeled.to_string());
    }

    /// Records a peel found through an object database.
    fn learn(&mut self, target: &str, peeled: &str) {
        self.note(target, peeled);
        self.learned = true;
    }

    /// Writes the peels of `tags` to `cache_dir` (replacing the table, so it never outgrows
    /// upstream's tag set). Best effort: the table only saves work, so a failure is logged and
    /// the next sync peels through the objects again. Written to a temp file and renamed, so a
    /// concurrent reader sees the old or the new table, never half of one.
    fn save(cache_dir: &Path, tags: &BTreeMap<String, TagRef>) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut text = String::with_capacity(tags.len() * 82);
        for tag in tags.values() {
            text.push_str(&format!("{} {}\n", tag.target, tag.peeled));
        }
        let path = cache_dir.join(PEELS_FILE);
        let tmp = cache_dir.join(format!(
            ".{PEELS_FILE}.{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, &path)) {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(path = %path.display(), error = %e, "Could not save the tag peels.");
        }
    }
}

/// Returns true for a full hex object id (SHA-1 or SHA-256).
fn is_oid(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Returns the git directory of `path` when its refs can be read straight from files: a plain
/// bare repository or `.git` folder (no worktree `commondir`, no `reftable`). Anything else is
/// left to libgit2.
fn plain_git_dir(path: &Path) -> Option<PathBuf> {
    let is_git_dir = |d: &Path| {
        d.join("HEAD").is_file() && d.join("objects").is_dir() && d.join("refs").is_dir()
    };
    let dir = if is_git_dir(path) {
        path.to_path_buf()
    } else {
        let dot_git = path.join(".git");
        is_git_dir(&dot_git).then_some(dot_git)?
    };
    let special = dir.join("commondir").exists() || dir.join("reftable").exists();
    (!special).then_some(dir)
}

/// Reads the direct refs under `refs/heads/` and `refs/tags/` of a files-backend git directory,
/// as git resolves them: `packed-refs` first, then loose ref files, which win (a loose symbolic
/// ref hides a packed one of the same name, and symbolic refs are not listed, as with libgit2).
/// `packed-refs` peel lines are noted in `peels`.
///
/// Any surprise (a malformed ref file, a symlink, a name that is not UTF-8) is an error, and the
/// caller lists through libgit2 instead, so such a repository gets exactly libgit2's answer.
fn read_ref_files(git_dir: &Path, peels: &mut Peels) -> std::io::Result<BTreeMap<String, String>> {
    let mut refs = BTreeMap::new();
    match std::fs::read_to_string(git_dir.join("packed-refs")) {
        Ok(text) => parse_packed_refs(&text, &mut refs, peels)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for prefix in ["refs/heads", "refs/tags"] {
        read_loose_refs(&git_dir.join(prefix), prefix, &mut refs)?;
    }
    Ok(refs)
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Parses `packed-refs`: `<oid> <name>` lines, each optionally followed by `^<peeled oid>`. When
/// the header has the `peeled` (or `fully-peeled`) trait, a tag without a `^` line is not an
/// annotated tag, so it peels to itself.
fn parse_packed_refs(
    text: &str,
    refs: &mut BTreeMap<String, String>,
    peels: &mut Peels,
) -> std::io::Result<()> {
    let mut tags_peeled = false;
    // The last tag entry, until we know whether a `^` line follows it.
    let mut pending: Option<&str> = None;
    for line in text.lines() {
        if let Some(traits) = line.strip_prefix("# pack-refs with:") {
            tags_peeled = traits
                .split_whitespace()
                .any(|t| t == "peeled" || t == "fully-peeled");
            continue;
        }
        if let Some(peeled) = line.strip_prefix('^') {
            if !is_oid(peeled) {
                return Err(invalid(format!("packed-refs: bad peel line {line:?}")));
            }
            if let Some(target) = pending.take() {
                peels.note(target, peeled);
            }
            continue;
        }
        if let Some(target) = pending.take() {
            if tags_peeled {
                peels.note(target, target);
            }
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((oid, name)) = line.split_once(' ').filter(|(oid, _)| is_oid(oid)) else {
            return Err(invalid(format!("packed-refs: bad line {line:?}")));
        };
        if name.starts_with("refs/tags/") {
            pending = Some(oid);
        }
        if name.starts_with("refs/heads/") || name.starts_with("refs/tags/") {
            refs.insert(name.to_string(), oid.to_string());
        }
    }
    if let (Some(target), true) = (pending, tags_peeled) {
        peels.note(target, target);
    }
    Ok(())
}

/// Reads the loose ref files under `dir` (named `prefix/...`) into `refs`, recursively.
fn read_loose_refs(
    dir: &Path,
    prefix: &str,
    refs: &mut BTreeMap<String, String>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            return Err(invalid(format!("{prefix}: a ref name is not UTF-8")));
        };
        // Git never names a ref like this: lock files and dot files are not refs.
        if name.starts_with('.') || name.ends_with(".lock") {
            continue;
        }
        let full = format!("{prefix}/{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            read_loose_refs(&entry.path(), &full, refs)?;
            continue;
        }
        if !kind.is_file() {
            return Err(invalid(format!("{full} is not a regular file")));
        }
        let mut buf = [0; 256];
        let len = read_first_line(&entry.path(), &mut buf)?;
        let content = std::str::from_utf8(&buf[..len])
            .map_err(|_| invalid(format!("{full} is not a ref")))?
            .trim_end();
        if content.starts_with("ref:") {
            refs.remove(&full);
        } else if is_oid(content) {
            refs.insert(full, content.to_string());
        } else {
            return Err(invalid(format!("{full} is not a ref")));
        }
    }
    Ok(())
}

/// Reads a ref file into `buf` up to its first newline (git writes one line, `<oid>\n` or
/// `ref: <name>\n`, so one `read` usually does it); returns the length read. A file that fills
/// `buf` is no ref, and its content then fails to parse.
fn read_first_line(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut file = File::open(path)?;
    let mut len = 0;
    while len < buf.len() && !buf[..len].contains(&b'\n') {
        match file.read(&mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    Ok(len)
}

/// Lists a repository's direct refs (full name -> object id) through libgit2.
fn read_refs_git2(path: &Path) -> Result<BTreeMap<String, String>, git2::Error> {
    let repo = Repository::open(path)?;
    let mut refs = BTreeMap::new();
    for reference in repo.references()? {
        let reference = reference?;
        if let (Ok(name), Some(oid)) = (reference.name(), reference.target()) {
            refs.insert(name.to_string(), oid.to_string());
        }
    }
    Ok(refs)
}

/// Returns what `oid` peels to in `repo`: the first non-tag object, `oid` itself when it is no
/// tag. Reads only the object header unless it is a tag.
fn peel_in(repo: &Repository, oid: &str) -> Result<String, git2::Error> {
    let id = Oid::from_str(oid)?;
    match repo.odb()?.read_header(id)?.1 {
        git2::ObjectType::Tag => Ok(repo
            .find_object(id, None)?
            .peel(git2::ObjectType::Any)?
            .id()
            .to_string()),
        _ => Ok(oid.to_string()),
    }
}

/// Lists a repository on the local filesystem: what libgit2's local transport advertises,
/// without its cost. Refs are read straight from the ref files when the repository is a plain
/// files-backend one ([`plain_git_dir`]), else through libgit2.
///
/// Tag peels come from `peels` (the cache's table and `packed-refs` peel lines). With `peel`, a
/// target `peels` does not know is peeled through the repository's objects and learned; without
/// it (the mirror side, where the sync only compares targets), such a tag gets an empty `peeled`.
fn list_local(path: &Path, peel: bool, peels: &mut Peels) -> Result<RemoteRefs, git2::Error> {
    let files = plain_git_dir(path).and_then(|dir| {
        read_ref_files(&dir, peels)
            .map_err(|e| {
                tracing::debug!(path = %path.display(), error = %e, "Reading refs through libgit2.");
            })
            .ok()
    });
    let all = match files {
        Some(refs) => refs,
        None => read_refs_git2(path)?,
    };
    if peel {
        let unknown: Vec<&String> = all
            .iter()
            .filter(|(name, oid)| name.starts_with("refs/tags/") && peels.get(oid).is_none())
            .map(|(_, oid)| oid)
            .collect();
        if !unknown.is_empty() {
            let repo = Repository::open(path)?;
            for oid in unknown {
                let peeled = peel_in(&repo, oid)?;
                peels.learn(oid, &peeled);
            }
        }
    }
    let mut refs = RemoteRefs::default();
    for (name, oid) in all {
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            refs.branches.insert(branch.to_string(), oid);
        } else if let Some(tag) = name.strip_prefix("refs/tags/") {
            // Known for every tag when peeling; unknown (empty) only on the mirror side.
            let peeled = peels.get(&oid).cloned().unwrap_or_default();
            refs.tags.insert(
                tag.to_string(),
                TagRef {
                    target: oid,
                    peeled,
                },
            );
        }
    }
    Ok(refs)
}

/// Lists a remote's branches and tags (one ref listing). Local remotes are read from disk with
/// tag peels from `peels` ([`list_local`]); other remotes advertise their peels (`^{}` lines).
fn list(remote: &GitRemote, side: Side, peels: &mut Peels) -> Result<RemoteRefs, MirrorError> {
    let r = remote.resolved();
    if let Some(path) = local_path(&r.url) {
        return list_local(&path, side != Side::Mirror, peels).map_err(|e| MirrorError::List {
            side,
            url: r.url.clone(),
            message: e.message().to_string(),
        });
    }
    let fail = |e: git2::Error, tried: &Cell<u32>| {
        git_error(&r, side, &e, tried, |url, message| MirrorError::List {
            side,
            url,
            message,
        })
    };
    let tried = Cell::new(0);
    let mut git_remote = Remote::create_detached(r.url.as_str()).map_err(|e| fail(e, &tried))?;
    let conn = git_remote
        .connect_auth(Direction::Fetch, Some(callbacks(&r, &tried)), None)
        .map_err(|e| fail(e, &tried))?;
    let heads = conn.list().map_err(|e| fail(e, &tried))?;
    let mut refs = RemoteRefs::default();
    let mut targets: BTreeMap<String, String> = BTreeMap::new();
    let mut peeled: BTreeMap<String, String> = BTreeMap::new();
    for head in heads {
        let name = head.name();
        let oid = head.oid().to_string();
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            refs.branches.insert(branch.to_string(), oid);
        } else if let Some(tag) = name.strip_prefix("refs/tags/") {
            match tag.strip_suffix("^{}") {
                Some(tag) => peeled.insert(tag.to_string(), oid),
                None => targets.insert(tag.to_string(), oid),
            };
        }
    }
    for (name, target) in targets {
        let peeled = peeled.get(&name).cloned().unwrap_or_else(|| target.clone());
        refs.tags.insert(name, TagRef { target, peeled });
    }
    tracing::debug!(
        side = %side,
        url = %r.url,
        branches = refs.branches.len(),
        tags = refs.tags.len(),
        "Listed remote refs."
    );
    Ok(refs)
}

/// What the mirror must become: the branch head and every tag.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wanted {
    head: String,
    tags: BTreeMap<String, TagRef>,
}

/// Returns true when the mirror's branch and full tag set equal `wanted`.
fn mirror_equals(wanted: &Wanted, mirror: &RemoteRefs, branch: &str) -> bool {
    mirror.branches.get(branch) == Some(&wanted.head)
        && mirror.tags.len() == wanted.tags.len()
        && wanted
            .tags
            .iter()
            .all(|(n, t)| mirror.tags.get(n).map(|m| &m.target) == Some(&t.target))
}

/// The ref updates that make the mirror equal to `wanted`.
#[derive(Debug, Default)]
struct Plan {
    created: Vec<String>,
    updated: Vec<String>,
    deleted: Vec<String>,
    unchanged: Vec<String>,
    moved_tags: Vec<MovedTag>,
    /// Refspecs for the push.
    refspecs: Vec<String>,
}

fn plan(wanted: &Wanted, mirror: &RemoteRefs, branch: &str) -> Plan {
    let mut p = Plan::default();
    let bref = format!("refs/heads/{branch}");
    match mirror.branches.get(branch) {
        Some(h) if *h == wanted.head => p.unchanged.push(bref),
        old => {
            p.refspecs.push(format!("+{bref}:{bref}"));
            if old.is_some() {
                p.updated.push(bref);
            } else {
                p.created.push(bref);
            }
        }
    }
    for (name, tag) in &wanted.tags {
        let r = format!("refs/tags/{name}");
        match mirror.tags.get(name) {
            Some(m) if m.target == tag.target => p.unchanged.push(r),
            Some(m) => {
                p.moved_tags.push(MovedTag {
                    name: name.clone(),
                    old: m.target.clone(),
                    new: tag.target.clone(),
                    old_commit: m.peeled.clone(),
                    new_commit: tag.peeled.clone(),
                });
                p.refspecs.push(format!("+{r}:{r}"));
                p.updated.push(r);
            }
            None => {
                p.refspecs.push(format!("+{r}:{r}"));
                p.created.push(r);
            }
        }
    }
    for name in mirror.tags.keys() {
        if !wanted.tags.contains_key(name) {
            let r = format!("refs/tags/{name}");
            p.refspecs.push(format!(":{r}"));
            p.deleted.push(r);
        }
    }
    p
}

fn cache_err(path: &Path) -> impl Fn(git2::Error) -> MirrorError + '_ {
    move |e| MirrorError::Cache {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    }
}

/// Returns true when the cache exists and holds `commit`.
fn cache_has(path: &Path, branch: &str, commit: &str) -> bool {
    // Fast path: the cache's loose branch ref (as a fetch writes it) already names the commit, and
    // a ref only points to objects that are present.
    if std::fs::read_to_string(path.join("refs/heads").join(branch))
        .is_ok_and(|s| s.trim() == commit)
    {
        return true;
    }
    let Ok(oid) = Oid::from_str(commit) else {
        return false;
    };
    Repository::open_bare(path)
        .and_then(|repo| repo.odb().map(|odb| odb.exists(oid)))
        .unwrap_or(false)
}

/// Takes the cache's exclusive lock (`<cache>.lock`), waiting for another sync of the same recipe.
fn lock_cache(path: &Path) -> Result<File, MirrorError> {
    let lock_path = path.with_extension("git.lock");
    let err = |source| MirrorError::Lock {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(err)?;
    file.lock().map_err(err)?;
    Ok(file)
}

fn open_cache(path: &Path) -> Result<Repository, MirrorError> {
    if path.join("HEAD").exists() {
        Repository::open_bare(path).map_err(cache_err(path))
    } else {
        Repository::init_bare(path).map_err(cache_err(path))
    }
}

/// Fetches the branch and all tags of upstream into the cache, pruning tags upstream lacks.
/// Returns (objects, bytes) received.
fn fetch(
    repo: &Repository,
    upstream: &GitRemote,
    branch: &str,
) -> Result<(usize, usize), MirrorError> {
    let specs = [
        format!("+refs/heads/{branch}:refs/heads/{branch}"),
        "+refs/tags/*:refs/tags/*".to_string(),
    ];
    fetch_with(repo, upstream, Side::Upstream, &specs, FetchPrune::On)
}

/// Fetches `refspecs` from `remote` into `repo`, authenticating with the remote's token (as the
/// basic-auth password) or SSH key, each offered once. No other tags are followed and
/// `FETCH_HEAD` is not written. Returns (objects, bytes) received.
///
/// Errors are [`MirrorError::Auth`] (naming `side`) or [`MirrorError::Fetch`]; both carry the URL
/// without user info and the git message with the token removed.
pub fn fetch_refspecs(
    repo: &Repository,
    remote: &GitRemote,
    side: Side,
    refspecs: &[String],
) -> Result<(usize, usize), MirrorError> {
    fetch_with(repo, remote, side, refspecs, FetchPrune::Unspecified)
}

fn fetch_with(
    repo: &Repository,
    remote: &GitRemote,
    side: Side,
    refspecs: &[String],
    prune: FetchPrune,
) -> Result<(usize, usize), MirrorError> {
    let r = remote.resolved();
    let tried = Cell::new(0);
    let fail = |e: git2::Error, tried: &Cell<u32>| {
        git_error(&r, side, &e, tried, |url, message| MirrorError::Fetch {
            url,
            message,
        })
    };
    let mut git_remote = repo.remote_anonymous(&r.url).map_err(|e| fail(e, &tried))?;
    let mut fo = FetchOptions::new();
    fo.remote_callbacks(callbacks(&r, &tried))
        .download_tags(AutotagOption::None)
        .prune(prune)
        .update_fetchhead(false);
    git_remote
        .fetch(refspecs, Some(&mut fo), None)
        .map_err(|e| fail(e, &tried))?;
    let stats = git_remote.stats();
    tracing::debug!(
        side = %side,
        url = %r.url,
        refspecs = ?refspecs,
        objects = stats.received_objects(),
        bytes = stats.received_bytes(),
        "Fetched refs."
    );
    Ok((stats.received_objects(), stats.received_bytes()))
}

/// Reads the branch head and tags of the cache, keeping only tags in `upstream_tags` (the listing
/// taken at the start, so a tag deleted upstream never returns through a stale cache).
fn cache_state(
    repo: &Repository,
    path: &Path,
    branch: &str,
    upstream_tags: &BTreeMap<String, TagRef>,
) -> Result<Wanted, MirrorError> {
    let err = cache_err(path);
    let head = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .map_err(&err)?
        .to_string();
    let mut tags = BTreeMap::new();
    let mut stale = Vec::new();
    for reference in repo.references_glob("refs/tags/*").map_err(&err)? {
        let reference = reference.map_err(&err)?;
        let (Ok(full), Some(target)) = (reference.name(), reference.target()) else {
            continue;
        };
        let name = full.trim_start_matches("refs/tags/").to_string();
        if !upstream_tags.contains_key(&name) {
            stale.push(full.to_string());
            continue;
        }
        let peeled = reference.peel_to_commit().map_err(&err)?.id().to_string();
        tags.insert(
            name,
            TagRef {
                target: target.to_string(),
                peeled,
            },
        );
    }
    for full in stale {
        if let Ok(mut r) = repo.find_reference(&full) {
            r.delete().map_err(&err)?;
        }
    }
    Ok(Wanted { head, tags })
}

/// Pushes `refspecs` from the cache to the mirror; fails when any ref is rejected.
fn push(repo: &Repository, mirror: &GitRemote, refspecs: &[String]) -> Result<(), MirrorError> {
    let r = mirror.resolved();
    let tried = Cell::new(0);
    let rejected: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    {
        let mut remote = repo
            .remote_anonymous(&r.url)
            .map_err(|e| MirrorError::Push {
                url: r.url.clone(),
                message: r.scrub(e.message()),
            })?;
        let mut cb = callbacks(&r, &tried);
        cb.push_update_reference(|refname, status| {
            if let Some(msg) = status {
                rejected
                    .borrow_mut()
                    .push((refname.to_string(), r.scrub(msg)));
            }
            Ok(())
        });
        let mut po = PushOptions::new();
        po.remote_callbacks(cb);
        remote.push(refspecs, Some(&mut po)).map_err(|e| {
            git_error(&r, Side::Mirror, &e, &tried, |url, message| {
                MirrorError::Push { url, message }
            })
        })?;
    }
    let rejected = rejected.into_inner();
    if rejected.is_empty() {
        Ok(())
    } else {
        Err(MirrorError::Rejected {
            url: r.url,
            refs: rejected,
        })
    }
}

fn mismatches(wanted: &Wanted, mirror: &RemoteRefs, branch: &str) -> Vec<String> {
    let mut out = Vec::new();
    if mirror.branches.get(branch) != Some(&wanted.head) {
        out.push(format!(
            "refs/heads/{branch} is {} (upstream {})",
            mirror
                .branches
                .get(branch)
                .map_or("missing", |s| s.as_str()),
            wanted.head
        ));
    }
    for (name, tag) in &wanted.tags {
        match mirror.tags.get(name) {
            Some(m) if m.target == tag.target => {}
            Some(m) => out.push(format!(
                "refs/tags/{name} is {} (upstream {})",
                m.target, tag.target
            )),
            None => out.push(format!("refs/tags/{name} is missing")),
        }
    }
    for name in mirror.tags.keys() {
        if !wanted.tags.contains_key(name) {
            out.push(format!("refs/tags/{name} should not exist"));
        }
    }
    out
}

/// Makes the mirror's branch and complete tag set equal to upstream's, touching no other ref.
///
/// Steps: list both sides; if they agree (and the cache holds the upstream head) stop there.
/// Otherwise fetch upstream into the cache, force-push the differing branch and tags, delete
/// mirror tags upstream lacks, and list the mirror again to verify every synced ref.
pub fn sync(req: &SyncRequest) -> Result<SyncReport, MirrorError> {
    let started = Instant::now();
    if git2::Branch::name_is_valid(&req.branch).ok() != Some(true) {
        return Err(MirrorError::InvalidBranch {
            branch: req.branch.clone(),
        });
    }
    let upstream_url = req.upstream.display_url();
    let mirror_url = req.mirror.display_url();
    let mut peels = Peels::load(&req.cache_dir);
    let up = list(&req.upstream, Side::Upstream, &mut peels)?;
    let mirror_before = list(&req.mirror, Side::Mirror, &mut peels)?;
    let Some(up_head) = up.branches.get(&req.branch).cloned() else {
        return Err(MirrorError::MissingBranch {
            url: upstream_url,
            branch: req.branch.clone(),
        });
    };
    let listed = Wanted {
        head: up_head,
        tags: up.tags.clone(),
    };
    let report = |wanted: &Wanted, plan: Plan, no_op: bool, fetched: (usize, usize)| SyncReport {
        upstream: upstream_url.clone(),
        mirror: mirror_url.clone(),
        branch: req.branch.clone(),
        no_op,
        created: plan.created,
        updated: plan.updated,
        deleted: plan.deleted,
        unchanged: plan.unchanged,
        moved_tags: plan.moved_tags,
        annotated_tags: wanted
            .tags
            .iter()
            .filter(|(_, t)| t.is_annotated())
            .map(|(n, t)| AnnotatedTag {
                name: n.clone(),
                tag_object: t.target.clone(),
                commit: t.peeled.clone(),
            })
            .collect(),
        objects_fetched: fetched.0,
        bytes_fetched: fetched.1,
        duration_ms: started.elapsed().as_millis() as u64,
        upstream_head: wanted.head.clone(),
        upstream_tags: wanted
            .tags
            .iter()
            .map(|(n, t)| (n.clone(), t.peeled.clone()))
            .collect(),
    };

    if mirror_equals(&listed, &mirror_before, &req.branch)
        && cache_has(&req.cache_dir, &req.branch, &listed.head)
    {
        if peels.learned {
            // Peeled through upstream's objects this time (a cache from before the table, or a
            // table lost): remember, so the next no-op sync reads ref files only.
            Peels::save(&req.cache_dir, &listed.tags);
        }
        let p = plan(&listed, &mirror_before, &req.branch);
        let rep = report(&listed, p, true, (0, 0));
        tracing::debug!(upstream = %rep.upstream, mirror = %rep.mirror, "Mirror already equals upstream.");
        return Ok(rep);
    }

    let _lock = lock_cache(&req.cache_dir)?;
    let repo = open_cache(&req.cache_dir)?;
    let fetched = fetch(&repo, &req.upstream, &req.branch)?;
    let wanted = cache_state(&repo, &req.cache_dir, &req.branch, &up.tags)?;
    Peels::save(&req.cache_dir, &wanted.tags);
    let mut p = plan(&wanted, &mirror_before, &req.branch);
    for moved in &mut p.moved_tags {
        if moved.old_commit.is_empty() {
            // The mirror listing was not peeled: the cache held the old object until now (it was
            // upstream's), else a local mirror still has it.
            let mirror_repo = local_path(&mirror_url).and_then(|p| Repository::open(p).ok());
            moved.old_commit = peel_in(&repo, &moved.old)
                .or_else(|e| {
                    mirror_repo
                        .as_ref()
                        .map_or(Err(e), |m| peel_in(m, &moved.old))
                })
                .unwrap_or_default();
        }
    }
    if !p.refspecs.is_empty() {
        tracing::debug!(
            mirror = %mirror_url,
            refs = p.refspecs.len(),
            "Pushing the branch and tags to the mirror."
        );
        push(&repo, &req.mirror, &p.refspecs)?;
        let after = list(&req.mirror, Side::Mirror, &mut peels)?;
        let diff = mismatches(&wanted, &after, &req.branch);
        if !diff.is_empty() {
            return Err(MirrorError::Verify {
                url: mirror_url,
                mismatches: diff,
            });
        }
    }
    let rep = report(&wanted, p, false, fetched);
    tracing::info!(
        upstream = %rep.upstream,
        mirror = %rep.mirror,
        created = rep.created.len(),
        updated = rep.updated.len(),
        deleted = rep.deleted.len(),
        objects = rep.objects_fetched,
        "Mirror synced."
    );
    Ok(rep)
}

/// A PR closed because upstream merged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosedPr {
    /// The PR number on the mirror.
    pub number: u64,
    /// The PR's head commit, reachable from the upstream branch.
    pub head: String,
    /// Whether the forge had already marked it merged or closed (nothing was changed).
    pub already_done: bool,
}

/// A PR that could not be closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrFailure {
    /// The PR number on the mirror.
    pub number: u64,
    /// Why (token removed).
    pub error: String,
}

/// The outcome of [`close_merged_prs`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CloseReport {
    /// PRs whose head upstream has merged: closed now, or already closed/merged by the forge.
    pub closed: Vec<ClosedPr>,
    /// PRs left open (their head is not reachable from the upstream branch).
    pub left_open: Vec<u64>,
    /// PRs that should have been closed but the forge refused.
    pub failed: Vec<PrFailure>,
}

/// Returns the open PRs (number, head) whose head commit is reachable from `branch_head`.
///
/// The cache must hold `branch_head`; a PR head absent from the cache cannot be reachable from
/// it, since a fetch brings the full history of the head. Squash or rebase merges have other
/// commits and are not detected: such PRs stay open.
pub fn merged_heads(
    cache_dir: &Path,
    branch_head: &str,
    heads: &[(u64, String)],
) -> Result<Vec<(u64, bool)>, MirrorError> {
    let not_cached = || MirrorError::NotCached {
        path: cache_dir.to_path_buf(),
        commit: branch_head.to_string(),
    };
    let repo = Repository::open_bare(cache_dir).map_err(|_| not_cached())?;
    let head = Oid::from_str(branch_head).map_err(|_| not_cached())?;
    let odb = repo.odb().map_err(cache_err(cache_dir))?;
    if !odb.exists(head) {
        return Err(not_cached());
    }
    let mut out = Vec::with_capacity(heads.len());
    for (number, pr_head) in heads {
        let merged = match Oid::from_str(pr_head) {
            Ok(oid) if oid == head => true,
            Ok(oid) if odb.exists(oid) => repo.graph_descendant_of(head, oid).unwrap_or(false),
            _ => false,
        };
        out.push((*number, merged));
    }
    Ok(out)
}

/// Closes every open mirror PR whose head commit is reachable from the upstream branch head
/// `branch_head` (after a sync), with a comment naming that upstream commit. Every other PR stays
/// open. Already merged (Gitea's 412) or already closed PRs are no-ops. A failure to close one PR
/// is recorded and the others are still handled; a failure to list PRs is an error.
pub async fn close_merged_prs(
    forge: &dyn Forge,
    mirror_repo: &str,
    cache_dir: &Path,
    branch_head: &str,
) -> Result<CloseReport, MirrorError> {
    let prs = forge.list_open_prs(mirror_repo).await?;
    let heads: Vec<(u64, String)> = prs.iter().map(|p| (p.number, p.head_sha.clone())).collect();
    let decisions = merged_heads(cache_dir, branch_head, &heads)?;
    let mut report = CloseReport::default();
    for ((number, merged), (_, head)) in decisions.into_iter().zip(heads) {
        if !merged {
            report.left_open.push(number);
            continue;
        }
        let comment = format!(
            "Merged upstream: this pull request's head commit {head} is part of the upstream branch \
             at commit {branch_head}. Closed by canon after syncing the mirror."
        );
        match forge.close_pr(mirror_repo, number, &comment).await {
            Ok(outcome) => {
                tracing::info!(repo = mirror_repo, pr = number, head = %head, outcome = ?outcome, "Closed a PR merged upstream.");
                report.closed.push(ClosedPr {
                    number,
                    head,
                    already_done: outcome != CloseOutcome::Closed,
                });
            }
            Err(e) => {
                tracing::warn!(repo = mirror_repo, pr = number, error = %e, "Could not close a PR merged upstream.");
                report.failed.push(PrFailure {
                    number,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn fetch_refspecs_brings_only_the_asked_refs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = Repository::init(dir.path().join("source")).expect("init source");
        let sig = git2::Signature::now("t", "t@example.org").expect("signature");
        let tree = {
            let mut index = source.index().expect("index");
            let oid = index.write_tree().expect("write tree");
            source.find_tree(oid).expect("tree")
        };
        let commit = source
            .commit(Some("HEAD"), &sig, &sig, "one", &tree, &[])
            .expect("commit");
        let object = source.find_object(commit, None).expect("object");
        source
            .tag_lightweight("1.0.0", &object, false)
            .expect("tag");
        source
            .tag_lightweight("2.0.0", &object, false)
            .expect("tag");

        let dest = Repository::init(dir.path().join("dest")).expect("init dest");
        let remote = GitRemote::local(dir.path().join("source").display().to_string());
        let spec = "+refs/tags/1.0.0:refs/tags/1.0.0".to_string();
        fetch_refspecs(&dest, &remote, Side::Mirror, &[spec]).expect("fetch");
        assert_eq!(
            dest.refname_to_id("refs/tags/1.0.0").expect("fetched tag"),
            commit
        );
        assert!(
            dest.refname_to_id("refs/tags/2.0.0").is_err(),
            "not asked for"
        );
        assert!(dest.find_reference("FETCH_HEAD").is_err(), "no FETCH_HEAD");

        let missing = GitRemote::local(dir.path().join("missing").display().to_string());
        let err = fetch_refspecs(
            &dest,
            &missing,
            Side::Mirror,
            &["+refs/tags/*:refs/tags/*".into()],
        )
        .expect_err("no such repository");
        assert!(matches!(err, MirrorError::Fetch { .. }), "{err}");
    }

    /// Runs git hermetically in `dir`; returns stdout.
    fn git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.org")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.org")
            .output()
            .expect("run git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// What git itself advertises for a local repository (`git ls-remote`), as [`RemoteRefs`].
    fn ls_remote_by_git(path: &Path) -> RemoteRefs {
        let text = git(path, &["ls-remote", "--heads", "--tags", "."]);
        let mut refs = RemoteRefs::default();
        let mut peeled = BTreeMap::new();
        for line in text.lines() {
            let (oid, name) = line.split_once('\t').expect("oid<TAB>name");
            if let Some(b) = name.strip_prefix("refs/heads/") {
                refs.branches.insert(b.into(), oid.into());
            } else if let Some(t) = name.strip_prefix("refs/tags/") {
                match t.strip_suffix("^{}") {
                    Some(t) => peeled.insert(t.to_string(), oid.to_string()),
                    None => refs
                        .tags
                        .insert(
                            t.into(),
                            TagRef {
                                target: oid.into(),
                                peeled: oid.into(),
                            },
                        )
                        .map(|_| String::new()),
                };
            }
        }
        for (name, commit) in peeled {
            refs.tags
                .get_mut(&name)
                .expect("peeled tag is listed")
                .peeled = commit;
        }
        refs
    }

    /// A bare repository with branches and lightweight, annotated and nested tags, some refs
    /// packed (with peel lines) and some loose, one loose ref shadowing its packed value, a
    /// symbolic ref and a stray lock file.
    fn mixed_repo(root: &Path) -> PathBuf {
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        git(&work, &["init", "-q", "-b", "main"]);
        for i in 1..=3 {
            std::fs::write(work.join("f"), format!("{i}\n")).expect("write");
            git(&work, &["add", "f"]);
            git(&work, &["commit", "-q", "-m", &format!("c{i}")]);
            git(
                &work,
                &["tag", "-a", "-m", "r", &format!("{i}.0.0+1.{i}"), "HEAD"],
            );
        }
        git(&work, &["tag", "light", "HEAD~1"]);
        git(&work, &["tag", "-a", "-m", "nested", "nested", "1.0.0+1.1"]);
        git(&work, &["branch", "feature/x", "HEAD~2"]);
        let bare = root.join("bare.git");
        git(root, &["clone", "-q", "--bare", "work", "bare.git"]);
        git(
            &bare,
            &["fetch", "-q", "../work", "refs/tags/*:refs/tags/*"],
        );
        git(&bare, &["pack-refs", "--all"]);
        // Loose refs after packing: one shadows its packed value, one is new.
        git(&bare, &["update-ref", "refs/heads/feature/x", "main~1"]);
        git(&work, &["tag", "-a", "-m", "late", "late", "HEAD~2"]);
        git(
            &bare,
            &["fetch", "-q", "../work", "refs/tags/late:refs/tags/late"],
        );
        git(
            &bare,
            &["symbolic-ref", "refs/heads/sym", "refs/heads/main"],
        );
        std::fs::write(bare.join("refs/tags/broken.lock"), "junk").expect("lock file");
        bare
    }

    #[test]
    fn local_listing_equals_what_git_advertises() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = mixed_repo(dir.path());
        let mut expected = ls_remote_by_git(&bare);
        // git resolves symbolic refs in its listing; canon lists direct refs only, as libgit2's
        // reference walk does (a symbolic upstream branch is never the synced branch's value).
        assert_eq!(
            expected.branches.remove("sym"),
            expected.branches.get("main").cloned()
        );
        assert!(expected.tags["nested"].is_annotated() && !expected.tags["light"].is_annotated());

        let mut peels = Peels::default();
        let dir_path = plain_git_dir(&bare).expect("a plain bare repository");
        read_ref_files(&dir_path, &mut Peels::default()).expect("read from files");
        assert_eq!(list_local(&bare, true, &mut peels).expect("list"), expected);
        assert!(
            peels.learned,
            "the loose annotated tag was peeled through the objects"
        );

        // Packed tags were peeled by their `^` lines: only the loose one needed the objects.
        let mut from_files = Peels::default();
        read_ref_files(&dir_path, &mut from_files).expect("read from files");
        let late = &expected.tags["late"].target;
        assert!(from_files.get(late).is_none());
        assert_eq!(
            from_files.get(&expected.tags["nested"].target),
            Some(&expected.tags["nested"].peeled)
        );
        assert_eq!(
            from_files.get(&expected.tags["light"].target),
            Some(&expected.tags["light"].target)
        );

        // Through libgit2 (what any other layout uses), the same answer.
        let mut via_git2 = Peels::default();
        let all = read_refs_git2(&bare).expect("libgit2 listing");
        assert_eq!(all.len(), expected.branches.len() + expected.tags.len());

        // Without peeling, unknown annotated targets are left empty and nothing is learned.
        let unpeeled = list_local(&bare, false, &mut via_git2).expect("list");
        assert_eq!(unpeeled.tags["late"].peeled, "");
        assert_eq!(unpeeled.branches, expected.branches);
        assert!(!via_git2.learned);
    }

    #[test]
    fn a_corrupt_ref_file_is_left_to_libgit2() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = mixed_repo(dir.path());
        std::fs::write(bare.join("refs/tags/bad"), "not an object id\n").expect("write");
        let git_dir = plain_git_dir(&bare).expect("plain");
        assert!(read_ref_files(&git_dir, &mut Peels::default()).is_err());
        // libgit2 answers as it always did here: it passes over the corrupt ref.
        let listed = list_local(&bare, true, &mut Peels::default()).expect("listed by libgit2");
        let mut expected = ls_remote_by_git(&bare);
        expected.branches.remove("sym");
        // (git itself advertises it with a null id.)
        expected.tags.remove("bad");
        assert_eq!(listed, expected);
        assert!(!listed.tags.contains_key("bad"));
        assert!(plain_git_dir(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn the_peel_table_round_trips_and_a_no_op_sync_restores_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let up = mixed_repo(dir.path());
        let mirror = dir.path().join("mirror.git");
        git(dir.path(), &["init", "-q", "--bare", "mirror.git"]);
        let req = SyncRequest {
            upstream: GitRemote::local(up.display().to_string()),
            mirror: GitRemote::local(mirror.display().to_string()),
            branch: "main".into(),
            cache_dir: dir.path().join("state/r/upstream.git"),
        };
        let first = sync(&req).expect("first sync");
        let table = req.cache_dir.join(PEELS_FILE);
        let saved = Peels::load(&req.cache_dir);
        for tag in ls_remote_by_git(&up).tags.values() {
            assert_eq!(saved.get(&tag.target), Some(&tag.peeled), "{tag:?}");
        }

        let no_op = sync(&req).expect("no-op sync");
        assert!(no_op.no_op);
        assert_eq!(no_op.annotated_tags, first.annotated_tags);
        assert_eq!(no_op.upstream_tags, first.upstream_tags);

        // Lost or damaged: peeled through the objects again, same report, table rewritten.
        std::fs::write(&table, "garbage\n").expect("damage the table");
        let again = sync(&req).expect("no-op sync");
        assert!(again.no_op);
        assert_eq!(again.annotated_tags, first.annotated_tags);
        assert_eq!(again.upstream_tags, first.upstream_tags);
        assert_eq!(Peels::load(&req.cache_dir).known, saved.known);
    }

    fn t(target: &str, peeled: &str) -> TagRef {
        TagRef {
            target: target.into(),
            peeled: peeled.into(),
        }
    }

    #[test]
    fn plan_pushes_only_differences_and_deletes_extra_tags() {
        let wanted = Wanted {
            head: "a".into(),
            tags: [
                ("1.0".to_string(), t("x", "c1")),
                ("2.0".to_string(), t("y", "c2")),
            ]
            .into_iter()
            .collect(),
        };
        let mirror = RemoteRefs {
            branches: [
                ("main".to_string(), "a".to_string()),
                ("pr-1".to_string(), "z".to_string()),
            ]
            .into_iter()
            .collect(),
            tags: [
                ("1.0".to_string(), t("old", "c0")),
                ("extra".to_string(), t("e", "e")),
            ]
            .into_iter()
            .collect(),
        };
        let p = plan(&wanted, &mirror, "main");
        assert_eq!(p.unchanged, vec!["refs/heads/main"]);
        assert_eq!(p.updated, vec!["refs/tags/1.0"]);
        assert_eq!(p.created, vec!["refs/tags/2.0"]);
        assert_eq!(p.deleted, vec!["refs/tags/extra"]);
        assert_eq!(
            p.refspecs,
            vec![
                "+refs/tags/1.0:refs/tags/1.0",
                "+refs/tags/2.0:refs/tags/2.0",
                ":refs/tags/extra"
            ]
        );
        assert_eq!(p.moved_tags[0].old_commit, "c0");
        assert!(!mirror_equals(&wanted, &mirror, "main"));
    }
}
