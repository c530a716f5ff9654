//! Co-op Cloud release tags: parse, order, latest.
//!
//! A release tag is `<recipe-semver>+<upstream-version>`, e.g. `1.13.0+1.31.1` or
//! `2.0.1+1.0.6-social-amd64`. The recipe part is what the recipe maintainer manages and is the
//! only part that orders releases; the upstream part is opaque metadata (SemVer §10) that may hold
//! dots, dashes and letters. Tags are published out of order, so "latest" is always computed over
//! the whole set, never taken from the newest push.

use std::cmp::Ordering;
use std::fmt;

/// A parsed Co-op Cloud release tag such as `1.13.0+1.31.1`.
///
/// `Display` gives back exactly the tag it was parsed from. The derived `Ord` is a total order
/// (recipe part numerically, then the upstream part as text) so lists sort deterministically; use
/// [`ReleaseVersion::precedence`] for decisions, which reports two different tags with the same
/// recipe part as a [`Precedence::Conflict`] instead of calling them equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseVersion {
    major: u64,
    minor: u64,
    patch: u64,
    upstream: String,
}

/// How one release tag relates to another under Co-op Cloud precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precedence {
    /// The recipe part is lower.
    Older,
    /// The very same tag.
    Same,
    /// The recipe part is higher.
    Newer,
    /// Different tags with the same recipe part (e.g. `1.0.0+1.2` and `1.0.0+1.3`): neither is
    /// newer, and they are not the same release.
    Conflict,
}

/// Why a string is not a Co-op Cloud release tag. `Display` is a sentence a person understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotARelease {
    #[error("the tag is empty")]
    Empty,
    #[error("the tag contains whitespace or a control character")]
    Whitespace,
    #[error("the tag is an unexpanded parameter (`${{...}}`)")]
    Parametrized,
    #[error("legacy `<upstream>_<revision>` tag from before the `<recipe>+<upstream>` scheme")]
    Legacy,
    #[error("a `v` prefix is not used by Co-op Cloud release tags (expected e.g. `1.2.3+1.0`)")]
    VPrefix,
    #[error("looks like a commit id, not a release tag")]
    CommitLike,
    #[error("a purely numeric tag is not a release tag")]
    Numeric,
    #[error("no `+<upstream-version>` part (expected `<recipe-semver>+<upstream-version>`)")]
    NoUpstream,
    #[error("the `+<upstream-version>` part is empty")]
    EmptyUpstream,
    #[error(
        "the recipe part `{0}` has a prerelease suffix; only plain MAJOR.MINOR.PATCH releases"
    )]
    Prerelease(String),
    #[error("the recipe part `{part}` has {count} numbers; it must be MAJOR.MINOR.PATCH")]
    PartCount { part: String, count: usize },
    #[error("the recipe part `{0}` is not numeric MAJOR.MINOR.PATCH")]
    NotNumeric(String),
    #[error("the recipe part `{0}` has a number with a leading zero")]
    LeadingZero(String),
}

/// Two different release tags that share the greatest recipe part, so there is no single latest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("release tags `{first}` and `{second}` share the recipe version {first_recipe}; neither is newer", first_recipe = first.recipe_part())]
pub struct VersionConflict {
    /// One of the conflicting tags.
    pub first: ReleaseVersion,
    /// The other conflicting tag.
    pub second: ReleaseVersion,
}

impl ReleaseVersion {
    /// Parses a release tag, splitting on the FIRST `+`.
    ///
    /// The recipe part must be numeric `MAJOR.MINOR.PATCH` without leading zeros; the upstream
    /// part must be non-empty and is otherwise opaque.
    pub fn parse(tag: &str) -> Result<Self, NotARelease> {
        if tag.is_empty() {
            return Err(NotARelease::Empty);
        }
        if tag.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(NotARelease::Whitespace);
        }
        if tag.contains("${") {
            return Err(NotARelease::Parametrized);
        }
        let Some((recipe, upstream)) = tag.split_once('+') else {
            return Err(classify_without_upstream(tag));
        };
        if recipe.starts_with('v') || recipe.starts_with('V') {
            return Err(NotARelease::VPrefix);
        }
        if recipe.contains('_') {
            return Err(NotARelease::Legacy);
        }
        if recipe.contains('-') {
            return Err(NotARelease::Prerelease(recipe.to_string()));
        }
        let parts: Vec<&str> = recipe.split('.').collect();
        if parts.len() != 3 {
            return Err(NotARelease::PartCount {
                part: recipe.to_string(),
                count: parts.len(),
            });
        }
        let mut numbers = [0u64; 3];
        for (slot, part) in numbers.iter_mut().zip(&parts) {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(NotARelease::NotNumeric(recipe.to_string()));
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(NotARelease::LeadingZero(recipe.to_string()));
            }
            *slot = part
                .parse()
                .map_err(|_| NotARelease::NotNumeric(recipe.to_string()))?;
        }
        if upstream.is_empty() {
            return Err(NotARelease::EmptyUpstream);
        }
        Ok(Self {
            major: numbers[0],
            minor: numbers[1],
            patch: numbers[2],
            upstream: upstream.to_string(),
        })
    }

    /// Returns the recipe part as `MAJOR.MINOR.PATCH`.
    pub fn recipe_part(&self) -> String {
        format!("{}.{}.{}", self.major, self.minor, self.patch)
    }

    /// Returns the numbers of the recipe part.
    pub fn recipe_numbers(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }

    /// Returns the opaque upstream part (after the first `+`).
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Returns how `self` relates to `other` under Co-op Cloud precedence.
    pub fn precedence(&self, other: &ReleaseVersion) -> Precedence {
        match self.recipe_numbers().cmp(&other.recipe_numbers()) {
            Ordering::Less => Precedence::Older,
            Ordering::Greater => Precedence::Newer,
            Ordering::Equal if self.upstream == other.upstream => Precedence::Same,
            Ordering::Equal => Precedence::Conflict,
        }
    }
}

impl fmt::Display for ReleaseVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.patch, self.upstream
        )
    }
}

impl std::str::FromStr for ReleaseVersion {
    type Err = NotARelease;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for ReleaseVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ReleaseVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(format!("`{s}`: {e}")))
    }
}

fn classify_without_upstream(tag: &str) -> NotARelease {
    let bytes = tag.as_bytes();
    if bytes.iter().all(u8::is_ascii_digit) {
        NotARelease::Numeric
    } else if (7..=40).contains(&tag.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    {
        NotARelease::CommitLike
    } else if tag.contains('_') {
        NotARelease::Legacy
    } else if (tag.starts_with('v') || tag.starts_with('V'))
        && bytes.get(1).is_some_and(u8::is_ascii_digit)
    {
        NotARelease::VPrefix
    } else {
        NotARelease::NoUpstream
    }
}

/// Splits tags into release versions (ascending) and rejected tags with their reasons (in input
/// order).
pub fn sort<'a, I>(tags: I) -> (Vec<ReleaseVersion>, Vec<(&'a str, NotARelease)>)
where
    I: IntoIterator<Item = &'a str>,
{
    let mut releases = Vec::new();
    let mut rejected = Vec::new();
    for tag in tags {
        match ReleaseVersion::parse(tag) {
            Ok(v) => releases.push(v),
            Err(e) => rejected.push((tag, e)),
        }
    }
    releases.sort();
    releases.dedup();
    (releases, rejected)
}

/// Returns the greatest release tag of `tags`, in any order; non-release tags are ignored.
///
/// `Ok(None)` when there is no release tag at all. When two different tags share the greatest
/// recipe part there is no single latest, and that is an error the caller must see.
pub fn latest<'a, I>(tags: I) -> Result<Option<ReleaseVersion>, VersionConflict>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut best: Option<ReleaseVersion> = None;
    let mut conflict: Option<ReleaseVersion> = None;
    for tag in tags {
        let Ok(v) = ReleaseVersion::parse(tag) else {
            continue;
        };
        match best.as_ref().map(|b| v.precedence(b)) {
            None | Some(Precedence::Newer) => {
                best = Some(v);
                conflict = None;
            }
            Some(Precedence::Conflict) => {
                // Keep the smaller of the two upstream parts as `first` so the error does not
                // depend on input order.
                conflict = Some(v);
            }
            Some(Precedence::Older | Precedence::Same) => {}
        }
    }
    match (best, conflict) {
        (Some(a), Some(b)) => {
            let (first, second) = if a <= b { (a, b) } else { (b, a) };
            Err(VersionConflict { first, second })
        }
        (best, _) => Ok(best),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> ReleaseVersion {
        ReleaseVersion::parse(s).unwrap()
    }

    #[test]
    fn release_tags_parse_and_display_unchanged() {
        for tag in [
            "1.13.0+1.31.1",
            "2.0.1+1.0.6-social-amd64",
            "1.1.0+1.15",
            "5.0.3+27.0.1-fpm",
            "0.0.0+x",
            "10.20.30+a+b",
        ] {
            assert_eq!(v(tag).to_string(), tag, "{tag}");
        }
    }

    #[test]
    fn upstream_part_is_everything_after_the_first_plus() {
        let r = v("2.0.0+1.0.5-social-amd64");
        assert_eq!(r.recipe_numbers(), (2, 0, 0));
        assert_eq!(r.upstream(), "1.0.5-social-amd64");
        assert_eq!(v("1.0.0+a+b").upstream(), "a+b");
    }

    #[test]
    fn non_releases_are_rejected_with_their_reason() {
        use NotARelease::*;
        let table: &[(&str, NotARelease)] = &[
            ("", Empty),
            ("1.2.3", NoUpstream),
            ("1.13.4_1", Legacy),
            ("1.14.1-rootless_1", Legacy),
            ("v2.4.8", VPrefix),
            ("v2.4.8+1.0", VPrefix),
            ("1.14.1-rootless", NoUpstream),
            ("1.2.0-rc1+1.0", Prerelease("1.2.0-rc1".into())),
            (
                "1.2+1.0",
                PartCount {
                    part: "1.2".into(),
                    count: 2,
                },
            ),
            (
                "3.0.6.0+1.0",
                PartCount {
                    part: "3.0.6.0".into(),
                    count: 4,
                },
            ),
            ("3.0.6.0", NoUpstream),
            ("e02267d", CommitLike),
            ("0a1b2c3d4e5f6a7b8c9d0a1b2c3d4e5f6a7b8c9d", CommitLike),
            ("20191109", Numeric),
            ("${MAILU_VERSION:-master}", Parametrized),
            ("${PHP_VERSION}-fpm-alpine3.13", Parametrized),
            ("1.0.0+", EmptyUpstream),
            ("1.0.0 +1.0", Whitespace),
            ("1.0.0+1.0\n", Whitespace),
            ("1.0.0+1\u{0}", Whitespace),
            ("1.a.0+1.0", NotARelease::NotNumeric("1.a.0".into())),
            ("1..0+1.0", NotARelease::NotNumeric("1..0".into())),
            ("01.0.0+1.0", LeadingZero("01.0.0".into())),
            ("r1295", NoUpstream),
            (
                "+1.0",
                PartCount {
                    part: "".into(),
                    count: 1,
                },
            ),
        ];
        for (tag, want) in table {
            assert_eq!(ReleaseVersion::parse(tag).as_ref(), Err(want), "{tag:?}");
            assert!(!want.to_string().is_empty());
        }
    }

    #[test]
    fn every_real_recipe_tag_is_classified_as_documented() {
        let data = include_str!("../tests/data/real-recipe-tags.txt");
        let mut releases = 0;
        for line in data
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols[0] == "order" {
                let chain: Vec<ReleaseVersion> = cols[1].split(" < ").map(v).collect();
                for pair in chain.windows(2) {
                    assert_eq!(pair[1].precedence(&pair[0]), Precedence::Newer, "{line}");
                    assert!(pair[0] < pair[1]);
                }
                continue;
            }
            let legacy = cols[0].contains("legacy") || cols[1].starts_with('v');
            assert_eq!(ReleaseVersion::parse(cols[1]).is_ok(), !legacy, "{line}");
            releases += usize::from(!legacy);
        }
        assert_eq!(releases, 10);
    }

    #[test]
    fn no_tagcmp_image_tag_is_a_recipe_release() {
        // tagcmp's documented cases are Docker image tags: with or without `v`, suffixes, 1-3
        // parts, and the ones it cannot parse. None carries `+upstream`, so none is a release.
        let data = include_str!("../tests/data/tagcmp-readme-cases.txt");
        let mut seen = 0;
        for line in data.lines().filter(|l| !l.starts_with('#')) {
            let cols: Vec<&str> = line.split('\t').collect();
            if matches!(cols[0], "supported" | "unsupported") {
                let err = ReleaseVersion::parse(cols[1]).unwrap_err();
                assert!(!err.to_string().is_empty());
                seen += 1;
            }
        }
        assert_eq!(seen, 23);
    }

    #[test]
    fn recipe_part_orders_numerically_not_lexically() {
        assert_eq!(
            v("3.0.10+1.10.8").precedence(&v("3.0.9+1.10.7")),
            Precedence::Newer
        );
        assert_eq!(v("1.9.9+9").precedence(&v("1.10.0+1")), Precedence::Older);
        assert_eq!(v("1.0.0+1.2").precedence(&v("1.0.0+1.2")), Precedence::Same);
    }

    #[test]
    fn same_recipe_part_with_different_upstream_is_a_conflict() {
        assert_eq!(
            v("1.0.0+1.2").precedence(&v("1.0.0+1.3")),
            Precedence::Conflict
        );
        let err = latest(["1.0.0+1.3", "0.9.0+1", "1.0.0+1.2"]).unwrap_err();
        assert_eq!(err.first, v("1.0.0+1.2"));
        assert_eq!(err.second, v("1.0.0+1.3"));
        assert!(err.to_string().contains("1.0.0"));
    }

    #[test]
    fn conflict_below_the_latest_does_not_block_it() {
        assert_eq!(
            latest(["1.0.0+1.3", "1.0.0+1.2", "2.0.0+1"]).unwrap(),
            Some(v("2.0.0+1"))
        );
    }

    #[test]
    fn latest_ignores_publication_order_and_non_releases() {
        let tags = ["6.0.1+28.0.2-fpm", "v9.9.9", "5.0.3+27.0.1-fpm", "junk"];
        assert_eq!(latest(tags).unwrap(), Some(v("6.0.1+28.0.2-fpm")));
        assert_eq!(latest(["v1.0.0", "1.2.3"]).unwrap(), None);
        assert_eq!(latest(Vec::<&str>::new()).unwrap(), None);
    }

    #[test]
    fn sort_returns_releases_ascending_and_rejects_with_reasons() {
        let (ok, bad) = sort(["3.0.10+b", "3.0.9+a", "nope", "3.0.9+a"]);
        let ok: Vec<String> = ok.iter().map(ToString::to_string).collect();
        assert_eq!(ok, ["3.0.9+a", "3.0.10+b"]);
        assert_eq!(bad, [("nope", NotARelease::NoUpstream)]);
    }

    fn arb_release() -> impl Strategy<Value = String> {
        (0u64..30, 0u64..30, 0u64..30, "[0-9a-z.+-]{1,12}")
            .prop_map(|(a, b, c, u)| format!("{a}.{b}.{c}+{u}"))
    }

    proptest! {
        #[test]
        fn parse_then_display_gives_the_input_back(tag in arb_release()) {
            prop_assert_eq!(v(&tag).to_string(), tag);
        }

        #[test]
        fn ordering_is_total_and_consistent_with_precedence(
            a in arb_release(), b in arb_release(), c in arb_release()
        ) {
            let (a, b, c) = (v(&a), v(&b), v(&c));
            // antisymmetric and total
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&b) == Ordering::Equal, a == b);
            // transitive
            if a <= b && b <= c { prop_assert!(a <= c); }
            // precedence agrees with the order on the recipe part
            match a.precedence(&b) {
                Precedence::Newer => prop_assert!(a > b),
                Precedence::Older => prop_assert!(a < b),
                Precedence::Same => prop_assert_eq!(&a, &b),
                Precedence::Conflict => {
                    prop_assert_ne!(&a, &b);
                    prop_assert_eq!(a.recipe_numbers(), b.recipe_numbers());
                }
            }
        }

        #[test]
        fn latest_does_not_depend_on_input_order(mut tags in proptest::collection::vec(arb_release(), 0..8)) {
            let first = latest(tags.iter().map(String::as_str));
            tags.reverse();
            let second = latest(tags.iter().map(String::as_str));
            prop_assert_eq!(first, second);
        }

        #[test]
        fn any_accepted_string_displays_back_unchanged(s in "\\PC{0,20}") {
            if let Ok(r) = ReleaseVersion::parse(&s) {
                prop_assert_eq!(r.to_string(), s);
            }
        }
    }
}
