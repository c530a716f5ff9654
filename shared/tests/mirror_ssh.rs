//! Mirror access over SSH against a real OpenSSH server on loopback (`support::ssh`): listing
//! refs with the right key, full syncs with either side on SSH, a wrong key (a clear error that
//! leaks no key material and no token), and host key checking (an unknown or changed host key is
//! refused; libgit2 trusts only `<home>/.ssh/known_hosts`, and with `GitRemote::known_hosts` set
//! only that file).

use crate::support;

use std::path::{Path, PathBuf};

use canon_shared::mirror::{self, GitRemote, MirrorError, Side, SyncRequest};
use canon_shared::secret::Secret;
use canon_testkit::git::{bare, git, synced_refs, Work};
use support::ssh::{self, keygen, ClientHome, SshServer};

const TOKEN: &str = "tok-ssh-7c2d41-secret";

struct Fx {
    // Field order is drop order: sshd dies before the home lock is released and the dir removed.
    server: SshServer,
    home: ClientHome,
    up: PathBuf,
    mirror: PathBuf,
    cache: PathBuf,
    work: Work,
    tmp: tempfile::TempDir,
}

impl Fx {
    /// A running sshd whose host key is in known_hosts; upstream with two commits, a lightweight
    /// and an annotated tag; an empty mirror.
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let home = ClientHome::new(&tmp.path().join("home"));
        let server = SshServer::start(&tmp.path().join("sshd"));
        home.trust(server.port, &server.host_key);
        let up = tmp.path().join("upstream.git");
        let mirror = tmp.path().join("mirror.git");
        bare(&mirror);
        let work = Work::released(&tmp.path().join("work"), &up);
        let cache = tmp.path().join("state/recipe/upstream.git");
        Self {
            server,
            home,
            up,
            mirror,
            cache,
            work,
            tmp,
        }
    }

    fn ssh(&self, repo: &Path) -> GitRemote {
        GitRemote {
            url: self.server.url(repo),
            token: None,
            ssh_key: Some(self.server.client_key.clone()),
            known_hosts: None,
        }
    }

    /// Like [`Fx::ssh`], trusting host keys only from the known_hosts file at `file`.
    fn ssh_trusting(&self, repo: &Path, file: &Path) -> GitRemote {
        GitRemote {
            known_hosts: Some(file.to_path_buf()),
            ..self.ssh(repo)
        }
    }

    /// Writes a known_hosts file with `lines` next to the fixture and returns its path.
    fn known_hosts_file(&self, name: &str, lines: &str) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, lines).unwrap();
        path
    }

    /// Empties `<home>/.ssh/known_hosts`, so only an explicit file can vouch for the server.
    fn forget_home_known_hosts(&self) {
        std::fs::write(self.home.known_hosts(), "").unwrap();
    }

    fn sync(
        &self,
        upstream: GitRemote,
        mirror: GitRemote,
    ) -> Result<mirror::SyncReport, MirrorError> {
        mirror::sync(&SyncRequest {
            upstream,
            mirror,
            branch: "main".into(),
            cache_dir: self.cache.clone(),
        })
    }

    /// Fails with sshd's log, which says why a connection was refused.
    fn explain(&self, what: &str, e: &MirrorError) -> String {
        format!("{what}: {e}\nsshd log:\n{}", self.server.log())
    }
}

#[test]
fn ls_remote_over_ssh_lists_branches_and_tags() {
    let fx = Fx::new();
    let refs = mirror::ls_remote(&fx.ssh(&fx.up))
        .unwrap_or_else(|e| panic!("{}", fx.explain("ls_remote over ssh", &e)));
    assert_eq!(
        refs.branches.get("main").map(|c| c.as_str()),
        Some(fx.work.head().as_str())
    );
    assert_eq!(refs.branches.len(), 1);
    let light = &refs.tags["1.0.0+1.0"];
    assert_eq!(
        light.target,
        git(&fx.up, &["rev-parse", "refs/tags/1.0.0+1.0"])
    );
    assert!(!light.is_annotated());
    let annotated = &refs.tags["1.1.0+1.1"];
    assert_eq!(
        annotated.target,
        git(&fx.up, &["rev-parse", "refs/tags/1.1.0+1.1"])
    );
    assert_eq!(annotated.peeled.as_deref(), Some(fx.work.head().as_str()));
    assert!(annotated.is_annotated());
    assert!(
        fx.server.log().contains("Accepted publickey for root"),
        "the listing did not go through sshd:\n{}",
        fx.server.log()
    );

    // The guard kills sshd: nothing answers on its port afterwards.
    let port = fx.server.port;
    drop(fx);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "sshd still listens on {port} after the fixture was dropped"
    );
}

#[test]
fn sync_pushes_a_local_upstream_to_an_ssh_mirror() {
    let fx = Fx::new();
    let rep = fx
        .sync(
            GitRemote::local(fx.up.to_str().unwrap()),
            fx.ssh(&fx.mirror),
        )
        .unwrap_or_else(|e| panic!("{}", fx.explain("sync to an ssh mirror", &e)));
    assert!(!rep.no_op);
    assert_eq!(rep.created.len(), 3, "{rep:?}");
    assert!(!rep.mirror.contains("root@"), "{}", rep.mirror);
    assert_eq!(synced_refs(&fx.mirror, "main"), synced_refs(&fx.up, "main"));

    // Nothing moved upstream: the second sync only lists both sides.
    let again = fx
        .sync(
            GitRemote::local(fx.up.to_str().unwrap()),
            fx.ssh(&fx.mirror),
        )
        .unwrap_or_else(|e| panic!("{}", fx.explain("second sync", &e)));
    assert!(again.no_op, "{again:?}");

    // A new upstream commit reaches the mirror over ssh.
    let head = fx.work.commit("compose.yml", "version: 3\n");
    fx.work.push_all();
    let third = fx
        .sync(
            GitRemote::local(fx.up.to_str().unwrap()),
            fx.ssh(&fx.mirror),
        )
        .unwrap_or_else(|e| panic!("{}", fx.explain("third sync", &e)));
    assert_eq!(third.updated, vec!["refs/heads/main".to_string()]);
    assert_eq!(git(&fx.mirror, &["rev-parse", "refs/heads/main"]), head);
}

#[test]
fn sync_fetches_an_ssh_upstream_into_a_local_mirror() {
    let fx = Fx::new();
    let rep = fx
        .sync(
            fx.ssh(&fx.up),
            GitRemote::local(fx.mirror.to_str().unwrap()),
        )
        .unwrap_or_else(|e| panic!("{}", fx.explain("sync from an ssh upstream", &e)));
    assert!(!rep.no_op);
    assert!(rep.objects_fetched > 0, "{rep:?}");
    assert_eq!(synced_refs(&fx.mirror, "main"), synced_refs(&fx.up, "main"));
    assert_eq!(
        git(&fx.cache, &["rev-parse", "refs/heads/main"]),
        fx.work.head()
    );
}

/// Every piece of secret material a wrong-key failure could leak.
fn assert_leaks_nothing(text: &str, keys: &[&Path]) {
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
    for key in keys {
        let private = std::fs::read_to_string(key).unwrap();
        for line in private.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!text.contains(line), "private key material leaked: {text}");
        }
        let public = ssh::public_key(key);
        let blob = public.split_whitespace().nth(1).unwrap();
        assert!(!text.contains(blob), "public key leaked: {text}");
    }
}

#[test]
fn a_wrong_key_fails_with_an_auth_error_that_leaks_nothing() {
    let fx = Fx::new();
    let wrong = fx.tmp.path().join("wrong_ed25519");
    keygen(&wrong);
    let remote = |repo: &Path| GitRemote {
        url: fx.server.url(repo),
        token: Some(Secret::new(TOKEN)),
        ssh_key: Some(wrong.clone()),
        known_hosts: None,
    };

    let err = mirror::ls_remote(&remote(&fx.up)).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, MirrorError::Auth { side: Side::Remote, url, .. } if !url.contains("root@")),
        "{}",
        fx.explain("expected an auth error", &err)
    );
    assert!(text.contains("authentication failed"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", fx.server.port)),
        "{text}"
    );
    assert_leaks_nothing(&text, &[&wrong, &fx.server.client_key]);
    assert_leaks_nothing(&format!("{err:?}"), &[&wrong, &fx.server.client_key]);

    // The same for a sync: the mirror side is named, nothing is pushed.
    let err = fx
        .sync(
            GitRemote::local(fx.up.to_str().unwrap()),
            remote(&fx.mirror),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            MirrorError::Auth {
                side: Side::Mirror,
                ..
            }
        ),
        "{}",
        fx.explain("expected a mirror auth error", &err)
    );
    assert_leaks_nothing(&err.to_string(), &[&wrong, &fx.server.client_key]);
    assert!(git(&fx.mirror, &["for-each-ref"]).is_empty());
    assert!(
        fx.server.log().contains("Failed publickey for root")
            || fx
                .server
                .log()
                .contains("Connection closed by authenticating user root"),
        "sshd saw no refused key:\n{}",
        fx.server.log()
    );
}

#[test]
fn an_unknown_host_key_is_refused_before_any_key_is_offered() {
    let fx = Fx::new();
    std::fs::write(fx.home.known_hosts(), "").unwrap();
    let err = mirror::ls_remote(&fx.ssh(&fx.up)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("unknown remote ssh hostkey"), "{text}");
    assert!(
        text.contains("known_hosts"),
        "the error does not say where host keys are read: {text}"
    );
    assert!(
        !fx.server.log().contains("Accepted publickey"),
        "a key was accepted by an untrusted host:\n{}",
        fx.server.log()
    );

    // Nothing was synced from an untrusted upstream either.
    let err = fx
        .sync(
            fx.ssh(&fx.up),
            GitRemote::local(fx.mirror.to_str().unwrap()),
        )
        .unwrap_err();
    assert!(err.to_string().contains("known_hosts"), "{err}");
    assert!(git(&fx.mirror, &["for-each-ref"]).is_empty());
}

#[test]
fn a_changed_host_key_is_refused() {
    let fx = Fx::new();
    let other = fx.tmp.path().join("other_host_ed25519");
    let other_key = keygen(&other);
    std::fs::write(fx.home.known_hosts(), "").unwrap();
    fx.home.trust(fx.server.port, &other_key);
    let err = mirror::ls_remote(&fx.ssh(&fx.up)).unwrap_err();
    assert!(err.to_string().contains("known_hosts"), "{err}");
    assert!(
        !fx.server.log().contains("Accepted publickey"),
        "{}",
        fx.server.log()
    );
}

#[test]
fn an_explicit_known_hosts_file_is_trusted_without_home_known_hosts() {
    let fx = Fx::new();
    fx.forget_home_known_hosts();
    let file = fx.known_hosts_file(
        "canon_known_hosts",
        &format!(
            "# the loopback forge\n\n[127.0.0.1]:{} {} canon-test\n",
            fx.server.port, fx.server.host_key
        ),
    );

    let refs = mirror::ls_remote(&fx.ssh_trusting(&fx.up, &file))
        .unwrap_or_else(|e| panic!("{}", fx.explain("ls_remote with a known_hosts file", &e)));
    assert_eq!(
        refs.branches.get("main").map(|c| c.as_str()),
        Some(fx.work.head().as_str())
    );
    assert_eq!(refs.tags.len(), 2);

    // Both sides over SSH: fetch from upstream, push to the mirror, list the mirror again.
    let rep = fx
        .sync(
            fx.ssh_trusting(&fx.up, &file),
            fx.ssh_trusting(&fx.mirror, &file),
        )
        .unwrap_or_else(|e| panic!("{}", fx.explain("sync with a known_hosts file", &e)));
    assert!(!rep.no_op);
    assert_eq!(rep.created.len(), 3, "{rep:?}");
    assert_eq!(synced_refs(&fx.mirror, "main"), synced_refs(&fx.up, "main"));

    // Without the setting the same server is unknown: the home file is empty.
    let err = mirror::ls_remote(&fx.ssh(&fx.up)).unwrap_err();
    assert!(
        err.to_string().contains("unknown remote ssh hostkey"),
        "{err}"
    );
}

#[test]
fn a_hashed_known_hosts_entry_is_trusted() {
    let fx = Fx::new();
    fx.forget_home_known_hosts();
    let file = fx.known_hosts_file(
        "hashed_known_hosts",
        &format!("[127.0.0.1]:{} {}\n", fx.server.port, fx.server.host_key),
    );
    // Hash the host names in place, as `HashKnownHosts yes` does.
    let out = std::process::Command::new("ssh-keygen")
        .arg("-H")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.starts_with("|1|") && !text.contains("127.0.0.1"),
        "{text}"
    );

    let refs = mirror::ls_remote(&fx.ssh_trusting(&fx.up, &file))
        .unwrap_or_else(|e| panic!("{}", fx.explain("ls_remote with a hashed entry", &e)));
    assert_eq!(
        refs.branches.get("main").map(|c| c.as_str()),
        Some(fx.work.head().as_str())
    );
}

/// The explicit file decides alone: a server the home known_hosts trusts is still refused.
fn assert_refused_by_file(fx: &Fx, file: &Path, why: &str) {
    let remote = |repo: &Path| GitRemote {
        token: Some(Secret::new(TOKEN)),
        ..fx.ssh_trusting(repo, file)
    };
    let host = format!("[127.0.0.1]:{}", fx.server.port);
    let err = mirror::ls_remote(&remote(&fx.up)).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            &err,
            MirrorError::List {
                side: Side::Remote,
                ..
            }
        ),
        "{}",
        fx.explain("expected a listing error", &err)
    );
    assert!(text.contains("ssh hostkey"), "{text}");
    assert!(text.contains(why), "{text}");
    assert!(
        text.contains(&file.display().to_string()),
        "the error does not name the file: {text}"
    );
    assert!(
        text.contains(&host),
        "the error does not name the host: {text}"
    );
    assert_leaks_nothing(&text, &[&fx.server.client_key]);
    assert!(
        !fx.server.log().contains("Accepted publickey"),
        "a key was accepted by an untrusted host:\n{}",
        fx.server.log()
    );

    // A sync from that upstream stops before fetching; one to that mirror before pushing.
    let err = fx
        .sync(
            remote(&fx.up),
            GitRemote::local(fx.mirror.to_str().unwrap()),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            MirrorError::List {
                side: Side::Upstream,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
    let err = fx
        .sync(
            GitRemote::local(fx.up.to_str().unwrap()),
            remote(&fx.mirror),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            MirrorError::List {
                side: Side::Mirror,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(why), "{err}");
    assert_leaks_nothing(&err.to_string(), &[&fx.server.client_key]);
    assert!(git(&fx.mirror, &["for-each-ref"]).is_empty());
}

#[test]
fn an_explicit_known_hosts_file_with_another_key_refuses_the_host() {
    let fx = Fx::new();
    // The home file trusts the server; the explicit file, which wins, lists another key.
    let other_key = keygen(&fx.tmp.path().join("other_host_ed25519"));
    let file = fx.known_hosts_file(
        "known_hosts_other_key",
        &format!("[127.0.0.1]:{} {}\n", fx.server.port, other_key),
    );
    assert_refused_by_file(&fx, &file, "does not match");
}

#[test]
fn an_explicit_known_hosts_file_without_the_host_refuses_it() {
    let fx = Fx::new();
    // The right key, but for port 22 and another port: neither is this server's `[host]:port`.
    let file = fx.known_hosts_file(
        "known_hosts_other_hosts",
        &format!(
            "127.0.0.1 {key}\n[127.0.0.1]:{other} {key}\n",
            key = fx.server.host_key,
            other = fx.server.port.wrapping_add(1)
        ),
    );
    assert_refused_by_file(&fx, &file, "not listed");
}

#[test]
fn a_missing_known_hosts_file_refuses_the_host() {
    let fx = Fx::new();
    let file = fx.tmp.path().join("no_such_known_hosts");
    let err = mirror::ls_remote(&fx.ssh_trusting(&fx.up, &file)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot read the known_hosts file"), "{text}");
    assert!(text.contains("no_such_known_hosts"), "{text}");
    assert!(
        !fx.server.log().contains("Accepted publickey"),
        "{}",
        fx.server.log()
    );
}
