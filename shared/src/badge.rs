//! A recipe's canonical at a glance: where it stands against the newer tags canon knows of, and
//! the one badge renderer (shields.io "flat" style, `canonical | 1.13.0+1.31.1`) that the
//! listener's `/badge/<recipe>.svg` and `canon-plugin canonical badge` share.
//!
//! # What the colours mean
//!
//! The facts are the canonical record and a list of release tags with what became of them
//! ([`TagFact`]). A tag is *newer* when its recipe part is higher than the canonical's
//! ([`Precedence::Newer`]); with no canonical, every release tag is newer. A newer tag is
//! - *being tested* when a build of it was asked for or started and no decision was recorded yet
//!   (the listener's job is queued, retrying, running, or done, which means a build was started);
//! - *failed* when its latest decision in the history is a refusal (other than a `--quick` run's,
//!   which never promotes by design), or the listener gave up starting its build;
//! - *settled* otherwise (skipped by decision, or decided without a refusal).
//!
//! When one version has several facts (two forges, the journal and the history), the worst
//! wins: failed over being tested over settled. Then, in this order:
//! - **grey**, pinned: the canonical is pinned, whatever else is known;
//! - **orange**, behind: the greatest newer tag that is being tested or failed says which;
//! - **green**, current: a canonical exists and no newer tag is being tested or failed;
//! - **grey**, none: no canonical yet and nothing being tested.
//!
//! The listener knows both the journal and the history; the plugin alone knows only the history,
//! so its badge cannot show a tag that is being tested, only one that failed.

use std::collections::BTreeMap;
use std::fmt;

use crate::gate::Refusal;
use crate::state::{CanonicalRecord, HistoryEntry};
use crate::version::{Precedence, ReleaseVersion};

/// The badge's left-hand text.
pub const LABEL: &str = "canonical";

/// The value shown when a recipe has no canonical yet.
pub const NO_CANONICAL: &str = "none yet";

/// The badge's media type.
pub const CONTENT_TYPE: &str = "image/svg+xml";

/// What became of one release tag, as far as canon knows. Ordered from the least to the most
/// telling, so merging facts about one version keeps the worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagOutcome {
    /// Skipped by decision, or decided without a refusal.
    Settled,
    /// A build was asked for or started and nothing is decided yet.
    Testing,
    /// Refused by the gate, or its build could not be started.
    Failed,
}

/// One fact about a release tag of the recipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFact {
    /// The tag.
    pub version: ReleaseVersion,
    /// What became of it.
    pub outcome: TagOutcome,
}

/// Where a recipe's canonical stands; its colour is the badge's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The canonical is pinned.
    Pinned,
    /// A newer tag is being tested.
    Testing,
    /// A newer tag failed.
    Failed,
    /// No newer tag is being tested or failed.
    Current,
    /// No canonical yet, and nothing being tested or failed.
    None,
}

impl Standing {
    /// Returns the badge colour of the value half.
    pub fn colour(self) -> &'static str {
        match self {
            Standing::Current => "#4c1",
            Standing::Testing | Standing::Failed => "#fe7d37",
            Standing::Pinned | Standing::None => "#9f9f9f",
        }
    }

    /// Returns the one-word name the status page and the CSS use.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Pinned => "pinned",
            Standing::Testing => "testing",
            Standing::Failed => "failed",
            Standing::Current => "current",
            Standing::None => "none",
        }
    }
}

/// A recipe's canonical and the newer tag that keeps it from being current, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeStatus {
    /// The canonical version, when there is one.
    pub canonical: Option<ReleaseVersion>,
    /// True while the canonical is pinned.
    pub pinned: bool,
    /// The greatest newer tag that is being tested or failed.
    pub newer: Option<TagFact>,
}

impl RecipeStatus {
    /// Decides the status from the canonical and the facts about tags, in any order (see the
    /// module documentation).
    pub fn decide(canonical: Option<&CanonicalRecord>, facts: &[TagFact]) -> Self {
        let mut worst: BTreeMap<&ReleaseVersion, TagOutcome> = BTreeMap::new();
        for f in facts {
            let slot = worst.entry(&f.version).or_insert(f.outcome);
            *slot = (*slot).max(f.outcome);
        }
        let newer = worst
            .into_iter()
            .rev()
            .filter(|(v, outcome)| {
                *outcome != TagOutcome::Settled
                    && canonical.is_none_or(|c| v.precedence(&c.version) == Precedence::Newer)
            })
            .map(|(v, outcome)| TagFact {
                version: v.clone(),
                outcome,
            })
            .next();
        Self {
            canonical: canonical.map(|c| c.version.clone()),
            pinned: canonical.is_some_and(|c| c.pinned.is_some()),
            newer,
        }
    }

    /// Returns where the canonical stands.
    pub fn standing(&self) -> Standing {
        if self.pinned {
            return Standing::Pinned;
        }
        match (&self.newer, &self.canonical) {
            (Some(f), _) if f.outcome == TagOutcome::Failed => Standing::Failed,
            (Some(_), _) => Standing::Testing,
            (None, Some(_)) => Standing::Current,
            (None, None) => Standing::None,
        }
    }

    /// Returns the badge's value: the canonical version, or [`NO_CANONICAL`].
    pub fn value(&self) -> String {
        self.canonical
            .as_ref()
            .map_or_else(|| NO_CANONICAL.to_string(), ToString::to_string)
    }
}

impl fmt::Display for RecipeStatus {
    /// A short sentence for people: "current", "pinned", "1.14.0+1.32 failed", ...
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.standing(), &self.newer) {
            (Standing::Testing, Some(n)) => write!(f, "{} being tested", n.version),
            (Standing::Failed, Some(n)) => write!(f, "{} failed", n.version),
            (Standing::None, _) => f.write_str("no canonical yet"),
            (s, _) => f.write_str(s.as_str()),
        }
    }
}

/// Returns the facts the history holds: for each release tag, its latest decision (a refusal is
/// [`TagOutcome::Failed`] unless it only refused a `--quick` run; any other decision is
/// [`TagOutcome::Settled`]). Entries about a branch or ref, not a release tag, are left out.
pub fn history_facts(entries: &[HistoryEntry]) -> Vec<TagFact> {
    let quick = Refusal::Quick.to_string();
    let mut latest: BTreeMap<ReleaseVersion, TagOutcome> = BTreeMap::new();
    for e in entries {
        let Some(version) = e.version.as_deref().and_then(|v| v.parse().ok()) else {
            continue;
        };
        let outcome = match e.decision.as_str() {
            "refuse" if !e.reasons.contains(&quick) => TagOutcome::Failed,
            "pin" | "unpin" => continue,
            _ => TagOutcome::Settled,
        };
        // Entries are in the order they were written: a later decision replaces an earlier one.
        latest.insert(version, outcome);
    }
    latest
        .into_iter()
        .map(|(version, outcome)| TagFact { version, outcome })
        .collect()
}

/// Renders the badge: `canonical | <value>` in the shields.io flat style, text widths measured
/// with its Verdana 11 px tables, the value half in the standing's colour. Text is XML-escaped.
pub fn render(status: &RecipeStatus) -> String {
    render_text(LABEL, &status.value(), status.standing().colour())
}

/// Renders a badge with any label, value and colour (`#rgb` or `#rrggbb`).
pub fn render_text(label: &str, value: &str, colour: &str) -> String {
    shields::render_badge_svg(&shields::BadgeParams {
        message_color: Some(colour),
        ..shields::BadgeParams::new(label, value)
    })
}

/// Returns the width in pixels `text` takes on a badge (Verdana 11 px), as the renderer measures
/// it.
pub fn text_width(text: &str) -> f64 {
    shields::get_text_width(text, shields::Font::VerdanaNormal11)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::RecipeName;
    use crate::state::Pin;

    fn v(tag: &str) -> ReleaseVersion {
        tag.parse().expect("a release tag")
    }

    fn canonical(tag: &str, pinned: bool) -> CanonicalRecord {
        CanonicalRecord {
            recipe: RecipeName::parse("app").expect("valid"),
            version: v(tag),
            commit: crate::commit::CommitId::parse(&"a".repeat(40)).expect("a full id"),
            promoted_at: time::OffsetDateTime::UNIX_EPOCH,
            build: None,
            pinned: pinned.then(|| Pin {
                reason: "review".into(),
                by: "ops".into(),
                at: time::OffsetDateTime::UNIX_EPOCH,
            }),
            host: None,
        }
    }

    fn fact(tag: &str, outcome: TagOutcome) -> TagFact {
        TagFact {
            version: v(tag),
            outcome,
        }
    }

    #[test]
    fn the_standing_follows_the_canonical_and_the_newer_tags() {
        use TagOutcome::*;
        // (what it shows, canonical, pinned, facts, standing, sentence)
        type Case = (
            &'static str,
            Option<&'static str>,
            bool,
            Vec<TagFact>,
            Standing,
            &'static str,
        );
        let cases: Vec<Case> = vec![
            (
                "nothing known",
                None,
                false,
                vec![],
                Standing::None,
                "no canonical yet",
            ),
            (
                "a first tag being tested",
                None,
                false,
                vec![fact("1.0.0+1", Testing)],
                Standing::Testing,
                "1.0.0+1 being tested",
            ),
            (
                "a canonical and no other tag",
                Some("1.1.0+2"),
                false,
                vec![],
                Standing::Current,
                "current",
            ),
            (
                "older tags that failed do not matter",
                Some("1.1.0+2"),
                false,
                vec![fact("1.0.0+1", Failed), fact("1.1.0+2", Testing)],
                Standing::Current,
                "current",
            ),
            (
                "a conflicting tag of the same recipe part is not newer",
                Some("1.1.0+2"),
                false,
                vec![fact("1.1.0+3", Failed)],
                Standing::Current,
                "current",
            ),
            (
                "a newer tag that was skipped is settled",
                Some("1.1.0+2"),
                false,
                vec![fact("1.2.0+2", Settled)],
                Standing::Current,
                "current",
            ),
            (
                "a newer tag being tested",
                Some("1.1.0+2"),
                false,
                vec![fact("1.2.0+2", Testing)],
                Standing::Testing,
                "1.2.0+2 being tested",
            ),
            (
                "a refusal in the history beats a started build",
                Some("1.1.0+2"),
                false,
                vec![fact("1.2.0+2", Testing), fact("1.2.0+2", Failed)],
                Standing::Failed,
                "1.2.0+2 failed",
            ),
            (
                "the greatest newer tag speaks, in any order",
                Some("1.1.0+2"),
                false,
                vec![
                    fact("1.3.0+2", Testing),
                    fact("1.2.0+2", Failed),
                    fact("1.10.0+2", Settled),
                ],
                Standing::Testing,
                "1.3.0+2 being tested",
            ),
            (
                "a pin hides everything else",
                Some("1.1.0+2"),
                true,
                vec![fact("1.2.0+2", Failed)],
                Standing::Pinned,
                "pinned",
            ),
        ];
        for (says, tag, pinned, facts, standing, sentence) in cases {
            let record = tag.map(|t| canonical(t, pinned));
            let status = RecipeStatus::decide(record.as_ref(), &facts);
            assert_eq!(status.standing(), standing, "{says}");
            assert_eq!(status.to_string(), sentence, "{says}");
            assert_eq!(
                status.value(),
                tag.unwrap_or(NO_CANONICAL),
                "{says}: the value is the canonical"
            );
        }
    }

    fn entry(decision: &str, version: &str, reasons: &[String]) -> HistoryEntry {
        HistoryEntry {
            at: time::OffsetDateTime::UNIX_EPOCH,
            recipe: RecipeName::parse("app").expect("valid"),
            decision: decision.into(),
            version: Some(version.into()),
            tested_commit: None,
            reasons: reasons.to_vec(),
            trigger: Some("tag".into()),
            build: None,
            canonical_before: None,
        }
    }

    #[test]
    fn the_history_gives_each_tag_its_latest_decision() {
        let failed = ["the stage install failed".to_string()];
        let quick = [Refusal::Quick.to_string()];
        let facts = history_facts(&[
            entry("refuse", "1.2.0+1", &failed),
            entry("promote", "1.2.0+1", &[]),
            entry("promote", "1.3.0+1", &[]),
            entry("refuse", "1.3.0+1", &failed),
            entry("refuse", "1.4.0+1", &quick),
            entry("refuse", "ref main", &failed),
            entry("pin", "1.3.0+1", &[]),
        ]);
        assert_eq!(
            facts,
            vec![
                fact("1.2.0+1", TagOutcome::Settled),
                fact("1.3.0+1", TagOutcome::Failed),
                fact("1.4.0+1", TagOutcome::Settled),
            ]
        );
    }

    /// Returns the fill colours of the SVG's rectangles, in order.
    fn fills(svg: &str) -> Vec<&str> {
        svg.split("<rect")
            .skip(1)
            .filter_map(|r| r.split("fill=\"").nth(1)?.split('"').next())
            .collect()
    }

    /// Returns the SVG's `width` attribute.
    fn width(svg: &str) -> f64 {
        let w = svg
            .split("width=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("a width");
        w.parse().expect("a number")
    }

    #[test]
    fn the_value_half_takes_the_standing_colour() {
        for (standing, status) in [
            (
                Standing::Current,
                RecipeStatus {
                    canonical: Some(v("1.13.0+1.31.1")),
                    pinned: false,
                    newer: None,
                },
            ),
            (
                Standing::Failed,
                RecipeStatus {
                    canonical: Some(v("1.13.0+1.31.1")),
                    pinned: false,
                    newer: Some(fact("1.14.0+1.32", TagOutcome::Failed)),
                },
            ),
            (
                Standing::Testing,
                RecipeStatus {
                    canonical: Some(v("1.13.0+1.31.1")),
                    pinned: false,
                    newer: Some(fact("1.14.0+1.32", TagOutcome::Testing)),
                },
            ),
            (
                Standing::Pinned,
                RecipeStatus {
                    canonical: Some(v("1.13.0+1.31.1")),
                    pinned: true,
                    newer: None,
                },
            ),
        ] {
            assert_eq!(status.standing(), standing);
            let svg = render(&status);
            assert!(svg.starts_with("<svg"), "{svg}");
            assert!(
                svg.contains(">canonical</text>") && svg.contains(">1.13.0+1.31.1</text>"),
                "{svg}"
            );
            let colours = fills(&svg);
            assert!(
                colours.contains(&"#555") && colours.contains(&standing.colour()),
                "{standing:?}: {colours:?}"
            );
        }
        assert_ne!(Standing::Current.colour(), Standing::Failed.colour());
        assert_ne!(Standing::Current.colour(), Standing::Pinned.colour());
        assert_eq!(Standing::Testing.colour(), Standing::Failed.colour());
    }

    #[test]
    fn the_badge_is_as_wide_as_its_measured_text() {
        let short = render_text(LABEL, "1.0.0+1", "#4c1");
        let long = render_text(LABEL, "10.13.0+1.31.1-social-amd64", "#4c1");
        let grown = text_width("10.13.0+1.31.1-social-amd64") - text_width("1.0.0+1");
        assert!(grown > 100.0, "{grown}");
        // shields rounds each half up, so the difference is the text's, within a pixel per half.
        let diff = width(&long) - width(&short);
        assert!((diff - grown).abs() <= 2.0, "{diff} vs {grown}");
        assert!(
            text_width("WWWW") > text_width("iiii"),
            "widths are per glyph"
        );
    }

    #[test]
    fn text_is_xml_escaped() {
        let svg = render_text("a<b", "x&y\"z'", "#4c1");
        assert!(!svg.contains("a<b") && !svg.contains("x&y"), "{svg}");
        assert!(svg.contains("a&lt;b") && svg.contains("x&amp;y"), "{svg}");
    }
}
