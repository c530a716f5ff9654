//! Connections are bounded in number and in time (issue 14): a half-open flood against the real
//! binary under a file limit of 1024, then, in process, the header timeout (also between
//! keep-alive requests), the request deadline, the connection cap and the shutdown deadline.
//!
//! Every socket here is a plain blocking `std` socket with read timeouts, so "is it closed?" is
//! one `read` syscall; every loop is bounded in count and in time; only loopback addresses.

use crate::support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canon_listener::app;
use canon_testkit::git::hermetic;
use canon_testkit::loopback::free_port;
use canon_testkit::process::KillOnDrop;
use support::*;

/// A request head that announces a large body and never ends.
const HALF_OPEN: &[u8] =
    b"POST /hooks/gitea HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000\r\nX-Gitea-Event: push\r\n";

/// What a read on a socket tells about it.
#[derive(Debug, PartialEq, Eq)]
enum Peer {
    /// The server closed it (end of file or reset).
    Closed,
    /// Nothing to read yet: still open.
    Open,
    /// Bytes arrived.
    Data,
}

/// Reads once from `s`, waiting at most `wait`.
fn peek(mut s: &TcpStream, wait: Duration) -> Peer {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 4096];
    match s.read(&mut buf) {
        Ok(0) => Peer::Closed,
        Ok(_) => Peer::Data,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Peer::Open,
        Err(_) => Peer::Closed,
    }
}

/// Reads `s` until the server closes it, at most for `within`; returns what was read, and
/// whether it was closed in time.
fn read_until_closed(mut s: &TcpStream, within: Duration) -> (String, bool) {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

/// Asks `GET /healthz` on a fresh connection, all of it within `within`; returns the status line
/// when it answered in time.
fn healthz(addr: SocketAddr, within: Duration) -> Option<String> {
    let started = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, within).ok()?;
    s.set_write_timeout(Some(within)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let left = within.checked_sub(started.elapsed())?;
    let (text, _) = read_until_closed(&s, left);
    let line = text.lines().next()?.to_string();
    (started.elapsed() <= within && line.contains(" 200 ")).then_some(line)
}

/// Raises this test process's own soft file limit so it can hold the flood's sockets.
fn raise_own_fd_limit(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a struct that lives for the call.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < want {
            assert!(
                lim.rlim_max >= want,
                "this test needs a hard file limit of at least {want}, not {}",
                lim.rlim_max
            );
            lim.rlim_cur = want;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
}

/// Starts the real binary with `pairs` under a file limit of `nofile`, its output in `log`.
fn spawn_limited(pairs: &[(String, String)], log: &std::path::Path, nofile: u64) -> KillOnDrop {
    let log = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canon-listener"));
    cmd.env_clear()
        .envs(pairs.iter().cloned())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    // SAFETY: setrlimit is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    KillOnDrop::new(
        hermetic(&mut cmd)
            .spawn()
            .expect("the listener binary starts"),
    )
}

/// Returns the soft "Max open files" of process `pid`.
fn fd_limit_of(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    line.split_whitespace().nth(3).unwrap().to_string()
}

#[test]
fn a_half_open_flood_is_closed_by_the_header_timeout_and_health_answers_again_on_the_same_port() {
    const FLOOD: usize = 1_100;
    raise_own_fd_limit(4_096);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let enrollment = enrollment(root, &[], &[("app", "upstream/app")]);
    let port = free_port();
    let mut env = env(&root.join("state"), &enrollment, "http://127.0.0.1:9");
    env.retain(|(k, _)| k != "CANON_BIND");
    env.extend([
        ("CANON_BIND".to_string(), format!("127.0.0.1:{port}")),
        ("CANON_HEADER_TIMEOUT".to_string(), "2s".to_string()),
    ]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log = root.join("listener.log");
    let mut child = spawn_limited(&env, &log, 1_024);
    let up = Instant::now();
    while healthz(addr, Duration::from_secs(1)).is_none() {
        assert!(
            up.elapsed() < Duration::from_secs(20),
            "the listener did not come up: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(fd_limit_of(child.id()), "1024");

    // The burst: every connection announces a body and never finishes its head.
    let mut flood = Vec::with_capacity(FLOOD);
    for i in 0..FLOOD {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connection {i} of the flood: {e}"));
        // A connection past the cap may be closed before this write lands; that is the point.
        let _ = s.write_all(HALF_OPEN);
        flood.push(s);
    }
    let burst = Instant::now();
    // Right after the burst at most the cap (256) is held open; the rest were closed at once.
    let held = flood
        .iter()
        .filter(|s| peek(s, Duration::from_millis(1)) == Peer::Open)
        .count();
    assert!(
        (1..=256).contains(&held),
        "{held} connections held open after the burst"
    );

    // Within 15 s of the burst, /healthz answers within 1 s, on the same port.
    let mut answered = None;
    while answered.is_none() && burst.elapsed() < Duration::from_secs(15) {
        answered = healthz(addr, Duration::from_secs(1));
    }
    assert!(
        answered.is_some(),
        "/healthz did not answer within 1 s during the 15 s after the burst"
    );

    // And every half-open connection is closed: nothing was ever answered on them.
    let mut open: Vec<&TcpStream> = flood.iter().collect();
    while !open.is_empty() && burst.elapsed() < Duration::from_secs(15) {
        open.retain(|s| match peek(s, Duration::from_millis(1)) {
            Peer::Open => true,
            Peer::Closed => false,
            Peer::Data => panic!("a half-open request got an answer"),
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        open.is_empty(),
        "{} half-open connections still open 15 s after the burst",
        open.len()
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "the listener died: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    drop(flood);

    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let stopping = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if stopping.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the listener did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("Too many open files"),
        "the listener ran out of file descriptors: {text}"
    );
}

/// A listener in this process with `replaced` settings; its temporary directory goes with it.
async fn start_with(replaced: &[(&str, &str)]) -> (app::Running, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let enrollment = enrollment(root, &[], &[("app", "upstream/app")]);
    let mut vars = env(&root.join("state"), &enrollment, "http://127.0.0.1:9");
    for (key, value) in replaced {
        vars.retain(|(k, _)| k != key);
        vars.push((key.to_string(), value.to_string()));
    }
    let running = app::start(&settings(vars), Duration::from_secs(1))
        .await
        .expect("the listener starts");
    (running, tmp)
}

/// Runs blocking socket work off the runtime, so the listener in this process keeps serving.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_head_and_an_idle_keep_alive_connection_close_at_the_header_timeout() {
    let (running, _tmp) = start_with(&[("CANON_HEADER_TIMEOUT", "1s")]).await;
    let addr = running.addr;
    let (half_open, idle) = blocking(move || {
        let mut half = TcpStream::connect(addr).unwrap();
        half.write_all(HALF_OPEN).unwrap();
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let started = Instant::now();
        let answer = peek(&idle, Duration::from_secs(2));
        assert_eq!(answer, Peer::Data, "the keep-alive request is answered");
        // Still open right after its answer: keep-alive.
        assert_eq!(peek(&idle, Duration::from_millis(200)), Peer::Open);
        let (_, half_closed) = read_until_closed(&half, Duration::from_secs(5));
        let (_, idle_closed) = read_until_closed(&idle, Duration::from_secs(5));
        (
            half_closed,
            if idle_closed {
                started.elapsed()
            } else {
                Duration::MAX
            },
        )
    })
    .await;
    assert!(half_open, "a head that never ends is closed");
    assert!(
        idle >= Duration::from_millis(900) && idle < Duration::from_secs(5),
        "an idle keep-alive connection is closed at the header timeout, not at once: {idle:?}"
    );
    tokio::time::timeout(Duration::from_secs(20), running.stop())
        .await
        .expect("the listener stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_request_deadline_gets_408_and_its_connection_closes() {
    let (running, _tmp) = start_with(&[
        ("CANON_HEADER_TIMEOUT", "5s"),
        ("CANON_REQUEST_DEADLINE", "1s"),
    ])
    .await;
    let addr = running.addr;
    let (text, closed, took) = blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            b"POST /hooks/gitea HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Gitea-Event: push\r\nContent-Length: 1000\r\n\r\n{\"ref\":",
        )
        .unwrap();
        let started = Instant::now();
        let (text, closed) = read_until_closed(&s, Duration::from_secs(8));
        (text, closed, started.elapsed())
    })
    .await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(closed, "the connection closes after the 408");
    assert!(took < Duration::from_secs(5), "{took:?}");
    tokio::time::timeout(Duration::from_secs(20), running.stop())
        .await
        .expect("the listener stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_a_new_connection_is_closed_at_once_and_served_again_when_room_frees() {
    let (running, _tmp) = start_with(&[
        ("CANON_MAX_CONNECTIONS", "2"),
        ("CANON_HEADER_TIMEOUT", "10s"),
    ])
    .await;
    let addr = running.addr;
    blocking(move || {
        let held: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(HALF_OPEN).unwrap();
                s
            })
            .collect();
        // Let the listener take both before the third arrives.
        std::thread::sleep(Duration::from_millis(300));
        for s in &held {
            assert_eq!(peek(s, Duration::from_millis(1)), Peer::Open);
        }
        let third = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        let (text, closed) = read_until_closed(&third, Duration::from_secs(2));
        assert!(closed && text.is_empty(), "closed unanswered: {text:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(
            healthz(addr, Duration::from_secs(1)).is_none(),
            "still full"
        );
        drop(held);
        let freed = Instant::now();
        while healthz(addr, Duration::from_secs(1)).is_none() {
            assert!(
                freed.elapsed() < Duration::from_secs(5),
                "/healthz is served again once the held connections close"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await;
    tokio::time::timeout(Duration::from_secs(20), running.stop())
        .await
        .expect("the listener stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_cannot_hold_a_shutdown_past_its_deadline() {
    let (running, _tmp) = start_with(&[
        ("CANON_HEADER_TIMEOUT", "30s"),
        ("CANON_REQUEST_DEADLINE", "60s"),
        ("CANON_SHUTDOWN_DEADLINE", "1s"),
    ])
    .await;
    let addr = running.addr;
    // A request in flight whose body trickles in, one byte a second.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let client = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            b"POST /hooks/gitea HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Gitea-Event: push\r\nContent-Length: 1000\r\n\r\n",
        )
        .unwrap();
        for _ in 0..30 {
            if s.write_all(b" ").is_err() {
                break;
            }
            if stop_rx.recv_timeout(Duration::from_secs(1)).is_ok() {
                break;
            }
            if peek(&s, Duration::from_millis(1)) == Peer::Closed {
                return true;
            }
        }
        read_until_closed(&s, Duration::from_secs(5)).1
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("the shutdown is not held by the slow request");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "the request in flight had its grace: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    let _ = stop_tx.send(());
    assert!(
        client.await.unwrap(),
        "the slow connection was closed by the shutdown"
    );
}
