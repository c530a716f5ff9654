//! The listener's HTTP surface over real HTTP on loopback: a path it does not serve is a 404
//! whatever the method, every GET route answers HEAD (status and headers, no body), and a flood
//! of rejected deliveries is logged as a summary and kept as a bounded share of
//! `/api/deliveries`, so it pushes out neither other rejections nor the deliveries taken.

use crate::support;

use std::io::{Read, Write};
use std::time::Duration;

use canon_testkit::drone::FakeDrone;
use canon_testkit::loopback::free_port;
use support::*;

/// Sends `request` raw and returns everything the server wrote until it closed.
fn raw(base: &str, request: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Returns the status, the headers (lower-cased names) and what follows them.
fn answer(base: &str, method: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let text = raw(
        base,
        &format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    (status.parse().unwrap(), headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_are_404_and_every_get_route_answers_head() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let alpha = repos(root, "alpha", &["1.0.0+1"]);
    let enrollment = enrollment(root, &[("alpha", &alpha)], &[]);
    let drone = FakeDrone::start();
    let running = canon_listener::app::start(
        &settings(env(&root.join("state"), &enrollment, &drone.url())),
        Duration::from_secs(5),
    )
    .await
    .expect("the listener starts");
    let base = format!("http://{}", running.addr);
    let b = base.clone();
    tokio::task::spawn_blocking(move || {
        for method in ["GET", "HEAD", "POST", "PUT", "DELETE"] {
            for path in ["/nowhere", "/api/nothing", "/hooks", "/healthz/more"] {
                let (status, _, _) = answer(&b, method, path);
                assert_eq!(status, 404, "{method} {path}");
            }
        }
        // A served path asked with the wrong method is a 405.
        assert_eq!(answer(&b, "GET", "/hooks/gitea").0, 405);
        assert_eq!(answer(&b, "DELETE", "/healthz").0, 405);

        for path in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/jobs",
            "/api/deliveries",
            "/",
            "/badge/alpha",
            "/api/recipes/alpha/tags/1.0.0+1/job",
        ] {
            let (get_status, get_headers, get_body) = answer(&b, "GET", path);
            let (status, headers, body) = answer(&b, "HEAD", path);
            assert_eq!(status, get_status, "HEAD {path}");
            assert_ne!(status, 405, "HEAD {path}");
            assert!(body.is_empty(), "HEAD {path} sent a body: {body:?}");
            assert!(!get_body.is_empty(), "GET {path} has a body");
            assert_eq!(
                header(&headers, "content-type"),
                header(&get_headers, "content-type"),
                "HEAD {path}"
            );
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_rejected_deliveries_is_logged_as_a_summary_and_kept_in_a_bounded_share() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let alpha = repos(root, "alpha", &["1.0.0+1"]);
    let enrollment = enrollment(root, &[("alpha", &alpha)], &[]);
    let drone = FakeDrone::start();
    let port = free_port();
    let mut vars = env(&root.join("state"), &enrollment, &drone.url());
    vars.retain(|(k, _)| k != "CANON_BIND");
    vars.push(("CANON_BIND".into(), format!("127.0.0.1:{port}")));
    let log = root.join("listener.log");
    let _child = spawn_listener(&vars, &log);
    let base = format!("http://127.0.0.1:{port}");
    let client = canon_shared::http_client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_healthy(&client, &base).await;

    // One rejection of its own kind, then a flood of unsigned deliveries, then one taken.
    let form = client
        .post(format!("{base}/hooks/gitea"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-gitea-event", "push")
        .body("payload=x")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    const FLOOD: usize = 300;
    for i in 0..FLOOD {
        let r = client
            .post(format!("{base}/hooks/gitea"))
            .header("content-type", "application/json")
            .header("x-gitea-event", "push")
            .header("x-gitea-delivery", format!("flood-{i}"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401);
    }
    let url = alpha.upstream.display().to_string();
    let sha = canon_testkit::git::peeled(&alpha.upstream, "1.0.0+1");
    let body = push_tag(&url, "alpha", "1.0.0+1", &sha);
    let (status, v) = deliver(&client, &base, "push", &body).await;
    assert_eq!(status, 202, "{v}");

    let rows: serde_json::Value = client
        .get(format!("{base}/api/deliveries"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = rows
        .as_array()
        .or_else(|| rows["deliveries"].as_array())
        .cloned()
        .unwrap_or_else(|| panic!("a list of deliveries: {rows}"));
    let rejected = |r: &&serde_json::Value| r["outcome"] == "rejected";
    let form_kept = rows
        .iter()
        .filter(rejected)
        .any(|r| r["reason"].as_str().unwrap_or("").contains("form-encoded"));
    assert!(form_kept, "the other rejection was pushed out: {rows:#?}");
    assert!(
        rows.iter().any(|r| r["outcome"] != "rejected"),
        "the delivery taken was pushed out ({status} {v}): {:#?}",
        rows.iter()
            .filter(|r| !r["delivery"].as_str().unwrap_or("").starts_with("flood-"))
            .collect::<Vec<_>>()
    );
    let unsigned = rows
        .iter()
        .filter(rejected)
        .filter(|r| !r["reason"].as_str().unwrap_or("").contains("form-encoded"))
        .count();
    assert!(
        (1..=20).contains(&unsigned),
        "{unsigned} unsigned rows kept"
    );

    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("Webhook deliveries rejected"))
        .count();
    // One line per reason (two reasons), however many deliveries; a slow run may cross a minute.
    assert!(
        (2..=4).contains(&lines),
        "{lines} lines for {FLOOD} rejections:\n{text}"
    );
}
