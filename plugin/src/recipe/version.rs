//! The version label and the release check. Co-op Cloud's release is an annotated tag `<ver>` on
//! a commit whose `compose.yml` labels a service `coop-cloud.${STACK_NAME}.version=<ver>` (abra
//! reads the deployed version back from it). A tag whose label says another version is not the
//! release it claims to be, so the run is red with that reason.
//!
//! The one reader of the label is [`Compose::version_labels`]: tag mode's release check and
//! `recipe plan` read it from `compose.yml` as written, the deploy plan and the docker runner from
//! the deployed view, interpolated for the stack.

use std::fmt;
use std::path::Path;

use super::compose::{Compose, ComposeError};

/// The label key Co-op Cloud releases carry, as written in recipes.
pub const VERSION_LABEL_KEY: &str = "coop-cloud.${STACK_NAME}.version";

/// Where the version label was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionLabel {
    /// The service carrying it.
    pub service: String,
    /// The version it names.
    pub version: String,
}

impl fmt::Display for VersionLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "service `{}` has {VERSION_LABEL_KEY}={}",
            self.service, self.version
        )
    }
}

impl Compose {
    /// Returns the version label key of this model: `coop-cloud.<stack>.version` for the stack
    /// its values were interpolated for, [`VERSION_LABEL_KEY`] for a file read as written.
    pub fn version_key(&self) -> String {
        match &self.stack {
            Some(stack) => format!("coop-cloud.{stack}.version"),
            None => VERSION_LABEL_KEY.to_string(),
        }
    }

    /// Returns true when `key` is the version label key (as written, in either interpolation
    /// spelling).
    fn is_version_key(&self, key: &str) -> bool {
        key == self.version_key()
            || (self.stack.is_none() && key == "coop-cloud.$STACK_NAME.version")
    }

    /// Returns the version labels of the services, in service order, each version trimmed: a
    /// service's `deploy.labels`, then its container labels (`deploy.labels` win on a clash).
    pub fn version_labels(&self) -> Vec<VersionLabel> {
        self.services
            .iter()
            .flat_map(|svc| {
                let mut all = svc.labels.clone();
                all.extend(svc.deploy_labels.clone());
                all.into_iter()
                    .filter(|(k, _)| self.is_version_key(k))
                    .map(|(_, v)| VersionLabel {
                        service: svc.name.clone(),
                        version: v.trim().to_string(),
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Compose {
    /// Returns the version the service `service` labels (see [`Compose::version_labels`]).
    pub fn version_of(&self, service: &str) -> Option<String> {
        self.version_labels()
            .into_iter()
            .find(|l| l.service == service)
            .map(|l| l.version)
    }
}

/// Why a compose file does not carry the tag's version label. `Display` is the run's red reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelProblem {
    #[error("compose.yml: no service carries the label {VERSION_LABEL_KEY}=<tag> (expected {VERSION_LABEL_KEY}={tag})")]
    Missing { tag: String },
    #[error("compose.yml: {} but the tag is {tag}", .found.iter().map(|l| format!("service `{}` has {VERSION_LABEL_KEY}={}", l.service, l.version)).collect::<Vec<_>>().join(", "))]
    Mismatch {
        tag: String,
        found: Vec<VersionLabel>,
    },
}

/// Checks that a service labels `coop-cloud.${STACK_NAME}.version=<tag>`, and that no service
/// labels another version. Returns the service that carries it.
pub fn version_label(compose: &Compose, tag: &str) -> Result<VersionLabel, LabelProblem> {
    let found = compose.version_labels();
    let Some(first) = found.first() else {
        return Err(LabelProblem::Missing {
            tag: tag.to_string(),
        });
    };
    let wrong: Vec<VersionLabel> = found.iter().filter(|l| l.version != tag).cloned().collect();
    if !wrong.is_empty() {
        return Err(LabelProblem::Mismatch {
            tag: tag.to_string(),
            found: wrong,
        });
    }
    Ok(first.clone())
}

/// Why a checkout is not the release its tag claims. `Display` is the run's red reason.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// `compose.yml` could not be read.
    #[error(transparent)]
    Compose(#[from] ComposeError),
    /// Its version label does not name the tag.
    #[error(transparent)]
    Label(#[from] LabelProblem),
}

/// The release check of the checkout `dir` against `tag`: its `compose.yml`, read as written,
/// must label the tag's version (see [`version_label`]). Tag mode and `recipe plan` both run it.
pub fn check_release(dir: &Path, tag: &str) -> Result<VersionLabel, ReleaseError> {
    let compose = Compose::load_dir(dir)?;
    Ok(version_label(&compose, tag)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::compose::tests::BONFIRE_LIKE;

    fn parse(text: &str) -> Compose {
        Compose::parse(Path::new("compose.yml"), text).unwrap()
    }

    #[test]
    fn the_version_label_must_name_the_tag() {
        let c = parse(BONFIRE_LIKE);
        let ok = version_label(&c, "2.0.1+1.0.6-social-amd64").unwrap();
        assert_eq!(ok.service, "app");
        let err = version_label(&c, "2.0.2+1.0.6-social-amd64").unwrap_err();
        assert_eq!(
            err.to_string(),
            "compose.yml: service `app` has coop-cloud.${STACK_NAME}.version=2.0.1+1.0.6-social-amd64 but the tag is 2.0.2+1.0.6-social-amd64"
        );
    }

    #[test]
    fn a_missing_label_or_the_2021_form_is_not_a_release() {
        let c = parse(
            "services:\n  app:\n    deploy:\n      labels:\n        coop-cloud.${STACK_NAME}.app.version: v2.4.8-d7d63b0d\n",
        );
        let err = version_label(&c, "1.0.0+2.4.8").unwrap_err();
        assert!(matches!(err, LabelProblem::Missing { .. }), "{err}");
        assert!(err
            .to_string()
            .contains("expected coop-cloud.${STACK_NAME}.version=1.0.0+2.4.8"));
    }

    #[test]
    fn labels_in_map_form_on_the_service_count_and_a_second_service_may_not_disagree() {
        let c = parse(
            "services:\n  app:\n    labels:\n      coop-cloud.${STACK_NAME}.version: 1.0.0+1\n  worker:\n    deploy:\n      labels: ['coop-cloud.${STACK_NAME}.version=0.9.0+1']\n",
        );
        let err = version_label(&c, "1.0.0+1").unwrap_err();
        assert!(err.to_string().contains("service `worker`"), "{err}");
    }

    #[test]
    fn the_deployed_view_reads_the_label_of_its_stack() {
        let mut c = Compose::default();
        let env = [("STACK_NAME".to_string(), "s1".to_string())].into();
        c.merge(Path::new("compose.yml"), BONFIRE_LIKE, "s1", &env)
            .unwrap();
        assert_eq!(c.version_key(), "coop-cloud.s1.version");
        assert_eq!(
            c.version_labels(),
            vec![VersionLabel {
                service: "app".into(),
                version: "2.0.1+1.0.6-social-amd64".into()
            }]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("compose.yml"), BONFIRE_LIKE).unwrap();
        assert_eq!(
            check_release(dir.path(), "2.0.1+1.0.6-social-amd64")
                .unwrap()
                .service,
            "app"
        );
        let err = check_release(&dir.path().join("none"), "1.0.0").unwrap_err();
        assert!(err.to_string().contains("cannot read it"), "{err}");
    }
}
