//! Forge clients against loopback servers answering in the Gitea/Forgejo swagger shapes and in
//! GitHub's shapes (octocrab pointed at the loopback): paging past a clamped limit and `null`
//! items, tag resolution, closing PRs (412 and already-closed are no-ops), webhooks (created, and
//! repaired in place), and errors that name the endpoint and status but never the token.

use canon_shared::forge::{CloseOutcome, Forge, ForgeError, GitHub, Gitea, HookSpec};
use canon_shared::secret::Secret;
use canon_testkit::forge::{FakeForge, FakePr, FakeTag, ForgeState, Shape};
use canon_testkit::loopback::free_port;

const TOKEN: &str = "forge-tok-8d1c";
const REPO: &str = "coop/gitea";

fn sha(n: u64) -> String {
    format!("{n:040x}")
}

fn prs(count: u64) -> Vec<FakePr> {
    (1..=count).map(|n| FakePr::open(n, &sha(n))).collect()
}

fn gitea(state: ForgeState) -> (FakeForge, Gitea) {
    let server = FakeForge::start(Shape::Gitea, state);
    let client = Gitea::new(&server.base_url(), Some(Secret::new(TOKEN))).unwrap();
    (server, client)
}

fn github(state: ForgeState) -> (FakeForge, GitHub) {
    let server = FakeForge::start(Shape::GitHub, state);
    let client = GitHub::new(&server.base_url(), Some(Secret::new(TOKEN))).unwrap();
    (server, client)
}

fn assert_no_token(err: &ForgeError) {
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(!shown.contains("wrong-token"), "{shown}");
}

#[tokio::test]
async fn gitea_lists_open_prs_past_a_clamped_limit_and_skips_nulls() {
    let mut state = ForgeState::new(REPO, TOKEN);
    state.max_items = 3; // the server clamps our limit=50 to 3
    state.prs = prs(8);
    state.prs[2].state = "closed".into();
    state.prs[5].broken = true; // Forgejo: a PR that failed to load is `null`
    let (server, client) = gitea(state);
    let open = client.list_open_prs(REPO).await.unwrap();
    let numbers: Vec<u64> = open.iter().map(|p| p.number).collect();
    assert_eq!(numbers, vec![1, 2, 4, 5, 7, 8]);
    assert_eq!(open[0].head_sha, sha(1));
    assert_eq!(open[0].head_ref, "pr-1");
    assert_eq!(open[0].base_ref, "main");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3, "7 open items in pages of 3: {reqs:?}");
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.authorization.as_deref(), Some(&*format!("token {TOKEN}")));
        assert!(r.query.contains("limit=50"), "{}", r.query);
        assert!(r.query.contains(&format!("page={}", i + 1)), "{}", r.query);
        assert!(!r.query.contains("token"), "never a query token");
    }
}

#[tokio::test]
async fn gitea_without_a_total_reads_until_an_empty_page() {
    let mut state = ForgeState::new(REPO, TOKEN);
    state.max_items = 2;
    state.total_header = false;
    state.prs = prs(3);
    let (server, client) = gitea(state);
    assert_eq!(client.list_open_prs(REPO).await.unwrap().len(), 3);
    assert_eq!(
        server.requests().len(),
        3,
        "pages of 2, 1, then an empty one"
    );
}

#[tokio::test]
async fn gitea_closes_a_pr_then_comments_and_treats_412_and_closed_as_done() {
    let mut state = ForgeState::new(REPO, TOKEN);
    state.prs = prs(3);
    state.prs[1].reject_412 = true;
    state.prs[2].state = "closed".into();
    let (server, client) = gitea(state);
    assert_eq!(
        client
            .close_pr(REPO, 1, "merged upstream at abc")
            .await
            .unwrap(),
        CloseOutcome::Closed
    );
    assert_eq!(
        client.close_pr(REPO, 2, "x").await.unwrap(),
        CloseOutcome::AlreadyMerged
    );
    assert_eq!(
        client.close_pr(REPO, 3, "x").await.unwrap(),
        CloseOutcome::AlreadyClosed
    );
    let st = server.state.lock().unwrap().clone();
    assert_eq!(st.prs[0].state, "closed");
    assert_eq!(st.comments, vec![(1, "merged upstream at abc".to_string())]);
    let calls: Vec<String> = server
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        calls,
        vec![
            "GET /api/v1/repos/coop/gitea/pulls/1",
            "PATCH /api/v1/repos/coop/gitea/pulls/1",
            "POST /api/v1/repos/coop/gitea/issues/1/comments",
            "GET /api/v1/repos/coop/gitea/pulls/2",
            "PATCH /api/v1/repos/coop/gitea/pulls/2",
            "GET /api/v1/repos/coop/gitea/pulls/3",
        ]
    );
    let patch = &server.requests()[1];
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&patch.body).unwrap(),
        serde_json::json!({"state": "closed"})
    );
}

#[tokio::test]
async fn gitea_resolves_and_lists_tags() {
    let mut state = ForgeState::new(REPO, TOKEN);
    state.max_items = 2;
    state.tags = (1..=5)
        .map(|n| FakeTag {
            name: format!("{n}.0.0+1.{n}"),
            object: sha(100 + n),
            commit: sha(n),
        })
        .collect();
    let (server, client) = gitea(state);
    assert_eq!(
        client
            .resolve_tag(REPO, "3.0.0+1.3")
            .await
            .unwrap()
            .map(|c| c.to_string()),
        Some(sha(3)),
        "the peeled commit, not the tag object"
    );
    assert_eq!(client.resolve_tag(REPO, "9.9.9").await.unwrap(), None);
    let tag_req = &server.requests()[0];
    assert_eq!(
        tag_req.path,
        "/api/v1/repos/coop/gitea/tags/3%2E0%2E0%2B1%2E3"
    );
    let tags = client.list_tags(REPO).await.unwrap();
    assert_eq!(tags.len(), 5);
    assert_eq!(tags[4].commit, sha(5));
}

#[tokio::test]
async fn gitea_creates_an_active_json_hook_with_a_secret() {
    let (server, client) = gitea(ForgeState::new(REPO, TOKEN));
    assert!(client.list_hooks(REPO).await.unwrap().is_empty());
    let spec = HookSpec::new("https://canon.example.org/hook", Secret::new("hook-secret"));
    let hook = client.create_hook(REPO, &spec).await.unwrap();
    assert!(hook.active);
    assert_eq!(hook.url, "https://canon.example.org/hook");
    assert_eq!(hook.content_type.as_deref(), Some("json"));
    assert_eq!(hook.events, vec!["push", "create", "release", "delete"]);
    let listed = client.list_hooks(REPO).await.unwrap();
    assert_eq!(listed, vec![hook]);
    let post = server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["type"], "gitea");
    assert_eq!(body["config"]["secret"], "hook-secret");
    assert_eq!(body["active"], true, "Gitea defaults to inactive");
}

#[tokio::test]
async fn gitea_edits_a_broken_hook_in_place() {
    let mut state = ForgeState::new(REPO, TOKEN);
    state.hooks.push(serde_json::json!({
        "id": 4, "type": "gitea", "active": false, "events": ["push"], "branch_filter": "main",
        "config": {"url": "https://canon.example.org/hook", "content_type": "form"},
    }));
    let (server, client) = gitea(state);
    let spec = HookSpec::new("https://canon.example.org/hook", Secret::new("edit-secret"));
    let hook = client.edit_hook(REPO, 4, &spec).await.unwrap();
    assert_eq!(hook.id, 4);
    assert!(hook.active);
    assert_eq!(hook.content_type.as_deref(), Some("json"));
    assert_eq!(hook.events, vec!["push", "create", "release", "delete"]);
    assert_eq!(client.list_hooks(REPO).await.unwrap(), vec![hook]);
    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.path, "/api/v1/repos/coop/gitea/hooks/4");
    let body: serde_json::Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(
        body["active"], true,
        "Gitea keeps `active` unless it is sent"
    );
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["url"], "https://canon.example.org/hook");
    assert_eq!(body["config"]["secret"], "edit-secret");
    assert_eq!(body["branch_filter"], "");

    // A hook that is gone: 404, endpoint named, neither token nor secret shown.
    let err = client.edit_hook(REPO, 99, &spec).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let msg = format!("{err} {err:?}");
    assert!(
        msg.starts_with("PATCH /repos/coop/gitea/hooks/99: HTTP 404"),
        "{msg}"
    );
    assert!(!msg.contains("edit-secret"), "{msg}");
    assert_no_token(&err);
}

#[tokio::test]
async fn gitea_errors_name_endpoint_and_status_but_not_the_token() {
    let server = FakeForge::start(Shape::Gitea, ForgeState::new(REPO, TOKEN));
    let wrong = Gitea::new(&server.base_url(), Some(Secret::new("wrong-token-42"))).unwrap();
    let err = wrong.list_open_prs(REPO).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    let msg = err.to_string();
    assert!(
        msg.starts_with("GET /repos/coop/gitea/pulls: HTTP 401"),
        "{msg}"
    );
    assert!(msg.contains("token is required"), "{msg}");
    assert_no_token(&err);

    let client = Gitea::new(&server.base_url(), Some(Secret::new(TOKEN))).unwrap();
    let err = client.close_pr("coop/other", 1, "x").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("may lack permission"), "{err}");
    assert_no_token(&err);

    let down = Gitea::new(
        &format!("http://127.0.0.1:{}", free_port()),
        Some(Secret::new(TOKEN)),
    )
    .unwrap();
    let err = down.list_tags(REPO).await.unwrap_err();
    assert!(matches!(err, ForgeError::Transport { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("GET /repos/coop/gitea/tags: request failed"),
        "{err}"
    );
    assert_no_token(&err);

    assert!(matches!(
        client.list_tags("no-slash").await.unwrap_err(),
        ForgeError::BadRepo { .. }
    ));
    assert!(Gitea::new("https://bot:pw@git.example.org", None).is_err());
}

#[tokio::test]
async fn github_pages_prs_and_closes_with_a_comment() {
    let mut state = ForgeState::new(REPO, TOKEN);
    state.prs = prs(130);
    state.prs[9].merged = true;
    state.prs[9].state = "closed".into();
    let (server, client) = github(state);
    let open = client.list_open_prs(REPO).await.unwrap();
    assert_eq!(open.len(), 129);
    let list_reqs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/pulls"))
        .collect();
    assert_eq!(list_reqs.len(), 2, "pages of 100");
    assert!(
        list_reqs[0].query.contains("per_page=100") && list_reqs[0].query.contains("state=open")
    );
    assert_eq!(
        list_reqs[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );

    assert_eq!(
        client.close_pr(REPO, 1, "merged upstream").await.unwrap(),
        CloseOutcome::Closed
    );
    assert_eq!(
        client.close_pr(REPO, 10, "x").await.unwrap(),
        CloseOutcome::AlreadyMerged
    );
    let st = server.state.lock().unwrap().clone();
    assert_eq!(st.prs[0].state, "closed");
    assert_eq!(st.comments, vec![(1, "merged upstream".to_string())]);
}

#[tokio::test]
async fn github_resolves_annotated_and_lightweight_tags() {
    let mut state = ForgeState::new(REPO, TOKEN);
    state.tags = vec![
        FakeTag {
            name: "1.0.0+1".into(),
            object: sha(7),
            commit: sha(7),
        },
        FakeTag {
            name: "2.0.0+2".into(),
            object: sha(900),
            commit: sha(8),
        },
    ];
    let (_server, client) = github(state);
    assert_eq!(
        client
            .resolve_tag(REPO, "1.0.0+1")
            .await
            .unwrap()
            .map(|c| c.to_string()),
        Some(sha(7))
    );
    assert_eq!(
        client
            .resolve_tag(REPO, "2.0.0+2")
            .await
            .unwrap()
            .map(|c| c.to_string()),
        Some(sha(8))
    );
    assert_eq!(client.resolve_tag(REPO, "3.0.0").await.unwrap(), None);
    let tags = client.list_tags(REPO).await.unwrap();
    assert_eq!(tags[1].commit, sha(8));
}

#[tokio::test]
async fn github_hooks_and_errors() {
    let (server, client) = github(ForgeState::new(REPO, TOKEN));
    let spec = HookSpec::new("https://canon.example.org/hook", Secret::new("s3"));
    let hook = client.create_hook(REPO, &spec).await.unwrap();
    assert!(hook.active);
    assert_eq!(client.list_hooks(REPO).await.unwrap(), vec![hook.clone()]);
    let post = server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&post.body).unwrap();
    assert_eq!(body["name"], "web");
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["secret"], "s3");

    // Someone switched the hook to form content, dropped `delete` and disabled it: one PATCH
    // puts it back, with the secret (GitHub drops a secret missing from an edited config).
    server.state.lock().unwrap().hooks[0] = serde_json::json!({
        "id": hook.id, "name": "web", "active": false, "events": ["push", "create", "release"],
        "config": {"url": "https://canon.example.org/hook", "content_type": "form", "insecure_ssl": "0"},
    });
    let edited = client.edit_hook(REPO, hook.id, &spec).await.unwrap();
    assert_eq!(edited, hook);
    assert_eq!(client.list_hooks(REPO).await.unwrap(), vec![hook.clone()]);
    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    assert_eq!(patch.path, format!("/repos/coop/gitea/hooks/{}", hook.id));
    let body: serde_json::Value = serde_json::from_str(&patch.body).unwrap();
    assert_eq!(body["active"], true);
    assert_eq!(
        body["events"],
        serde_json::json!(["push", "create", "release", "delete"])
    );
    assert_eq!(body["config"]["content_type"], "json");
    assert_eq!(body["config"]["secret"], "s3");
    let err = client.edit_hook(REPO, 1, &spec).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!format!("{err} {err:?}").contains("s3"), "{err:?}");
    assert_no_token(&err);

    let err = client.list_open_prs("coop/private").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    let msg = err.to_string();
    assert!(
        msg.starts_with("GET /repos/coop/private/pulls: HTTP 404"),
        "{msg}"
    );
    assert!(msg.contains("may lack permission"), "{msg}");
    assert_no_token(&err);

    let wrong = GitHub::new(&server.base_url(), Some(Secret::new("wrong-token-9"))).unwrap();
    let err = wrong.resolve_tag(REPO, "1.0.0").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("Bad credentials"), "{err}");
    assert_no_token(&err);
}

#[tokio::test]
async fn the_trait_is_object_safe_for_the_listener() {
    let server = FakeForge::start(Shape::Gitea, {
        let mut s = ForgeState::new(REPO, TOKEN);
        s.prs = prs(1);
        s
    });
    let forge: std::sync::Arc<dyn Forge> = canon_shared::forge::client(
        canon_shared::forge::ForgeKind::Gitea,
        &server.base_url(),
        Some(Secret::new(TOKEN)),
    )
    .unwrap();
    assert_eq!(forge.list_open_prs(REPO).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_never_gets_the_token() {
    use std::io::{BufRead, BufReader};
    // Host B (127.0.0.2) records every request that reaches it.
    let b = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let b_port = b.local_addr().unwrap().port();
    let reached: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let record = reached.clone();
    std::thread::spawn(move || {
        for conn in b.incoming().take(4).flatten() {
            let mut line = String::new();
            let _ = BufReader::new(conn).read_line(&mut line);
            record.lock().unwrap().push(line);
        }
    });
    // Host A, the configured Drone and Gitea, redirects everything to host B.
    let a = canon_testkit::loopback::LoopbackServer::start(move |req| {
        let location = format!("http://127.0.0.2:{b_port}{}", req.url());
        let _ =
            req.respond(tiny_http::Response::empty(302).with_header(
                tiny_http::Header::from_bytes("Location", location.as_bytes()).unwrap(),
            ));
    });
    let drone = canon_shared::drone::DroneClient::new(
        &a.base_url(),
        Secret::new("drone-s3cr3t"),
        "canon/ci",
    )
    .unwrap();
    let err = drone.get_build(1).await.unwrap_err().to_string();
    assert!(!err.contains("drone-s3cr3t"), "{err}");
    let gitea = canon_shared::forge::client(
        canon_shared::forge::ForgeKind::Gitea,
        &a.base_url(),
        Some(Secret::new("gitea-s3cr3t")),
    )
    .unwrap();
    let err = gitea
        .resolve_tag("o/r", "1.0.0+1")
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains("gitea-s3cr3t"), "{err}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        reached.lock().unwrap().is_empty(),
        "host B was reached: {:?}",
        reached.lock().unwrap()
    );
}
