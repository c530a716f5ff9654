//! The docker runner's warm run: copy-on-reattach of the warm canonical's volumes.
//!
//! The warm canonical `warm-<recipe>` is stopped, its volumes kept. A warm run copies each
//! volume `warm-<recipe>_<key>` into `<run stack>_<key>`, labelled as the run's own (its
//! teardown removes them, and the sweep's cleanup when the run was killed), while it holds the
//! recipe's warm data shared, so no promote replaces the volumes mid-copy. The canonical's
//! volumes are only read. The run's stack then uses the warm canonical's secrets (its data was
//! made with them) and deploys the head over the copies.

use std::path::Path;

use super::stack::{helper_image, Stack};
use crate::engine::client::{inspect_json, list_ids};
use crate::engine::cmd::Kind;
use crate::engine::labels;
use crate::recipe::names::warm_stack_name;
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
    let filter = format!("{}={stack}", labels::STACK_LABEL);
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
    /// while the run holds the recipe's warm data shared (tag mode took the hold; it is released
    /// here once the copies are made). `base_checkout` (the canonical's commit) names the image
    /// the helper containers use. Returns the copies.
    pub(super) fn reattach(
        &self,
        warm: &WarmBase,
        base_checkout: &Path,
    ) -> Result<Vec<WarmCopy>, RunnerError> {
        let image = helper_image(&self.load(base_checkout)?)?;
        let source = warm_stack_name(&self.labels.recipe);
        let labels = self.labels.map(None);
        let mut copies = Vec::with_capacity(warm.volumes.len());
        for from in warm.volumes.iter().cloned() {
            let key = from
                .strip_prefix(&format!("{source}_"))
                .unwrap_or(&from)
                .to_string();
            let to = labels::stack_volume(&self.name, &key);
            let bytes = self.volumes.copy_volume(&from, &to, &image, &labels)?;
            tracing::info!(%from, %to, bytes, "Copied a warm volume.");
            copies.push(WarmCopy { from, to, bytes });
            fault::point("warm:copied");
        }
        warm.release();
        Ok(copies)
    }
}
