//! SSH host key checking against an explicit OpenSSH `known_hosts` file.
//!
//! libgit2 (through libssh2) trusts only `~/.ssh/known_hosts` of the user the process runs as.
//! In a Drone plugin container or a hardened service that file is awkward to provide, so a
//! [`GitRemote`](crate::mirror::GitRemote) may name a file of its own; the mirror's certificate
//! callback then asks [`KnownHosts::check`] and refuses every key this module does not vouch for.
//! It sits under the mirror, its only user, but stays a module of its own: parsing and matching
//! OpenSSH's format knows nothing of git.
//!
//! The format is OpenSSH's (`sshd(8)`, "SSH_KNOWN_HOSTS FILE FORMAT"):
//! - `host[,host2,...] keytype base64 [comment]`; a host on a port other than 22 is written
//!   `[host]:port`; host patterns may use `*` and `?`, and a pattern starting with `!` excludes.
//! - Hashed host fields `|1|salt|hash` (what `ssh-keyscan -H` and `HashKnownHosts` write): the
//!   hash is HMAC-SHA1 of the host name (or `[host]:port`) keyed by the salt.
//! - Blank lines and `#` comments are skipped.
//! - `@revoked` lines refuse the listed key for the matching hosts, whatever other lines say.
//! - `@cert-authority` lines are ignored: libgit2 hands over the server's plain key, never a
//!   certificate, so a CA line can vouch for nothing here. A host listed only that way is unknown.
//! - A line that does not parse is skipped (it can only ever have added trust) and reported in
//!   [`KnownHosts::skipped`].
//!
//! Host names are compared case-insensitively, as OpenSSH does. There is no "accept new keys"
//! mode: a host that is not listed is refused.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hmac::{KeyInit, Mac};

/// The SSH port, the one written without brackets in `known_hosts`.
pub const DEFAULT_SSH_PORT: u16 = 22;

/// A parsed `known_hosts` file.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
    entries: Vec<Entry>,
    skipped: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
    /// 1-based line number, for messages.
    line: usize,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// Comma-separated patterns; `(negated, lowercase glob)`.
    Patterns(Vec<(bool, String)>),
    /// `|1|salt|hash`: HMAC-SHA1(key = salt, message = lookup name).
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// Why a server's host key was not accepted. Every message names the file and the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostKeyRefusal {
    /// The file could not be read.
    #[error("cannot read the known_hosts file {path}: {message}")]
    Unreadable { path: PathBuf, message: String },
    /// libgit2 gave no raw host key to compare.
    #[error("the SSH server {host} presented no host key that can be checked against {path}")]
    NoKey { path: PathBuf, host: String },
    /// No line lists the host.
    #[error(
        "host {host} is not listed in {path}{ca_note}; add the server's key there (e.g. from \
         `ssh-keyscan -p PORT HOST`, checked against the forge's published fingerprints)",
        ca_note = if *.cert_authority_only { " (its @cert-authority lines are not supported and are ignored)" } else { "" }
    )]
    Unknown {
        path: PathBuf,
        host: String,
        /// True when only `@cert-authority` lines matched the host.
        cert_authority_only: bool,
    },
    /// The host is listed, but not with the key it presented.
    #[error(
        "the {key_type} host key of {host} does not match the key(s) listed for it in {path} \
         ({listed}); refused: if the server's key really changed, replace its line there after \
         checking the new fingerprint"
    )]
    Changed {
        path: PathBuf,
        host: String,
        key_type: String,
        /// The key types listed for the host, comma-separated.
        listed: String,
    },
    /// The key is marked `@revoked`.
    #[error(
        "the {key_type} host key of {host} is marked @revoked in {path} (line {line}); refused"
    )]
    Revoked {
        path: PathBuf,
        host: String,
        key_type: String,
        line: usize,
    },
}

/// Returns the name a host is listed under: `host` on port 22, else `[host]:port`.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == DEFAULT_SSH_PORT {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

impl KnownHosts {
    /// Reads and parses the file at `path`.
    pub fn load(path: &Path) -> Result<Self, HostKeyRefusal> {
        let text = std::fs::read_to_string(path).map_err(|e| HostKeyRefusal::Unreadable {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self::parse(path, &text))
    }

    /// Parses `text` as the content of the file at `path` (the path is only used in messages).
    pub fn parse(path: &Path, text: &str) -> Self {
        let mut entries = Vec::new();
        let mut skipped = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match parse_line(trimmed, line_no) {
                Some(entry) => entries.push(entry),
                None => skipped.push(line_no),
            }
        }
        Self {
            path: path.to_path_buf(),
            entries,
            skipped,
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The 1-based numbers of lines that did not parse and were skipped.
    pub fn skipped(&self) -> &[usize] {
        &self.skipped
    }

    /// Checks that `host` on `port` may present the key `key` (the SSH wire-format public key
    /// blob, what the base64 field decodes to) of type `key_type` (e.g. `ssh-ed25519`).
    pub fn check(
        &self,
        host: &str,
        port: u16,
        key_type: &str,
        key: &[u8],
    ) -> Result<(), HostKeyRefusal> {
        let name = lookup_name(host, port);
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.hosts.matches(&name))
            .collect();
        let same_key = |e: &&&Entry| e.key_type == key_type && e.key == key;
        if let Some(revoked) = matching
            .iter()
            .filter(|e| e.marker == Marker::Revoked)
            .find(same_key)
        {
            return Err(HostKeyRefusal::Revoked {
                path: self.path.clone(),
                host: name,
                key_type: key_type.to_string(),
                line: revoked.line,
            });
        }
        let plain: Vec<&&Entry> = matching
            .iter()
            .filter(|e| e.marker == Marker::None)
            .collect();
        if plain.iter().any(same_key) {
            return Ok(());
        }
        if plain.is_empty() {
            return Err(HostKeyRefusal::Unknown {
                path: self.path.clone(),
                host: name,
                cert_authority_only: matching.iter().any(|e| e.marker == Marker::CertAuthority),
            });
        }
        let mut listed: Vec<&str> = plain.iter().map(|e| e.key_type.as_str()).collect();
        listed.sort_unstable();
        listed.dedup();
        Err(HostKeyRefusal::Changed {
            path: self.path.clone(),
            host: name,
            key_type: key_type.to_string(),
            listed: listed.join(", "),
        })
    }
}

fn parse_line(line: &str, line_no: usize) -> Option<Entry> {
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = if let Some(m) = first.strip_prefix('@') {
        let marker = match m {
            "revoked" => Marker::Revoked,
            "cert-authority" => Marker::CertAuthority,
            _ => return None,
        };
        first = fields.next()?;
        marker
    } else {
        Marker::None
    };
    let hosts = Hosts::parse(first)?;
    let key_type = fields.next()?.to_string();
    let key = base64::engine::general_purpose::STANDARD
        .decode(fields.next()?)
        .ok()?;
    if key.is_empty() {
        return None;
    }
    Some(Entry {
        marker,
        hosts,
        key_type,
        key,
        line: line_no,
    })
}

impl Hosts {
    fn parse(field: &str) -> Option<Self> {
        if let Some(rest) = field.strip_prefix("|1|") {
            let (salt, hash) = rest.split_once('|')?;
            let b64 = base64::engine::general_purpose::STANDARD;
            let salt = b64.decode(salt).ok()?;
            let hash = b64.decode(hash).ok()?;
            // SHA-1 output; anything else can never match.
            if hash.len() != 20 || salt.is_empty() {
                return None;
            }
            return Some(Hosts::Hashed { salt, hash });
        }
        if field.starts_with('|') {
            // Another hash scheme: unknown, so it cannot be checked.
            return None;
        }
        let patterns: Vec<(bool, String)> = field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(|p| match p.strip_prefix('!') {
                Some(neg) => (true, neg.to_ascii_lowercase()),
                None => (false, p.to_ascii_lowercase()),
            })
            .collect();
        patterns
            .iter()
            .any(|(neg, _)| !neg)
            .then_some(Hosts::Patterns(patterns))
    }

    /// OpenSSH's rule: some positive pattern matches and no negated one does.
    fn matches(&self, name: &str) -> bool {
        match self {
            Hosts::Patterns(patterns) => {
                let mut hit = false;
                for (negated, glob) in patterns {
                    if glob_match(glob, name) {
                        if *negated {
                            return false;
                        }
                        hit = true;
                    }
                }
                hit
            }
            Hosts::Hashed { salt, hash } => {
                // HMAC accepts keys of any length, so this cannot fail.
                let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        }
    }
}

/// Matches `text` against a glob with `*` (any run) and `?` (one character), as OpenSSH's host
/// patterns do.
fn glob_match(glob: &str, text: &str) -> bool {
    wildmatch::WildMatch::new(glob).matches(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7";

    fn decode(b: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("test key is base64")
    }

    fn file(text: &str) -> KnownHosts {
        KnownHosts::parse(Path::new("/etc/canon/known_hosts"), text)
    }

    /// A hashed host field for `name`, as `ssh-keygen -H` writes it.
    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(salt).expect("any key length");
        mac.update(name.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD;
        format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn lookup_names_bracket_only_non_default_ports() {
        assert_eq!(lookup_name("Git.Example.org", 22), "git.example.org");
        assert_eq!(lookup_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn a_listed_host_with_its_key_is_trusted() {
        let kh = file(&format!(
            "# forge\n\ngit.example.org,10.0.0.5 ssh-ed25519 {ED} root@forge\n[127.0.0.1]:2222 ssh-ed25519 {ED}\n"
        ));
        assert!(kh.skipped().is_empty());
        let key = decode(ED);
        for (host, port) in [
            ("git.example.org", 22),
            ("GIT.EXAMPLE.ORG", 22),
            ("10.0.0.5", 22),
            ("127.0.0.1", 2222),
        ] {
            assert_eq!(kh.check(host, port, "ssh-ed25519", &key), Ok(()), "{host}");
        }
    }

    #[test]
    fn the_port_is_part_of_the_host() {
        let kh = file(&format!("[127.0.0.1]:2222 ssh-ed25519 {ED}\n"));
        let key = decode(ED);
        for port in [22, 2223] {
            assert!(matches!(
                kh.check("127.0.0.1", port, "ssh-ed25519", &key),
                Err(HostKeyRefusal::Unknown { .. })
            ));
        }
        let kh = file(&format!("git.example.org ssh-ed25519 {ED}\n"));
        assert!(kh
            .check("git.example.org", 2222, "ssh-ed25519", &key)
            .is_err());
    }

    #[test]
    fn an_unknown_host_is_refused_naming_the_file_and_the_host() {
        let kh = file(&format!("other.example.org ssh-ed25519 {ED}\n"));
        let err = kh
            .check("git.example.org", 2222, "ssh-ed25519", &decode(ED))
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, HostKeyRefusal::Unknown { .. }), "{err:?}");
        assert!(text.contains("/etc/canon/known_hosts"), "{text}");
        assert!(text.contains("[git.example.org]:2222"), "{text}");
        assert!(text.contains("not listed"), "{text}");
        assert!(file("").check("h", 22, "ssh-ed25519", &decode(ED)).is_err());
    }

    #[test]
    fn another_key_or_key_type_for_a_listed_host_is_refused() {
        let kh = file(&format!("git.example.org ssh-rsa {RSA}\n"));
        let err = kh
            .check("git.example.org", 22, "ssh-ed25519", &decode(ED))
            .unwrap_err();
        assert!(
            matches!(&err, HostKeyRefusal::Changed { listed, .. } if listed == "ssh-rsa"),
            "{err:?}"
        );
        assert!(err.to_string().contains("/etc/canon/known_hosts"));
        assert!(err.to_string().contains("git.example.org"));
        // Same type, other bytes.
        let mut other = decode(ED);
        *other.last_mut().expect("non-empty key") ^= 1;
        let kh = file(&format!("git.example.org ssh-ed25519 {ED}\n"));
        assert!(matches!(
            kh.check("git.example.org", 22, "ssh-ed25519", &other),
            Err(HostKeyRefusal::Changed { .. })
        ));
        // The right bytes under the wrong type name are not trusted either.
        assert!(kh
            .check("git.example.org", 22, "ssh-rsa", &decode(ED))
            .is_err());
    }

    #[test]
    fn any_of_several_keys_for_a_host_is_trusted() {
        let kh = file(&format!(
            "git.example.org ssh-rsa {RSA}\ngit.example.org ssh-ed25519 {ED}\n"
        ));
        assert_eq!(
            kh.check("git.example.org", 22, "ssh-ed25519", &decode(ED)),
            Ok(())
        );
        assert_eq!(
            kh.check("git.example.org", 22, "ssh-rsa", &decode(RSA)),
            Ok(())
        );
    }

    #[test]
    fn hashed_hosts_match_by_hmac() {
        let kh = file(&format!(
            "{} ssh-ed25519 {ED}\n{} ssh-ed25519 {ED}\n",
            hashed("git.example.org", b"0123456789abcdefghij"),
            hashed("[127.0.0.1]:2222", b"salt-two-salt-two-12"),
        ));
        assert!(kh.skipped().is_empty());
        let key = decode(ED);
        assert_eq!(kh.check("git.example.org", 22, "ssh-ed25519", &key), Ok(()));
        assert_eq!(kh.check("127.0.0.1", 2222, "ssh-ed25519", &key), Ok(()));
        assert!(kh
            .check("git.example.com", 22, "ssh-ed25519", &key)
            .is_err());
        assert!(kh.check("127.0.0.1", 22, "ssh-ed25519", &key).is_err());
    }

    #[test]
    fn a_real_ssh_keygen_hashed_line_matches() {
        // Written by `ssh-keygen -H` for the host `git.coopcloud.tech`.
        let line = format!(
            "|1|ErXvlQFQeTCJowhLgcwPtDxM9j0=|SVLW2Pm4FvVeduh0HtagNP5+9HY= ssh-ed25519 {ED}\n"
        );
        let kh = file(&line);
        assert!(kh.skipped().is_empty());
        assert_eq!(
            kh.check("git.coopcloud.tech", 22, "ssh-ed25519", &decode(ED)),
            Ok(())
        );
        assert!(kh
            .check("git.coopcloud.tech", 2222, "ssh-ed25519", &decode(ED))
            .is_err());
    }

    #[test]
    fn wildcards_and_negations_follow_openssh() {
        let kh = file(&format!(
            "*.example.org,!evil.example.org ssh-ed25519 {ED}\n[10.0.0.?]:2222 ssh-ed25519 {ED}\n"
        ));
        let key = decode(ED);
        assert_eq!(kh.check("git.example.org", 22, "ssh-ed25519", &key), Ok(()));
        assert!(kh
            .check("evil.example.org", 22, "ssh-ed25519", &key)
            .is_err());
        assert!(kh.check("example.org", 22, "ssh-ed25519", &key).is_err());
        assert_eq!(kh.check("10.0.0.7", 2222, "ssh-ed25519", &key), Ok(()));
        assert!(kh.check("10.0.0.17", 2222, "ssh-ed25519", &key).is_err());
    }

    #[test]
    fn a_revoked_key_is_refused_even_when_also_listed() {
        let kh = file(&format!(
            "git.example.org ssh-ed25519 {ED}\n@revoked * ssh-ed25519 {ED}\n"
        ));
        let err = kh
            .check("git.example.org", 22, "ssh-ed25519", &decode(ED))
            .unwrap_err();
        assert!(
            matches!(err, HostKeyRefusal::Revoked { line: 2, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("@revoked"));
    }

    #[test]
    fn cert_authority_lines_vouch_for_nothing() {
        let kh = file(&format!("@cert-authority *.example.org ssh-ed25519 {ED}\n"));
        let err = kh
            .check("git.example.org", 22, "ssh-ed25519", &decode(ED))
            .unwrap_err();
        assert!(
            matches!(
                err,
                HostKeyRefusal::Unknown {
                    cert_authority_only: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("@cert-authority"));
    }

    #[test]
    fn malformed_lines_are_skipped_and_reported() {
        let kh = file(&format!(
            "git.example.org ssh-ed25519\n@future host ssh-ed25519 {ED}\nhost ssh-ed25519 not*base64\n|2|abc|def ssh-ed25519 {ED}\n!only.negated ssh-ed25519 {ED}\n  # indented comment\nok.example.org ssh-ed25519 {ED}\n"
        ));
        assert_eq!(kh.skipped(), &[1, 2, 3, 4, 5]);
        assert_eq!(
            kh.check("ok.example.org", 22, "ssh-ed25519", &decode(ED)),
            Ok(())
        );
        // The host of the line with the unknown marker is not trusted through it.
        assert!(kh.check("host", 22, "ssh-ed25519", &decode(ED)).is_err());
    }

    #[test]
    fn a_missing_file_is_a_refusal_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("absent_known_hosts");
        let err = KnownHosts::load(&path).unwrap_err();
        assert!(matches!(err, HostKeyRefusal::Unreadable { .. }));
        assert!(err.to_string().contains("absent_known_hosts"), "{err}");
    }

    #[test]
    fn glob_matching() {
        for (glob, text, want) in [
            ("*", "anything", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*.org", "x.y.org", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("**a", "a", true),
        ] {
            assert_eq!(glob_match(glob, text), want, "{glob} vs {text}");
        }
    }
}
