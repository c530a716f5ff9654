//! A state dir moved into a git state repository, and tag mode deciding through it: the
//! repository is served over smart HTTP (`git http-backend` behind basic auth) on loopback, and
//! the token goes in as the mirror token file, as an operator would set it up.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};

use canon_testkit::git::http::GitHttpServer;
use canon_testkit::git::{bare, git};
use canon_testkit::process::printed;
use support::Fixture;

const TOKEN: &str = "state-repo-token";

fn plugin(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canon-plugin"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .output()
        .expect("canon-plugin runs")
}

/// Runs tag mode on `tag` with the green harness, the records in `state_repo` when given.
fn run(f: &Fixture, tag: &str, state_dir: &Path, state_repo: Option<(&str, &Path)>) -> Output {
    let harness = f.green_harness();
    let log = format!("HARNESS_LOG={}", f.log.display());
    let mut args = vec![
        "run".to_string(),
        "--init".into(),
        "--config".into(),
        f.enrollment.display().to_string(),
        "--state-dir".into(),
        state_dir.display().to_string(),
        "--recipe".into(),
        "app".into(),
        "--tag".into(),
        tag.into(),
        "--command".into(),
        harness,
        "--env".into(),
        log,
        "--work-dir".into(),
        f.runs.display().to_string(),
    ];
    if let Some((url, token_file)) = state_repo {
        args.extend([
            "--state-repo".into(),
            url.to_string(),
            "--mirror-token-file".into(),
            token_file.display().to_string(),
        ]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    plugin(&args, f.dir.path())
}

#[test]
fn a_state_dir_exported_into_a_repository_keeps_deciding_there() {
    let f = Fixture::new();
    f.release("1.0.0+1", true);
    let out = run(&f, "1.0.0+1", &f.state, None);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));

    // Export the state dir and publish it as the state repository.
    let exported = f.dir.path().join("exported");
    let out = plugin(
        &[
            "state",
            "export",
            "--state-dir",
            f.state.to_str().unwrap(),
            "--out",
            exported.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    assert!(exported.join("app/canonical.json").is_file());
    assert!(exported.join("app/history.jsonl").is_file());
    assert!(
        !exported.join("app/.lock").exists(),
        "locks stay behind: only the records move"
    );
    // A second export into the same folder is refused rather than mixed in.
    let again = plugin(
        &[
            "state",
            "export",
            "--state-dir",
            f.state.to_str().unwrap(),
            "--out",
            exported.to_str().unwrap(),
        ],
        f.dir.path(),
    );
    assert_eq!(again.status.code(), Some(1), "{}", printed(&again));
    let served = f.dir.path().join("served");
    bare(&served.join("state.git"));
    git(&exported, &["init", "-q", "-b", "main"]);
    git(&exported, &["add", "."]);
    git(
        &exported,
        &["commit", "-q", "-m", "canon state from one host"],
    );
    git(
        &exported,
        &[
            "push",
            "-q",
            served.join("state.git").to_str().unwrap(),
            "main",
        ],
    );
    let server = GitHttpServer::start(&served, None, TOKEN);
    let url = server.url("state.git");
    let token_file = f.dir.path().join("mirror-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();

    // Another host, with an empty state dir of its own, sees the canonical there...
    let host_b = f.dir.path().join("host-b");
    let show = |state_dir: &Path| {
        plugin(
            &[
                "canonical",
                "show",
                "--state-dir",
                state_dir.to_str().unwrap(),
                "--state-repo",
                &url,
                "--mirror-token-file",
                token_file.to_str().unwrap(),
                "--recipe",
                "app",
            ],
            f.dir.path(),
        )
    };
    let out = show(&host_b);
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["version"], "1.0.0+1");

    // ...promotes a newer tag through it, and refuses an older one against it.
    f.release("1.1.0+1", true);
    f.release("0.9.0+1", true);
    let out = run(&f, "1.1.0+1", &host_b, Some((&url, &token_file)));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let host_c = f.dir.path().join("host-c");
    let out = run(&f, "0.9.0+1", &host_c, Some((&url, &token_file)));
    assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
    let out = show(&host_c);
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["version"], "1.1.0+1", "{}", printed(&out));

    // The repository holds one commit per decision, each a fast-forward of the last.
    let clone = f.dir.path().join("clone");
    git(
        f.dir.path(),
        &[
            "clone",
            "-q",
            served.join("state.git").to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    let history = std::fs::read_to_string(clone.join("app/history.jsonl")).unwrap();
    let decisions: Vec<(String, String)> = history
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["decision"].as_str().unwrap().to_string(),
                v["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("promote".to_string(), "1.0.0+1".to_string()),
            ("promote".to_string(), "1.1.0+1".to_string()),
            ("refuse".to_string(), "0.9.0+1".to_string()),
        ]
    );
    let log = git(&clone, &["log", "--format=%s"]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "app: refuse 0.9.0+1",
            "app: promote 1.1.0+1",
            "canon state from one host"
        ]
    );
    // The token reached neither output nor the records.
    let out = show(&host_c);
    assert!(!printed(&out).contains(TOKEN));
    assert!(!history.contains(TOKEN));
}
