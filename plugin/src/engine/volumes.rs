//! Reading and writing volumes through helper containers: created, never started, mounting the
//! volume, so `docker cp` works with any local image (the recipe's own).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::client::{docker, run};
use super::cmd::{self, Kind};
use super::EngineError;
use crate::process::exec;

/// The helper containers of one stack: named `<stack>-canon-helper-<n>`, labelled as the stack's
/// own (kind `helper`, so the cleanup finds one a killed run left), with a scratch folder for the
/// files copied in and out.
#[derive(Debug)]
pub struct Helpers {
    /// The stack the helpers are named after.
    stack: String,
    /// The labels every helper carries.
    labels: BTreeMap<String, String>,
    /// The scratch folder for copied files.
    work: PathBuf,
    /// How many helpers were created (their names count up).
    count: Cell<u32>,
}

impl Helpers {
    /// Returns the helpers of `stack`, labelled `labels`, copying files through `work`.
    pub fn new(stack: &str, labels: BTreeMap<String, String>, work: &Path) -> Self {
        Helpers {
            stack: stack.to_string(),
            labels,
            work: work.to_path_buf(),
            count: Cell::new(0),
        }
    }

    fn next_name(&self) -> String {
        let n = self.count.get() + 1;
        self.count.set(n);
        format!("{}-canon-helper-{n}", self.stack)
    }

    /// Runs `f` with a created (never started) container mounting `volume`; always removes it.
    fn with_helper<T>(
        &self,
        volume: &str,
        image: &str,
        f: impl FnOnce(&str) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let name = self.next_name();
        docker(&cmd::helper_create(&name, image, volume, &self.labels))?;
        let result = f(&name);
        if let Err(e) = docker(&cmd::remove(Kind::Container, std::slice::from_ref(&name))) {
            tracing::warn!(container = %name, error = %e, "could not remove a helper container");
        }
        result
    }

    /// Writes the contents of `volume` as a tar stream to `file`.
    pub fn snapshot(&self, volume: &str, image: &str, file: &Path) -> Result<(), EngineError> {
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_out(h, cmd::HELPER_MOUNT, file)).map(drop)
        })
    }

    /// Extracts the tar stream `file` into `volume`.
    pub fn load_snapshot(&self, volume: &str, image: &str, file: &Path) -> Result<(), EngineError> {
        self.load_snapshot_into(volume, image, "/", file)
    }

    /// Extracts the tar stream `file` into the directory `dir` of a helper mounting `volume`
    /// (`/` for a whole-volume snapshot, a directory under [`cmd::HELPER_MOUNT`] for a path).
    pub fn load_snapshot_into(
        &self,
        volume: &str,
        image: &str,
        dir: &str,
        file: &Path,
    ) -> Result<(), EngineError> {
        self.with_helper(volume, image, |h| {
            docker(&cmd::cp_in(h, dir, file)).map(drop)
        })
    }

    /// Writes `content` as the file `name` at the root of `volume`.
    pub fn write_file(
        &self,
        volume: &str,
        image: &str,
        name: &str,
        content: &str,
    ) -> Result<(), EngineError> {
        let host = self.work.join(format!("{volume}{name}"));
        std::fs::write(&host, content).map_err(|source| EngineError::File {
            action: "write",
            path: host.clone(),
            source,
        })?;
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
    pub fn read_file(
        &self,
        volume: &str,
        image: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let tmp = self.work.join(format!("{volume}{name}.read.tar"));
        if self.read_path(volume, image, name, &tmp)?.is_none() {
            return Ok(None);
        }
        std::fs::read(&tmp)
            .map(Some)
            .map_err(|source| EngineError::File {
                action: "read",
                path: tmp,
                source,
            })
    }

    /// Writes the volume's `path` (relative to its root) as a tar stream to `file`; returns
    /// `None` when the path does not exist.
    pub fn read_path(
        &self,
        volume: &str,
        image: &str,
        path: &str,
        file: &Path,
    ) -> Result<Option<()>, EngineError> {
        let found = self.with_helper(volume, image, |h| {
            let c = cmd::cp_out(h, &format!("{}/{path}", cmd::HELPER_MOUNT), file);
            let out = run(&c)?;
            if out.success() {
                Ok(true)
            } else if out.stderr.contains("Could not find") || out.stderr.contains("No such") {
                Ok(false)
            } else {
                Err(exec::exit_error(&c, &out).into())
            }
        })?;
        Ok(found.then_some(()))
    }

    /// Copies `from` into the fresh volume `to`, created with `labels`; returns the size of the
    /// tar stream copied (the volume's files with their headers).
    pub fn copy_volume(
        &self,
        from: &str,
        to: &str,
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<u64, EngineError> {
        let file = self.work.join(format!("{from}.copy.tar"));
        self.snapshot(from, image, &file)?;
        let bytes = std::fs::metadata(&file)
            .map(|m| m.len())
            .map_err(|source| EngineError::File {
                action: "read",
                path: file.clone(),
                source,
            })?;
        docker(&cmd::volume_create(to, "local", labels))?;
        self.load_snapshot(to, image, &file)?;
        let _ = std::fs::remove_file(&file);
        Ok(bytes)
    }
}
