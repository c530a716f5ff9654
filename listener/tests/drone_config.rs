//! Drone's configuration extension at `/drone/config`, end to end on loopback: requests signed
//! the way drone-go's plugin client signs them (the signer below follows
//! `plugin/internal/client/client.go` and the `httpsignatures-go` version drone-go pins), the
//! pipelines served held equal to `.drone.yml` and `examples/recipe-mirror.drone.yml`, and every
//! refusal (wrong secret, stale date, a body that is not the digest's, no signature) a 401 that
//! journals nothing.

use crate::support;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use canon_listener::app;
use canon_testkit::drone::FakeDrone;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use support::*;

/// Request headers as (name, value).
type Headers = Vec<(&'static str, String)>;

const CONFIG_SECRET: &str = "drone-yaml-secret-0123456789";

/// A request as drone-go's `Client.Do` builds it: the headers, then the `Signature` header of
/// `httpsignatures.NewSigner(AlgorithmHmacSha256, accept, accept-encoding, content-type, date,
/// digest).SignRequest("hmac-key", secret, req)`.
fn drone_signed(secret: &str, body: &[u8], date: SystemTime) -> Vec<(&'static str, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut headers = vec![
        ("Accept", "application/json".to_string()),
        ("Accept-Encoding", "identity".to_string()),
        ("Content-Type", "application/json".to_string()),
        ("Date", httpdate::fmt_http_date(date)),
        (
            "Digest",
            format!("SHA-256={}", b64.encode(Sha256::digest(body))),
        ),
    ];
    // The signing string follows the signer's header list: accept, accept-encoding,
    // content-type, date, digest.
    let signing = headers
        .iter()
        .map(|(k, v)| format!("{}: {v}", k.to_ascii_lowercase()))
        .collect::<Vec<_>>()
        .join("\n");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing.as_bytes());
    let signature = b64.encode(mac.finalize().into_bytes());
    headers.push((
        "Signature",
        format!(
            r#"keyId="hmac-key",algorithm="hmac-sha256",signature="{signature}",headers="accept accept-encoding content-type date digest""#
        ),
    ));
    headers
}

/// drone-go's `config.Request` body for a build of `event` in `slug`.
fn config_request(slug: &str, event: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "build": {"id": 7, "number": 3, "event": event, "ref": "refs/heads/main", "after": "a".repeat(40), "params": {}},
        "repo": {"id": 1, "namespace": slug.split('/').next(), "name": slug.split('/').nth(1), "slug": slug, "trusted": true},
        "token": {"access": "forge-oauth-token-never-read", "refresh": ""},
    }))
    .unwrap()
}

struct App {
    base: String,
    running: app::Running,
    client: reqwest::Client,
    _drone: FakeDrone,
    _tmp: tempfile::TempDir,
}

/// The plugin image the examples name, so the served pipelines can be compared whole.
fn example_image() -> String {
    let text = std::fs::read_to_string(workspace_file("examples/recipe-mirror.drone.yml")).unwrap();
    let v: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    v["steps"][0]["image"].as_str().unwrap().to_string()
}

fn workspace_file(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

async fn spawn(extra: &[(&str, &str)]) -> App {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let drone = FakeDrone::start();
    let enrollment = enrollment(&root, &[], &[("app", "coop-cloud/app")]);
    let mut vars = env(&root.join("state"), &enrollment, &drone.url());
    for (k, v) in extra {
        vars.retain(|(key, _)| key != k);
        vars.push((k.to_string(), v.to_string()));
    }
    let running = app::start(&settings(vars), Duration::from_secs(5))
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

async fn spawn_serving() -> App {
    let image = example_image();
    spawn(&[
        ("CANON_DRONE_CONFIG_SECRET", CONFIG_SECRET),
        ("CANON_PIPELINE_IMAGE", image.as_str()),
    ])
    .await
}

async fn ask(app: &App, headers: &[(&str, String)], body: Vec<u8>) -> (u16, String) {
    let mut req = app.client.post(format!("{}/drone/config", app.base));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let r = req.body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Returns the pipeline YAML of a 200 answer, parsed.
fn served(status: u16, body: &str) -> serde_yaml::Value {
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    serde_yaml::from_str(v["data"].as_str().expect("a data string")).unwrap()
}

/// Returns the document named `name` of `.drone.yml`.
fn drone_yml(name: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(workspace_file(".drone.yml")).unwrap();
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .collect();
    docs.into_iter()
        .find(|d| d["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no pipeline {name} in .drone.yml"))
}

use serde::Deserialize as _;

async fn journal_is_empty(app: &App) {
    let deliveries: serde_json::Value = app
        .client
        .get(format!("{}/api/deliveries", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deliveries, serde_json::json!([]));
    assert_eq!(app.running.state.journal.delivery_count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_gets_the_warm_pipeline_the_example_shows() {
    let app = spawn_serving().await;
    for event in ["pull_request", "push"] {
        let body = config_request("mirrors/app", event);
        let (status, text) = ask(
            &app,
            &drone_signed(CONFIG_SECRET, &body, SystemTime::now()),
            body,
        )
        .await;
        let example =
            std::fs::read_to_string(workspace_file("examples/recipe-mirror.drone.yml")).unwrap();
        let example: serde_yaml::Value = serde_yaml::from_str(&example).unwrap();
        assert_eq!(served(status, &text), example, "{event}");
    }
    // A tag the mirror sync pushed still gets canon's pipeline (which does not run on tags), never
    // the recipe's own `.drone.yml`.
    let body = config_request("mirrors/app", "tag");
    let (status, text) = ask(
        &app,
        &drone_signed(CONFIG_SECRET, &body, SystemTime::now()),
        body,
    )
    .await;
    assert_eq!(served(status, &text)["name"], "recipe");
    journal_is_empty(&app).await;
    app.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_builds_repository_gets_the_tag_build_and_the_sweep_as_drone_yml_has_them() {
    let app = spawn_serving().await;
    for (event, name) in [("custom", "canonical"), ("cron", "weekly-sweep")] {
        let body = config_request("canon/ci", event);
        let (status, text) = ask(
            &app,
            &drone_signed(CONFIG_SECRET, &body, SystemTime::now()),
            body,
        )
        .await;
        assert_eq!(served(status, &text), drone_yml(name), "{event}");
    }
    // Its own pipelines (canon's CI) stay its own.
    let body = config_request("canon/ci", "push");
    let (status, text) = ask(
        &app,
        &drone_signed(CONFIG_SECRET, &body, SystemTime::now()),
        body,
    )
    .await;
    assert_eq!((status, text.as_str()), (204, ""));
    app.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_other_repository_keeps_its_own_drone_yml() {
    let app = spawn_serving().await;
    for slug in ["someone/else", "coop-cloud/app"] {
        let body = config_request(slug, "push");
        let (status, text) = ask(
            &app,
            &drone_signed(CONFIG_SECRET, &body, SystemTime::now()),
            body,
        )
        .await;
        assert_eq!((status, text.as_str()), (204, ""), "{slug}");
    }
    app.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_not_signed_as_drone_signs_is_401_and_journals_nothing() {
    let app = spawn_serving().await;
    let body = config_request("mirrors/app", "push");
    let now = SystemTime::now();
    let stale = now - Duration::from_secs(6 * 60);
    let future = now + Duration::from_secs(6 * 60);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let unsigned: Headers = drone_signed(CONFIG_SECRET, &body, now)
        .into_iter()
        .filter(|(k, _)| *k != "Signature")
        .collect();
    let other_key: Headers = drone_signed(CONFIG_SECRET, &body, now)
        .into_iter()
        .map(|(k, v)| (k, v.replace("keyId=\"hmac-key\"", "keyId=\"other\"")))
        .collect();
    let cases: Vec<(&str, Headers, Vec<u8>)> = vec![
        (
            "a wrong secret",
            drone_signed("not-the-secret-0123456789", &body, now),
            body.clone(),
        ),
        (
            "a stale date",
            drone_signed(CONFIG_SECRET, &body, stale),
            body.clone(),
        ),
        (
            "a date in the future",
            drone_signed(CONFIG_SECRET, &body, future),
            body.clone(),
        ),
        (
            "a body that is not its digest's",
            drone_signed(CONFIG_SECRET, &body, now),
            tampered,
        ),
        ("no signature", unsigned, body.clone()),
        ("another key id", other_key, body.clone()),
    ];
    for (says, headers, sent) in cases {
        let (status, text) = ask(&app, &headers, sent).await;
        assert_eq!(status, 401, "{says}: {text}");
        assert!(!text.contains("data"), "{says}: {text}");
    }
    // The refusals are in no answer and no journal; the signed request still works.
    journal_is_empty(&app).await;
    let (status, _) = ask(&app, &drone_signed(CONFIG_SECRET, &body, now), body).await;
    assert_eq!(status, 200);
    app.running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_secret_the_extension_is_not_served() {
    let app = spawn(&[]).await;
    let body = config_request("mirrors/app", "push");
    let (status, _) = ask(
        &app,
        &drone_signed(CONFIG_SECRET, &body, SystemTime::now()),
        body,
    )
    .await;
    assert_eq!(status, 404);
    app.running.stop().await;
}
