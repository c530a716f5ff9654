//! canon-testapp: the app of canon's fixture recipe, small enough to build static and ship in an
//! image `FROM scratch`.
//!
//! It exists so the Docker runner can be tested end to end on a real engine without pulling any
//! image. Behaviour, all from the environment:
//! - `serve` (the default): HTTP on `0.0.0.0:$PORT` (default 8080). On start it writes the data
//!   marker `$DATA_DIR/installed` (default `/data`) with `$APP_VERSION`, unless the file already
//!   exists: the marker records the version that first installed the data, so it must survive
//!   upgrades and restores. `GET /health` answers 200 `ok`, or 503 while `NEVER_HEALTHY=1` or while
//!   `$SECRET_FILE` (when set) is missing or empty, or shorter than `$SECRET_MIN_LENGTH` (when
//!   set; a recipe's `length=` modifier made real). `GET /marker` returns the marker, `GET
//!   /version` the running `$APP_VERSION`.
//!   With `FIRST_BOOT_SECONDS=N` (default 0) a first install costs N seconds, as a real app's
//!   migrations and seeding do: when there is no marker yet, the app serves HTTP at once but
//!   answers `/health` with 503 for N seconds, then writes the marker and is healthy. On data
//!   that already has a marker (an upgrade, a restore, a reattached volume) it is healthy at once.
//!   With `CRASH_AFTER=N` (seconds) it exits with status 1 after serving for N seconds: a
//!   crash-looping service, which swarm restarts, for the runner's stability window to catch.
//!   Unset (the default), it serves until stopped.
//!   A small store, a stand-in for an app's database: the lines of `$DATA_DIR/store.txt`, loaded
//!   into memory on start and on `GET /reload`. `GET /items` lists what the app holds in memory,
//!   one item a line; `GET /add?item=X` and `GET /remove?item=X` change it and write the file
//!   (an item is letters, digits, `.`, `_` and `-`). A file changed behind the app's back is not
//!   what it serves until it reloads, as a database's files restored without loading its dump.
//! - `check`: the container healthcheck; GETs `/health` on loopback, exit 0 on 200.
//! - `marker`: prints the data marker (for `docker exec` from a recipe's test command).
//! - `get <path>`: GETs `<path>` on loopback and prints the body; exit 0 on 200 (for a recipe's
//!   hooks and commands run in the container, e.g. `get /add?item=x`).
//! - `cat <path>`: prints a file, e.g. a config the engine rendered from a template (the image has
//!   no shell and no `cat`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let mode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "serve".to_string());
    let result = match mode.as_str() {
        "serve" => serve(),
        "check" => check(),
        "marker" => print_marker(),
        "cat" => cat(std::env::args().nth(2)),
        "get" => get(std::env::args().nth(2)),
        other => Err(format!(
            "unknown mode {other:?} (serve, check, marker, cat, get)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("canon-testapp: {e}");
            ExitCode::FAILURE
        }
    }
}

fn port() -> u16 {
    std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080)
}

fn marker_path() -> PathBuf {
    let dir = std::env::var("DATA_DIR").unwrap_or_else(|_| "/data".to_string());
    PathBuf::from(dir).join("installed")
}

fn store_path() -> PathBuf {
    marker_path().with_file_name("store.txt")
}

/// The store's items as the app holds them in memory.
static STORE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Loads the store file into memory (empty when there is no file).
fn reload_store() -> Result<usize, String> {
    let path = store_path();
    let items: Vec<String> = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let n = items.len();
    *STORE.lock().unwrap_or_else(|e| e.into_inner()) = items;
    Ok(n)
}

/// Answers a store request: `/items`, `/reload`, `/add?item=X`, `/remove?item=X`.
fn store_request(path: &str) -> (&'static str, String) {
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    if route == "/reload" {
        return match reload_store() {
            Ok(n) => ("200 OK", format!("reloaded {n} items\n")),
            Err(e) => ("500 Internal Server Error", format!("{e}\n")),
        };
    }
    let mut store = STORE.lock().unwrap_or_else(|e| e.into_inner());
    let item = query.strip_prefix("item=").filter(|i| {
        !i.is_empty()
            && i.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    match (route, item) {
        ("/items", _) => return ("200 OK", store.iter().map(|i| format!("{i}\n")).collect()),
        ("/add", Some(item)) => store.push(item.to_string()),
        ("/remove", Some(item)) => store.retain(|i| i != item),
        _ => {
            return (
                "400 Bad Request",
                "want /items, /reload, /add?item=X or /remove?item=X\n".into(),
            )
        }
    }
    let text: String = store.iter().map(|i| format!("{i}\n")).collect();
    match std::fs::write(store_path(), text) {
        Ok(()) => ("200 OK", format!("{} items\n", store.len())),
        Err(e) => ("500 Internal Server Error", format!("{e}\n")),
    }
}

fn version() -> String {
    std::env::var("APP_VERSION").unwrap_or_else(|_| "unknown".to_string())
}

/// Returns why the app is not healthy, or `None` when it is.
fn unhealthy_reason() -> Option<String> {
    if std::env::var("NEVER_HEALTHY").as_deref() == Ok("1") {
        return Some("NEVER_HEALTHY=1".to_string());
    }
    if let Ok(file) = std::env::var("SECRET_FILE") {
        let min: usize = std::env::var("SECRET_MIN_LENGTH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        match std::fs::read(&file) {
            Ok(bytes) if bytes.len() < min && !bytes.is_empty() => {
                return Some(format!(
                    "secret {file} has {} bytes, fewer than {min}",
                    bytes.len()
                ))
            }
            Ok(bytes) if !bytes.is_empty() => {}
            Ok(_) => return Some(format!("secret {file} is empty")),
            Err(e) => return Some(format!("secret {file}: {e}")),
        }
    }
    if !marker_path().exists() {
        if let Some(done) = FIRST_BOOT_DONE.get() {
            let left = done.saturating_duration_since(Instant::now());
            return Some(format!(
                "first boot: installing, {} s left (FIRST_BOOT_SECONDS)",
                left.as_secs() + 1
            ));
        }
        return Some("the data marker is missing".to_string());
    }
    None
}

/// When a first boot in progress ends; unset when the app started on installed data or with no
/// first-boot cost.
static FIRST_BOOT_DONE: OnceLock<Instant> = OnceLock::new();

// As PID 1 in a container the default SIGTERM disposition is "ignore", so `docker stop` would wait
// out the whole grace period; exit at once instead (`_exit` is async-signal-safe).
extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn exit_on_signal(_signum: i32) {
    // SAFETY: `_exit` is async-signal-safe and takes no pointers.
    unsafe { _exit(0) }
}

fn exit_on_sigterm() {
    const SIGINT: i32 = 2;
    const SIGTERM: i32 = 15;
    // SAFETY: installs a handler that only calls `_exit`; no Rust state is touched.
    unsafe {
        signal(SIGTERM, exit_on_signal);
        signal(SIGINT, exit_on_signal);
    }
}

/// Returns the setting `name` as whole seconds, when set; a value that is not a whole number of
/// seconds is an error, so a recipe that meant to crash or to pay a first-boot cost never serves
/// without it by mistake.
fn seconds(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map(|s| Some(Duration::from_secs(s)))
            .map_err(|_| format!("{name}={v:?} is not a whole number of seconds")),
        Err(_) => Ok(None),
    }
}

/// Writes the data marker with this version, making its folder first.
fn write_marker(marker: &Path) -> Result<(), String> {
    if let Some(dir) = marker.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(marker, version()).map_err(|e| format!("{}: {e}", marker.display()))
}

fn serve() -> Result<(), String> {
    exit_on_sigterm();
    if let Some(delay) = seconds("CRASH_AFTER")? {
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            eprintln!(
                "canon-testapp: crashing after {} s (CRASH_AFTER)",
                delay.as_secs()
            );
            std::process::exit(1);
        });
    }
    let first_boot = seconds("FIRST_BOOT_SECONDS")?.unwrap_or_default();
    let marker = marker_path();
    let installing = !marker.exists();
    if installing && first_boot.is_zero() {
        write_marker(&marker)?;
    }
    reload_store()?;
    let listener = TcpListener::bind(("0.0.0.0", port())).map_err(|e| format!("bind: {e}"))?;
    eprintln!("canon-testapp {} listening on :{}", version(), port());
    if installing && !first_boot.is_zero() {
        // Bound first, so the first boot answers 503 rather than refusing connections.
        let _ = FIRST_BOOT_DONE.set(Instant::now() + first_boot);
        eprintln!(
            "canon-testapp: first boot, installing for {} s (FIRST_BOOT_SECONDS)",
            first_boot.as_secs()
        );
        std::thread::spawn(move || {
            std::thread::sleep(first_boot);
            if let Err(e) = write_marker(&marker) {
                eprintln!("canon-testapp: first boot: {e}");
                std::process::exit(1);
            }
            eprintln!("canon-testapp: first boot done");
        });
    }
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if let Err(e) = handle(s) {
                    eprintln!("canon-testapp: request: {e}");
                }
            }
            Err(e) => eprintln!("canon-testapp: accept: {e}"),
        }
    }
    Ok(())
}

fn handle(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Drain the headers; requests here carry no body.
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/health" => match unhealthy_reason() {
            None => ("200 OK", "ok\n".to_string()),
            Some(why) => ("503 Service Unavailable", format!("{why}\n")),
        },
        "/marker" => match std::fs::read_to_string(marker_path()) {
            Ok(m) => ("200 OK", m),
            Err(e) => ("404 Not Found", format!("{e}\n")),
        },
        "/version" => ("200 OK", version()),
        p if ["/items", "/reload", "/add?", "/remove?"]
            .iter()
            .any(|r| p.starts_with(r)) =>
        {
            store_request(p)
        }
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.0 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// GETs `path` on loopback and returns the whole response.
fn loopback_get(path: &str) -> Result<String, String> {
    let mut stream =
        TcpStream::connect(("127.0.0.1", port())).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read: {e}"))?;
    Ok(response)
}

fn get(path: Option<String>) -> Result<(), String> {
    let path = path.ok_or("get needs a path")?;
    let response = loopback_get(&path)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    print!("{body}");
    match head.lines().next() {
        Some(status) if status.starts_with("HTTP/1.0 200") => Ok(()),
        status => Err(format!("GET {path}: {}", status.unwrap_or("no response"))),
    }
}

fn check() -> Result<(), String> {
    let response = loopback_get("/health")?;
    if response.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!(
            "unhealthy: {}",
            response.lines().last().unwrap_or_default()
        ))
    }
}

fn cat(path: Option<String>) -> Result<(), String> {
    let path = path.ok_or("cat needs a path")?;
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    print!("{text}");
    Ok(())
}

fn print_marker() -> Result<(), String> {
    let path = marker_path();
    let marker = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{marker}");
    Ok(())
}
