//! Child processes with a deadline: a test that runs git, docker or a script fails naming the
//! command when it overruns, instead of hanging the suite. Both pipes are drained while waiting,
//! so a chatty child never blocks on a full pipe.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a waiting test looks whether the child has finished.
const POLL: Duration = Duration::from_millis(10);

/// A spawned program that is killed and reaped when dropped, so a test that fails half-way
/// never leaves it running (a listener holding a port, a run waiting on a file forever).
#[derive(Debug)]
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Takes charge of `child`.
    pub fn new(child: Child) -> Self {
        Self(Some(child))
    }

    /// Waits for the program to exit and returns its output, as [`std::process::Child::wait_with_output`].
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        self.0
            .take()
            .expect("the child is held until this call")
            .wait_with_output()
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .expect("the child is held until it is waited for")
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0
            .as_mut()
            .expect("the child is held until it is waited for")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `cmd` to completion within `limit` and returns its output, like [`Command::output`]
/// (stdin is `/dev/null`). Kills the child and panics, naming the
/// command, when it overruns; panics when it cannot start.
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait(&mut child, limit)
        .unwrap_or_else(|| panic!("{shown} did not finish within {limit:?}"));
    Output {
        status,
        stdout: stdout.join().expect("the stdout reader ends"),
        stderr: stderr.join().expect("the stderr reader ends"),
    }
}

/// Runs `cmd` within `limit` like [`output_within`], asserts it succeeded (the message carries
/// its stdout and stderr) and returns its stdout, trimmed.
pub fn stdout_within(cmd: &mut Command, limit: Duration) -> String {
    let shown = format!("{cmd:?}");
    let out = output_within(cmd, limit);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Returns what `out` printed: its stdout, a newline, its stderr (lossy), for assertions that
/// look at everything a program said and for their failure messages.
pub fn printed(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Waits for `child` until `limit`; kills and reaps it on overrun and returns `None`.
fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("the child can be waited on") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(POLL);
    }
}
