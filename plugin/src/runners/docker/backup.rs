//! The backup and restore stages of the docker runner: snapshots of the backed-up volumes taken
//! while the stack is stopped, each proven by a marker written just before it, and a restore
//! into fresh volumes that must bring the marker back and drop what was written after.

use std::path::PathBuf;

use super::cmd;
use super::engine::random_hex;
use super::stack::Stack;
use super::volumes::helper_image;
use crate::runners::compose_facts::RecipeFiles;
use crate::runners::RunnerError;

/// The file written into each backed-up volume before the snapshot.
const BACKUP_MARKER: &str = ".canon-backup-marker";
/// The file written after the snapshot: a restore must make it disappear.
const AFTER_BACKUP_MARKER: &str = ".canon-after-backup";

/// One volume's snapshot and the marker it must hold.
#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    volume: String,
    file: PathBuf,
    nonce: String,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

impl Stack {
    /// Stops the stack, writes a fresh marker into each backed-up volume and snapshots it.
    /// Returns the snapshots with their markers.
    pub(super) fn backup(&self, files: &RecipeFiles) -> Result<Vec<Snapshot>, RunnerError> {
        let image = helper_image(files)?;
        self.stop()?;
        let keys = files.facts.backup_volumes();
        if keys.is_empty() {
            return Err(RunnerError::Other(
                "backupbot.backup=true is set but the backed-up services mount no named volume"
                    .into(),
            ));
        }
        let mut snapshots = Vec::new();
        for key in keys {
            let volume = cmd::stack_volume(&self.name, &key);
            let nonce = random_hex(16);
            self.write_file(&volume, &image, BACKUP_MARKER, &nonce)?;
            let file = self.work.join(format!("backup-{key}.tar"));
            self.snapshot(&volume, &image, &file)?;
            let tar = std::fs::read(&file).map_err(|e| {
                RunnerError::Other(format!("could not read {}: {e}", file.display()))
            })?;
            if !contains(&tar, nonce.as_bytes()) {
                return Err(RunnerError::Other(format!(
                    "the snapshot of {volume} does not hold the marker written just before it"
                )));
            }
            tracing::debug!(volume = %volume, bytes = tar.len(), "volume snapshot taken");
            snapshots.push(Snapshot {
                volume,
                file,
                nonce,
            });
        }
        Ok(snapshots)
    }

    /// Changes each volume after its snapshot, restores the snapshot into a fresh volume and
    /// checks the marker came back and the change did not.
    pub(super) fn restore(
        &self,
        files: &RecipeFiles,
        snapshots: &[Snapshot],
    ) -> Result<(), RunnerError> {
        let image = helper_image(files)?;
        for s in snapshots {
            self.write_file(
                &s.volume,
                &image,
                AFTER_BACKUP_MARKER,
                "written after the backup",
            )?;
            self.recreate_volume(&s.volume)?;
            self.load_snapshot(&s.volume, &image, &s.file)?;
            match self.read_file(&s.volume, &image, BACKUP_MARKER)? {
                Some(tar) if contains(&tar, s.nonce.as_bytes()) => {}
                Some(_) => {
                    return Err(RunnerError::Other(format!(
                        "after restore, {} holds a different backup marker",
                        s.volume
                    )))
                }
                None => {
                    return Err(RunnerError::Other(format!(
                        "after restore, {} lost its backup marker",
                        s.volume
                    )))
                }
            }
            if self
                .read_file(&s.volume, &image, AFTER_BACKUP_MARKER)?
                .is_some()
            {
                return Err(RunnerError::Other(format!(
                    "after restore, {} still holds a file written after the backup",
                    s.volume
                )));
            }
            tracing::debug!(volume = %s.volume, "volume restored and its marker checked");
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
}
