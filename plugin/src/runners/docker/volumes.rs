//! Reading and writing a stack's volumes through helper containers: created, never started,
//! mounting the volume, so `docker cp` works with any local image (the recipe's own).

use std::collections::BTreeMap;
use std::path::Path;

use super::cmd::{self, Kind};
use super::engine::{docker, COMMAND_TIMEOUT};
use super::stack::Stack;
use crate::recipe::files::RecipeFiles;
use crate::runners::exec;
use crate::runners::RunnerError;

impl Stack {
    fn helper_name(&self) -> String {
        let n = self.helpers.get() + 1;
        self.helpers.set(n);
        format!("{}-canon-helper-{n}", self.name)
    }

    /// Runs `f` with a created (never started) container mounting `volume`; always removes it.
    fn with_helper<T>(
        &self,
        volume: &str,
        image: &str,
        f: impl FnOnce(&str) -> Result<T, RunnerError>,
    ) -> Result<T, RunnerError> {
        let name = self.helper_name();
        let labels = self.labels.map(Some("helper"));
        docker(&cmd::helper_create(&name, image, volume, &labels))?;
        let result = f(&name);
        if let Err(e) = docker(&cmd::remove(Kind::Container, std::slice::from_ref(&name))) {
            tracing::warn!(container = %name, error = %e, "could not remove a helper container");
        }
        result
    }

    /// Writes the contents of `volume` as a tar stream to `file`.
    pub(super) fn snapshot(
        &self,
        volume: &str,
        image: &str,
        file: &Path,
    ) -> Result<(), RunnerError> {
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_out(h, cmd::HELPER_MOUNT, file)).map(drop)
        })
    }

    /// Extracts the tar stream `file` into `volume`.
    pub(super) fn load_snapshot(
        &self,
        volume: &str,
        image: &str,
        file: &Path,
    ) -> Result<(), RunnerError> {
        self.load_snapshot_into(volume, image, "/", file)
    }

    /// Extracts the tar stream `file` into the directory `dir` of a helper mounting `volume`
    /// (`/` for a whole-volume snapshot, a directory under [`cmd::HELPER_MOUNT`] for a path).
    pub(super) fn load_snapshot_into(
        &self,
        volume: &str,
        image: &str,
        dir: &str,
        file: &Path,
    ) -> Result<(), RunnerError> {
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_in(h, dir, file)).map(drop)
        })
    }

    /// Writes `content` as the file `name` at the root of `volume`.
    pub(super) fn write_file(
        &self,
        volume: &str,
        image: &str,
        name: &str,
        content: &str,
    ) -> Result<(), RunnerError> {
        let host = self.work.join(format!("{volume}{name}"));
        std::fs::write(&host, content)
            .map_err(|e| RunnerError::Other(format!("could not write {}: {e}", host.display())))?;
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_file_in(
                h,
                &host,
                &format!("{}/{name}", cmd::HELPER_MOUNT),
            ))
            .map(drop)
        })
    }

    /// Returns a tar stream holding the volume's file `name`, or `None` when it does not exist.
    pub(super) fn read_file(
        &self,
        volume: &str,
        image: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, RunnerError> {
        let tmp = self.work.join(format!("{volume}{name}.read.tar"));
        if self.read_path(volume, image, name, &tmp)?.is_none() {
            return Ok(None);
        }
        std::fs::read(&tmp)
            .map(Some)
            .map_err(|e| RunnerError::Other(format!("could not read {}: {e}", tmp.display())))
    }

    /// Writes the volume's `path` (relative to its root) as a tar stream to `file`; returns
    /// `None` when the path does not exist.
    pub(super) fn read_path(
        &self,
        volume: &str,
        image: &str,
        path: &str,
        file: &Path,
    ) -> Result<Option<()>, RunnerError> {
        let found = self.with_helper(volume, image, |h| {
            let c = cmd::cp_out(h, &format!("{}/{path}", cmd::HELPER_MOUNT), file);
            let out = exec::run(&c, COMMAND_TIMEOUT)?;
            if out.success() {
                Ok(true)
            } else if out.stderr.contains("Could not find") || out.stderr.contains("No such") {
                Ok(false)
            } else {
                Err(exec::exit_error(&c, &out))
            }
        })?;
        Ok(found.then_some(()))
    }

    /// Copies `from` into the fresh volume `to`, created with `labels`; returns the size of the
    /// tar stream copied (the volume's files with their headers).
    pub(super) fn copy_volume(
        &self,
        from: &str,
        to: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64, RunnerError> {
        let file = self.work.join(format!("{from}.copy.tar"));
        self.snapshot(from, image, &file)?;
        let bytes = std::fs::metadata(&file)
            .map(|m| m.len())
            .map_err(|e| RunnerError::Other(format!("could not read {}: {e}", file.display())))?;
        docker(&cmd::volume_create(to, "local", labels))?;
        self.load_snapshot(to, image, &file)?;
        let _ = std::fs::remove_file(&file);
        Ok(bytes)
    }
}

/// Returns the first local image the files' services use (helper containers need one).
pub(super) fn helper_image(files: &RecipeFiles) -> Result<String, RunnerError> {
    files
        .facts
        .services
        .iter()
        .find_map(|s| s.image.clone())
        .map(|i| i.split('@').next().unwrap_or(&i).to_string())
        .ok_or_else(|| RunnerError::Other("no service names an image".into()))
}
