//! The docker runner's warm run: copy-on-reattach of the warm canonical's volumes.
//!
//! The warm canonical `warm-<recipe>` is stopped, its volumes kept. A warm run copies each
//! volume `warm-<recipe>_<key>` into `<run stack>_<key>`, labelled as the run's own (its
//! teardown removes them, and the sweep's cleanup when the run was killed), while it holds the
//! recipe's warm data shared, so no promote replaces the volumes mid-copy. The canonical's
//! volumes are only read. The run's stack then uses the warm canonical's secrets (its data was
//! made with them) and deploys the head over the copies.

use std::path::Path;

use super::cmd::{self, Kind};
use super::engine::{inspect_json, list_ids};
use super::stack::Stack;
use super::volumes::helper_image;
use crate::runners::stack_names::warm_stack_name;
use crate::runners::warm::{WarmBase, WarmCopy};
use crate::runners::RunnerError;
use canon_shared::fault;

/// Returns the warm canonical's volumes of `recipe` (sorted), or why a run cannot start from
/// them: there are none, or a promote of them is not settled.
pub(super) fn warm_volumes(recipe: &str) -> Result<Vec<String>, String> {
    let stack = warm_stack_name(recipe);
    let marker = format!("{stack}.promoting");
    let unsettled =
        inspect_json(Kind::Volume, std::slice::from_ref(&marker)).map_err(|e| e.to_string())?;
    let filter = format!("{}={stack}", cmd::STACK_LABEL);
    let all = list_ids(Kind::Volume, &filter).map_err(|e| e.to_string())?;
    if !unsettled.is_empty() || all.iter().any(|v| v.ends_with(".prev")) {
        return Err(format!(
            "a promote of the warm canonical {stack} is not settled on this host"
        ));
    }
    let mut volumes: Vec<String> = all
        .into_iter()
        .filter(|v| v.starts_with(&format!("{stack}_")))
        .collect();
    volumes.sort();
    if volumes.is_empty() {
        return Err(format!(
            "the warm canonical {stack} has no volumes on this host"
        ));
    }
    Ok(volumes)
}

impl Stack {
    /// Copies each of the warm canonical's volumes into this stack's volume of the same key,
    /// under a shared hold on the recipe's warm data. `base_checkout` (the canonical's commit)
    /// names the image the helper containers use. Returns the copies.
    pub(super) fn reattach(
        &self,
        warm: &WarmBase,
        base_checkout: &Path,
    ) -> Result<Vec<WarmCopy>, RunnerError> {
        let image = helper_image(&self.load(base_checkout)?)?;
        let source = warm_stack_name(&self.labels.recipe);
        let _hold = warm
            .holds
            .attach(&warm.holder, warm.lock_wait)
            .map_err(|e| RunnerError::Other(format!("cannot hold the warm data: {e}")))?;
        // Read again under the hold: a promote may have run while this run waited for it.
        let volumes = warm_volumes(&self.labels.recipe).map_err(RunnerError::Other)?;
        if volumes != warm.volumes {
            return Err(RunnerError::Other(format!(
                "the warm canonical's volumes changed while this run waited (now {volumes:?}); run it again"
            )));
        }
        let labels = self.labels.map(None);
        let mut copies = Vec::with_capacity(volumes.len());
        for from in volumes {
            let key = from
                .strip_prefix(&format!("{source}_"))
                .unwrap_or(&from)
                .to_string();
            let to = cmd::stack_volume(&self.name, &key);
            let bytes = self.copy_volume(&from, &to, &image, &labels)?;
            tracing::info!(%from, %to, bytes, "Copied a warm volume.");
            copies.push(WarmCopy { from, to, bytes });
            fault::point("warm:copied");
        }
        Ok(copies)
    }
}
