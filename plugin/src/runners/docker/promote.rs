//! The promote step of the docker runner: the warm canonical `warm-<recipe>` moves to the tag on
//! its long-lived volumes, with `.prev` copies as the known-good until the canonical names the
//! tag; and the settle that finishes or rolls back a promote against the canonical.
//!
//! # Order, and what a crash leaves
//! 1. The warm stack is stopped; each live volume `V` is copied to `V.prev`; then the marker
//!    volume `warm-<recipe>.promoting` is created, naming the version and commit promoted to and
//!    the live volumes that have a copy. The marker is one `docker volume create`: it exists
//!    only once every copy is complete.
//! 2. The tag is deployed on the live volumes, waits healthy, is stopped.
//! 3. Tag mode writes `canonical.json` and the history line.
//! 4. [`Stack::settle`] sees that the canonical names the marker's version: it drops the `.prev`
//!    copies, then the marker.
//!
//! A crash anywhere is repaired by the next settle (tag mode settles before every gate):
//! `.prev` copies without a marker were still being made, so the live data is untouched and the
//! copies are dropped; a marker whose version the canonical names means the promote finished
//! (drop the copies); a marker the canonical does not name means it did not, so every copy is put
//! back, volumes the new deploy created are removed, and the canonical stays. Each repair step is
//! idempotent: a copy is dropped only after its volume was restored, the marker only at the end.

use std::collections::BTreeMap;

use canon_shared::state::CanonicalRecord;

use super::app_service::DeployedVersion;
use super::stack::{AppEnv, Stack};
use crate::engine::client::{docker, inspect_json, list_ids, run, volume_labels};
use crate::engine::cmd::{self, Kind};
use crate::engine::labels;
use crate::engine::labels::label_map;
use crate::process::exec;
use crate::runners::warm::helper_image;
use crate::runners::{RunContext, RunnerError};
use canon_shared::fault;

/// `canon.kind` of the marker volume of a promote in progress.
const PROMOTING_KIND: &str = "warm-promoting";
/// The marker's label: the version promoted to.
const VERSION_LABEL: &str = "canon.promote-version";
/// The marker's label: the commit promoted to.
const COMMIT_LABEL: &str = "canon.promote-commit";
/// The marker's label: the live volumes with a `.prev` copy, comma-separated.
const VOLUMES_LABEL: &str = "canon.promote-volumes";
/// The marker's label: a local image for helper containers.
const IMAGE_LABEL: &str = "canon.promote-image";

/// A promote in progress, as its marker volume records it.
struct Promoting {
    version: String,
    /// `None` when the label is missing or no full commit id (no promote of canon's wrote it).
    commit: Option<canon_shared::commit::CommitId>,
    /// The live volumes that had data before the promote (each with a `.prev` copy until put
    /// back or dropped).
    volumes: Vec<String>,
    image: String,
}

impl Promoting {
    fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        Promoting {
            version: get(VERSION_LABEL),
            commit: get(COMMIT_LABEL).parse().ok(),
            volumes: get(VOLUMES_LABEL)
                .split(',')
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .collect(),
            image: get(IMAGE_LABEL),
        }
    }

    /// Returns true when `canonical` names the version and commit this promote was for.
    fn finished_by(&self, canonical: Option<&CanonicalRecord>) -> bool {
        canonical.is_some_and(|c| {
            c.version.to_string() == self.version
                && self
                    .commit
                    .as_ref()
                    .is_some_and(|m| c.commit.same_object(m))
        })
    }
}

impl Stack {
    fn marker_name(&self) -> String {
        labels::promoting_marker(&self.name)
    }

    /// Returns the promote in progress, when its marker exists.
    fn promoting(&self) -> Result<Option<Promoting>, RunnerError> {
        let info = inspect_json(Kind::Volume, &[self.marker_name()])?;
        Ok(info
            .first()
            .map(|i| Promoting::from_labels(&label_map(&i["Labels"]))))
    }

    /// Returns this stack's `.prev` copies.
    fn prev_copies(&self) -> Result<Vec<String>, RunnerError> {
        let filter = format!("{}=warm-prev", labels::KIND_LABEL);
        let ours = format!("{}_", self.name);
        Ok(list_ids(Kind::Volume, &filter)?
            .into_iter()
            .filter(|v| v.starts_with(&ours) && v.ends_with(".prev"))
            .collect())
    }

    /// Returns this stack's live volumes (its `.prev` copies carry the stack label too).
    fn live_volumes(&self) -> Result<Vec<String>, RunnerError> {
        Ok(list_ids(Kind::Volume, &self.stack_filter())?
            .into_iter()
            .filter(|v| !v.ends_with(".prev"))
            .collect())
    }

    /// Deploys the tag as the warm canonical on its existing volumes. On success the `.prev`
    /// copies and the marker stay until [`Stack::settle`] sees the canonical name the tag; when
    /// the deploy is not healthy they are put back here (a first promote leaves nothing).
    pub(super) fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError> {
        let files = self.load(&ctx.checkout)?;
        let image = helper_image(&files)?;
        let unsettled = self.prev_copies()?;
        if !unsettled.is_empty() || self.promoting()?.is_some() {
            return Err(RunnerError::Other(format!(
                "an earlier promote of {} is not settled ({unsettled:?}); the next run settles it",
                self.name
            )));
        }
        self.stop()?;
        let live = self.live_volumes()?;
        for v in &live {
            let mut labels = volume_labels(v)?;
            labels.insert(labels::KIND_LABEL.into(), "warm-prev".into());
            labels.insert(VERSION_LABEL.into(), ctx.tested_name().to_string());
            self.volumes
                .copy_volume(v, &labels::prev_volume(v), &image, &labels)?;
        }
        let mut marker = self.labels.map(Some(PROMOTING_KIND));
        marker.insert(VERSION_LABEL.into(), ctx.tested_name().to_string());
        marker.insert(COMMIT_LABEL.into(), ctx.commit.to_string());
        marker.insert(VOLUMES_LABEL.into(), live.join(","));
        marker.insert(IMAGE_LABEL.into(), image.clone());
        docker(&cmd::volume_create(&self.marker_name(), "local", &marker))?;
        fault::point("promote:copied");

        let outcome = self
            .deploy(
                &ctx.checkout,
                &DeployedVersion::release(ctx.tested_name()),
                &AppEnv::of(&ctx.checkout),
            )
            .and_then(|f| self.wait_healthy(&f, self.deploy_timeout(&f)?).map(drop));
        if outcome.is_ok() {
            fault::point("promote:healthy");
        }
        let stopped = self.stop();
        match outcome.and(stopped) {
            Ok(()) => {
                tracing::info!(stack = %self.name, volumes = ?live, "warm canonical deployed; the known-good copies stay until the canonical is written");
                Ok(())
            }
            Err(e) => {
                if live.is_empty() {
                    // A first promote that failed: leave no half-made canonical behind.
                    let problems = self.teardown();
                    if !problems.is_empty() {
                        tracing::error!(stack = %self.name, ?problems, "could not remove a failed first warm canonical");
                    }
                } else {
                    let promoting = self.promoting()?.ok_or_else(|| {
                        RunnerError::Other(format!("the marker of {} vanished", self.name))
                    })?;
                    self.roll_back(&promoting)?;
                    tracing::warn!(stack = %self.name, "promote failed; the previous warm volumes were put back");
                }
                Err(e)
            }
        }
    }

    /// Finishes or rolls back whatever promote left copies behind, against `canonical` (the
    /// canonical as it stands now). Does nothing when no promote is pending.
    pub(super) fn settle(
        &self,
        ctx: &RunContext,
        canonical: Option<&CanonicalRecord>,
    ) -> Result<(), RunnerError> {
        let promoting = self.promoting()?;
        let prevs = self.prev_copies()?;
        if promoting.is_none() && prevs.is_empty() {
            return Ok(());
        }
        // A promote killed after its deploy was healthy left the stack running.
        self.stop()?;
        match promoting {
            Some(p) if p.finished_by(canonical) => {
                tracing::info!(stack = %self.name, version = %p.version, "the canonical names the promoted version; dropping the known-good copies");
                for prev in &prevs {
                    docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
                }
                fault::point("promote:dropped");
                docker(&cmd::remove(Kind::Volume, &[self.marker_name()]))?;
            }
            Some(p) => {
                tracing::warn!(stack = %self.name, version = %p.version, canonical = ?canonical.map(|c| c.version.to_string()), "a promote did not finish; putting the known-good copies back");
                self.roll_back(&p)?;
            }
            None => {
                // No marker: the copies were still being made and the live data is untouched;
                // copies without the version label predate the marker and are the known-good.
                for prev in &prevs {
                    if volume_labels(prev)?.contains_key(VERSION_LABEL) {
                        docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
                    } else {
                        tracing::warn!(volume = %prev, "an earlier promote did not finish; restoring the known-good copy");
                        let image = helper_image(&self.load(&ctx.checkout)?)?;
                        self.restore_prev(prev, &image)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Puts every `.prev` copy of `p` back, removes the volumes the new deploy created, then the
    /// marker. Safe to repeat after a crash part-way.
    fn roll_back(&self, p: &Promoting) -> Result<(), RunnerError> {
        for v in &p.volumes {
            let prev = labels::prev_volume(v);
            if !inspect_json(Kind::Volume, std::slice::from_ref(&prev))?.is_empty() {
                self.restore_prev(&prev, &p.image)?;
            }
        }
        for v in self.live_volumes()? {
            if !p.volumes.contains(&v) {
                docker(&cmd::remove(Kind::Volume, &[v]))?;
            }
        }
        docker(&cmd::remove(Kind::Volume, &[self.marker_name()]))?;
        Ok(())
    }

    /// Replaces the live volume of `prev` with its content, then drops `prev`.
    fn restore_prev(&self, prev: &str, image: &str) -> Result<(), RunnerError> {
        let live = prev.trim_end_matches(".prev").to_string();
        let out = run(&cmd::remove(Kind::Volume, std::slice::from_ref(&live)))?;
        if !out.success() && !out.stderr.to_ascii_lowercase().contains("no such volume") {
            return Err(exec::exit_error(
                &cmd::remove(Kind::Volume, std::slice::from_ref(&live)),
                &out,
            )
            .into());
        }
        let mut labels = volume_labels(prev)?;
        labels.insert(labels::KIND_LABEL.into(), "warm".into());
        labels.remove(VERSION_LABEL);
        self.volumes.copy_volume(prev, &live, image, &labels)?;
        docker(&cmd::remove(Kind::Volume, &[prev.to_string()]))?;
        Ok(())
    }
}
