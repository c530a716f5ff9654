//! A real OpenSSH server on loopback for git-over-SSH tests.
//!
//! [`SshServer::start`] runs Debian's `/usr/sbin/sshd` in the foreground as a child of the test,
//! on `127.0.0.1` and a free port, with its own host key, `sshd_config`, authorized keys file and
//! pid file in a temp dir. It never touches the system sshd or `/etc/ssh`. Git is reachable as
//! `ssh://root@127.0.0.1:PORT/<absolute path>`: the server runs the real `git-upload-pack` /
//! `git-receive-pack` with `GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1`.
//!
//! libgit2 checks an SSH server's host key against `<home>/.ssh/known_hosts`. The tests point
//! libgit2's home directory (a process-wide setting) at a temp dir of their own, so the machine's
//! `~/.ssh` never takes part; [`ClientHome`] holds a process-wide lock while it does, so tests
//! sharing one process (plain `cargo test`) take turns. Dropping the server kills sshd.
//!
//! When sshd is missing or does not start, [`SshServer::start`] panics with sshd's own output:
//! the tests fail, they never skip.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use canon_testkit::loopback::free_port;

const SSHD: &str = "/usr/sbin/sshd";
const STARTUP: Duration = Duration::from_secs(10);

/// Generates an ed25519 key pair without a passphrase at `path` (and `path.pub`); returns the
/// public key line (`ssh-ed25519 AAAA...`, without comment).
pub fn keygen(path: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "canon-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("ssh-keygen cannot run ({e}); install openssh-client"));
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    public_key(path)
}

/// Returns `type base64` of the public key next to the private key `path`.
pub fn public_key(path: &Path) -> String {
    let text = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

static HOME_LOCK: Mutex<()> = Mutex::new(());

/// libgit2's home directory for this test: `<dir>/.ssh/known_hosts` is where it looks up host
/// keys. Holds a process-wide lock until dropped.
pub struct ClientHome {
    pub dir: PathBuf,
    _guard: MutexGuard<'static, ()>,
}

impl ClientHome {
    /// Makes `dir` libgit2's home directory (with an empty `.ssh/known_hosts`).
    pub fn new(dir: &Path) -> Self {
        // A test that panicked while holding the lock leaves nothing shared behind but the setting
        // this call overwrites.
        let guard = HOME_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        std::fs::create_dir_all(dir.join(".ssh")).unwrap();
        std::fs::write(dir.join(".ssh/known_hosts"), "").unwrap();
        set_libgit2_home(dir);
        Self {
            dir: dir.to_path_buf(),
            _guard: guard,
        }
    }

    /// The known_hosts file libgit2 reads.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.join(".ssh/known_hosts")
    }

    /// Appends a known_hosts line for `127.0.0.1:port` with `key` (`type base64`).
    pub fn trust(&self, port: u16, key: &str) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.known_hosts())
            .unwrap();
        writeln!(f, "[127.0.0.1]:{port} {key}").unwrap();
    }
}

fn set_libgit2_home(dir: &Path) {
    // The option needs an initialised libgit2.
    libgit2_sys::init();
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    // SAFETY: GIT_OPT_SET_HOMEDIR takes one `const char *`, copied by libgit2 before it returns;
    // `path` outlives the call.
    let rc = unsafe {
        libgit2_sys::git_libgit2_opts(libgit2_sys::GIT_OPT_SET_HOMEDIR as _, path.as_ptr())
    };
    assert_eq!(rc, 0, "libgit2 refused GIT_OPT_SET_HOMEDIR");
}

/// A running sshd; killed on drop.
pub struct SshServer {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    /// The private key whose public half is authorized.
    pub client_key: PathBuf,
    /// The server's host key, `type base64`.
    pub host_key: String,
    log: Arc<Mutex<String>>,
}

impl SshServer {
    /// Starts sshd with its files under `dir` (created), authorizing a fresh client key.
    /// Panics with sshd's output if it does not start within 10 s.
    pub fn start(dir: &Path) -> Self {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (scripts/setup-system.sh)"
        );
        std::fs::create_dir_all(dir).unwrap();
        let host_key_path = dir.join("host_ed25519");
        let host_key = keygen(&host_key_path);
        let client_key = dir.join("client_ed25519");
        let authorized = dir.join("authorized_keys");
        std::fs::write(&authorized, format!("{}\n", keygen(&client_key))).unwrap();
        // sshd insists on its privilege separation directory; the Debian service creates it at
        // start, which these tests never do.
        std::fs::create_dir_all("/run/sshd").unwrap();

        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let config = dir.join("sshd_config");
            std::fs::write(&config, sshd_config(dir, port, &host_key_path, &authorized)).unwrap();
            match launch(&config, port) {
                Ok((child, log)) => {
                    return Self {
                        child,
                        port,
                        client_key,
                        host_key,
                        log,
                    }
                }
                // Another process took the port between probing and binding: try another.
                Err(out) if out.contains("Address already in use") => last = out,
                Err(out) => panic!("sshd did not start:\n{out}"),
            }
        }
        panic!("sshd did not start (no free port):\n{last}");
    }

    /// The URL of the repository at the absolute `path` on this server, as root.
    pub fn url(&self, path: &Path) -> String {
        format!("ssh://root@127.0.0.1:{}{}", self.port, path.display())
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sshd_config(dir: &Path, port: u16, host_key: &Path, authorized: &Path) -> String {
    format!(
        "Port {port}\n\
         ListenAddress 127.0.0.1\n\
         HostKey {host_key}\n\
         AuthorizedKeysFile {authorized}\n\
         PidFile {pid}\n\
         PubkeyAuthentication yes\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         PermitRootLogin prohibit-password\n\
         StrictModes no\n\
         UsePAM no\n\
         UseDNS no\n\
         LogLevel VERBOSE\n\
         SetEnv GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1\n",
        host_key = host_key.display(),
        authorized = authorized.display(),
        pid = dir.join("sshd.pid").display(),
    )
}

/// Runs `sshd -D -e -f config` and waits until it accepts SSH connections on `port`. Returns the
/// child and its (growing) log, or sshd's output when it exits or does not come up.
fn launch(config: &Path, port: u16) -> Result<(Child, Arc<Mutex<String>>), String> {
    let mut child = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {SSHD}: {e}"))?;
    let log = Arc::new(Mutex::new(String::new()));
    let (ready_tx, ready_rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&log);
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("Server listening on") {
                let _ = ready_tx.send(());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let mut stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = stdout.read_to_end(&mut sink);
    });
    let started = Instant::now();
    let mut listening = false;
    let fail = |child: &mut Child, why: &str| {
        let _ = child.kill();
        let _ = child.wait();
        // Give the reader a moment to collect the last lines.
        thread::sleep(Duration::from_millis(100));
        format!("{why}\n{}", log.lock().unwrap())
    };
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            thread::sleep(Duration::from_millis(100));
            return Err(format!("sshd exited ({status}):\n{}", log.lock().unwrap()));
        }
        listening |= ready_rx.try_recv().is_ok();
        if listening && banner(port) {
            return Ok((child, log));
        }
        if started.elapsed() > STARTUP {
            return Err(fail(&mut child, "sshd did not listen within 10 s"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Returns true when `127.0.0.1:port` answers with an SSH banner.
fn banner(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"SSH-2.0")
}
