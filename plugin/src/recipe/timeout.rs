//! How long one deploy may take to converge, and where that number came from.
//!
//! abra reads the deploy label `coop-cloud.${STACK_NAME}.timeout` of the `app` service
//! (interpolated, so bonfire's `${TIMEOUT:-300}` gives 300) as the seconds it waits for a deploy
//! to converge, and falls back to its default when the label is empty. canon does the same, with
//! one addition: the enrollment's `deploy_timeout`, when set, overrides the label, because the
//! operator of the CI host knows its speed better than the recipe does. Neither set gives
//! [`DEFAULT_DEPLOY_TIMEOUT`]; an empty label gives it too, with a note saying so.
//!
//! The abra runner waits for abra, which waits the deploy timeout itself: its own deadline for
//! one abra command is the timeout plus [`ABRA_DEADLINE_MARGIN`], so abra reports its own
//! timeout before canon kills it.
//!
//! A pure decision over the enrollment's number and the label's text; separate from the runners
//! so every runner (docker, abra), the custom stage, `recipe plan`, the log and the report all
//! say the same thing. The stability window's default lives here too: both are how long canon
//! waits on a deploy when neither the enrollment nor the recipe says.

use std::fmt;
use std::time::Duration;

use super::compose::Compose;

/// The deploy timeout when neither the enrollment nor the recipe sets one.
pub const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(300);

/// How much longer than the deploy timeout canon lets one abra command run: abra waits the
/// deploy timeout for convergence, then reports, tears its monitor down and exits.
pub const ABRA_DEADLINE_MARGIN: Duration = Duration::from_secs(60);

/// How long a deployed stack must stay healthy before it counts as converged, when the
/// enrollment sets no `stability_window`.
pub const DEFAULT_STABILITY_WINDOW: Duration = Duration::from_secs(10);

/// Where a deploy timeout came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutSource {
    /// The recipe's `coop-cloud.<stack>.timeout` deploy label.
    Label,
    /// The enrollment's `deploy_timeout`.
    Enrollment,
    /// Neither was set, or the label is empty: [`DEFAULT_DEPLOY_TIMEOUT`].
    Default,
}

impl TimeoutSource {
    /// Returns the source as the log and the report name it (`label`, `enrollment`, `default`).
    pub fn as_str(self) -> &'static str {
        match self {
            TimeoutSource::Label => "label",
            TimeoutSource::Enrollment => "enrollment",
            TimeoutSource::Default => "default",
        }
    }
}

impl fmt::Display for TimeoutSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A deploy timeout and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployTimeout {
    /// How long the deploy may take to converge.
    pub duration: Duration,
    /// Where the number came from.
    pub source: TimeoutSource,
    /// True when the recipe's label is there but empty, so the default applies.
    pub empty_label: bool,
}

impl DeployTimeout {
    fn new(duration: Duration, source: TimeoutSource) -> Self {
        DeployTimeout {
            duration,
            source,
            empty_label: false,
        }
    }

    /// Returns how long canon lets one abra command run: the timeout plus
    /// [`ABRA_DEADLINE_MARGIN`].
    pub fn abra_deadline(&self) -> Duration {
        self.duration + ABRA_DEADLINE_MARGIN
    }
}

impl fmt::Display for DeployTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "deploy timeout {}s (source: {})",
            self.duration.as_secs(),
            self.source
        )?;
        if self.empty_label {
            f.write_str(
                "; the recipe's timeout label is empty, so the default applies, as in abra",
            )?;
        }
        Ok(())
    }
}

/// Why the recipe's timeout label cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployTimeoutError {
    /// The label is not a whole number of seconds above zero.
    #[error("the deploy label {key}={value:?} is not a whole number of seconds above zero")]
    NotSeconds {
        /// The label key.
        key: String,
        /// Its interpolated value.
        value: String,
    },
}

/// Returns the deploy timeout of compose files read for `stack`: [`resolve`] over the
/// enrollment's seconds and the `app` service's `coop-cloud.<stack>.timeout` deploy label (abra
/// reads it there and nowhere else).
pub fn of_compose(
    compose: &Compose,
    stack: &str,
    enrollment_secs: Option<u64>,
) -> Result<DeployTimeout, DeployTimeoutError> {
    let key = format!("coop-cloud.{stack}.timeout");
    resolve(
        enrollment_secs,
        compose.timeout_label(stack).map(|v| (key.as_str(), v)),
    )
}

/// Returns the deploy timeout: the enrollment's `deploy_timeout` seconds when set, else the
/// label's value (`label` is the interpolated `coop-cloud.<stack>.timeout`, with its key), else
/// [`DEFAULT_DEPLOY_TIMEOUT`]. An empty label (blank after interpolation) gives the default with
/// [`DeployTimeout::empty_label`] set. A label that is not a number of seconds is an error only
/// when it would be used.
pub fn resolve(
    enrollment_secs: Option<u64>,
    label: Option<(&str, &str)>,
) -> Result<DeployTimeout, DeployTimeoutError> {
    if let Some(secs) = enrollment_secs {
        return Ok(DeployTimeout::new(
            Duration::from_secs(secs),
            TimeoutSource::Enrollment,
        ));
    }
    match label {
        Some((_, value)) if value.trim().is_empty() => Ok(DeployTimeout {
            empty_label: true,
            ..DeployTimeout::new(DEFAULT_DEPLOY_TIMEOUT, TimeoutSource::Default)
        }),
        Some((key, value)) => match value.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Ok(DeployTimeout::new(
                Duration::from_secs(secs),
                TimeoutSource::Label,
            )),
            _ => Err(DeployTimeoutError::NotSeconds {
                key: key.to_string(),
                value: value.to_string(),
            }),
        },
        None => Ok(DeployTimeout::new(
            DEFAULT_DEPLOY_TIMEOUT,
            TimeoutSource::Default,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "coop-cloud.s.timeout";

    #[test]
    fn the_enrollment_wins_then_the_label_then_the_default() {
        let secs = Duration::from_secs;
        let table: &[(Option<u64>, Option<&str>, Duration, TimeoutSource)] = &[
            (Some(60), Some("300"), secs(60), TimeoutSource::Enrollment),
            (Some(60), None, secs(60), TimeoutSource::Enrollment),
            (
                Some(60),
                Some("not a number"),
                secs(60),
                TimeoutSource::Enrollment,
            ),
            (None, Some("300"), secs(300), TimeoutSource::Label),
            (None, Some(" 45 "), secs(45), TimeoutSource::Label),
            (None, None, DEFAULT_DEPLOY_TIMEOUT, TimeoutSource::Default),
        ];
        for &(enrollment, label, duration, source) in table {
            assert_eq!(
                resolve(enrollment, label.map(|v| (KEY, v))),
                Ok(DeployTimeout::new(duration, source)),
                "{enrollment:?} {label:?}"
            );
        }
    }

    #[test]
    fn a_label_that_is_no_number_of_seconds_is_an_error_when_used() {
        for value in ["abc", "0", "-5", "1.5"] {
            let err = resolve(None, Some((KEY, value))).unwrap_err();
            assert!(err.to_string().contains(KEY), "{err}");
        }
    }

    #[test]
    fn an_empty_label_gives_the_default_with_a_note_as_abra_falls_back() {
        for value in ["", "  "] {
            let t = resolve(None, Some((KEY, value))).unwrap();
            assert_eq!(t.duration, DEFAULT_DEPLOY_TIMEOUT);
            assert_eq!(t.source, TimeoutSource::Default);
            assert!(t.empty_label);
            assert_eq!(
                t.to_string(),
                "deploy timeout 300s (source: default); the recipe's timeout label is empty, so the default applies, as in abra"
            );
        }
        let t = resolve(Some(60), Some((KEY, ""))).unwrap();
        assert!(
            !t.empty_label,
            "the enrollment wins before the label is read"
        );
    }

    #[test]
    fn abra_gets_a_margin_over_the_deploy_timeout() {
        let t = resolve(None, Some((KEY, "300"))).unwrap();
        assert_eq!(t.abra_deadline(), Duration::from_secs(360));
    }

    #[test]
    fn the_log_text_names_the_seconds_and_the_source() {
        let t = resolve(None, Some((KEY, "300"))).unwrap();
        assert_eq!(t.to_string(), "deploy timeout 300s (source: label)");
        assert_eq!(TimeoutSource::Enrollment.as_str(), "enrollment");
        assert_eq!(TimeoutSource::Default.to_string(), "default");
    }
}
