//! canon-listener's own environment once it runs, started with a sentinel in every credential
//! variable: `/proc/<pid>/environ` holds none of them, or cannot be read at all.

use crate::support::{self, spawn_listener, wait_healthy};

use std::time::Duration;

use canon_testkit::loopback::free_port;

const SENTINEL: &str = "SENTINEL-c4n0n";

#[tokio::test]
async fn a_running_listeners_proc_environ_holds_no_credential() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let repos = support::repos(root, "app", &["1.0.0+1"]);
    let enrollment = support::enrollment(root, &[("app", &repos)], &[]);
    let key = root.join(format!("{SENTINEL}-ssh-key"));
    std::fs::write(&key, format!("{SENTINEL}-key\n")).unwrap();
    let port = free_port();
    let mut env = support::env(&root.join("state"), &enrollment, "http://127.0.0.1:9");
    env.retain(|(k, _)| {
        !matches!(
            k.as_str(),
            "CANON_BIND" | "CANON_WEBHOOK_SECRETS" | "CANON_DRONE_TOKEN"
        )
    });
    env.push(("CANON_BIND".into(), format!("127.0.0.1:{port}")));
    // Nothing answers there: the tokens have somewhere to be configured for, never to go.
    env.push(("CANON_FORGE_URL".into(), "http://127.0.0.1:9".into()));
    env.push(("CANON_MIRROR_URL".into(), "http://127.0.0.1:9".into()));
    let credentials = [
        (
            "CANON_WEBHOOK_SECRETS",
            format!("{SENTINEL}-webhook-one,{SENTINEL}-webhook-two"),
        ),
        ("CANON_FORGE_TOKEN", format!("{SENTINEL}-forge")),
        ("CANON_MIRROR_TOKEN", format!("{SENTINEL}-mirror")),
        ("CANON_DRONE_TOKEN", format!("{SENTINEL}-drone")),
        ("CANON_ADMIN_TOKEN", format!("{SENTINEL}-admin")),
        (
            "CANON_DRONE_CONFIG_SECRET",
            format!("{SENTINEL}-drone-config"),
        ),
        ("CANON_SSH_KEY", key.display().to_string()),
    ];
    env.extend(credentials.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let log = root.join("listener.log");
    let mut child = spawn_listener(&env, &log);
    std::thread::sleep(Duration::from_millis(500));
    if let Some(status) = child.try_wait().unwrap() {
        let logged = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("the listener ended ({status}): {logged}");
    }
    let client = canon_shared::http_client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    wait_healthy(&client, &format!("http://127.0.0.1:{port}")).await;
    let environ = std::fs::read(format!("/proc/{}/environ", child.id()));
    match environ {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                text.contains("CANON_BIND="),
                "not the listener's environ: {text}"
            );
            for (name, _) in &credentials {
                assert!(text.contains(&format!("{name}=")), "{name}: {text}");
            }
            assert!(!text.contains(SENTINEL), "a credential is in /proc: {text}");
        }
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}"),
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(SENTINEL), "{logged}");
}
