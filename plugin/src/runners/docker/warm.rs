//! The docker runner's warm run: copy-on-reattach of the warm canonical's volumes into the run's
//! stack.
//!
//! The warm canonical `warm-<recipe>` is stopped, its volumes kept. A warm run copies each
//! volume `warm-<recipe>_<key>` into `<run stack>_<key>`, labelled as the run's own (its
//! teardown removes them, and the sweep's cleanup when the run was killed), while it holds the
//! recipe's warm data shared, so no promote replaces the volumes mid-copy. The canonical's
//! volumes are only read. The run's stack then uses the warm canonical's secrets (its data was
//! made with them) and deploys the head over the copies.
//!
//! The copying and which volumes a warm run would copy are every runner's
//! ([`crate::runners::warm`]); this file gives them the run's stack.

use std::path::Path;

use super::stack::Stack;
use crate::runners::warm::{copy_volumes, helper_image, WarmBase, WarmCopy};
use crate::runners::RunnerError;

impl Stack {
    /// Copies each of the warm canonical's volumes into this stack's volume of the same key,
    /// through its helper containers ([`copy_volumes`]). `base_checkout` (the canonical's
    /// commit) names the image the helper containers use. Returns the copies.
    pub(super) fn reattach(
        &self,
        warm: &WarmBase,
        base_checkout: &Path,
    ) -> Result<Vec<WarmCopy>, RunnerError> {
        let image = helper_image(&self.load(base_checkout)?)?;
        copy_volumes(warm, &self.labels, &self.volumes, &image)
    }
}
