//! The HTTP server under every stand-in: `127.0.0.1` on a port the kernel picks, one accept
//! thread, one thread per request, stopped on drop. Plain threads, not an async runtime, so the
//! same stand-in serves `#[test]` and `#[tokio::test]` alike, and a test that blocks on a child
//! process does not starve it. Also the record of a request the stand-ins keep for assertions.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread;

use serde_json::Value;

/// A running loopback HTTP server; dropping it stops accepting and joins the accept thread.
pub struct LoopbackServer {
    port: u16,
    server: Arc<tiny_http::Server>,
    accept: Option<thread::JoinHandle<()>>,
}

impl LoopbackServer {
    /// Binds `127.0.0.1:0` and hands every request to `handler` on a thread of its own.
    pub fn start<F>(handler: F) -> Self
    where
        F: Fn(tiny_http::Request) + Send + Sync + 'static,
    {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let port = server.server_addr().to_ip().expect("a TCP listener").port();
        let handler = Arc::new(handler);
        let incoming = server.clone();
        let accept = thread::spawn(move || {
            for req in incoming.incoming_requests() {
                let handler = handler.clone();
                thread::spawn(move || handler(req));
            }
        });
        Self {
            port,
            server,
            accept: Some(accept),
        }
    }

    /// Returns the port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// One request as a stand-in saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, still percent-encoded.
    pub path: String,
    /// The raw query string without `?` (empty when there is none).
    pub query: String,
    /// The `Authorization` header, when sent.
    pub authorization: Option<String>,
    /// The body as text (lossy).
    pub body: String,
}

impl Request {
    /// Reads the request line, the `Authorization` header and the whole body of `req`.
    pub fn read(req: &mut tiny_http::Request) -> Self {
        let url = req.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let mut body = Vec::new();
        let _ = req.as_reader().read_to_end(&mut body);
        Self {
            method: req.method().as_str().to_string(),
            path: path.to_string(),
            query: query.to_string(),
            authorization: header(req, "Authorization").map(str::to_string),
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// Returns the path and query as the request line carried them (`/path?query`).
    pub fn target(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }

    /// Returns the raw (still encoded) value of query parameter `key`.
    pub fn query_param(&self, key: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| v.to_string())
        })
    }

    /// Returns the body parsed as JSON, `null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Returns the value of header `name` (any case) of `req`.
pub fn header<'a>(req: &'a tiny_http::Request, name: &str) -> Option<&'a str> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

/// Answers `req` with `status`, `body` as JSON and the extra `headers`.
pub fn respond_json(
    req: tiny_http::Request,
    status: u16,
    body: &Value,
    headers: &[(String, String)],
) {
    let mut resp = tiny_http::Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(
            tiny_http::Header::from_bytes("Content-Type", "application/json")
                .expect("a valid header"),
        );
    for (k, v) in headers {
        resp = resp.with_header(
            tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("a valid header"),
        );
    }
    let _ = req.respond(resp);
}

/// Returns a loopback port nothing listens on when this returns: a port to hand to a server
/// that binds it itself, or one a client is refused on.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("a local address").port()
}
