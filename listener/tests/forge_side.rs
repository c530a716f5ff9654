//! The listener's forge-side work against loopback forges: `canon-listener register-hooks` run
//! as an operator runs it (the real binary against a Gitea-shaped API: one hook created, found
//! again on the second run; a broken hook repaired in place, then found; no token or secret
//! printed; a reader that stops early ends it as SIGPIPE would, never a panic), and the worker closing mirror PRs that upstream has merged after a signed tag
//! webhook (mirror over git smart HTTP, PRs on a Gitea-shaped API, build on the Drone stand-in).

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use canon_listener::app;
use canon_testkit::drone::FakeDrone;
use canon_testkit::forge::{FakeForge, FakePr, ForgeState, Shape};
use canon_testkit::git::{git, merged_pr_upstream, GitHttpServer};
use canon_testkit::process::printed;
use support::{deliver, env, eventually, push_tag, settings, SECRET};

const FORGE_TOKEN: &str = "forge-admin-token-7c1d55e0";
const MIRROR_TOKEN: &str = "mirror-push-token-3b9f02aa";
const PUBLIC: &str = "https://canon.example.org/listener";

/// Runs `canon-listener register-hooks` with only `envs` (plus PATH) in its environment.
fn register_hooks(envs: &[(&str, String)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_canon-listener"));
    c.arg("register-hooks")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("canon-listener runs")
}

/// The environment `register-hooks` runs with against `forge`.
fn register_env(root: &Path, enrollment: &Path, forge: &FakeForge) -> Vec<(&'static str, String)> {
    vec![
        ("CANON_ENROLLMENT", enrollment.display().to_string()),
        ("CANON_STATE_DIR", root.join("state").display().to_string()),
        ("CANON_WEBHOOK_SECRETS", SECRET.to_string()),
        ("CANON_FORGE_URL", forge.base_url()),
        ("CANON_FORGE_TOKEN", FORGE_TOKEN.to_string()),
        ("CANON_PUBLIC_URL", format!("{PUBLIC}/")),
        ("CANON_DRONE_SERVER", "http://127.0.0.1:9".to_string()),
        ("CANON_DRONE_TOKEN", canon_testkit::drone::TOKEN.to_string()),
        ("CANON_DRONE_REPO", "canon/ci".to_string()),
        // The most talkative level the operator might pick still prints no credential.
        ("CANON_LOG", "debug".to_string()),
    ]
}

#[test]
fn register_hooks_ends_quietly_on_a_closed_pipe_as_a_unix_tool_does() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    let forge = FakeForge::start(Shape::Gitea, ForgeState::new("owner/name", FORGE_TOKEN));
    let enrollment = tmp.path().join("enrollment.yml");
    std::fs::write(
        &enrollment,
        format!(
            "forge:\n  upstream: {}\nrecipes:\n  - name: hello\n    upstream: owner/name\n    mirror: /srv/mirrors/hello.git\n",
            forge.base_url()
        ),
    )
    .unwrap();
    // `register-hooks | head -0`: the reader is gone before the first line is written.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut c = Command::new(env!("CARGO_BIN_EXE_canon-listener"));
    c.arg("register-hooks")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    for (k, v) in register_env(tmp.path(), &enrollment, &forge) {
        c.env(k, v);
    }
    let out = c.spawn().unwrap().wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("failed printing"),
        "{stderr}"
    );
    // It had something to print: the hook was created before the write failed.
    assert_eq!(forge.state.lock().unwrap().hooks.len(), 1);
}

#[test]
fn register_hooks_creates_the_hook_once_and_never_prints_the_token_or_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = ForgeState::new("owner/name", FORGE_TOKEN);
    // Someone else's hook on the same repository must not count as ours; a small page size makes
    // the client page through the list.
    state.max_items = 1;
    state.hooks.push(serde_json::json!({
        "id": 1, "type": "gitea", "active": true, "events": ["push"],
        "config": {"url": "https://ci.example.org/hook", "content_type": "json"},
    }));
    let forge = FakeForge::start(Shape::Gitea, state);
    let enrollment = tmp.path().join("enrollment.yml");
    std::fs::write(
        &enrollment,
        format!(
            "forge:\n  upstream: {}\nrecipes:\n  - name: hello\n    upstream: owner/name\n    mirror: /srv/mirrors/hello.git\n  - name: local\n    upstream: /srv/git/local.git\n    mirror: /srv/mirrors/local.git\n",
            forge.base_url()
        ),
    )
    .unwrap();
    let envs = register_env(tmp.path(), &enrollment, &forge);
    let hook_url = format!("{PUBLIC}/hooks/gitea");

    let first = register_hooks(&envs);
    let out = printed(&first);
    assert!(first.status.success(), "{out}");
    assert!(out.contains("hello: created hook 2 on owner/name"), "{out}");
    assert!(
        out.contains("local: skipped, its upstream is not a forge repository"),
        "{out}"
    );
    {
        let st = forge.state.lock().unwrap();
        assert_eq!(st.hooks.len(), 2, "{:#?}", st.hooks);
        let hook = &st.hooks[1];
        assert_eq!(hook["config"]["url"], hook_url.as_str());
        assert_eq!(hook["config"]["content_type"], "json");
        assert_eq!(hook["active"], true);
        assert_eq!(
            hook["events"],
            serde_json::json!(["push", "create", "release", "delete"])
        );
    }
    let posts: Vec<_> = forge
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(posts[0].path, "/api/v1/repos/owner/name/hooks");
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("token {FORGE_TOKEN}").as_str())
    );
    let sent: serde_json::Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(sent["type"], "gitea");
    assert_eq!(
        sent["config"]["secret"], SECRET,
        "the forge gets the secret"
    );
    assert_eq!(sent["config"]["content_type"], "json");
    assert_eq!(sent["active"], true);

    let second = register_hooks(&envs);
    let out2 = printed(&second);
    assert!(second.status.success(), "{out2}");
    assert!(out2.contains("hello: found hook 2 on owner/name"), "{out2}");
    assert_eq!(forge.state.lock().unwrap().hooks.len(), 2, "no second hook");
    let requests = forge.requests();
    assert_eq!(
        requests.iter().filter(|r| r.method == "POST").count(),
        1,
        "{requests:#?}"
    );
    // Our hook is the second one and the forge serves one per page: the second run found it
    // only by reading page 2.
    let pages: Vec<&str> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/repos/owner/name/hooks")
        .map(|r| r.query.as_str())
        .collect();
    assert!(
        pages.len() == 3 && pages[2].split('&').any(|kv| kv == "page=2"),
        "{requests:#?}"
    );
    // A token the forge refuses: the recipe fails, the command exits non-zero, and the refused
    // token is not printed either.
    let wrong = "wrong-token-9e8d7c6b5a";
    let mut bad = envs.to_vec();
    bad.retain(|(k, _)| *k != "CANON_FORGE_TOKEN");
    bad.push(("CANON_FORGE_TOKEN", wrong.to_string()));
    let third = register_hooks(&bad);
    let out3 = printed(&third);
    assert_eq!(third.status.code(), Some(1), "{out3}");
    assert!(out3.contains("hello: FAILED on owner/name: "), "{out3}");
    assert!(!out3.contains(wrong), "refused token printed: {out3}");
    assert_eq!(forge.state.lock().unwrap().hooks.len(), 2);
    for text in [&out, &out2, &out3] {
        assert!(!text.contains(FORGE_TOKEN), "token printed: {text}");
        assert!(!text.contains(SECRET), "secret printed: {text}");
    }
}

#[test]
fn register_hooks_repairs_a_broken_hook_once_and_never_prints_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let hook_url = format!("{PUBLIC}/hooks/gitea");
    let mut state = ForgeState::new("owner/name", FORGE_TOKEN);
    // Our hook, disabled and without `delete`: tags would be missed silently. It also fires for
    // pull requests, which the repair keeps.
    state.hooks.push(serde_json::json!({
        "id": 5, "type": "gitea", "active": false, "branch_filter": "",
        "events": ["create", "push", "release", "pull_request"],
        "config": {"url": hook_url, "content_type": "json", "http_method": "post"},
    }));
    let forge = FakeForge::start(Shape::Gitea, state);
    let enrollment = tmp.path().join("enrollment.yml");
    std::fs::write(
        &enrollment,
        format!(
            "forge:\n  upstream: {}\nrecipes:\n  - name: hello\n    upstream: owner/name\n    mirror: /srv/mirrors/hello.git\n",
            forge.base_url()
        ),
    )
    .unwrap();
    let envs = register_env(tmp.path(), &enrollment, &forge);

    let first = register_hooks(&envs);
    let out = printed(&first);
    assert!(first.status.success(), "{out}");
    assert!(
        out.contains(
            "hello: repaired hook 5 on owner/name (was: inactive; missing events: delete)"
        ),
        "{out}"
    );
    {
        let st = forge.state.lock().unwrap();
        assert_eq!(
            st.hooks.len(),
            1,
            "repaired, not duplicated: {:#?}",
            st.hooks
        );
        let hook = &st.hooks[0];
        assert_eq!(hook["active"], true);
        assert_eq!(
            hook["events"],
            serde_json::json!(["push", "create", "release", "delete", "pull_request"])
        );
        assert_eq!(hook["config"]["content_type"], "json");
        assert_eq!(hook["config"]["url"], hook_url.as_str());
    }
    let calls: Vec<String> = forge
        .requests()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(calls, vec!["PATCH /api/v1/repos/owner/name/hooks/5"]);

    let second = register_hooks(&envs);
    let out2 = printed(&second);
    assert!(second.status.success(), "{out2}");
    assert!(out2.contains("hello: found hook 5 on owner/name"), "{out2}");
    assert_eq!(
        forge
            .requests()
            .iter()
            .filter(|r| r.method != "GET")
            .count(),
        1,
        "a correct hook is left alone"
    );
    for text in [&out, &out2] {
        assert!(!text.contains(FORGE_TOKEN), "token printed: {text}");
        assert!(!text.contains(SECRET), "secret printed: {text}");
    }
}

#[test]
fn register_hooks_without_a_forge_token_says_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let enrollment = tmp.path().join("enrollment.yml");
    std::fs::write(
        &enrollment,
        "recipes:\n  - name: a\n    upstream: /srv/a.git\n    mirror: /srv/m.git\n",
    )
    .unwrap();
    let o = register_hooks(&[
        ("CANON_ENROLLMENT", enrollment.display().to_string()),
        ("CANON_WEBHOOK_SECRETS", SECRET.to_string()),
        ("CANON_FORGE_URL", "http://127.0.0.1:9".to_string()),
        ("CANON_PUBLIC_URL", PUBLIC.to_string()),
        ("CANON_DRONE_SERVER", "http://127.0.0.1:9".to_string()),
        ("CANON_DRONE_TOKEN", canon_testkit::drone::TOKEN.to_string()),
        ("CANON_DRONE_REPO", "canon/ci".to_string()),
    ]);
    let out = printed(&o);
    assert_eq!(o.status.code(), Some(2), "{out}");
    assert!(
        out.contains("register-hooks needs CANON_FORGE_TOKEN"),
        "{out}"
    );
    assert!(!out.contains(SECRET), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_job_closes_mirror_prs_that_upstream_merged_and_leaves_the_others_open() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let up = root.join("up");
    let served = root.join("served");
    let mirror = served.join("coop/mirror.git");
    // Upstream merged pr-1 and tagged the merge; the mirror still holds both PR branches.
    let [pr1, pr2] = merged_pr_upstream(&up, &mirror, "version: 1\n");
    git(&up, &["tag", "1.0.0+1.0"]);
    let head = git(&up, &["rev-parse", "HEAD"]);
    let git_server = GitHttpServer::start(&served, None, MIRROR_TOKEN);
    let mirror_url = git_server.url("coop/mirror.git");

    let mut state = ForgeState::new("coop/mirror", MIRROR_TOKEN);
    state.prs = vec![FakePr::open(1, &pr1), FakePr::open(2, &pr2)];
    let forge = FakeForge::start(Shape::Gitea, state);

    let enrollment = root.join("enrollment.yml");
    std::fs::write(
        &enrollment,
        format!(
            "forge:\n  mirror: {}\nrecipes:\n  - name: alpha\n    upstream: {}\n    mirror: {mirror_url}\n",
            git_server.url(""),
            up.display()
        ),
    )
    .unwrap();
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let mut pairs = env(&root.join("state"), &enrollment, &drone_url);
    pairs.push(("CANON_MIRROR_URL".into(), forge.base_url()));
    pairs.push(("CANON_MIRROR_TOKEN".into(), MIRROR_TOKEN.into()));
    let s = settings(pairs);
    let running = app::start(&s, Duration::from_secs(5))
        .await
        .expect("the listener starts");
    let base = format!("http://{}", running.addr);
    let client = canon_shared::http_client::builder().build().unwrap();

    let body = push_tag(&up.display().to_string(), "alpha", "1.0.0+1.0", &head);
    let (status, v) = deliver(&client, &base, "push", &body).await;
    assert_eq!(
        (status, v["outcome"].as_str()),
        (202, Some("accepted")),
        "{v}"
    );
    let jobs = || async {
        client
            .get(format!("{base}/api/jobs"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let done = eventually(15, || async {
        let j = jobs().await;
        j[0]["state"] == "done" || j[0]["state"] == "failed"
    })
    .await;
    let j = jobs().await;
    assert!(done && j[0]["state"] == "done", "{j:#}");
    assert_eq!(j[0]["commit"], head.as_str());

    // The mirror was synced over smart HTTP and the build started.
    assert_eq!(git(&mirror, &["rev-parse", "refs/heads/main"]), head);
    assert_eq!(git(&mirror, &["rev-parse", "refs/tags/1.0.0+1.0"]), head);
    assert!(
        git_server
            .take_log()
            .iter()
            .any(|l| l.starts_with("POST /coop/mirror.git/git-receive-pack")),
        "the mirror was pushed to"
    );
    assert_eq!(drone.count("alpha", "1.0.0+1.0"), 1);

    // pr-1's head is part of upstream main: closed with a comment naming the upstream commit.
    {
        let st = forge.state.lock().unwrap();
        assert_eq!(st.prs[0].state, "closed", "{:#?}", st.prs);
        assert_eq!(st.prs[1].state, "open", "{:#?}", st.prs);
        assert_eq!(st.comments.len(), 1, "{:#?}", st.comments);
        assert_eq!(st.comments[0].0, 1);
        assert!(
            st.comments[0].1.contains(&head) && st.comments[0].1.contains(&pr1),
            "{}",
            st.comments[0].1
        );
    }
    let requests = forge.requests();
    let calls: Vec<String> = requests
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        vec![
            "PATCH /api/v1/repos/coop/mirror/pulls/1",
            "POST /api/v1/repos/coop/mirror/issues/1/comments",
        ],
        "{requests:#?}"
    );
    assert!(requests
        .iter()
        .any(|r| r.method == "GET" && r.path == "/api/v1/repos/coop/mirror/pulls"));
    assert!(
        requests
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("token {MIRROR_TOKEN}"))),
        "{requests:#?}"
    );
    running.stop().await;
}
