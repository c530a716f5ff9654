//! Mirror sync against real git repositories, over local paths and over git's smart HTTP protocol
//! (`git http-backend` with basic auth): every scenario of the design (first sync, no-op, forced
//! branch, tag added / deleted / moved, extra mirror tag, PR branches untouched, merged PRs closed,
//! unreachable upstream, wrong token).

use std::path::{Path, PathBuf};

use canon_shared::mirror::{self, GitRemote, MirrorError, Side, SyncReport, SyncRequest};
use canon_shared::secret::Secret;
use canon_testkit::forge::{FakeForge, FakePr, ForgeState, Shape};
use canon_testkit::git::{bare, git, refs, refs_under, synced_refs, GitHttpServer, Work};
use canon_testkit::loopback::free_port;

const TOKEN: &str = "tok-5f1e9c-secret";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Via {
    Local,
    Http,
}

struct Fx {
    _tmp: tempfile::TempDir,
    up: PathBuf,
    mirror: PathBuf,
    cache: PathBuf,
    work: Work,
    server: Option<GitHttpServer>,
}

impl Fx {
    /// Upstream with two commits, a lightweight tag and an annotated tag; an empty mirror.
    fn new(via: Via) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let up = tmp.path().join("upstream.git");
        let mirror = tmp.path().join("mirror.git");
        bare(&mirror);
        let work = Work::released(&tmp.path().join("work"), &up);
        let server = (via == Via::Http).then(|| GitHttpServer::start(tmp.path(), None, TOKEN));
        let cache = tmp.path().join("state/recipe/upstream.git");
        Self {
            _tmp: tmp,
            up,
            mirror,
            cache,
            work,
            server,
        }
    }

    fn upstream(&self) -> GitRemote {
        match &self.server {
            Some(s) => GitRemote::with_token(s.url("upstream.git"), Some(Secret::new(TOKEN))),
            None => GitRemote::local(self.up.to_str().unwrap()),
        }
    }

    fn mirror_remote(&self) -> GitRemote {
        match &self.server {
            Some(s) => GitRemote::with_token(s.url("mirror.git"), Some(Secret::new(TOKEN))),
            None => GitRemote::local(format!("file://{}", self.mirror.display())),
        }
    }

    fn req(&self) -> SyncRequest {
        SyncRequest {
            upstream: self.upstream(),
            mirror: self.mirror_remote(),
            branch: "main".into(),
            cache_dir: self.cache.clone(),
        }
    }

    fn sync(&self) -> SyncReport {
        let report = mirror::sync(&self.req()).expect("sync succeeds");
        self.assert_faithful();
        report
    }

    fn assert_faithful(&self) {
        assert_eq!(
            synced_refs(&self.mirror, "main"),
            synced_refs(&self.up, "main"),
            "the mirror's main and tags equal upstream's"
        );
    }

    /// Pushes a branch `name` with one extra commit on top of main straight into the mirror.
    fn mirror_branch(&self, name: &str, file: &str) -> String {
        self.work.git(&["checkout", "-q", "-b", name, "main"]);
        let head = self.work.commit(file, &format!("{name}\n"));
        let dest = format!("{}:refs/heads/{name}", "HEAD");
        git(
            &self.work.dir,
            &["push", "-q", self.mirror.to_str().unwrap(), &dest],
        );
        self.work.git(&["checkout", "-q", "main"]);
        head
    }
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn local() {
                    super::$name(super::Via::Local)
                }
                #[test]
                fn http() {
                    super::$name(super::Via::Http)
                }
            }
        )*
    };
}

both!(
    first_sync_fills_an_empty_mirror,
    second_sync_is_a_no_op,
    upstream_force_push_of_the_branch_is_mirrored,
    new_upstream_tag_is_created,
    tag_deleted_upstream_is_deleted_on_the_mirror,
    moved_tag_is_updated_and_reported,
    extra_mirror_tag_is_deleted,
    pr_branches_and_other_refs_are_untouched,
    merged_pr_is_closed_and_others_stay_open,
    unreachable_upstream_fails_clearly_and_leaves_the_mirror_alone,
);

fn first_sync_fills_an_empty_mirror(via: Via) {
    let fx = Fx::new(via);
    let r = fx.sync();
    assert!(!r.no_op);
    assert_eq!(
        r.created,
        vec![
            "refs/heads/main",
            "refs/tags/1.0.0+1.0",
            "refs/tags/1.1.0+1.1"
        ]
    );
    assert!(r.updated.is_empty() && r.deleted.is_empty() && r.unchanged.is_empty());
    assert!(
        r.objects_fetched >= 6,
        "commits, trees, blobs, tag: {}",
        r.objects_fetched
    );
    assert_eq!(r.upstream_head, fx.work.head());
    let c1 = git(&fx.up, &["rev-parse", "1.0.0+1.0^{commit}"]);
    assert_eq!(r.upstream_tags["1.0.0+1.0"], c1);
    assert_eq!(r.upstream_tags["1.1.0+1.1"], fx.work.head());
    assert_eq!(r.annotated_tags.len(), 1);
    assert_eq!(r.annotated_tags[0].name, "1.1.0+1.1");
    assert_eq!(r.annotated_tags[0].commit, fx.work.head());
    assert_eq!(
        r.annotated_tags[0].tag_object,
        git(&fx.up, &["rev-parse", "refs/tags/1.1.0+1.1"])
    );
    assert!(
        fx.cache.join("HEAD").exists(),
        "the cache is a bare repository"
    );
    // The report serialises for the CLI's JSON output.
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["no_op"], false);
}

fn second_sync_is_a_no_op(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    if let Some(s) = &fx.server {
        s.take_log();
    }
    let r = fx.sync();
    assert!(r.no_op);
    assert_eq!(r.objects_fetched, 0);
    assert!(!r.changed());
    assert_eq!(r.unchanged.len(), 3);
    assert_eq!(
        r.annotated_tags.len(),
        1,
        "peeled tags come from the listing too"
    );
    if let Some(s) = &fx.server {
        assert_eq!(
            s.take_log(),
            vec![
                "GET /upstream.git/info/refs?service=git-upload-pack",
                "GET /mirror.git/info/refs?service=git-upload-pack",
            ],
            "a no-op sync is one listing per side and nothing else"
        );
    }
}

fn upstream_force_push_of_the_branch_is_mirrored(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    let old = fx.work.head();
    fx.work.git(&["reset", "-q", "--hard", "HEAD~1"]);
    let new = fx.work.commit("other.yml", "rewritten history\n");
    git(&fx.work.dir, &["push", "-q", "--force", "origin", "main"]);
    let r = fx.sync();
    assert_eq!(r.updated, vec!["refs/heads/main"]);
    assert_eq!(r.upstream_head, new);
    assert_ne!(new, old);
    assert_eq!(git(&fx.mirror, &["rev-parse", "refs/heads/main"]), new);
}

fn new_upstream_tag_is_created(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    let c = fx.work.commit("compose.yml", "version: 3\n");
    fx.work.annotated_tag("1.2.0+1.2");
    fx.work.push_all();
    let r = fx.sync();
    assert_eq!(r.created, vec!["refs/tags/1.2.0+1.2"]);
    assert_eq!(r.updated, vec!["refs/heads/main"]);
    assert_eq!(r.unchanged.len(), 2);
    let total: usize = git(&fx.up, &["rev-list", "--objects", "--all"])
        .lines()
        .count();
    // Over HTTP exactly the 4 new objects move; libgit2's local transport negotiates less finely.
    assert!(
        r.objects_fetched > 0 && r.objects_fetched < total,
        "only new objects move: {} of {total}",
        r.objects_fetched
    );
    if via == Via::Http {
        assert_eq!(r.objects_fetched, 4, "commit, tree, blob, tag object");
    }
    assert_eq!(r.upstream_tags["1.2.0+1.2"], c);
}

fn tag_deleted_upstream_is_deleted_on_the_mirror(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    git(&fx.up, &["tag", "-d", "1.0.0+1.0"]);
    let r = fx.sync();
    assert_eq!(r.deleted, vec!["refs/tags/1.0.0+1.0"]);
    assert!(!r.upstream_tags.contains_key("1.0.0+1.0"));
    assert!(refs_under(&fx.mirror, "refs/tags/1.0.0").is_empty());
    assert!(
        refs_under(&fx.cache, "refs/tags/1.0.0").is_empty(),
        "the cache forgets it too"
    );
    // A later sync is a no-op: the stale cache tag does not come back.
    assert!(fx.sync().no_op);
}

fn moved_tag_is_updated_and_reported(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    let old_commit = git(&fx.up, &["rev-parse", "1.0.0+1.0^{commit}"]);
    let new_commit = fx.work.head();
    fx.work.git(&["tag", "-f", "1.0.0+1.0", "HEAD"]);
    // The annotated tag moves back to the first commit.
    fx.work
        .git(&["tag", "-f", "-a", "-m", "moved", "1.1.0+1.1", &old_commit]);
    fx.work.push_all();
    let r = fx.sync();
    assert_eq!(
        r.updated,
        vec!["refs/tags/1.0.0+1.0", "refs/tags/1.1.0+1.1"]
    );
    assert_eq!(r.moved_tags.len(), 2);
    let a = &r.moved_tags[1];
    assert_eq!(a.name, "1.1.0+1.1");
    assert_eq!(
        a.old_commit.as_deref(),
        Some(new_commit.as_str()),
        "the annotated tag pointed at the second commit"
    );
    assert_eq!(a.new_commit.as_deref(), Some(old_commit.as_str()));
    assert_eq!(r.upstream_tags["1.1.0+1.1"], old_commit);
    let m = &r.moved_tags[0];
    assert_eq!(
        (m.name.as_str(), m.old_commit.as_deref()),
        ("1.0.0+1.0", Some(old_commit.as_str()))
    );
    assert_eq!(m.new_commit.as_deref(), Some(new_commit.as_str()));
    assert_eq!(
        m.new, new_commit,
        "a lightweight tag's target is its commit"
    );
}

fn extra_mirror_tag_is_deleted(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    git(&fx.mirror, &["tag", "not-upstream", "main"]);
    let r = fx.sync();
    assert_eq!(r.deleted, vec!["refs/tags/not-upstream"]);
    assert!(r.created.is_empty() && r.updated.is_empty());
}

fn pr_branches_and_other_refs_are_untouched(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    fx.mirror_branch("pr-1", "one.txt");
    fx.mirror_branch("feature", "feature.txt");
    git(
        &fx.mirror,
        &["update-ref", "refs/pull/1/head", "refs/heads/pr-1"],
    );
    let before: Vec<_> = refs(&fx.mirror)
        .into_iter()
        .filter(|(r, _)| r != "refs/heads/main" && !r.starts_with("refs/tags/"))
        .collect();
    assert_eq!(before.len(), 3);
    // Upstream changes everything it can: branch rewritten, tag deleted, tag added, and it even
    // has a branch named like a mirror PR branch; none of it may touch the mirror's other refs.
    fx.work.git(&["reset", "-q", "--hard", "HEAD~1"]);
    fx.work.commit("x.txt", "x\n");
    fx.work.tag("2.0.0+2.0");
    git(
        &fx.work.dir,
        &[
            "push",
            "-q",
            "--force",
            "origin",
            "main",
            "refs/tags/2.0.0+2.0",
        ],
    );
    git(
        &fx.work.dir,
        &["push", "-q", "origin", "main:refs/heads/pr-1", "--force"],
    );
    git(&fx.up, &["tag", "-d", "1.0.0+1.0"]);
    let r = fx.sync();
    assert!(r.changed());
    let after: Vec<_> = refs(&fx.mirror)
        .into_iter()
        .filter(|(r, _)| r != "refs/heads/main" && !r.starts_with("refs/tags/"))
        .collect();
    assert_eq!(
        after, before,
        "PR branches, other branches and refs/pull/* stay as they were"
    );
}

fn merged_pr_is_closed_and_others_stay_open(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    let first = git(&fx.up, &["rev-parse", "1.0.0+1.0^{commit}"]);
    let merged = fx.mirror_branch("pr-1", "one.txt");
    let unmerged = fx.mirror_branch("pr-2", "two.txt");
    let squashed = fx.mirror_branch("pr-3", "three.txt");
    // Upstream merges pr-1 with a merge commit and squash-merges pr-3 (a new commit, same change).
    fx.work
        .git(&["merge", "-q", "--no-ff", "-m", "Merge pr-1", "pr-1"]);
    fx.work.git(&["merge", "-q", "--squash", "pr-3"]);
    fx.work.git(&["commit", "-q", "-m", "Squashed pr-3"]);
    git(&fx.work.dir, &["push", "-q", "origin", "main"]);
    let r = fx.sync();
    assert_eq!(r.updated, vec!["refs/heads/main"]);

    let mut state = ForgeState::new("coop/mirror", "forge-token");
    state.max_items = 2; // exercise paging past a clamped limit
    state.prs = vec![
        FakePr::open(1, &merged),
        FakePr::open(2, &unmerged),
        FakePr::open(3, &squashed),
        FakePr {
            reject_412: true,
            ..FakePr::open(4, &first)
        },
        FakePr {
            broken: true,
            ..FakePr::open(5, &unmerged)
        },
    ];
    let server = FakeForge::start(Shape::Gitea, state);
    let forge =
        canon_shared::forge::Gitea::new(&server.base_url(), Some(Secret::new("forge-token")))
            .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt
        .block_on(mirror::close_merged_prs(
            &forge,
            "coop/mirror",
            &fx.cache,
            &r.upstream_head,
        ))
        .expect("closing works");
    let closed: Vec<(u64, bool)> = report
        .closed
        .iter()
        .map(|c| (c.number, c.already_done))
        .collect();
    assert_eq!(
        closed,
        vec![(1, false), (4, true)],
        "pr-1 closed; pr-4 Gitea had already merged"
    );
    assert_eq!(
        report.left_open,
        vec![2, 3],
        "unmerged and squash-merged PRs stay open"
    );
    assert!(report.failed.is_empty());
    let st = server.state.lock().unwrap();
    assert_eq!(st.prs[0].state, "closed");
    assert_eq!(st.prs[1].state, "open");
    assert_eq!(st.prs[2].state, "open");
    assert_eq!(st.comments.len(), 1);
    assert_eq!(st.comments[0].0, 1);
    assert!(
        st.comments[0].1.contains(r.upstream_head.as_str()),
        "the comment names the upstream commit"
    );
    drop(st);
    // The PR branches themselves were never touched by the sync.
    assert_eq!(git(&fx.mirror, &["rev-parse", "refs/heads/pr-1"]), merged);
    assert_eq!(git(&fx.mirror, &["rev-parse", "refs/heads/pr-2"]), unmerged);
}

fn unreachable_upstream_fails_clearly_and_leaves_the_mirror_alone(via: Via) {
    let fx = Fx::new(via);
    fx.sync();
    git(&fx.mirror, &["tag", "mirror-only", "main"]);
    let before = refs(&fx.mirror);
    let mut req = fx.req();
    req.upstream = match via {
        Via::Local => GitRemote::local("/nonexistent/canon-test/upstream.git"),
        Via::Http => GitRemote::with_token(
            format!("http://127.0.0.1:{}/upstream.git", free_port()),
            Some(Secret::new(TOKEN)),
        ),
    };
    let err = mirror::sync(&req).expect_err("an unreachable upstream fails");
    assert!(
        matches!(
            err,
            MirrorError::List {
                side: Side::Upstream,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.starts_with("upstream "), "{msg}");
    assert!(msg.contains("cannot list refs"), "{msg}");
    assert!(!msg.contains(TOKEN));
    assert_eq!(refs(&fx.mirror), before, "the mirror is untouched");
}

#[test]
fn wrong_token_fails_clearly_and_never_shows_the_token() {
    let fx = Fx::new(Via::Http);
    let server = fx.server.as_ref().unwrap();
    let wrong = "wrong-token-271828";
    let mut req = fx.req();
    req.mirror = GitRemote::with_token(server.url("mirror.git"), Some(Secret::new(wrong)));
    let err = mirror::sync(&req).expect_err("a wrong token fails");
    assert!(
        matches!(
            err,
            MirrorError::Auth {
                side: Side::Mirror,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("authentication failed"), "{msg}");
    assert!(
        msg.contains(&server.url("mirror.git")),
        "names the remote: {msg}"
    );
    assert!(!msg.contains(wrong), "{msg}");
    assert!(!format!("{err:?}").contains(wrong));
    assert!(refs(&fx.mirror).is_empty(), "nothing was pushed");

    // The same with the token inside the URL, and with no token at all.
    let mut req = fx.req();
    req.upstream = GitRemote::local(format!(
        "http://bot:{wrong}@127.0.0.1:{}/upstream.git",
        server.port
    ));
    let err = mirror::sync(&req).expect_err("a wrong token in the URL fails");
    let msg = format!("{err} {err:?}");
    assert!(
        matches!(
            err,
            MirrorError::Auth {
                side: Side::Upstream,
                ..
            }
        ),
        "{msg}"
    );
    assert!(!msg.contains(wrong) && !msg.contains("bot:"), "{msg}");

    let mut req = fx.req();
    req.upstream = GitRemote::local(server.url("upstream.git"));
    let err = mirror::sync(&req).expect_err("no token fails");
    assert!(err.to_string().contains("no token was given"), "{err}");
}

#[test]
fn token_in_the_url_authenticates_and_is_not_reported() {
    let fx = Fx::new(Via::Http);
    let server = fx.server.as_ref().unwrap();
    let mut req = fx.req();
    req.upstream = GitRemote::local(format!(
        "http://bot:{TOKEN}@127.0.0.1:{}/upstream.git",
        server.port
    ));
    let r = mirror::sync(&req).expect("sync with a token in the URL");
    fx.assert_faithful();
    let json = serde_json::to_string(&r).unwrap();
    assert!(!json.contains(TOKEN) && !json.contains("bot@"), "{json}");
    assert_eq!(r.upstream, server.url("upstream.git"));
}

#[test]
fn ls_remote_lists_branches_and_peeled_tags() {
    for via in [Via::Local, Via::Http] {
        let fx = Fx::new(via);
        let refs = mirror::ls_remote(&fx.upstream()).unwrap();
        assert_eq!(refs.branches.keys().collect::<Vec<_>>(), vec!["main"]);
        let annotated = &refs.tags["1.1.0+1.1"];
        assert!(annotated.is_annotated(), "{via:?}");
        assert_eq!(annotated.peeled.as_deref(), Some(fx.work.head().as_str()));
        let light = &refs.tags["1.0.0+1.0"];
        assert_eq!(Some(light.target.as_str()), light.peeled.as_deref());
        // An empty repository lists nothing, without error.
        let empty = mirror::ls_remote(&fx.mirror_remote()).unwrap();
        assert!(empty.branches.is_empty() && empty.tags.is_empty());
    }
}

#[test]
fn missing_upstream_branch_is_named() {
    let fx = Fx::new(Via::Local);
    let mut req = fx.req();
    req.branch = "release".into();
    let err = mirror::sync(&req).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("upstream {} has no branch `release`", fx.up.display())
    );
}

#[test]
fn a_fresh_cache_is_filled_even_when_the_mirror_already_agrees() {
    let fx = Fx::new(Via::Local);
    fx.sync();
    std::fs::remove_dir_all(&fx.cache).unwrap();
    let r = fx.sync();
    assert!(!r.no_op, "the cache had to be filled for PR closing");
    assert!(!r.changed());
    assert!(r.objects_fetched > 0);
    let head = r.upstream_head.clone();
    assert!(mirror::merged_heads(&fx.cache, &head, &[(1, head.to_string())]).unwrap()[0].1);
    assert!(fx.sync().no_op);
}

#[test]
fn cache_dir_is_per_recipe_under_the_state_dir() {
    let name = canon_shared::recipe::RecipeName::parse("gitea").unwrap();
    assert_eq!(
        mirror::cache_dir(Path::new("/var/lib/canon"), &name),
        Path::new("/var/lib/canon/gitea/upstream.git")
    );
}

#[test]
fn a_remote_that_accepts_and_never_answers_fails_within_the_read_timeout() {
    // A server that takes the connection and then says nothing: without a read timeout libgit2
    // would wait forever and hold the recipe.
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut open = Vec::new();
        for _ in 0..4 {
            match server.accept() {
                Ok((conn, _)) => open.push(conn),
                Err(_) => break,
            }
        }
        open
    });
    mirror::set_network_timeouts(
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = mirror::ls_remote(&GitRemote::local(format!(
        "http://127.0.0.1:{port}/upstream.git"
    )))
    .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < std::time::Duration::from_secs(20),
        "the hung remote held the call for {took:?}"
    );
    assert!(
        matches!(err, MirrorError::List { .. }),
        "a listing error naming the remote: {err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    drop(held);
}

#[test]
fn a_redirect_to_another_host_never_gets_the_token() {
    use std::io::{BufRead, BufReader, Write};
    // Host B (127.0.0.2) asks for credentials and records every Authorization header it sees.
    let b = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let b_port = b.local_addr().unwrap().port();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let record = seen.clone();
    b.set_nonblocking(false).unwrap();
    std::thread::spawn(move || {
        for conn in b.incoming().take(8) {
            let Ok(mut conn) = conn else { break };
            let mut head = Vec::new();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_string());
            }
            record.lock().unwrap().push(head.join("\n"));
            let _ = conn.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"b\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    // Host A (the configured one) redirects every request to host B.
    let a = canon_testkit::loopback::LoopbackServer::start(move |req| {
        let location = format!("http://127.0.0.2:{b_port}{}", req.url());
        let resp = tiny_http::Response::empty(302)
            .with_header(tiny_http::Header::from_bytes("Location", location.as_bytes()).unwrap());
        let _ = req.respond(resp);
    });
    let remote = GitRemote::with_token(
        format!("{}/o/upstream.git", a.base_url()),
        Some(Secret::new("redirect-s3cr3t")),
    );
    let err = mirror::ls_remote(&remote).unwrap_err().to_string();
    assert!(!err.contains("redirect-s3cr3t"), "{err}");
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty(), "libgit2 followed the redirect to host B");
    for request in seen.iter() {
        assert!(
            !request.to_ascii_lowercase().contains("authorization"),
            "host B got credentials: {request}"
        );
    }
}

#[test]
fn a_lock_file_left_by_a_killed_push_into_a_local_mirror_does_not_block_the_next_sync() {
    let root = tempfile::tempdir().unwrap();
    let upstream = root.path().join("upstream.git");
    Work::released(&root.path().join("work"), &upstream);
    let mirror = root.path().join("mirror.git");
    bare(&mirror);
    let cache = root.path().join("cache/upstream.git");
    let req = SyncRequest {
        upstream: GitRemote::local(upstream.display().to_string()),
        mirror: GitRemote::local(mirror.display().to_string()),
        branch: "main".into(),
        cache_dir: cache.clone(),
    };
    // What a push killed half-way leaves in the mirror, and a fetch killed half-way in the cache.
    let tag = canon_testkit::git::LIGHTWEIGHT_RELEASE;
    std::fs::create_dir_all(mirror.join("refs/tags")).unwrap();
    std::fs::write(mirror.join(format!("refs/tags/{tag}.lock")), "").unwrap();
    bare(&cache);
    std::fs::write(cache.join("packed-refs.lock"), "").unwrap();
    let report = mirror::sync(&req).expect("the leftovers are cleared");
    assert!(!report.no_op);
    assert_eq!(
        refs_under(&mirror, "refs/tags"),
        refs_under(&upstream, "refs/tags")
    );
    assert!(!mirror.join(format!("refs/tags/{tag}.lock")).exists());
    assert!(!cache.join("packed-refs.lock").exists());
}

/// Two hosts on loopback (two ports: two origins), both of which would accept the same token.
/// The upstream token is bound to host A; a recipe on host B is read without it, so host B never
/// logs an authorized request: a line in its log would be the token leaking.
#[test]
fn an_upstream_on_another_host_is_read_without_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (root_a, root_b) = (tmp.path().join("a"), tmp.path().join("b"));
    bare(&root_a.join("app.git"));
    bare(&root_b.join("app.git"));
    let a = GitHttpServer::start(&root_a, None, TOKEN);
    let b = GitHttpServer::start(&root_b, None, TOKEN);
    let credentials = mirror::Credentials {
        upstream_token: Some(Secret::new(TOKEN)),
        upstream_base: Some(a.url("")),
        ..mirror::Credentials::default()
    };
    mirror::ls_remote(&credentials.upstream_remote(&a.url("app.git")))
        .expect("host A is read with its token");
    assert!(!a.take_log().is_empty(), "host A saw the token");
    let err = mirror::ls_remote(&credentials.upstream_remote(&b.url("app.git")))
        .expect_err("host B asks for credentials and gets none");
    assert!(b.take_log().is_empty(), "host B received the token: {err}");
    assert!(!err.to_string().contains(TOKEN), "{err}");
}
