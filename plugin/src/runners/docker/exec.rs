//! Running one child process the careful way: logged as `+ program args` with secrets masked,
//! both pipes drained concurrently, killed when its deadline passes.
//!
//! Separate from the command builders so those stay pure (a [`Cmd`] is plain data) and from the
//! ladder so every docker and abra call shares one well-tested path.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use canon_shared::secret::Secret;

use crate::runners::RunnerError;

/// One argument of a command line; a secret one is shown as `***` in logs and errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The value passed to the program.
    pub value: String,
    /// True when the value must never be shown.
    pub secret: bool,
}

/// Where a command's standard input comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// Nothing (`/dev/null`).
    Null,
    /// A secret value, written to the pipe and never shown.
    Secret(Secret),
    /// The contents of a file (for example a volume snapshot).
    File(PathBuf),
}

/// A child process described as data, built by pure functions and run by [`run`].
#[derive(Debug, Clone)]
pub struct Cmd {
    /// The program (`docker`, `abra`, `sh`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// Extra environment variables (added to the inherited environment).
    pub env: Vec<(String, String)>,
    /// The working directory, when not the current one.
    pub cwd: Option<PathBuf>,
    /// Standard input.
    pub stdin: Input,
    /// When set, standard output goes to this file instead of being captured.
    pub stdout_file: Option<PathBuf>,
}

impl Cmd {
    /// Returns a command for `program` with plain arguments.
    pub fn new<I, S>(program: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            program: program.to_string(),
            args: args
                .into_iter()
                .map(|a| Arg {
                    value: a.into(),
                    secret: false,
                })
                .collect(),
            env: Vec::new(),
            cwd: None,
            stdin: Input::Null,
            stdout_file: None,
        }
    }

    /// Appends a plain argument.
    pub fn arg(mut self, value: impl Into<String>) -> Self {
        self.args.push(Arg {
            value: value.into(),
            secret: false,
        });
        self
    }

    /// Returns the argument values (for tests and comparisons).
    pub fn argv(&self) -> Vec<&str> {
        self.args.iter().map(|a| a.value.as_str()).collect()
    }

    /// Returns the command line as logged: `program arg ...`, secret arguments as `***`, each
    /// argument quoted when it holds a space or a shell metacharacter.
    pub fn display(&self) -> String {
        let mut out = self.program.clone();
        for a in &self.args {
            out.push(' ');
            if a.secret {
                out.push_str("***");
            } else if a.value.is_empty()
                || a.value
                    .chars()
                    .any(|c| c.is_whitespace() || "'\"$`\\|&;<>(){}*?!#~".contains(c))
            {
                out.push('\'');
                out.push_str(&a.value.replace('\'', "'\\''"));
                out.push('\'');
            } else {
                out.push_str(&a.value);
            }
        }
        if let Input::File(p) = &self.stdin {
            out.push_str(&format!(" < {}", p.display()));
        }
        if let Some(p) = &self.stdout_file {
            out.push_str(&format!(" > {}", p.display()));
        }
        out
    }
}

/// What a finished child left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// Its exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Captured standard output (empty when it went to a file).
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
}

impl Output {
    /// Returns true when the child exited with 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

const MAX_CAPTURE: usize = 8 << 20;

fn drain<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Keep reading past the cap so the child never blocks on a full pipe.
                    let room = MAX_CAPTURE.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        kept
    })
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> String {
    handle
        .and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Runs `cmd`, killing it (and reporting [`RunnerError::Timeout`]) when it outlives `timeout`.
///
/// Returns the output whatever the exit code; callers decide what a non-zero exit means (see
/// [`run_ok`]).
pub fn run(cmd: &Cmd, timeout: Duration) -> Result<Output, RunnerError> {
    let shown = cmd.display();
    tracing::info!(command = %shown, "+ {shown}");
    let mut command = Command::new(&cmd.program);
    command.args(cmd.args.iter().map(|a| &a.value));
    command.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    command.stdin(match cmd.stdin {
        Input::Null => Stdio::null(),
        _ => Stdio::piped(),
    });
    match &cmd.stdout_file {
        Some(path) => {
            let file = std::fs::File::create(path).map_err(|e| {
                RunnerError::Other(format!("could not create {}: {e}", path.display()))
            })?;
            command.stdout(Stdio::from(file));
        }
        None => {
            command.stdout(Stdio::piped());
        }
    }
    command.stderr(Stdio::piped());
    // Its own process group, so a timeout also kills whatever a shell command started.
    command.process_group(0);
    let mut child = command.spawn().map_err(|source| RunnerError::Spawn {
        program: cmd.program.clone(),
        source,
    })?;
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let feeder = feed_stdin(&mut child, &cmd.stdin)?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => std::thread::sleep(Duration::from_millis(25)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(RunnerError::Other(format!("waiting for `{shown}`: {e}")));
            }
        }
    };
    let Some(status) = status else {
        kill_group(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let _ = feeder.map(|f| f.join());
        join(out);
        join(err);
        return Err(RunnerError::Timeout {
            what: shown,
            seconds: timeout.as_secs(),
        });
    };
    let _ = feeder.map(|f| f.join());
    let output = Output {
        code: status.code(),
        stdout: join(out),
        stderr: join(err),
    };
    if !output.success() {
        tracing::debug!(command = %shown, code = ?output.code, stderr = %output.stderr.trim(), "command failed");
    }
    Ok(output)
}

fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn feed_stdin(child: &mut Child, input: &Input) -> Result<Option<JoinHandle<()>>, RunnerError> {
    let Some(mut pipe) = child.stdin.take() else {
        return Ok(None);
    };
    let bytes: Option<Vec<u8>> = match input {
        Input::Null => None,
        Input::Secret(s) => Some(s.expose().as_bytes().to_vec()),
        Input::File(_) => None,
    };
    let file = match input {
        Input::File(p) => Some(
            std::fs::File::open(p)
                .map_err(|e| RunnerError::Other(format!("could not open {}: {e}", p.display())))?,
        ),
        _ => None,
    };
    // A thread, so a child that stops reading can still be killed at its deadline.
    Ok(Some(std::thread::spawn(move || {
        if let Some(b) = bytes {
            let _ = pipe.write_all(&b);
        }
        if let Some(mut f) = file {
            let _ = std::io::copy(&mut f, &mut pipe);
        }
    })))
}

/// Runs `cmd` and returns its output when it exits with 0; otherwise [`RunnerError::Exit`] with
/// the last lines of its standard error.
pub fn run_ok(cmd: &Cmd, timeout: Duration) -> Result<Output, RunnerError> {
    let output = run(cmd, timeout)?;
    if output.success() {
        return Ok(output);
    }
    Err(exit_error(cmd, &output))
}

/// Returns the error for a command that exited non-zero, with a short tail of its stderr.
pub fn exit_error(cmd: &Cmd, output: &Output) -> RunnerError {
    let tail: Vec<&str> = output.stderr.trim().lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let status = match output.code {
        Some(c) => format!("exit code {c}"),
        None => "a signal".to_string(),
    };
    RunnerError::Exit {
        command: cmd.display(),
        status: if tail.is_empty() {
            status
        } else {
            format!("{status}: {}", tail.join(" | "))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_arguments_are_masked_and_odd_ones_quoted() {
        let mut c = Cmd::new("docker", ["secret", "create", "a b"]);
        c.args.push(Arg {
            value: "hunter2".into(),
            secret: true,
        });
        c.stdin = Input::File(PathBuf::from("/tmp/x.tar"));
        let shown = c.display();
        assert_eq!(shown, "docker secret create 'a b' *** < /tmp/x.tar");
        assert!(!shown.contains("hunter2"));
    }

    #[test]
    fn both_pipes_are_drained_and_stdin_is_fed() {
        let mut c = Cmd::new(
            "sh",
            [
                "-c",
                "head -c 300000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | tr '\\0' b >&2; cat",
            ],
        );
        c.stdin = Input::Secret(Secret::new("fed".to_string()));
        let out = run_ok(&c, Duration::from_secs(20)).unwrap();
        assert_eq!(out.stdout.len(), 300_003);
        assert!(out.stdout.ends_with("fed"));
        assert_eq!(out.stderr.len(), 300_000);
    }

    #[test]
    fn a_child_past_its_deadline_is_killed() {
        let started = Instant::now();
        let err = run(&Cmd::new("sleep", ["30"]), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, RunnerError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_timeout_also_kills_what_a_shell_started() {
        let started = Instant::now();
        let err = run(
            &Cmd::new("sh", ["-c", "sleep 30 & sleep 30; wait"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(matches!(err, RunnerError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_failing_child_reports_its_stderr_tail() {
        let err = run_ok(
            &Cmd::new("sh", ["-c", "echo one >&2; echo two >&2; exit 3"]),
            Duration::from_secs(5),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("exit code 3: one | two"), "{err}");
    }
}
