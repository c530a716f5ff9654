//! The HTTP server: an accept loop of its own around the routes, so that every connection is
//! bounded in number and in time.
//!
//! `warp::serve` builds hyper's server without a timer, so no header or body timeout ever closes
//! a connection, and it accepts without limit: 1,100 half-open connections took every file
//! descriptor and `/healthz` stopped answering (issue 14). Here each connection holds one permit
//! of a semaphore sized by [`HttpLimits::max_connections`] (clamped below `RLIMIT_NOFILE`; past
//! it a new connection is closed at once), hyper's header read timeout closes a connection that
//! does not send a request head in time (also when it idles between keep-alive requests), a
//! request that outlives its deadline is answered 408 and its connection closed, and a shutdown
//! waits for requests in flight at most [`HttpLimits::shutdown_deadline`], then drops them.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use warp::http::{Request, StatusCode};
use warp::reply::Response;
use warp::Reply;

use crate::config::HttpLimits;

/// File descriptors kept free of connections: the listening socket, the journal (database,
/// WAL, shared memory), git and its child processes' pipes, the forge and Drone clients.
pub const FD_RESERVE: u64 = 64;

/// How long the accept loop pauses after a failed accept (file limit, no memory), so it never
/// spins; the connection waits in the kernel's backlog meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often a refused connection is logged at most, so a flood cannot flood the log too.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Returns the connection cap to use: `wanted`, lowered to stay [`FD_RESERVE`] below the soft
/// file limit `fd_limit` when that is known. The second value is true when it was lowered.
pub fn clamp_to_fd_limit(wanted: usize, fd_limit: Option<u64>) -> (usize, bool) {
    let Some(limit) = fd_limit else {
        return (wanted, false);
    };
    let room = usize::try_from(limit.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX);
    if wanted > room {
        (room, true)
    } else {
        (wanted, false)
    }
}

/// Returns the process's soft `RLIMIT_NOFILE`, or `None` when it is unlimited or unreadable.
pub fn fd_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    let read = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if read != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    Some(limit.rlim_cur)
}

/// Returns the connection cap for this process: the setting, clamped below the file limit with
/// a warning when it would not fit.
pub fn connection_cap(wanted: usize) -> usize {
    let limit = fd_limit();
    let (cap, lowered) = clamp_to_fd_limit(wanted, limit);
    if lowered {
        tracing::warn!(
            wanted,
            cap,
            fd_limit = limit,
            "CANON_MAX_CONNECTIONS does not fit below the file limit; serving at most the lower number (raise LimitNOFILE or lower the setting)."
        );
    }
    cap
}

/// A service that answers 408 and closes the connection when a request outlives its deadline.
#[derive(Clone)]
struct Deadlined<S> {
    inner: S,
    deadline: Duration,
}

impl<S> hyper::service::Service<Request<Incoming>> for Deadlined<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let answer = self.inner.call(req);
        let deadline = self.deadline;
        Box::pin(async move {
            match tokio::time::timeout(deadline, answer).await {
                Ok(answered) => answered,
                Err(_) => {
                    tracing::warn!(
                        deadline = ?deadline,
                        "A request did not finish before its deadline; answering 408 and closing its connection."
                    );
                    Ok(timed_out())
                }
            }
        })
    }
}

/// Returns the 408 answer; `connection: close` makes hyper close the connection after it, so
/// the rest of a slow body is never read.
fn timed_out() -> Response {
    let body = warp::reply::json(&serde_json::json!({ "error": "request timeout" }));
    let reply = warp::reply::with_status(body, StatusCode::REQUEST_TIMEOUT);
    warp::reply::with_header(reply, "connection", "close").into_response()
}

/// Serves `service` on `listener` under `limits` (its cap already clamped, see
/// [`connection_cap`]) until `shutdown` turns true, then drains connections for at most
/// `limits.shutdown_deadline` and drops the rest.
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let service = Deadlined {
        inner: service,
        deadline: limits.request_deadline,
    };
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (drain, draining) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut refusals = Refusals::default();
    loop {
        tokio::select! {
            _ = async { shutdown.wait_for(|stop| *stop).await.map(|_| ()) } => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        connections.spawn(connection(
                            stream,
                            service.clone(),
                            limits.header_timeout,
                            draining.clone(),
                            permit,
                        ));
                    }
                    // Closed at once: the descriptor is back before the next accept.
                    Err(_) => refusals.note(limits.max_connections),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting a connection failed; pausing briefly.");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    let _ = drain.send(true);
    let open = connections.len();
    let drained = tokio::time::timeout(limits.shutdown_deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open,
            left = connections.len(),
            deadline = ?limits.shutdown_deadline,
            "Connections still open at the shutdown deadline; dropping them."
        );
        connections.shutdown().await;
    }
}

/// Serves one connection until it ends, its header timeout closes it, or a drain asks it to
/// finish the request in flight and close.
async fn connection<S>(
    stream: tokio::net::TcpStream,
    service: S,
    header_timeout: Duration,
    mut draining: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) where
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        // The borrow `wait_for` returns is dropped at once: it must not live across an await.
        _ = async { draining.wait_for(|d| *d).await.map(|_| ()) } => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        // Timeouts and clients that go away are routine; they are not the server's failure.
        tracing::debug!(error = %e, "A connection ended with an error.");
    }
}

/// Counts connections closed at the cap and logs them at most every [`REFUSAL_LOG_EVERY`].
#[derive(Default)]
struct Refusals {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, cap: usize) {
        self.since_log += 1;
        if self
            .logged
            .is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY)
        {
            tracing::warn!(
                refused = self.since_log,
                cap,
                "Connections closed at once: the connection cap is reached."
            );
            self.since_log = 0;
            self.logged = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_stays_below_the_file_limit() {
        // (says, wanted, soft file limit, (cap, lowered))
        type Case = (&'static str, usize, Option<u64>, (usize, bool));
        let cases: &[Case] = &[
            (
                "an unknown limit keeps the setting",
                256,
                None,
                (256, false),
            ),
            ("a cap that fits is kept", 256, Some(1024), (256, false)),
            (
                "a cap above the limit is lowered",
                4096,
                Some(1024),
                (960, true),
            ),
            (
                "a cap in the reserve is lowered",
                1000,
                Some(1024),
                (960, true),
            ),
            ("a tiny limit still serves one", 256, Some(10), (1, true)),
        ];
        for (says, wanted, limit, want) in cases {
            assert_eq!(clamp_to_fd_limit(*wanted, *limit), *want, "{says}");
        }
    }

    #[test]
    fn the_file_limit_is_the_one_the_kernel_reports() {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let soft = line.split_whitespace().nth(3).unwrap();
        let want = soft.parse::<u64>().ok();
        assert_eq!(fd_limit(), want, "{line}");
    }
}
