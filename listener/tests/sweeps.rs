//! The sweep's reports and what `/metrics` makes of them, end to end: canon-shared's client (what
//! the sweep sends) against a real listener behind its admin token, the series after a red and a
//! green sweep, and `examples/alerts.yml` read as Prometheus rules whose every metric is one
//! `/metrics` really serves.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use canon_listener::app;
use canon_shared::listener_api::{ListenerClient, SweepOutcome, SweepRecipeOutcome};
use canon_shared::recipe::RecipeName;
use canon_shared::secret::Secret;
use canon_testkit::drone::FakeDrone;
use support::*;

const ADMIN: &str = "admin-token-0123456789";

struct App {
    base: String,
    running: app::Running,
    client: reqwest::Client,
    _drone: FakeDrone,
    _tmp: tempfile::TempDir,
}

async fn spawn() -> App {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let drone = FakeDrone::start();
    let made = repos(&root, "alpha", &[]);
    let enrollment = enrollment(&root, &[("alpha", &made)], &[("beta", "coop-cloud/beta")]);
    let mut vars = env(&root.join("state"), &enrollment, &drone.url());
    vars.push(("CANON_ADMIN_TOKEN".into(), ADMIN.into()));
    vars.push(("CANON_POLL_INTERVAL".into(), "0".into()));
    let running = app::start(&settings(vars.clone()), Duration::from_secs(5))
        .await
        .expect("the listener starts");
    App {
        base: format!("http://{}", running.addr),
        running,
        client: reqwest::Client::new(),
        _drone: drone,
        _tmp: tmp,
    }
}

fn outcome(alpha_ok: bool) -> SweepOutcome {
    SweepOutcome {
        started_at: "2026-12-06T03:00:00Z".into(),
        seconds: 42.25,
        dry_run: false,
        recipes: vec![
            SweepRecipeOutcome {
                recipe: RecipeName::parse("alpha").unwrap(),
                ok: alpha_ok,
            },
            SweepRecipeOutcome {
                recipe: RecipeName::parse("beta").unwrap(),
                ok: true,
            },
        ],
    }
}

async fn metrics(app: &App) -> String {
    app.client
        .get(format!("{}/metrics", app.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Returns the value of the sample line `series` (name and labels), when present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_s_reports_become_metrics_behind_the_admin_token() {
    let app = spawn().await;
    let url = url::Url::parse(&app.base).unwrap();
    // Without the token: refused, and nothing recorded.
    let anonymous = ListenerClient::new(url.clone()).unwrap();
    let err = anonymous.report_sweep(&outcome(true)).await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let text = metrics(&app).await;
    assert_eq!(sample(&text, "canon_sweep_last_timestamp_seconds"), None);
    let client = ListenerClient::new(url)
        .unwrap()
        .with_token(Secret::new(ADMIN));
    client.report_sweep(&outcome(false)).await.unwrap();
    client.report_sweep(&outcome(false)).await.unwrap();
    let text = metrics(&app).await;
    assert_eq!(
        sample(&text, "canon_sweep_recipe_red_streak{recipe=\"alpha\"}"),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "canon_sweep_recipe_ok{recipe=\"beta\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&text, "canon_sweep_last_success"), Some(0.0));
    assert_eq!(
        sample(&text, "canon_sweep_last_duration_seconds"),
        Some(42.25)
    );
    assert_eq!(
        sample(&text, "canon_sweep_last_success_timestamp_seconds"),
        None
    );
    client.report_sweep(&outcome(true)).await.unwrap();
    let text = metrics(&app).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    let success = sample(&text, "canon_sweep_last_success_timestamp_seconds").unwrap();
    assert!((now - success).abs() < 60.0, "{success} vs {now}");
    assert_eq!(
        sample(&text, "canon_sweep_recipe_red_streak{recipe=\"alpha\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "canon_canonical_behind_seconds{recipe=\"alpha\"}"),
        Some(0.0)
    );
    // A body that is no sweep outcome is a 400.
    let r = app
        .client
        .post(format!("{}/api/sweeps", app.base))
        .bearer_auth(ADMIN)
        .body("{\"nope\": 1}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    app.running.stop().await;
}

/// Returns the metric names an expression reads (`canon_…`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("canon_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_rules_are_prometheus_rules_over_metrics_the_listener_serves() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/alerts.yml");
    let rules: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).expect("alerts.yml is YAML");
    let groups = rules["groups"].as_sequence().expect("a groups list");
    let app = spawn().await;
    ListenerClient::new(url::Url::parse(&app.base).unwrap())
        .unwrap()
        .with_token(Secret::new(ADMIN))
        .report_sweep(&outcome(true))
        .await
        .unwrap();
    let text = metrics(&app).await;
    let served: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut alerts = BTreeSet::new();
    for group in groups {
        assert!(group["name"].as_str().is_some_and(|n| !n.is_empty()));
        for rule in group["rules"].as_sequence().expect("a rules list") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().expect("every rule has an expr");
            assert!(rule["annotations"]["summary"].as_str().is_some(), "{name}");
            let metrics = metric_names(expr);
            assert!(!metrics.is_empty(), "{name}: {expr}");
            for m in metrics {
                assert!(
                    served.contains(m.as_str()),
                    "{name} reads {m}, which /metrics does not serve"
                );
            }
            alerts.insert(name.to_string());
        }
    }
    for wanted in [
        "CanonNoSuccessfulSweep",
        "CanonRecipeRed",
        "CanonJournalBacklog",
        "CanonCanonicalBehindUpstream",
    ] {
        assert!(alerts.contains(wanted), "{wanted} in {alerts:?}");
    }
    app.running.stop().await;
}
