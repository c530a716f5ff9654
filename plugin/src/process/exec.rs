//! The one child-process executor of every runner (command, docker, abra) and of the engine
//! access: a child is logged at
//! DEBUG as `+ program args` with secret arguments masked (then the tail of its output), and
//! recorded the same way in the [`transcript`] a failed stage prints; it gets the environment
//! [`child_environment`] decides, runs in its own process group with both pipes drained concurrently, and is killed
//! with its whole group at its deadline or when the executor unwinds.
//!
//! Separate from the command builders so those stay pure (a [`Cmd`] is plain data) and from the
//! ladder so every child of every runner shares one well-tested path. It takes values only: what
//! a child inherits is an allow-list the command names ([`Inherit`]), never a credential.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use canon_shared::secret::Secret;

use super::transcript;
use super::ProcessError;

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

/// Where a command's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// Captured into [`Output`] for the caller (up to a cap).
    Capture,
    /// Copied to the step log as it comes, line by line with a `| ` prefix (stdout to our stdout,
    /// stderr to our stderr); nothing is captured. For long harness runs a reader watches live.
    Stream,
}

/// A child process described as data, built by pure functions and run by [`run`].
#[derive(Debug, Clone)]
pub struct Cmd {
    /// The program (`docker`, `abra`, `sh`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// Extra environment variables, added by [`child_environment`].
    pub env: Vec<(String, String)>,
    /// What the child inherits from canon's own environment before `env` is added.
    pub inherit: Inherit,
    /// The working directory, when not the current one.
    pub cwd: Option<PathBuf>,
    /// Standard input.
    pub stdin: Input,
    /// When set, standard output goes to this file instead of being captured.
    pub stdout_file: Option<PathBuf>,
    /// Whether the output is captured or streamed to the log.
    pub output: OutputMode,
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
            inherit: Inherit::Tools,
            cwd: None,
            stdin: Input::Null,
            stdout_file: None,
            output: OutputMode::Capture,
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
    /// How it ended.
    pub status: ExitStatus,
    /// Captured standard output (empty when it went to a file or was streamed).
    pub stdout: String,
    /// Captured standard error (empty when it was streamed).
    pub stderr: String,
}

impl Output {
    /// Returns the exit code (`None` when killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Returns true when the child exited with 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// What a child inherits from canon's environment: always an allow-list
/// ([`canon_shared::process_env::child_variable`]), never a credential or its `*_FILE` path, and
/// never anything a recipe wrote (a recipe's env reaches only compose interpolation, done by
/// canon, and the containers, through the resolved compose files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inherit {
    /// Only what the docker and abra CLIs need ([`TOOL_VARIABLES`], `LC_*` and `DOCKER_*`). The
    /// default.
    Tools,
    /// What a tool gets, plus Drone's build metadata (`DRONE_*`, never its clone credentials):
    /// the operator's own harness, which also gets the run's documented `CANON_*` variables and
    /// the `env` setting's through [`Cmd::env`].
    Harness,
}

/// The variables a [`Inherit::Tools`] child keeps, besides every `DOCKER_*` and `LC_*`.
pub const TOOL_VARIABLES: &[&str] = canon_shared::process_env::CHILD_VARIABLES;

/// Returns the part of `parent` an [`Inherit::Tools`] child keeps.
pub fn tool_environment(
    parent: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    parent
        .into_iter()
        .filter(|(k, _)| canon_shared::process_env::child_variable(k))
        .collect()
}

/// Returns the part of `parent` an [`Inherit::Harness`] child keeps.
pub fn harness_environment(
    parent: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    use canon_shared::process_env::{child_variable, is_credential};
    parent
        .into_iter()
        .filter(|(k, _)| child_variable(k) || (k.starts_with("DRONE_") && !is_credential(k)))
        .collect()
}

/// Returns canon's live environment (credentials are already out of it, see
/// [`canon_shared::process_env::protect`]); variables that are not UTF-8 are skipped.
fn live_environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

/// Sets a child's environment: a cleared one, with what `inherit` allows of canon's own, plus
/// `added` (the command's own variables: `CANON_*`, `ABRA_DIR`). The one place that decides what
/// a child of any runner sees.
pub fn child_environment(command: &mut Command, inherit: &Inherit, added: &[(String, String)]) {
    command.env_clear();
    match inherit {
        Inherit::Tools => command.envs(tool_environment(live_environment())),
        Inherit::Harness => command.envs(harness_environment(live_environment())),
    };
    command.envs(added.iter().map(|(k, v)| (k, v)));
}

/// Builds the process for `cmd`: program, arguments, [`child_environment`], working directory,
/// standard input (null or a pipe), both output pipes, and its own process group (so a timeout
/// also kills whatever a shell command started). `stdout_file` is opened by [`run`].
pub fn command(cmd: &Cmd) -> Command {
    let mut command = Command::new(&cmd.program);
    command.args(cmd.args.iter().map(|a| &a.value));
    child_environment(&mut command, &cmd.inherit, &cmd.env);
    if let Some(dir) = &cmd.cwd {
        command.current_dir(dir);
    }
    command
        .stdin(match cmd.stdin {
            Input::Null => Stdio::null(),
            _ => Stdio::piped(),
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    command
}

const MAX_CAPTURE: usize = 8 << 20;

/// Where a drained pipe's bytes go.
#[derive(Clone, Copy)]
enum Sink {
    Keep,
    EchoStdout,
    EchoStderr,
}

fn drain<R: Read + Send + 'static>(pipe: R, sink: Sink) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || match sink {
        Sink::Keep => keep(pipe),
        Sink::EchoStdout => echo(pipe, std::io::stdout),
        Sink::EchoStderr => echo(pipe, std::io::stderr),
    })
}

fn keep<R: Read>(mut pipe: R) -> Vec<u8> {
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
}

fn echo<R: Read, W: Write>(pipe: R, to: impl Fn() -> W) -> Vec<u8> {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let _ = writeln!(to(), "| {}", text.trim_end_matches(['\n', '\r']));
            }
        }
    }
    Vec::new()
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> String {
    handle
        .and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// A started child whose whole process group is killed and reaped when this is dropped: after a
/// normal exit (whatever it left running is part of its run, and would hold the pipes open), at
/// its deadline, and on an early return or a panic of the executor.
struct Group {
    child: Child,
}

impl Group {
    /// Waits for the group leader until `deadline`; `Ok(None)` when the deadline passed first.
    fn wait_until(&mut self, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
        loop {
            match self.child.try_wait()? {
                Some(status) => return Ok(Some(status)),
                None if Instant::now() >= deadline => return Ok(None),
                None => std::thread::sleep(Duration::from_millis(25)),
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The leader was started with `process_group(0)`: the group id is its pid.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd`, killing it with its process group (and reporting [`ProcessError::Timeout`]) when
/// it outlives `timeout`.
///
/// Returns the output whatever the exit code; callers decide what a non-zero exit means (see
/// [`run_ok`]).
pub fn run(cmd: &Cmd, timeout: Duration) -> Result<Output, ProcessError> {
    let shown = cmd.display();
    // Commands are DEBUG: at the default level a run shows its stages, and a failed stage
    // prints the transcript (issue 15).
    match &cmd.cwd {
        Some(dir) => tracing::debug!(cwd = %dir.display(), "+ {shown}"),
        None => tracing::debug!("+ {shown}"),
    }
    let result = run_child(cmd, &shown, timeout);
    let outcome = match &result {
        Ok(output) => {
            let mut tail = transcript::output_lines(&output.stdout, &output.stderr);
            if !output.success() {
                tail.push(match output.code() {
                    Some(c) => format!("(exit code {c})"),
                    None => "(killed by a signal)".to_string(),
                });
            }
            tail
        }
        Err(ProcessError::Timeout { seconds, .. }) => vec![format!("(timed out after {seconds}s)")],
        Err(e) => vec![format!("({e})")],
    };
    if !outcome.is_empty() {
        tracing::debug!("{}", outcome.join("\n"));
    }
    let mut lines = vec![format!("+ {shown}")];
    lines.extend(outcome);
    transcript::record(lines);
    result
}

/// Starts the child, feeds and drains it, and waits for it until `timeout`.
fn run_child(cmd: &Cmd, shown: &str, timeout: Duration) -> Result<Output, ProcessError> {
    let mut command = command(cmd);
    if let Some(path) = &cmd.stdout_file {
        let file = std::fs::File::create(path).map_err(|source| ProcessError::File {
            action: "create",
            path: path.clone(),
            source,
        })?;
        command.stdout(Stdio::from(file));
    }
    let child = command.spawn().map_err(|source| ProcessError::Spawn {
        program: cmd.program.clone(),
        source,
    })?;
    let deadline = Instant::now() + timeout;
    let mut group = Group { child };
    let (out_sink, err_sink) = match cmd.output {
        OutputMode::Capture => (Sink::Keep, Sink::Keep),
        OutputMode::Stream => (Sink::EchoStdout, Sink::EchoStderr),
    };
    let out = group.child.stdout.take().map(|p| drain(p, out_sink));
    let err = group.child.stderr.take().map(|p| drain(p, err_sink));
    let feeder = feed_stdin(&mut group.child, &cmd.stdin)?;
    let status = group.wait_until(deadline);
    drop(group);
    let _ = feeder.map(|f| f.join());
    let (stdout, stderr) = (join(out), join(err));
    match status {
        Ok(Some(status)) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        Ok(None) => Err(ProcessError::Timeout {
            what: shown.to_string(),
            seconds: timeout.as_secs(),
        }),
        Err(source) => Err(ProcessError::Wait {
            command: shown.to_string(),
            source,
        }),
    }
}

fn feed_stdin(child: &mut Child, input: &Input) -> Result<Option<JoinHandle<()>>, ProcessError> {
    let Some(mut pipe) = child.stdin.take() else {
        return Ok(None);
    };
    let bytes: Option<Vec<u8>> = match input {
        Input::Null => None,
        Input::Secret(s) => Some(s.expose().as_bytes().to_vec()),
        Input::File(_) => None,
    };
    let file = match input {
        Input::File(p) => Some(std::fs::File::open(p).map_err(|source| ProcessError::File {
            action: "open",
            path: p.clone(),
            source,
        })?),
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

/// Runs `cmd` and returns its output when it exits with 0; otherwise [`ProcessError::Exit`] with
/// the last lines of its standard error.
pub fn run_ok(cmd: &Cmd, timeout: Duration) -> Result<Output, ProcessError> {
    let output = run(cmd, timeout)?;
    if output.success() {
        return Ok(output);
    }
    Err(exit_error(cmd, &output))
}

/// Returns the error for a command that exited non-zero, with a short tail of its stderr.
pub fn exit_error(cmd: &Cmd, output: &Output) -> ProcessError {
    let tail: Vec<&str> = output.stderr.trim().lines().rev().take(3).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let status = match output.code() {
        Some(c) => format!("exit code {c}"),
        None => "a signal".to_string(),
    };
    ProcessError::Exit {
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
    use std::path::Path;

    #[test]
    fn a_tools_child_keeps_only_what_the_docker_cli_needs() {
        let parent = [
            ("PATH", "/usr/bin"),
            ("HOME", "/root"),
            ("DOCKER_HOST", "unix:///run/docker.sock"),
            ("DOCKER_CONFIG", "/etc/docker-cli"),
            ("PLUGIN_MIRROR_TOKEN", "s3cr3t"),
            ("DRONE_BUILD_NUMBER", "7"),
            ("COMPOSE_FILE", "stray.yml"),
            ("TIMEOUT", "1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let mut kept: Vec<String> = tool_environment(parent)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        kept.sort();
        assert_eq!(kept, ["DOCKER_CONFIG", "DOCKER_HOST", "HOME", "PATH"]);
    }

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
    fn every_child_starts_from_an_allow_list_and_gets_its_own_variables() {
        let mut c = Cmd::new("sh", ["-c", "./harness.sh --all"]);
        c.env = vec![("CANON_TAG".to_string(), "1.0.0+1".to_string())];
        c.cwd = Some(PathBuf::from("/w/checkout"));
        for inherit in [Inherit::Tools, Inherit::Harness] {
            c.inherit = inherit.clone();
            let built = command(&c);
            assert_eq!(built.get_program(), "sh");
            let args: Vec<_> = built.get_args().collect();
            assert_eq!(args, ["-c", "./harness.sh --all"]);
            assert_eq!(built.get_current_dir(), Some(Path::new("/w/checkout")));
            let envs: Vec<_> = built.get_envs().collect();
            assert!(envs.contains(&("CANON_TAG".as_ref(), Some("1.0.0+1".as_ref()))));
            for (name, value) in &envs {
                let name = name.to_string_lossy();
                assert!(
                    name == "CANON_TAG"
                        || value.is_some() && canon_shared::process_env::child_variable(&name)
                        || inherit == Inherit::Harness && name.starts_with("DRONE_"),
                    "{inherit:?}: {name}"
                );
            }
        }
        let parent = [
            ("PATH", "/usr/bin"),
            ("DRONE_BUILD_NUMBER", "7"),
            ("DRONE_NETRC_PASSWORD", "s3cr3t"),
            ("PLUGIN_MIRROR_TOKEN", "s3cr3t"),
            ("PLUGIN_MIRROR_TOKEN_FILE", "/run/secrets/t"),
            ("CANON_FORGE_TOKEN", "s3cr3t"),
            ("LD_PRELOAD", "/tmp/x.so"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let kept: Vec<String> = harness_environment(parent)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kept, ["PATH", "DRONE_BUILD_NUMBER"]);
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
    fn streamed_output_is_not_captured() {
        let mut c = Cmd::new("sh", ["-c", "echo out; echo err >&2; exit 3"]);
        c.output = OutputMode::Stream;
        let out = run(&c, Duration::from_secs(5)).unwrap();
        assert_eq!(out.code(), Some(3));
        assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("", ""));
    }

    #[test]
    fn a_child_past_its_deadline_is_killed() {
        let started = Instant::now();
        let err = run(&Cmd::new("sleep", ["30"]), Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err}");
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
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn what_a_finished_child_left_running_goes_with_it() {
        let started = Instant::now();
        let out = run_ok(
            &Cmd::new("sh", ["-c", "sleep 30 & echo started"]),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(out.stdout.trim(), "started");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_child_goes_to_the_transcript_masked_with_its_output_and_exit_code() {
        transcript::start();
        let mut c = Cmd::new("sh", ["-c", "echo out; echo err >&2; exit 3"]);
        c.args.push(Arg {
            value: "hunter2".into(),
            secret: true,
        });
        run(&c, Duration::from_secs(5)).unwrap();
        assert_eq!(
            transcript::take(),
            [
                "+ sh -c 'echo out; echo err >&2; exit 3' ***",
                "| out",
                "| err",
                "(exit code 3)"
            ]
        );
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
