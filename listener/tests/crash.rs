//! The real binary under kill -9: a burst of 1,000 signed deliveries, SIGKILL mid-burst,
//! restart. Every delivery that got a 202 must be in the journal, and each tag's job must start
//! exactly one Drone build. Then SIGTERM must stop it cleanly with exit 0.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canon_testkit::drone::FakeDrone;
use canon_testkit::git::{hermetic, peeled};
use canon_testkit::loopback::free_port;
use support::*;

fn spawn_listener(pairs: &[(String, String)], log: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canon-listener"));
    cmd.env_clear()
        .envs(pairs.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    hermetic(&mut cmd)
        .spawn()
        .expect("the listener binary starts")
}

async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let ok = eventually(20, || async {
        client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ok, "the listener did not come up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_burst_loses_no_acknowledged_delivery_and_builds_each_tag_once() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let drone = FakeDrone::start();
    let drone_url = drone.url();
    let names = ["r0", "r1", "r2", "r3", "r4"];
    let tags: Vec<String> = (0..10).map(|i| format!("1.{i}.0+2.0")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let made: Vec<Repos> = names.iter().map(|n| repos(root, n, &tag_refs)).collect();
    let pairs: Vec<(&str, &Repos)> = names.iter().copied().zip(&made).collect();
    let enrollment = enrollment(root, &pairs, &[]);
    let port = free_port();
    let mut env = env(&root.join("state"), &enrollment, &drone_url);
    env.retain(|(k, _)| k != "CANON_BIND");
    env.push(("CANON_BIND".into(), format!("127.0.0.1:{port}")));
    let base = format!("http://127.0.0.1:{port}");
    let log = root.join("listener.log");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // 1,000 deliveries: for each of 50 tags, push/create/release and replays, shuffled.
    let mut deliveries: Vec<(String, &'static str, Vec<u8>)> = Vec::new();
    for (name, r) in names.iter().zip(&made) {
        let url = r.upstream.display().to_string();
        for tag in &tags {
            let sha = peeled(&r.upstream, tag);
            for k in 0..20 {
                let (event, body) = match k % 3 {
                    0 => ("push", push_tag(&url, name, tag, &sha)),
                    1 => ("create", create_tag(&url, name, tag, &sha)),
                    _ => ("release", release(&url, name, tag)),
                };
                let id = format!("{name}-{tag}-{k}").replace(['.', '+'], "-");
                deliveries.push((id, event, body));
            }
        }
    }
    assert_eq!(deliveries.len(), 1000);
    // A fixed interleaving so each tag's deliveries spread over the burst.
    deliveries.sort_by_key(|(id, _, _)| {
        let h = id.bytes().fold(1469598103934665603u64, |h, b| {
            (h ^ b as u64).wrapping_mul(1099511628211)
        });
        h
    });

    let mut child = spawn_listener(&env, &log);
    wait_healthy(&client, &base).await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let queue = Arc::new(Mutex::new(deliveries.clone()));
    let mut senders = Vec::new();
    for _ in 0..32 {
        let (queue, acked, client, base) =
            (queue.clone(), acked.clone(), client.clone(), base.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some((id, event, body)) = queue.lock().unwrap().pop() else {
                    break;
                };
                let r = client
                    .post(format!("{base}/hooks/gitea"))
                    .header("content-type", "application/json")
                    .header("x-gitea-event", event)
                    .header("x-gitea-delivery", &id)
                    .header("x-gitea-signature", sign(SECRET, &body))
                    .body(body)
                    .send()
                    .await;
                if let Ok(r) = r {
                    if r.status().as_u16() == 202 {
                        acked.lock().unwrap().push(id);
                    }
                }
            }
        }));
    }
    // Kill -9 once a good part of the burst is acknowledged.
    let reached = eventually(30, || async { acked.lock().unwrap().len() >= 400 }).await;
    assert!(reached, "the burst was not acknowledged fast enough");
    child.kill().unwrap();
    child.wait().unwrap();
    for s in senders {
        s.await.unwrap();
    }
    let acked: BTreeSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        acked.len() >= 400 && acked.len() < 1000,
        "{} acked",
        acked.len()
    );

    // Restart on the same state directory; the worker picks up every job.
    let mut child = spawn_listener(&env, &log);
    wait_healthy(&client, &base).await;
    let journal = root.join("state").join("listener.sqlite3");
    let conn = rusqlite::Connection::open(&journal).unwrap();
    let stored: BTreeSet<String> = conn
        .prepare("SELECT delivery FROM deliveries")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let missing: Vec<_> = acked.difference(&stored).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not journaled: {missing:?}"
    );

    let jobs_url = format!("{base}/api/jobs");
    let finished = eventually(90, || async {
        let jobs: serde_json::Value = client
            .get(&jobs_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "done")
    })
    .await;
    let jobs: serde_json::Value = client
        .get(&jobs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(finished, "{jobs:#}");
    let jobs = jobs.as_array().unwrap();
    // One job per tag that had an acknowledged delivery, each with exactly one build.
    let mut per_tag: HashMap<(String, String), usize> = HashMap::new();
    for j in jobs {
        *per_tag
            .entry((
                j["recipe"].as_str().unwrap().into(),
                j["tag"].as_str().unwrap().into(),
            ))
            .or_default() += 1;
    }
    assert!(per_tag.values().all(|n| *n == 1));
    for name in names {
        for tag in &tags {
            let has_job = per_tag.contains_key(&(name.to_string(), tag.clone()));
            assert_eq!(drone.count(name, tag), usize::from(has_job), "{name} {tag}");
        }
    }
    assert_eq!(drone.builds().len(), jobs.len());

    // SIGTERM: graceful, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the listener did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(code, Some(0));

    // Logs are JSON lines and never carry the secret, a signature or a body.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(SECRET) && !text.contains("drone-token"));
    assert!(!text.contains(&sign(SECRET, &deliveries[0].2)));
    assert!(!text.contains("head_commit"));
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"Webhook delivery.\""))
        .collect();
    assert!(
        lines.len() >= acked.len(),
        "{} delivery log lines",
        lines.len()
    );
    for l in text.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
}
