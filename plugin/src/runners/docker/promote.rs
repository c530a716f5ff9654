//! The promote step of the docker runner: the warm canonical `warm-<recipe>` moves to the tag on
//! its long-lived volumes, with `.prev` copies as the known-good until the new deploy was healthy.

use super::cmd::{self, Kind};
use super::engine::{docker, list_ids, volume_labels, COMMAND_TIMEOUT};
use super::stack::Stack;
use super::volumes::helper_image;
use crate::runners::exec;
use crate::runners::{RunContext, RunnerError};

impl Stack {
    /// Deploys the tag as the warm canonical on its existing volumes, keeping `.prev` copies
    /// until it is healthy and undeployed; puts them back when it is not.
    pub(super) fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError> {
        let files = self.load(&ctx.checkout)?;
        let image = helper_image(&files)?;
        self.stop()?;
        let prev_filter = format!("{}=warm-prev", cmd::KIND_LABEL);
        let is_ours = |v: &String| v.starts_with(&format!("{}_", self.name));
        // A promote that died half-way left `.prev` copies: they are the known-good, put back.
        let stale_prev: Vec<String> = list_ids(Kind::Volume, &prev_filter)?
            .into_iter()
            .filter(is_ours)
            .collect();
        for prev in &stale_prev {
            let live = prev.trim_end_matches(".prev").to_string();
            tracing::warn!(volume = %live, "an earlier promote did not finish; restoring the known-good copy");
            let _ = exec::run(
                &cmd::remove(Kind::Volume, std::slice::from_ref(&live)),
                COMMAND_TIMEOUT,
            );
            let labels = volume_labels(prev)?;
            let mut labels = labels;
            labels.insert(cmd::KIND_LABEL.into(), "warm".into());
            self.copy_volume(prev, &live, &image, &labels)?;
            docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
        }
        let live: Vec<String> = list_ids(Kind::Volume, &self.stack_filter())?;
        let mut prevs = Vec::new();
        for v in &live {
            let mut labels = volume_labels(v)?;
            labels.insert(cmd::KIND_LABEL.into(), "warm-prev".into());
            let prev = cmd::prev_volume(v);
            self.copy_volume(v, &prev, &image, &labels)?;
            prevs.push((v.clone(), prev));
        }
        let outcome = self
            .deploy(&ctx.checkout)
            .and_then(|f| self.wait_healthy(&f, self.deploy_timeout(&f)?));
        let stopped = self.stop();
        match outcome.and(stopped) {
            Ok(()) => {
                for (_, prev) in &prevs {
                    docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
                }
                tracing::info!(stack = %self.name, volumes = ?live, "warm canonical replaced");
                Ok(())
            }
            Err(e) => {
                if prevs.is_empty() {
                    // A first promote that failed: leave no half-made canonical behind.
                    let problems = self.teardown();
                    if !problems.is_empty() {
                        tracing::error!(stack = %self.name, ?problems, "could not remove a failed first warm canonical");
                    }
                } else {
                    for (v, prev) in &prevs {
                        let mut labels = volume_labels(prev)?;
                        labels.insert(cmd::KIND_LABEL.into(), "warm".into());
                        docker(&cmd::remove(Kind::Volume, std::slice::from_ref(v)))?;
                        self.copy_volume(prev, v, &image, &labels)?;
                        docker(&cmd::remove(Kind::Volume, std::slice::from_ref(prev)))?;
                    }
                    tracing::warn!(stack = %self.name, "promote failed; the previous warm volumes were put back");
                }
                Err(e)
            }
        }
    }
}
