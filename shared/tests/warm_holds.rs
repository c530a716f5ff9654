//! Holds on a recipe's warm data across real processes: this test binary started again as a
//! child that takes one hold, says so on stdout, and keeps it until its stdin closes (or it is
//! killed with SIGKILL, as a crashed run would be).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use canon_shared::recipe::RecipeName;
use canon_shared::state::holds::{Holder, WarmHolds, WarmState, WarmStatus};
use canon_shared::state::LockWait;
use canon_testkit::process::KillOnDrop;

/// Set in a child: the hold to take (`attach` or `promote`).
const CHILD: &str = "CANON_WARM_CHILD";
/// Set in a child: the state dir, the holder's build and what, and how long to wait (ms; none:
/// do not wait).
const CHILD_STATE: &str = "CANON_WARM_STATE";
const CHILD_BUILD: &str = "CANON_WARM_BUILD";
const CHILD_WHAT: &str = "CANON_WARM_WHAT";
const CHILD_WAIT_MS: &str = "CANON_WARM_WAIT_MS";
/// What a child's own lines start with (libtest prints its own around them).
const SAYS: &str = "warm-child:";
/// How long a child may take to answer before the test fails.
const ANSWER: Duration = Duration::from_secs(20);

fn app() -> RecipeName {
    RecipeName::parse("app").unwrap()
}

fn holder(build: &str, what: &str) -> Holder {
    Holder {
        build: build.into(),
        what: what.into(),
    }
}

/// A child process holding (or trying to take) a hold.
struct Child {
    process: KillOnDrop,
    lines: mpsc::Receiver<String>,
}

impl Child {
    /// Starts a child that takes `kind` on `state`'s `app` warm data, waiting up to `wait`.
    fn spawn(kind: &str, state: &Path, build: &str, what: &str, wait: Option<Duration>) -> Self {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", &child_test_name(), "--nocapture"])
            .env(CHILD, kind)
            .env(CHILD_STATE, state)
            .env(CHILD_BUILD, build)
            .env(CHILD_WHAT, what)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match wait {
            Some(w) => cmd.env(CHILD_WAIT_MS, w.as_millis().to_string()),
            None => cmd.env_remove(CHILD_WAIT_MS),
        };
        let mut process = KillOnDrop::new(cmd.spawn().expect("the test binary starts again"));
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(said) = line.strip_prefix(SAYS) {
                    let _ = tx.send(said.trim().to_string());
                }
            }
        });
        Child { process, lines }
    }

    /// Starts a child that takes `kind` without waiting, and waits until it holds it.
    fn holding(kind: &str, state: &Path, build: &str, what: &str) -> Self {
        let child = Self::spawn(kind, state, build, what, None);
        child.expect("WAITING");
        child.expect("HELD");
        child
    }

    fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Returns the child's next line, which must start with `word`.
    fn expect(&self, word: &str) -> String {
        let line = self
            .lines
            .recv_timeout(ANSWER)
            .unwrap_or_else(|e| panic!("the child did not say {word} within {ANSWER:?}: {e}"));
        assert!(
            line.starts_with(word),
            "wanted {word}, the child said: {line}"
        );
        line
    }

    /// Takes the child's stdin: closing it tells the child to release its hold.
    fn release_handle(&mut self) -> std::process::ChildStdin {
        self.process.stdin.take().expect("stdin is still open")
    }

    /// Releases the hold and waits for the child to exit.
    fn release(mut self) {
        drop(self.release_handle());
        self.expect("RELEASED");
        let status = self.process.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

/// The child's side when started by [`Child::spawn`]. Run on its own, it starts itself as a
/// child holding an attach and checks that the hold is seen and then released.
#[test]
fn child_process_entry() {
    let Ok(kind) = std::env::var(CHILD) else {
        let dir = tempfile::tempdir().unwrap();
        let holds = WarmHolds::new(dir.path(), &app());
        let child = Child::holding("attach", dir.path(), "1", "self check");
        let status = holds.status().unwrap();
        assert_eq!(status.holders[0].pid, child.pid(), "{status}");
        child.release();
        assert!(holds.status().unwrap().is_idle());
        return;
    };
    let state = std::env::var(CHILD_STATE).unwrap();
    let wait = match std::env::var(CHILD_WAIT_MS) {
        Ok(ms) => LockWait::Wait(Duration::from_millis(ms.parse().unwrap())),
        Err(_) => LockWait::Fail,
    };
    let who = holder(
        &std::env::var(CHILD_BUILD).unwrap(),
        &std::env::var(CHILD_WHAT).unwrap(),
    );
    let holds = WarmHolds::new(Path::new(&state), &app());
    let say = |what: String| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{SAYS} {what}").unwrap();
        out.flush().unwrap();
    };
    say("WAITING".into());
    let started = Instant::now();
    let hold = match kind.as_str() {
        "attach" => holds.attach(&who, wait),
        "promote" => holds.promote(&who, wait),
        other => panic!("unknown hold {other}"),
    };
    let hold = match hold {
        Ok(h) => h,
        Err(e) => {
            say(format!("REFUSED {e}"));
            return;
        }
    };
    say(format!("HELD {}", started.elapsed().as_millis()));
    // Holds until the parent closes stdin.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut std::io::stdin(), &mut rest);
    drop(hold);
    say("RELEASED".into());
}

/// Returns the milliseconds a child's `HELD <ms>` line says it waited.
fn waited_ms(line: &str) -> u128 {
    line.trim_start_matches("HELD").trim().parse().unwrap()
}

#[test]
fn two_attaches_coexist_and_the_status_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let holds = WarmHolds::new(dir.path(), &app());
    let a = Child::holding("attach", dir.path(), "12", "run refs/pull/4/head");
    let b = Child::holding("attach", dir.path(), "13", "run refs/pull/5/head");
    let status = holds.status().unwrap();
    assert_eq!(status.status, WarmState::Attached, "{status}");
    let mut seen: Vec<(u32, &str, &str)> = status
        .holders
        .iter()
        .map(|h| (h.pid, h.build.as_str(), h.what.as_str()))
        .collect();
    seen.sort_by_key(|(_, build, _)| build.to_string());
    assert_eq!(
        seen,
        [
            (a.pid(), "12", "run refs/pull/4/head"),
            (b.pid(), "13", "run refs/pull/5/head")
        ]
    );
    let text = status.to_string();
    assert!(
        text.starts_with("attached (")
            && text.contains("build 12: run refs/pull/4/head")
            && text.contains("build 13: run refs/pull/5/head"),
        "{text}"
    );
    a.release();
    let status = holds.status().unwrap();
    assert_eq!(
        (status.status, status.holders.len(), status.holders[0].pid),
        (WarmState::Attached, 1, b.pid()),
        "{status}"
    );
    b.release();
    assert_eq!(holds.status().unwrap(), WarmStatus::idle());
}

#[test]
fn a_promote_waits_for_attached_runs_or_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let holds = WarmHolds::new(dir.path(), &app());
    let mut run = Child::holding("attach", dir.path(), "12", "run refs/pull/4/head");
    let promoter = holder("7", "promote 1.2.0+1");

    let started = Instant::now();
    let err = holds.promote(&promoter, LockWait::Fail).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "not at once");
    let text = err.to_string();
    assert!(
        text.contains("runs still copy the warm data") && text.contains("not waiting"),
        "{text}"
    );
    let err = holds
        .promote(&promoter, LockWait::Wait(Duration::from_millis(300)))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("runs still copy the warm data; gave up waiting for them"),
        "{err}"
    );
    assert_eq!(holds.status().unwrap().status, WarmState::Attached);

    // Released while the promote waits: it proceeds then, not before.
    let stdin = run.release_handle();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        drop(stdin);
    });
    let started = Instant::now();
    let hold = holds
        .promote(&promoter, LockWait::Wait(Duration::from_secs(5)))
        .expect("the promote gets the data once the run lets go");
    let waited = started.elapsed();
    releaser.join().unwrap();
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "waited {waited:?}"
    );
    run.expect("RELEASED");
    let status = holds.status().unwrap();
    assert_eq!(status.status, WarmState::Promoting, "{status}");
    assert_eq!(status.holders[0].pid, std::process::id());
    assert_eq!(status.to_string(), "promoting (build 7: promote 1.2.0+1)");
    drop(hold);
    assert!(holds.status().unwrap().is_idle());
}

#[test]
fn an_attach_waits_while_a_promote_holds() {
    let dir = tempfile::tempdir().unwrap();
    let holds = WarmHolds::new(dir.path(), &app());
    let promote = Child::holding("promote", dir.path(), "7", "");
    let status = holds.status().unwrap();
    assert_eq!(status.to_string(), "promoting (build 7)");
    assert_eq!(status.holders[0].pid, promote.pid());

    let err = holds
        .attach(&holder("12", "run refs/pull/4/head"), LockWait::Fail)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a promote holds the warm data; not waiting"),
        "{err}"
    );
    let run = Child::spawn(
        "attach",
        dir.path(),
        "12",
        "run refs/pull/4/head",
        Some(Duration::from_secs(10)),
    );
    run.expect("WAITING");
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        run.lines.try_recv().is_err(),
        "the attach did not wait for the promote"
    );
    promote.release();
    let held = run.expect("HELD");
    assert!(waited_ms(&held) >= 600, "{held}");
    assert_eq!(holds.status().unwrap().status, WarmState::Attached);
    run.release();
}

#[test]
fn attaches_that_come_while_a_promote_waits_queue_behind_it() {
    let dir = tempfile::tempdir().unwrap();
    let holds = WarmHolds::new(dir.path(), &app());
    let first = Child::holding("attach", dir.path(), "12", "run refs/pull/4/head");
    let waiting = {
        let holds = holds.clone();
        std::thread::spawn(move || {
            holds
                .promote(&holder("7", ""), LockWait::Wait(Duration::from_secs(15)))
                .map(|hold| {
                    let status = holds.status().unwrap();
                    drop(hold);
                    status
                })
        })
    };
    // Long enough for the promote to be waiting; a later attach must not slip in before it.
    std::thread::sleep(Duration::from_millis(500));
    let late = Child::spawn("attach", dir.path(), "13", "run refs/pull/5/head", None);
    late.expect("WAITING");
    let refused = late.expect("REFUSED");
    assert!(
        refused.contains("a promote holds the warm data"),
        "{refused}"
    );
    first.release();
    let status = waiting.join().unwrap().expect("the promote went ahead");
    assert_eq!(status.to_string(), "promoting (build 7)");
}

#[test]
fn a_holder_killed_with_sigkill_never_blocks_and_leaves_no_record() {
    // (the killed child's hold, the hold taken after it)
    for (killed, then) in [("attach", "promote"), ("promote", "attach")] {
        let dir = tempfile::tempdir().unwrap();
        let holds = WarmHolds::new(dir.path(), &app());
        let mut child = Child::holding(killed, dir.path(), "12", "run refs/pull/4/head");
        assert!(!holds.status().unwrap().is_idle(), "{killed}");
        // Child::kill sends SIGKILL: the process cannot drop its hold.
        child.process.kill().unwrap();
        child.process.wait().unwrap();
        let records = || {
            std::fs::read_dir(holds.dir().join("holders"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let left = records();
        assert!(
            left.len() == 1 && left[0].starts_with(&format!("{}-", child.pid())),
            "{killed}: the killed holder's record is left behind: {left:?}"
        );

        assert_eq!(holds.status().unwrap(), WarmStatus::idle(), "{killed}");
        assert!(records().is_empty(), "{killed}: {:?}", records());
        let started = Instant::now();
        let who = holder("13", "after the crash");
        let hold = match then {
            "promote" => holds.promote(&who, LockWait::Fail),
            _ => holds.attach(&who, LockWait::Fail),
        };
        assert!(hold.is_ok(), "{killed}: {:?}", hold.err());
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

#[test]
fn the_status_serialises_as_json_with_holders_only_when_held() {
    let dir = tempfile::tempdir().unwrap();
    let holds = WarmHolds::new(dir.path(), &app());
    let idle = serde_json::to_value(holds.status().unwrap()).unwrap();
    assert_eq!(idle, serde_json::json!({"status": "idle"}));
    let run = Child::holding("attach", dir.path(), "12", "run refs/pull/4/head");
    let status = holds.status().unwrap();
    let json = serde_json::to_value(&status).unwrap();
    assert_eq!(json["status"], "attached", "{json}");
    let held = json["holders"].as_array().expect("holders");
    assert_eq!(held.len(), 1, "{json}");
    let keys: Vec<&str> = held[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["build", "pid", "since", "what"], "{json}");
    assert_eq!(held[0]["build"], "12");
    assert_eq!(held[0]["what"], "run refs/pull/4/head");
    assert_eq!(held[0]["pid"], run.pid());
    assert!(
        held[0]["since"].as_str().unwrap().ends_with('Z'),
        "RFC 3339 UTC: {json}"
    );
    let back: WarmStatus = serde_json::from_value(json).unwrap();
    assert_eq!(back, status);
    run.release();
    let promoting: WarmStatus = serde_json::from_str(
        r#"{"status":"promoting","holders":[{"build":"7","what":"","pid":9,"since":"2026-01-01T00:00:00Z"}]}"#,
    )
    .unwrap();
    assert_eq!(promoting.to_string(), "promoting (build 7)");
}

#[test]
fn holds_leave_files_the_state_dirs_group_can_use() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: sets this test process's file creation mask (each test is its own process).
    unsafe { libc::umask(canon_shared::state::shared_umask(0o022) as libc::mode_t) };
    let dir = tempfile::tempdir().unwrap();
    let holds = WarmHolds::new(dir.path(), &app());
    let _hold = holds
        .attach(&holder("12", "run refs/pull/4/head"), LockWait::Fail)
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let warm = holds.dir();
    let record = std::fs::read_dir(warm.join("holders"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let modes = [
        mode(warm),
        mode(&warm.join("holders")),
        mode(&warm.join(".lock")),
        mode(&warm.join(".promote")),
        mode(&record),
    ];
    let shown: Vec<String> = modes.iter().map(|m| format!("{m:o}")).collect();
    assert_eq!(modes, [0o775, 0o775, 0o664, 0o664, 0o664], "{shown:?}");
}

/// The name the test harness knows [`child_process_entry`] by: its module path in this crate's
/// one test binary, without the crate.
fn child_test_name() -> String {
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    format!("{module}::child_process_entry")
}
