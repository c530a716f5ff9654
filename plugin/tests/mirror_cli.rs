//! `canon-plugin mirror-sync` as an operator runs it: one pair, a whole enrollment with a failing
//! recipe, JSON output, a wrong token over smart HTTP (never printed), mirror PRs merged upstream
//! closed on the mirror's forge, and bad usage.

use std::path::Path;
use std::process::{Command, Output};

use canon_testkit::forge::{FakeForge, FakePr, ForgeState, Shape};
use canon_testkit::git::{
    bare, hermetic, merged_pr_upstream, refs_under, synced_refs, GitHttpServer, Work,
};

fn canon(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
    hermetic(&mut c)
        .arg("mirror-sync")
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("CANON_UPSTREAM_TOKEN")
        .env_remove("CANON_MIRROR_TOKEN")
        .env_remove("CANON_STATE_DIR")
        .env_remove("PLUGIN_UPSTREAM_TOKEN")
        .env_remove("PLUGIN_MIRROR_TOKEN")
        .env_remove("PLUGIN_STATE_DIR")
        .env_remove("PLUGIN_SSH_KEY_FILE");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("canon-plugin runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// An upstream with two commits, a lightweight and an annotated tag, and an empty mirror, under
/// `dir`.
fn pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let up = dir.join(format!("{name}-upstream.git"));
    let mirror = dir.join(format!("{name}-mirror.git"));
    Work::released(&dir.join(format!("{name}-work")), &up);
    bare(&mirror);
    (up, mirror)
}

#[test]
fn one_pair_syncs_then_is_a_no_op_with_a_reused_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (up, mirror) = pair(tmp.path(), "one");
    let cache = tmp.path().join("cache/upstream.git");
    let args = [
        "--upstream",
        up.to_str().unwrap(),
        "--mirror",
        mirror.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
    ];
    let out = canon(&args, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.starts_with("ok   "), "{stdout}");
    assert!(stdout.contains("created 3"), "{stdout}");
    assert_eq!(synced_refs(&mirror, "main"), synced_refs(&up, "main"));

    let out = canon(&args, &[]);
    let (stdout, _) = text(&out);
    assert!(out.status.success());
    assert!(stdout.contains("no-op"), "{stdout}");
}

#[test]
fn enrollment_syncs_every_recipe_and_reports_the_one_that_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_up, a_mirror) = pair(tmp.path(), "alpha");
    let (c_up, c_mirror) = pair(tmp.path(), "gamma");
    let b_mirror = tmp.path().join("beta-mirror.git");
    bare(&b_mirror);
    let enrollment = tmp.path().join("enrollment.yml");
    std::fs::write(
        &enrollment,
        format!(
            "recipes:\n  - name: alpha\n    upstream: {}\n    mirror: {}\n  - name: beta\n    upstream: {}/missing-upstream.git\n    mirror: {}\n  - name: gamma\n    upstream: {}\n    mirror: {}\n",
            a_up.display(),
            a_mirror.display(),
            tmp.path().display(),
            b_mirror.display(),
            c_up.display(),
            c_mirror.display()
        ),
    )
    .unwrap();
    let state = tmp.path().join("state");
    // The state dir holds the caches; mirror-sync never creates it.
    let out = canon(
        &[
            "--config",
            enrollment.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "state directory {} does not exist",
            state.display()
        )),
        "{stderr}"
    );
    assert!(!state.exists());
    std::fs::create_dir(&state).unwrap();
    let out = canon(
        &[
            "--config",
            enrollment.to_str().unwrap(),
            "--jobs",
            "2",
            "--state-dir",
            state.to_str().unwrap(),
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "one line per recipe and a total: {stdout}");
    assert!(
        lines.iter().any(|l| l.starts_with("ok   alpha: created 3")),
        "{stdout}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("ok   gamma: created 3")),
        "{stdout}"
    );
    let beta = lines
        .iter()
        .find(|l| l.starts_with("FAIL beta: "))
        .expect("beta failed");
    assert!(
        beta.contains("upstream") && beta.contains("missing-upstream.git"),
        "{beta}"
    );
    assert!(
        lines[3].starts_with("mirror-sync: 3 recipes, 2 ok (0 no-op), 1 failed"),
        "{stdout}"
    );
    assert_eq!(synced_refs(&a_mirror, "main"), synced_refs(&a_up, "main"));
    assert_eq!(synced_refs(&c_mirror, "main"), synced_refs(&c_up, "main"));
    assert!(
        refs_under(&b_mirror, "refs/").is_empty(),
        "the failed mirror is untouched"
    );
    assert!(
        state.join("alpha/upstream.git/HEAD").exists(),
        "per-recipe cache"
    );

    // --only and --json: one JSON report per line.
    let out = canon(
        &[
            "--config",
            enrollment.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
            "--only",
            "alpha",
            "--json",
        ],
        &[],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(v["recipe"], "alpha");
    assert_eq!(v["report"]["no_op"], true);
}

#[test]
fn wrong_mirror_token_fails_clearly_and_is_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, _) = pair(tmp.path(), "web");
    let server = GitHttpServer::start(tmp.path(), None, "right-token");
    let wrong = "wrong-token-1618033";
    let out = canon(
        &[
            "--upstream",
            &server.url("web-upstream.git"),
            "--mirror",
            &server.url("web-mirror.git"),
        ],
        &[
            ("PLUGIN_UPSTREAM_TOKEN", "right-token"),
            ("PLUGIN_MIRROR_TOKEN", wrong),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("authentication failed"),
        "{stdout}"
    );
    assert!(stdout.contains(&server.url("web-mirror.git")), "{stdout}");
    assert!(
        !stdout.contains(wrong) && !stderr.contains(wrong),
        "{stdout}{stderr}"
    );
    assert!(!stdout.contains("right-token") && !stderr.contains("right-token"));
    assert!(refs_under(&tmp.path().join("web-mirror.git"), "refs/").is_empty());

    // With the right tokens the same command succeeds over HTTP.
    let out = canon(
        &[
            "--upstream",
            &server.url("web-upstream.git"),
            "--mirror",
            &server.url("web-mirror.git"),
        ],
        &[
            ("PLUGIN_UPSTREAM_TOKEN", "right-token"),
            ("PLUGIN_MIRROR_TOKEN", "right-token"),
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        synced_refs(&tmp.path().join("web-mirror.git"), "main"),
        synced_refs(&tmp.path().join("web-upstream.git"), "main")
    );
}

#[test]
fn mirror_prs_merged_upstream_are_closed_only_with_a_mirror_token() {
    let tmp = tempfile::tempdir().unwrap();
    let (up, mirror) = (tmp.path().join("up"), tmp.path().join("mirror.git"));
    let [merged, open] = merged_pr_upstream(&up, &mirror, "version: 1\n");
    let mut state = ForgeState::new("canon/web", "forge-token-2718");
    state.prs = vec![FakePr::open(1, &merged), FakePr::open(2, &open)];
    let forge = FakeForge::start(Shape::Gitea, state);
    let base = forge.base_url();
    let cache = tmp.path().join("cache/upstream.git");
    let args = [
        "--upstream",
        up.to_str().unwrap(),
        "--mirror",
        mirror.to_str().unwrap(),
        "--cache",
        cache.to_str().unwrap(),
        "--mirror-forge",
        &base,
        "--mirror-repo",
        "canon/web",
    ];

    // No mirror token: the sync stands, nothing is asked of the forge, and it says why.
    let out = canon(&args, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("ok   ") && !stdout.contains("closed PRs"),
        "{stdout}"
    );
    assert!(stderr.contains("No PLUGIN_MIRROR_TOKEN"), "{stderr}");
    assert!(forge.requests().is_empty());

    // With it (here by its old name, still read with a warning), the PR whose head upstream
    // merged is closed and named; the other stays open.
    let token = [("CANON_MIRROR_TOKEN", "forge-token-2718")];
    let out = canon(&args, &token);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stderr.contains("CANON_MIRROR_TOKEN is read until the next release only: set PLUGIN_MIRROR_TOKEN instead"),
        "{stderr}"
    );
    assert!(!stderr.contains("forge-token-2718"), "{stderr}");
    assert!(
        stdout
            .trim_end()
            .ends_with("; closed PRs merged upstream: #1"),
        "{stdout}"
    );
    {
        let st = forge.state.lock().unwrap();
        assert_eq!(st.prs[0].state, "closed");
        assert_eq!(st.prs[1].state, "open");
    }

    // A forge that refuses the token fails the pair, with the sync's report still in the JSON.
    let wrong = [("CANON_MIRROR_TOKEN", "wrong-forge-token")];
    let out = canon(&[&args[..], &["--json"]].concat(), &wrong);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let line: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(line["ok"], false, "{line}");
    assert_eq!(line["report"]["no_op"], true, "{line}");
    assert!(line.get("closed_prs").is_none(), "{line}");
    assert!(
        line["error"]
            .as_str()
            .unwrap()
            .starts_with("closing PRs merged upstream: "),
        "{line}"
    );
    assert!(!stdout.contains("wrong-forge-token") && !stderr.contains("wrong-forge-token"));
}

#[test]
fn usage_errors_exit_2() {
    let out = canon(&[], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = canon(&["--upstream", "/x"], &[]);
    assert_eq!(out.status.code(), Some(2), "--upstream needs --mirror");
    let out = canon(&["--config", "/nonexistent/enrollment.yml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("/nonexistent/enrollment.yml"));
}
