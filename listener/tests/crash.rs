//! The real binary under kill -9: a burst of 1,000 signed deliveries, SIGKILL mid-burst,
//! restart. Every delivery that got a 202 must be in the journal, and each tag's job must start
//! exactly one Drone build. Then SIGTERM must stop it cleanly with exit 0. And a poison job: one
//! whose every attempt dies with the process is failed after the attempt limit, never claimed
//! again, while the listener goes on serving.

use crate::support;

use std::collections::{BTreeSet, HashMap};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canon_testkit::drone::FakeDrone;
use canon_testkit::git::peeled;
use canon_testkit::loopback::free_port;
use support::*;

/// A forge that accepts connections and never answers, counting them: an attempt that asks it
/// for a tag hangs until the process is killed.
struct SilentForge {
    port: u16,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl SilentForge {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let seen = connections.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        SilentForge { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Returns the job of `recipe` as the API shows it, when there is one.
async fn job_of(client: &reqwest::Client, base: &str, recipe: &str) -> Option<serde_json::Value> {
    let jobs: serde_json::Value = client
        .get(format!("{base}/api/jobs"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    jobs.as_array()?
        .iter()
        .find(|j| j["recipe"] == recipe)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_whose_attempts_die_with_the_process_fails_after_the_limit_and_the_listener_serves_on(
) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let drone = FakeDrone::start();
    let forge = SilentForge::start();
    let ok = repos(root, "ok", &["1.0.0+1"]);
    let enrollment = enrollment(root, &[("ok", &ok)], &[("poison", "upstream/poison")]);
    // The poisoned recipe's upstream lives on the forge whose API hangs: its tags are looked up
    // there, never at another host.
    let yaml = std::fs::read_to_string(&enrollment).unwrap();
    assert!(yaml.contains("https://git.example.org"), "{yaml}");
    std::fs::write(
        &enrollment,
        yaml.replace(
            "https://git.example.org",
            &format!("http://127.0.0.1:{}", forge.port),
        ),
    )
    .unwrap();
    let port = free_port();
    let mut env = env(&root.join("state"), &enrollment, &drone.url());
    env.retain(|(k, _)| !matches!(k.as_str(), "CANON_BIND" | "CANON_MAX_ATTEMPTS"));
    env.extend([
        ("CANON_BIND".to_string(), format!("127.0.0.1:{port}")),
        ("CANON_MAX_ATTEMPTS".to_string(), "3".to_string()),
        (
            "CANON_FORGE_URL".to_string(),
            format!("http://127.0.0.1:{}", forge.port),
        ),
        ("CANON_FORGE_TOKEN".to_string(), "forge-token".to_string()),
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let log = root.join("listener.log");
    let client = canon_shared::http_client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    let mut child = spawn_listener(&env, &log);
    wait_healthy(&client, &base).await;
    let url = "https://git.example.org/upstream/poison.git";
    let body = push_tag(url, "upstream/poison", "1.0.0+1", &"a".repeat(40));
    let (s, v) = deliver(&client, &base, "push", &body).await;
    assert_eq!((s, v["outcome"].as_str()), (202, Some("accepted")), "{v}");

    // Each attempt hangs at the forge until the process is killed: it never records a result.
    for attempt in 1..=3u64 {
        let in_flight = eventually(30, || async {
            let claimed = job_of(&client, &base, "poison")
                .await
                .is_some_and(|j| j["attempts"] == attempt && j["state"] == "running");
            claimed && forge.connections() >= attempt as usize
        })
        .await;
        assert!(
            in_flight,
            "attempt {attempt} was not claimed: {:?}",
            job_of(&client, &base, "poison").await
        );
        child.kill().unwrap();
        child.wait().unwrap();
        child = spawn_listener(&env, &log);
        wait_healthy(&client, &base).await;
    }

    // The restart after the third attempt fails the job instead of claiming it a fourth time.
    let failed = eventually(30, || async {
        job_of(&client, &base, "poison")
            .await
            .is_some_and(|j| j["state"] == "failed")
    })
    .await;
    let job = job_of(&client, &base, "poison").await.unwrap();
    assert!(failed, "{job:#}");
    assert_eq!(job["attempts"], 3, "{job:#}");
    assert!(
        job["error"]
            .as_str()
            .is_some_and(|e| e.contains("did not finish 3 times")),
        "{job:#}"
    );

    // Not claimed again, in this process or the next.
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut child = spawn_listener(&env, &log);
    wait_healthy(&client, &base).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let job = job_of(&client, &base, "poison").await.unwrap();
    assert_eq!(
        (job["state"].as_str(), job["attempts"].as_u64()),
        (Some("failed"), Some(3))
    );
    assert_eq!(
        forge.connections(),
        3,
        "the failed job asked the forge again"
    );

    // The listener serves on: another recipe's new tag is built.
    let ok_url = ok.upstream.display().to_string();
    let sha = peeled(&ok.upstream, "1.0.0+1");
    let (s, v) = deliver(
        &client,
        &base,
        "push",
        &push_tag(&ok_url, "ok", "1.0.0+1", &sha),
    )
    .await;
    assert_eq!((s, v["outcome"].as_str()), (202, Some("accepted")), "{v}");
    let built = eventually(30, || async {
        job_of(&client, &base, "ok")
            .await
            .is_some_and(|j| j["state"] == "done")
    })
    .await;
    assert!(built, "{:?}", job_of(&client, &base, "ok").await);
    assert_eq!(drone.count("ok", "1.0.0+1"), 1);
    assert_eq!(drone.count("poison", "1.0.0+1"), 0);
    child.kill().unwrap();
    child.wait().unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("Job failed for good.") && l.contains("did not finish 3 times")),
        "the failure is logged"
    );
    assert!(!text.contains("forge-token"));
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
    let client = canon_shared::http_client::builder()
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

    // Restart on the same state directory; the worker picks up every job. The restarted process
    // logs to a file of its own: kill -9 may cut the killed process's last line mid-write.
    let restarted_log = root.join("listener-restarted.log");
    let mut child = spawn_listener(&env, &restarted_log);
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
    let killed = std::fs::read_to_string(&log).unwrap();
    let restarted = std::fs::read_to_string(&restarted_log).unwrap();
    let text = format!("{killed}{restarted}");
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
    // Every line is JSON, but the one line kill -9 may have cut short: the killed process's last.
    let whole = killed.lines().count().saturating_sub(1);
    for l in killed
        .lines()
        .take(whole)
        .chain(restarted.lines())
        .filter(|l| l.starts_with('{'))
    {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
}
