//! The sweep end to end through the real binary: local upstream and mirror repos made with the
//! git CLI, the `command` runner with scripted harnesses for inline runs, and a loopback
//! Drone-shaped server for the fan-out.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use canon_testkit::drone::{self, FakeDrone};
use canon_testkit::git::git;
use std::sync::{Arc, Mutex};

use canon_shared::forge::ForgeKind;
use canon_shared::listener_api::{JobForTag, JobState, JobSummary};
use canon_shared::recipe::RecipeName;
use canon_testkit::loopback::{respond_json, LoopbackServer, Request};
use serde_json::Value;
use support::Fixture;

/// Runs `canon-plugin` with a clean environment (no `PLUGIN_*` or `DRONE_*` from outside).
fn plugin(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("canon-plugin runs")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Sweeps the fixture inline with its green harness; returns the process output.
fn sweep_inline(f: &Fixture, extra: &[&str]) -> Output {
    let harness = f.green_harness();
    let state = f.state.display().to_string();
    let config = f.enrollment.display().to_string();
    let work = f.runs.display().to_string();
    let log = format!("HARNESS_LOG={}", f.log.display());
    let mut args = vec![
        "sweep",
        "--init",
        "--config",
        &config,
        "--state-dir",
        &state,
        "--inline",
        "--runner",
        "command",
        "--command",
        &harness,
        "--work-dir",
        &work,
        "--env",
        &log,
    ];
    args.extend_from_slice(extra);
    plugin(f.dir.path(), &args, &[])
}

fn report(f: &Fixture) -> Value {
    let path = f.dir.path().join("sweep-report.json");
    serde_json::from_slice(&std::fs::read(&path).expect("the sweep writes its report")).unwrap()
}

fn entry<'a>(report: &'a Value, recipe: &str) -> &'a Value {
    report["recipes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["recipe"] == recipe)
        .unwrap_or_else(|| panic!("no entry for {recipe}: {report}"))
}

fn canonical_version(f: &Fixture) -> Option<String> {
    f.state_dir()
        .read_canonical(&f.name())
        .unwrap()
        .map(|c| c.version.to_string())
}

#[test]
fn a_missing_or_empty_enrollment_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let out = plugin(
        dir.path(),
        &[
            "sweep",
            "--init",
            "--config",
            missing.to_str().unwrap(),
            "--inline",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope.yml"), "{}", text(&out));

    let empty = dir.path().join("empty.yml");
    std::fs::write(&empty, "recipes: []\n").unwrap();
    let out = plugin(
        dir.path(),
        &[
            "sweep",
            "--init",
            "--config",
            empty.to_str().unwrap(),
            "--inline",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("empty.yml"), "{}", text(&out));
    assert!(text(&out).contains("enrolls no recipes"), "{}", text(&out));
    assert!(!dir.path().join("sweep-report.json").exists());
}

#[test]
fn never_released_is_skipped_then_a_new_tag_is_run_and_then_not_again() {
    let f = Fixture::new();
    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    assert_eq!(entry(&r, "app")["decision"], "skip");
    assert!(
        entry(&r, "app")["reason"]
            .as_str()
            .unwrap()
            .contains("never released"),
        "{r}"
    );

    // Upstream publishes; the mirror is NOT synced by the test: the sweep must do it.
    std::fs::write(f.work.join("compose.yml"), support::compose("1.0.0+1.0")).unwrap();
    git(
        &f.work,
        &["commit", "-q", "-am", "chore: publish 1.0.0+1.0 release"],
    );
    git(&f.work, &["tag", "-a", "1.0.0+1.0", "-m", "release"]);
    git(
        &f.work,
        &["push", "-q", "origin", "main", "refs/tags/1.0.0+1.0"],
    );
    let commit = f.peeled("1.0.0+1.0");

    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    let e = entry(&r, "app");
    assert_eq!(e["decision"], "run", "{r}");
    assert_eq!(e["latest"], "1.0.0+1.0");
    assert_eq!(e["latest_commit"], commit.as_str());
    assert_eq!(e["action"], "promoted 1.0.0+1.0", "{r}");
    assert_eq!(
        e["missed_webhooks"], 0,
        "standalone, there is no webhook to miss"
    );
    assert_eq!(canonical_version(&f).as_deref(), Some("1.0.0+1.0"));
    assert_eq!(
        git(&f.mirror, &["rev-parse", "refs/tags/1.0.0+1.0^{commit}"]),
        commit,
        "the sweep synced the mirror"
    );
    let run_report = f.dir.path().join("canon-report-app.json");
    let run_report: Value = serde_json::from_slice(&std::fs::read(run_report).unwrap()).unwrap();
    assert_eq!(run_report["trigger"], "sweep");
    assert_eq!(run_report["promoted"], true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("recipe") && stdout.contains("promoted 1.0.0+1.0"),
        "{stdout}"
    );

    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    assert_eq!(entry(&r, "app")["decision"], "skip");
    assert!(
        entry(&r, "app")["reason"]
            .as_str()
            .unwrap()
            .contains("no new version"),
        "{r}"
    );
    assert_eq!(f.harness_runs().len(), 1, "the same tag is not run twice");

    // Drone's "skip the remaining steps" when nothing needed doing, on request.
    let out = sweep_inline(&f, &["--idle-exit-code", "78"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
}

#[test]
fn an_older_tag_published_after_a_newer_one_does_not_win() {
    let f = Fixture::new();
    f.release("6.0.1+28.0.2-fpm", true);
    // Published later, older version (an in-between release of an old line).
    git(&f.work, &["checkout", "-q", "-b", "old-line", "HEAD~1"]);
    std::fs::write(
        f.work.join("compose.yml"),
        support::compose("5.0.3+27.0.1-fpm"),
    )
    .unwrap();
    git(
        &f.work,
        &[
            "commit",
            "-q",
            "-am",
            "chore: publish 5.0.3+27.0.1-fpm release",
        ],
    );
    git(&f.work, &["tag", "-a", "5.0.3+27.0.1-fpm", "-m", "release"]);
    git(
        &f.work,
        &["push", "-q", "origin", "refs/tags/5.0.3+27.0.1-fpm"],
    );

    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    assert_eq!(entry(&r, "app")["latest"], "6.0.1+28.0.2-fpm", "{r}");
    assert_eq!(canonical_version(&f).as_deref(), Some("6.0.1+28.0.2-fpm"));
    let runs = f.harness_runs();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert!(runs[0].starts_with("6.0.1+28.0.2-fpm "), "{runs:?}");
}

#[test]
fn pinned_and_moved_tags_are_skipped_with_their_reason() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    assert_eq!(sweep_inline(&f, &[]).status.code(), Some(0));
    assert_eq!(canonical_version(&f).as_deref(), Some("1.0.0+1.0"));

    // The tag moves upstream to a new commit.
    std::fs::write(f.work.join("README.md"), "moved\n").unwrap();
    git(&f.work, &["add", "README.md"]);
    git(&f.work, &["commit", "-q", "-m", "retag"]);
    git(
        &f.work,
        &["tag", "-f", "-a", "1.0.0+1.0", "-m", "release again"],
    );
    git(
        &f.work,
        &["push", "-q", "-f", "origin", "main", "refs/tags/1.0.0+1.0"],
    );
    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    let e = entry(&r, "app");
    assert_eq!(e["decision"], "skip");
    assert!(
        e["reason"].as_str().unwrap().contains("moved upstream"),
        "{r}"
    );
    assert_eq!(e["moved_tags"].as_array().unwrap().len(), 1, "{r}");

    // A newer release while pinned is not run.
    f.release("2.0.0+1.0", true);
    let pin = plugin(
        f.dir.path(),
        &[
            "canonical",
            "pin",
            "--state-dir",
            f.state.to_str().unwrap(),
            "--recipe",
            "app",
            "--reason",
            "manual migration",
            "--by",
            "ops",
        ],
        &[],
    );
    assert!(pin.status.success(), "{}", text(&pin));
    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    assert!(
        entry(&r, "app")["reason"]
            .as_str()
            .unwrap()
            .contains("pinned by ops: manual migration"),
        "{r}"
    );
    assert_eq!(canonical_version(&f).as_deref(), Some("1.0.0+1.0"));
    assert_eq!(f.harness_runs().len(), 1);
}

#[test]
fn the_report_says_who_holds_the_warm_data_when_the_recipe_is_swept() {
    use canon_shared::state::holds::{Holder, WarmHolds};
    use canon_shared::state::LockWait;
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        entry(&report(&f), "app")["warm_status"],
        serde_json::json!({"status": "idle"})
    );
    assert!(!text(&out).contains("warm data of"), "{}", text(&out));

    // A pull-request run of this process copies the warm data while the sweep finds nothing to do.
    let hold = WarmHolds::new(&f.state, &f.name())
        .attach(
            &Holder {
                build: "12".into(),
                what: "run refs/pull/4/head".into(),
            },
            LockWait::Fail,
        )
        .unwrap();
    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    let warm = &entry(&r, "app")["warm_status"];
    assert_eq!(warm["status"], "attached", "{r}");
    assert_eq!(warm["holders"][0]["build"], "12", "{r}");
    assert_eq!(warm["holders"][0]["pid"], std::process::id(), "{r}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("warm data of app: attached (build 12: run refs/pull/4/head)"),
        "{}",
        text(&out)
    );
    // A dry run writes nothing, so it does not read the holds (which clears dead holders).
    let out = sweep_inline(&f, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(entry(&report(&f), "app")["warm_status"], Value::Null);
    drop(hold);
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

#[test]
fn a_dry_run_decides_and_reports_and_changes_nothing() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    assert_eq!(sweep_inline(&f, &[]).status.code(), Some(0));
    // A new release upstream that the mirror does not have yet.
    std::fs::write(f.work.join("compose.yml"), support::compose("1.1.0+1.0")).unwrap();
    git(
        &f.work,
        &["commit", "-q", "-am", "chore: publish 1.1.0+1.0 release"],
    );
    git(&f.work, &["tag", "-a", "1.1.0+1.0", "-m", "release"]);
    git(
        &f.work,
        &["push", "-q", "origin", "main", "refs/tags/1.1.0+1.0"],
    );

    let refs_before = git(&f.mirror, &["for-each-ref"]);
    let state_before = snapshot(&f.state);
    let out = sweep_inline(&f, &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    let e = entry(&r, "app");
    assert_eq!(e["decision"], "run");
    assert_eq!(e["latest"], "1.1.0+1.0");
    assert!(e["action"].as_str().unwrap().starts_with("dry run"), "{r}");
    assert_eq!(git(&f.mirror, &["for-each-ref"]), refs_before, "no push");
    assert_eq!(
        snapshot(&f.state),
        state_before,
        "no file written under the state dir"
    );
    assert_eq!(f.harness_runs().len(), 1, "nothing deployed or run");
    assert_eq!(canonical_version(&f).as_deref(), Some("1.0.0+1.0"));
}

#[test]
fn one_recipe_failing_does_not_stop_the_others() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let text_enrollment = std::fs::read_to_string(&f.enrollment).unwrap();
    let broken = f.dir.path().join("gone.git");
    std::fs::write(
        &f.enrollment,
        format!(
            "recipes:\n  - name: broken\n    upstream: {}\n    mirror: {}\n{}",
            broken.display(),
            f.dir.path().join("gone-mirror.git").display(),
            text_enrollment.trim_start_matches("recipes:\n")
        ),
    )
    .unwrap();
    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&f);
    assert_eq!(r["errors"], 1, "{r}");
    let b = entry(&r, "broken");
    assert!(b["error"].as_str().unwrap().contains("gone.git"), "{r}");
    assert!(b["decision"].is_null());
    assert_eq!(entry(&r, "app")["action"], "promoted 1.0.0+1.0", "{r}");
    assert_eq!(canonical_version(&f).as_deref(), Some("1.0.0+1.0"));
}

/// Returns the build creations `drone` received, as `/path?query`.
fn build_posts(drone: &FakeDrone) -> Vec<String> {
    drone.creates().iter().map(Request::target).collect()
}

fn sweep_drone(f: &Fixture, drone: &FakeDrone) -> Output {
    sweep_drone_with(f, drone, &[])
}

fn sweep_drone_with(f: &Fixture, drone: &FakeDrone, extra: &[(&str, &str)]) -> Output {
    let state = f.state.display().to_string();
    let config = f.enrollment.display().to_string();
    let url = drone.url();
    let mut env = vec![
        ("PLUGIN_DRONE_SERVER", url.as_str()),
        ("PLUGIN_DRONE_TOKEN", drone::TOKEN),
        ("PLUGIN_DRONE_REPO", "canon/ci"),
    ];
    env.extend_from_slice(extra);
    plugin(
        f.dir.path(),
        &[
            "sweep",
            "--init",
            "--config",
            &config,
            "--state-dir",
            &state,
        ],
        &env,
    )
}

#[test]
fn the_fan_out_starts_one_build_per_tag_once_with_plus_encoded() {
    let f = Fixture::new();
    f.release("1.2.0+3.4.5", true);
    let commit = f.peeled("1.2.0+3.4.5");
    let drone = FakeDrone::start();

    let out = sweep_drone(&f, &drone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let posts = build_posts(&drone);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0].contains("/api/repos/canon/ci/builds?branch=main"),
        "{posts:?}"
    );
    assert!(
        posts[0].contains("CANON_TAG=1.2.0%2B3.4.5"),
        "`+` travels as %2B: {posts:?}"
    );
    assert!(
        posts[0].contains(&format!("CANON_COMMIT={commit}")),
        "{posts:?}"
    );
    assert!(posts[0].contains("CANON_RECIPE=app"), "{posts:?}");
    let r = report(&f);
    assert_eq!(entry(&r, "app")["action"], "started build #1", "{r}");
    assert_eq!(entry(&r, "app")["missed_webhooks"], 1);
    assert_eq!(drone.builds()[0]["params"]["CANON_TAG"], "1.2.0+3.4.5");

    // The build is still pending: a second sweep finds it and starts nothing.
    let out = sweep_drone(&f, &drone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(build_posts(&drone).len(), 1, "{:?}", build_posts(&drone));
    let r = report(&f);
    assert_eq!(
        entry(&r, "app")["action"],
        "already build #1 (pending)",
        "{r}"
    );
    assert_eq!(entry(&r, "app")["missed_webhooks"], 0);
    let secrets_seen = text(&out).contains("drone-token")
        || std::fs::read_to_string(f.dir.path().join("sweep-report.json"))
            .unwrap()
            .contains("drone-token");
    assert!(
        !secrets_seen,
        "the Drone token never reaches output or the report"
    );
}

#[test]
fn a_null_answer_from_drone_is_reported_as_an_error() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let drone = FakeDrone::start();
    drone.answer_null(true);
    let out = sweep_drone(&f, &drone);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&f);
    let e = entry(&r, "app");
    assert!(
        e["error"].as_str().unwrap().contains("no pipeline matched"),
        "{r}"
    );
    assert_eq!(build_posts(&drone).len(), 1);
}

#[test]
fn the_fan_out_without_drone_settings_is_a_settings_error() {
    let f = Fixture::new();
    let out = plugin(
        f.dir.path(),
        &[
            "sweep",
            "--init",
            "--config",
            f.enrollment.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("drone_server"), "{}", text(&out));
    assert!(text(&out).contains("--inline"), "{}", text(&out));
}

/// A listener that has a job for each `(recipe, tag)` given, answering the documented
/// `GET /api/recipes/{recipe}/tags/{tag}/job` with the shared contract's types; every other
/// (recipe, tag) is a 404 `{"job":null}`. Records what it was asked.
struct ListenerStandIn {
    server: LoopbackServer,
    asked: Arc<Mutex<Vec<String>>>,
}

impl ListenerStandIn {
    fn start(jobs: &[(&str, &str)]) -> Self {
        Self::start_with_token(jobs, None)
    }

    /// Like [`ListenerStandIn::start`], answering only requests with `Bearer <token>` when given
    /// (as a listener with `CANON_ADMIN_TOKEN` does); others get a bare 401.
    fn start_with_token(jobs: &[(&str, &str)], token: Option<&str>) -> Self {
        let want = token.map(|t| format!("Bearer {t}"));
        let jobs: Vec<(String, String)> = jobs
            .iter()
            .map(|(r, t)| (r.to_string(), t.to_string()))
            .collect();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let server = LoopbackServer::start(move |mut req| {
            let r = Request::read(&mut req);
            seen.lock().unwrap().push(r.path.clone());
            if want.is_some() && r.authorization != want {
                respond_json(req, 401, &serde_json::Value::Null, &[]);
                return;
            }
            let path = r.path.replace("%2B", "+").replace("%2b", "+");
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            let (status, body) = match parts.as_slice() {
                ["api", "recipes", recipe, "tags", tag, "job"] if r.method == "GET" => {
                    let job = jobs
                        .iter()
                        .any(|(jr, jt)| jr == recipe && jt == tag)
                        .then(|| JobSummary {
                            id: 1,
                            recipe: RecipeName::parse(recipe).unwrap(),
                            tag: tag.to_string(),
                            forge: ForgeKind::Gitea,
                            repo: format!("upstream/{recipe}"),
                            state: JobState::Done,
                            commit: None,
                            build: Some(1),
                            attempts: 1,
                            created_at: "2026-01-01T00:00:00.000000Z".into(),
                            updated_at: "2026-01-01T00:00:01.000000Z".into(),
                        });
                    let status = if job.is_some() { 200 } else { 404 };
                    (status, serde_json::to_value(JobForTag { job }).unwrap())
                }
                _ => (405, serde_json::json!({"error": "method not allowed"})),
            };
            respond_json(req, status, &body, &[]);
        });
        Self { server, asked }
    }

    fn url(&self) -> String {
        self.server.base_url()
    }
}

#[test]
fn missed_webhooks_are_tags_the_listener_never_saw() {
    // The listener saw 1.0.0: the sweep's build is not a missed webhook.
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let listener = ListenerStandIn::start(&[("app", "1.0.0+1.0")]);
    let drone = FakeDrone::start();
    let out = sweep_drone_with(&f, &drone, &[("PLUGIN_LISTENER_URL", &listener.url())]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(entry(&report(&f), "app")["missed_webhooks"], 0);
    assert_eq!(build_posts(&drone).len(), 1, "the build is still started");
    assert_eq!(
        listener.asked.lock().unwrap().as_slice(),
        ["/api/recipes/app/tags/1.0.0+1.0/job", "/api/sweeps"],
        "the sweep asks the listener's API (a `+` in a path segment is literal)"
    );

    // Inline with a listener that never saw the tag: missed, and recorded.
    let g = Fixture::new();
    g.release("1.0.0+1.0", true);
    let listener = ListenerStandIn::start(&[("app", "0.9.0+1.0")]);
    let url = listener.url();
    let out = sweep_inline(&g, &["--listener-url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(entry(&report(&g), "app")["missed_webhooks"], 1);
    assert!(report(&g)["missed_webhooks_unknown"].is_null());
    let recorded = std::fs::read_to_string(g.state.join("missed-webhooks.jsonl")).unwrap();
    assert!(recorded.contains("\"tag\":\"1.0.0+1.0\""), "{recorded}");
}

#[test]
fn an_inline_sweep_without_a_listener_says_the_missed_webhook_count_is_unknown() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let out = sweep_inline(&f, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    assert!(
        r["missed_webhooks_unknown"]
            .as_str()
            .unwrap()
            .contains("no listener_url"),
        "{r}"
    );
    assert!(
        text(&out).contains("missed webhooks unknown"),
        "{}",
        text(&out)
    );
    assert!(!f.state.join("missed-webhooks.jsonl").exists());
}

#[test]
fn a_listener_that_does_not_answer_leaves_the_count_unknown_and_the_sweep_goes_on() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let url = format!("http://127.0.0.1:{}", canon_testkit::loopback::free_port());
    let out = sweep_inline(&f, &["--listener-url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    assert!(
        r["missed_webhooks_unknown"]
            .as_str()
            .unwrap()
            .contains("the listener did not answer"),
        "{r}"
    );
    assert_eq!(entry(&r, "app")["action"], "promoted 1.0.0+1.0", "{r}");
}

#[test]
fn a_run_is_not_started_below_the_free_space_floor() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    // No disk has a petabyte free: the floor is always above what is there.
    let out = sweep_inline(&f, &["--min-free", "1000000TiB"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    let e = entry(&r, "app");
    assert_eq!(e["decision"], "skip", "{r}");
    let reason = e["reason"].as_str().unwrap();
    assert!(reason.starts_with("low disk: "), "{reason}");
    assert!(
        reason.contains(f.state.to_str().unwrap()),
        "names the path: {reason}"
    );
    assert!(f.harness_runs().is_empty(), "nothing ran");
    assert_eq!(canonical_version(&f), None);

    // With room, the same sweep runs it.
    let out = sweep_inline(&f, &["--min-free", "1KiB"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(canonical_version(&f).as_deref(), Some("1.0.0+1.0"));
}

const MIRROR_TOKEN: &str = "mirror-push-token-5e0c77d1";

#[test]
fn mirror_prs_merged_upstream_are_closed_and_a_dry_run_closes_none() {
    use canon_testkit::forge::{FakeForge, FakePr, ForgeState, Shape};
    use canon_testkit::git::{merged_pr_upstream, GitHttpServer};

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let up = root.join("up");
    let mirror = root.join("served/coop/mirror.git");
    // The PR branches live on the mirror only; upstream merges pr-1 and releases.
    let heads = merged_pr_upstream(&up, &mirror, &support::compose("0.0.0+none"));
    std::fs::write(up.join("compose.yml"), support::compose("1.0.0+1.0")).unwrap();
    git(
        &up,
        &["commit", "-q", "-am", "chore: publish 1.0.0+1.0 release"],
    );
    git(&up, &["tag", "-a", "1.0.0+1.0", "-m", "release"]);
    let head = git(&up, &["rev-parse", "HEAD"]);

    let server = GitHttpServer::start(&root.join("served"), None, MIRROR_TOKEN);
    let mut state = ForgeState::new("coop/mirror", MIRROR_TOKEN);
    state.prs = vec![FakePr::open(1, &heads[0]), FakePr::open(2, &heads[1])];
    let forge = FakeForge::start(Shape::Gitea, state);
    let enrollment = root.join("enrollment.yml");
    std::fs::write(
        &enrollment,
        format!(
            "recipes:\n  - name: app\n    upstream: {}\n    mirror: {}\n",
            up.display(),
            server.url("coop/mirror.git")
        ),
    )
    .unwrap();
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let state_dir = root.join("state");
    let forge_base = forge.base_url();
    let sweep = |extra: &[&str]| {
        let mut args = vec![
            "sweep",
            "--init",
            "--config",
            enrollment.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--mirror-forge",
            forge_base.as_str(),
        ];
        args.extend_from_slice(extra);
        plugin(
            root,
            &args,
            &[
                ("PLUGIN_DRONE_SERVER", drone_url.as_str()),
                ("PLUGIN_DRONE_TOKEN", drone::TOKEN),
                ("PLUGIN_DRONE_REPO", "canon/ci"),
                ("PLUGIN_MIRROR_TOKEN", MIRROR_TOKEN),
            ],
        )
    };
    let read_report = || -> Value {
        serde_json::from_slice(&std::fs::read(root.join("sweep-report.json")).unwrap()).unwrap()
    };

    let out = sweep(&["--dry-run"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        forge.requests().iter().all(|r| r.method == "GET"),
        "a dry run changes no PR: {:?}",
        forge.requests()
    );
    assert_eq!(forge.state.lock().unwrap().prs[0].state, "open");

    let out = sweep(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains(MIRROR_TOKEN), "{}", text(&out));
    let r = read_report();
    let e = entry(&r, "app");
    assert_eq!(e["closed_prs"], serde_json::json!([1]), "{r}");
    assert_eq!(e["pr_errors"], serde_json::json!([]), "{r}");
    assert_eq!(e["action"], "started build #1", "{r}");
    assert_eq!(git(&mirror, &["rev-parse", "refs/heads/main"]), head);
    {
        let st = forge.state.lock().unwrap();
        assert_eq!(st.prs[0].state, "closed", "{:#?}", st.prs);
        assert_eq!(st.prs[1].state, "open", "{:#?}", st.prs);
        assert!(st.comments[0].1.contains(&head), "{:?}", st.comments);
    }
    // The PR branches on the mirror are untouched by the sync.
    assert_eq!(git(&mirror, &["rev-parse", "refs/heads/pr-2"]), heads[1]);
}

#[test]
fn the_sweep_sends_the_listener_token_when_the_listener_protects_its_api() {
    let token = "admin-token-0123456789";
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let listener = ListenerStandIn::start_with_token(&[("app", "0.9.0+1.0")], Some(token));
    let url = listener.url();
    let out = sweep_inline(&f, &["--listener-url", &url, "--listener-token", token]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&f);
    assert!(r["missed_webhooks_unknown"].is_null(), "{r}");
    assert_eq!(entry(&r, "app")["missed_webhooks"], 1, "{r}");
    assert!(
        !text(&out).contains(token),
        "the token never reaches the output"
    );

    // Without it, the protected listener does not answer and the count is unknown.
    let g = Fixture::new();
    g.release("1.0.0+1.0", true);
    let out = sweep_inline(&g, &["--listener-url", &url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        report(&g)["missed_webhooks_unknown"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{}",
        report(&g)
    );
}

#[test]
fn a_recipe_whose_upstream_hangs_fails_at_its_deadline_and_the_others_are_swept() {
    let f = Fixture::new();
    f.release("1.0.0+1", true);
    // A git server that accepts connections and never answers: libgit2 alone would wait a
    // minute for data.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });
    let mut enrollment = std::fs::read_to_string(&f.enrollment).unwrap();
    enrollment.push_str(&format!(
        "  - name: hung\n    upstream: http://127.0.0.1:{port}/hung.git\n    mirror: {}\n",
        f.mirror.display()
    ));
    std::fs::write(&f.enrollment, enrollment).unwrap();

    let started = std::time::Instant::now();
    let out = sweep_inline(&f, &["--recipe-deadline", "2s"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        took < std::time::Duration::from_secs(30),
        "the sweep waited {took:?} for the hung recipe"
    );
    let r = report(&f);
    let hung = entry(&r, "hung");
    assert!(
        hung["error"]
            .as_str()
            .is_some_and(|e| e.contains("deadline of 2s") && e.contains("recipe_deadline")),
        "{r}"
    );
    assert_eq!(entry(&r, "app")["error"], Value::Null, "{r}");
    assert_eq!(canonical_version(&f).as_deref(), Some("1.0.0+1"));
}

#[test]
fn a_recipe_pinned_to_its_own_drone_repository_builds_there() {
    let f = Fixture::new();
    f.release("1.2.0+3.4.5", true);
    let drone = FakeDrone::start();
    let enrollment = std::fs::read_to_string(&f.enrollment).unwrap();
    // The enrollment's default for all, and the recipe's own, which wins.
    std::fs::write(
        &f.enrollment,
        format!("drone_repo: canon/ci-host-a\n{enrollment}    drone_repo: canon/ci-host-b\n"),
    )
    .unwrap();
    let out = sweep_drone(&f, &drone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let posts = build_posts(&drone);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0].starts_with("/api/repos/canon/ci-host-b/builds?"),
        "{posts:?}"
    );

    // Without a repository of its own, the recipe builds in the enrollment's default.
    std::fs::write(
        &f.enrollment,
        format!("drone_repo: canon/ci-host-a\n{enrollment}"),
    )
    .unwrap();
    f.release("1.3.0+3.4.5", true);
    let out = sweep_drone(&f, &drone);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let posts = build_posts(&drone);
    assert!(
        posts[1].starts_with("/api/repos/canon/ci-host-a/builds?"),
        "{posts:?}"
    );

    // A repository that is not owner/name is refused when the enrollment is read.
    std::fs::write(&f.enrollment, format!("drone_repo: flat\n{enrollment}")).unwrap();
    let out = sweep_drone(&f, &drone);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("drone_repo \"flat\" is not `owner/name`"),
        "{}",
        text(&out)
    );
}
