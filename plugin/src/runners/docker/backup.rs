//! The backup and restore stages of the docker runner, as backupbot does them: with the stack
//! running, the backed-up services' hooks run in their running containers around the snapshot
//! and around the restore, and each volume is snapshotted whole or narrowed to the paths its
//! label names ([`crate::recipe::backupbot`]).
//!
//! A whole volume's snapshot is proven by a marker written just before it; after the backup the
//! marker is changed, and the restore must bring the snapshot's marker back. A narrowed volume's
//! paths must be in the snapshot and in the volume after the restore. A failing hook fails the
//! stage, naming the hook and the tail of its output.
//!
//! The enrollment's `data_check` commands run the same way, in the app service's running
//! container ([`Stack::run_data_check`]): the container has the recipe's env, and canon adds
//! none of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::app_service::APP_SERVICE;
use super::stack::Stack;
use crate::engine::client::{docker, lines};
use crate::engine::cmd;
use crate::engine::labels;
use crate::process::exec;
use crate::process::ProcessError;
use crate::recipe::backupbot::{Hook, ServiceBackup};
use crate::recipe::files::RecipeFiles;
use crate::runners::warm::helper_image;
use crate::runners::RunnerError;

/// The file written at the root of each wholly backed-up volume before the snapshot.
const BACKUP_MARKER: &str = ".canon-backup-marker";
/// What the marker says after the backup: a restore must replace it with the snapshot's.
const AFTER_BACKUP: &str = "written after the backup";
/// The limit on one hook or `data_check` command (a database dump of a cold install is small).
const HOOK_TIMEOUT: Duration = Duration::from_secs(600);
/// How many lines of a failed hook's output its error shows.
const HOOK_TAIL_LINES: usize = 8;

/// One piece of a snapshot: a tar stream of a path of the volume, and where it goes back.
#[derive(Debug, Clone)]
struct Piece {
    /// The path in the helper container that was copied out (`/canon-vol` or a path in it).
    source: String,
    /// The directory the tar stream is extracted into on restore.
    extract_into: String,
    /// The tar stream on disk.
    file: PathBuf,
}

/// One volume's snapshot.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    /// The compose service that backs it up.
    service: String,
    /// The engine volume.
    volume: String,
    /// The marker the snapshot must bring back (whole volumes only).
    nonce: Option<String>,
    /// Its tar streams.
    pieces: Vec<Piece>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Returns the last [`HOOK_TAIL_LINES`] non-empty lines of a hook's output, joined with ` | `.
fn output_tail(stdout: &str, stderr: &str) -> String {
    let all: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .collect();
    let tail = &all[all.len().saturating_sub(HOOK_TAIL_LINES)..];
    if tail.is_empty() {
        "(no output)".to_string()
    } else {
        tail.join(" | ")
    }
}

/// Returns `bytes` random bytes as hex (the nonce a backup marker holds).
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::fill(buf.as_mut_slice());
    hex::encode(buf)
}

/// Returns the error of a command run in a service's container that did not succeed; `what`
/// names it (`backupbot.backup.pre-hook of service `db``).
fn step_failed(what: &str, script: &str, why: &str, tail: &str) -> RunnerError {
    RunnerError::Other(format!(
        "{what} (`{script}`) failed with {why}; its output ends: {tail}"
    ))
}

/// Returns the parent directory of `path` (relative to the volume root) under `root`.
fn parent_in(root: &str, path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) => format!("{root}/{parent}"),
        None => root.to_string(),
    }
}

impl Stack {
    /// Runs `hook` of `service` (when it sets one) in the service's running container.
    fn run_hook(&self, service: &ServiceBackup, hook: Hook) -> Result<(), RunnerError> {
        let Some(script) = service.hook(hook) else {
            return Ok(());
        };
        tracing::info!(service = %service.service, hook = hook.label(), "Running the hook.");
        let what = format!("{} of service `{}`", hook.label(), service.service);
        self.run_in_service(&service.service, &what, script)
    }

    /// Runs `command`, the step `step` of the enrollment's `data_check`, in the app service's
    /// running container.
    pub(super) fn run_data_check(&self, step: &str, command: &str) -> Result<(), RunnerError> {
        tracing::info!(
            service = APP_SERVICE,
            step,
            "Running the data_check command."
        );
        let what = format!("data_check.{step} in service `{APP_SERVICE}`");
        self.run_in_service(APP_SERVICE, &what, command)
    }

    /// Runs `script` with `sh -c` in the running container of the compose service `service`,
    /// which has the service's env; a failure names `what` and shows the tail of the output.
    fn run_in_service(&self, service: &str, what: &str, script: &str) -> Result<(), RunnerError> {
        let swarm_service = format!("{}_{service}", self.name);
        let container = lines(&docker(&cmd::running_containers(&swarm_service))?)
            .into_iter()
            .next()
            .ok_or_else(|| {
                RunnerError::Other(format!(
                    "{what} cannot run: the service has no running container"
                ))
            })?;
        let c = cmd::exec_shell(&container, script);
        match exec::run(&c, HOOK_TIMEOUT) {
            Ok(out) if out.success() => Ok(()),
            Ok(out) => {
                let why = match out.code() {
                    Some(code) => format!("exit code {code}"),
                    None => "a signal".to_string(),
                };
                Err(step_failed(
                    what,
                    script,
                    &why,
                    &output_tail(&out.stdout, &out.stderr),
                ))
            }
            Err(ProcessError::Timeout { seconds, .. }) => Err(step_failed(
                what,
                script,
                &format!("a timeout after {seconds}s"),
                "(cut off)",
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Backs up the running stack as backupbot does: every backed-up service's pre-hook, then a
    /// snapshot of each of their volumes (whole or narrowed), then every post-hook (also after a
    /// failed snapshot, so a hook that paused a database resumes it). Returns the snapshots.
    pub(super) fn backup(
        &self,
        files: &RecipeFiles,
        backups: &[ServiceBackup],
    ) -> Result<Vec<Snapshot>, RunnerError> {
        if backups.iter().all(|b| b.volumes.is_empty()) {
            return Err(RunnerError::Other(
                "backupbot.backup=true is set but the backed-up services back up no named volume"
                    .into(),
            ));
        }
        let image = helper_image(files)?;
        for b in backups {
            self.run_hook(b, Hook::BackupPre)?;
        }
        let snapshots = self.snapshot_all(&image, backups);
        let mut post = Ok(());
        for b in backups {
            if let Err(e) = self.run_hook(b, Hook::BackupPost) {
                post = Err(e);
                break;
            }
        }
        let snapshots = snapshots?;
        post?;
        Ok(snapshots)
    }

    fn snapshot_all(
        &self,
        image: &str,
        backups: &[ServiceBackup],
    ) -> Result<Vec<Snapshot>, RunnerError> {
        let mut snapshots = Vec::new();
        for b in backups {
            for v in &b.volumes {
                let volume = labels::stack_volume(&self.name, &v.name);
                let paths = v.paths();
                let mut pieces = Vec::new();
                let nonce = if paths.is_empty() {
                    let nonce = random_hex(16);
                    self.volumes
                        .write_file(&volume, image, BACKUP_MARKER, &nonce)?;
                    let file = self.work.join(format!("backup-{}.tar", v.name));
                    self.volumes.snapshot(&volume, image, &file)?;
                    let tar = std::fs::read(&file).map_err(|e| {
                        RunnerError::Other(format!("could not read {}: {e}", file.display()))
                    })?;
                    if !contains(&tar, nonce.as_bytes()) {
                        return Err(RunnerError::Other(format!(
                            "the snapshot of {volume} does not hold the marker written just before it"
                        )));
                    }
                    pieces.push(Piece {
                        source: cmd::HELPER_MOUNT.to_string(),
                        extract_into: "/".to_string(),
                        file,
                    });
                    Some(nonce)
                } else {
                    for (i, path) in paths.iter().enumerate() {
                        let source =
                            format!("{}/{}", cmd::HELPER_MOUNT, path.trim_end_matches('/'));
                        let file = self.work.join(format!("backup-{}-{i}.tar", v.name));
                        if self
                            .volumes
                            .read_path(&volume, image, path, &file)?
                            .is_none()
                        {
                            return Err(RunnerError::Other(format!(
                                "backupbot.backup.volumes.{}.path names `{path}`, which is not in the volume {volume} at backup time",
                                v.name
                            )));
                        }
                        pieces.push(Piece {
                            source,
                            extract_into: parent_in(cmd::HELPER_MOUNT, path),
                            file,
                        });
                    }
                    None
                };
                tracing::debug!(volume = %volume, pieces = pieces.len(), "volume snapshot taken");
                snapshots.push(Snapshot {
                    service: b.service.clone(),
                    volume,
                    nonce,
                    pieces,
                });
            }
        }
        Ok(snapshots)
    }

    /// Restores the snapshots into the running stack as backupbot does, service by service: the
    /// restore pre-hook, the snapshot's files put back into each volume, the restore post-hook.
    /// Before that, each whole volume's marker is changed; after it, the snapshot's marker (and
    /// each narrowed path) must be back.
    pub(super) fn restore(
        &self,
        files: &RecipeFiles,
        backups: &[ServiceBackup],
        snapshots: &[Snapshot],
    ) -> Result<(), RunnerError> {
        let image = helper_image(files)?;
        for s in snapshots.iter().filter(|s| s.nonce.is_some()) {
            self.volumes
                .write_file(&s.volume, &image, BACKUP_MARKER, AFTER_BACKUP)?;
        }
        for b in backups {
            self.run_hook(b, Hook::RestorePre)?;
            for s in snapshots.iter().filter(|s| s.service == b.service) {
                for p in &s.pieces {
                    self.volumes
                        .load_snapshot_into(&s.volume, &image, &p.extract_into, &p.file)?;
                }
                self.check_restored(s, &image)?;
                tracing::debug!(volume = %s.volume, "volume restored and checked");
            }
            self.run_hook(b, Hook::RestorePost)?;
        }
        Ok(())
    }

    /// Checks that a restored volume holds what its snapshot held.
    fn check_restored(&self, s: &Snapshot, image: &str) -> Result<(), RunnerError> {
        if let Some(nonce) = &s.nonce {
            return match self.volumes.read_file(&s.volume, image, BACKUP_MARKER)? {
                Some(tar) if contains(&tar, nonce.as_bytes()) => Ok(()),
                Some(_) => Err(RunnerError::Other(format!(
                    "after restore, {} does not hold the backup's marker (still the one written after the backup)",
                    s.volume
                ))),
                None => Err(RunnerError::Other(format!(
                    "after restore, {} lost its backup marker",
                    s.volume
                ))),
            };
        }
        for p in &s.pieces {
            let path = p
                .source
                .strip_prefix(&format!("{}/", cmd::HELPER_MOUNT))
                .unwrap_or(&p.source);
            let check = self.work.join("restore-check.tar");
            if self
                .volumes
                .read_path(&s.volume, image, path, &check)?
                .is_none()
            {
                return Err(RunnerError::Other(format!(
                    "after restore, {} does not hold `{path}`",
                    s.volume
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_only_when_present() {
        assert!(contains(b"..abc..", b"abc"));
        assert!(!contains(b"..ab..", b"abc"));
        assert!(!contains(b"abc", b""));
    }

    #[test]
    fn a_hooks_error_names_it_and_shows_the_tail_of_its_output() {
        let out: String = (1..=20).map(|i| format!("line {i}\n")).collect();
        let tail = output_tail(&out, "pg_dump: error: connection refused\n");
        assert!(tail.starts_with("line 14 | "), "{tail}");
        assert!(
            tail.ends_with("line 20 | pg_dump: error: connection refused"),
            "{tail}"
        );
        assert_eq!(output_tail("", " \n"), "(no output)");
        let e = step_failed(
            &format!("{} of service `db`", Hook::BackupPre.label()),
            "/pg_backup.sh backup",
            "exit code 1",
            &tail,
        );
        let e = e.to_string();
        assert!(
            e.starts_with("backupbot.backup.pre-hook of service `db` (`/pg_backup.sh backup`) failed with exit code 1; its output ends: line 14"),
            "{e}"
        );
    }

    #[test]
    fn a_narrowed_path_goes_back_into_its_parent_directory() {
        assert_eq!(parent_in("/canon-vol", "backup.sql"), "/canon-vol");
        assert_eq!(parent_in("/canon-vol", "db/dump.sql"), "/canon-vol/db");
        assert_eq!(parent_in("/canon-vol", "media/"), "/canon-vol");
    }
}
