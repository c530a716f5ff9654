//! The names of the stacks a run deploys: a cold run's unique `cold-<recipe>-<tag hash>-<build>`
//! and the warm canonical's `warm-<recipe>`, and the domain suffix their apps get. Shared by the
//! docker runner (stack names) and the abra runner (app domains), so both find and sweep the same
//! objects, and by `recipe plan`, which resolves a plan as the docker runner would deploy it.
//!
//! Docker refuses a secret or config name longer than 64 characters, and a recipe's secret names
//! start with the stack name. abra names an app's stack after its domain (`.` as `_`, cut to 45
//! characters), so a recipe whose secrets fit under abra at `<recipe>.example.com` must fit under
//! canon too: no stack name canon makes is longer than that one ([`max_stack_len`]). A name that
//! would be is shortened with a hash of the whole, keeping its `cold-`/`warm-` prefix (the sweep
//! tells warm stacks by it) and as much of the recipe as fits.

/// The domain suffix a run's apps get by default: an app's domain is `<stack>.canon.localhost`.
pub const DEFAULT_DOMAIN_SUFFIX: &str = "canon.localhost";

/// abra's longest stack name: an app's sanitised name is cut to this many characters
/// (`MAX_SANITISED_APP_NAME_LENGTH` in abra).
pub const ABRA_MAX_STACK_NAME: usize = 45;

/// Docker's longest secret or config name.
pub const DOCKER_MAX_OBJECT_NAME: usize = 64;

/// Returns abra's stack name of an app at `domain`: the domain with `.` as `_`, cut to
/// [`ABRA_MAX_STACK_NAME`] characters.
pub fn abra_stack_name(domain: &str) -> String {
    domain
        .replace('.', "_")
        .chars()
        .take(ABRA_MAX_STACK_NAME)
        .collect()
}

/// Returns the longest stack name canon uses for `recipe`: the length of abra's stack name for
/// the same recipe deployed at `<recipe>.example.com`.
pub fn max_stack_len(recipe: &str) -> usize {
    abra_stack_name(&format!("{recipe}.example.com")).len()
}

/// Returns `name` when it is at most `max` characters long, else its first characters and a
/// hash of the whole (8 hex digits), `max` long. `name` is ASCII.
fn fit(name: String, max: usize) -> String {
    if name.len() <= max {
        return name;
    }
    let hash = long_hash(&name);
    let head = name
        .get(..max.saturating_sub(hash.len() + 1))
        .unwrap_or_default()
        .trim_end_matches('-');
    if head.is_empty() {
        hash.chars().take(max).collect()
    } else {
        format!("{head}-{hash}")
    }
}

/// Returns a stable hash (FNV-1a, 8 hex digits) of `text`, for names, not for security.
fn long_hash(text: &str) -> String {
    format!("{:08x}", fnv1a(text) & 0xffff_ffff)
}

fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Returns a short stable hash (FNV-1a, 6 hex digits) of `text`, for names, not for security.
pub fn short_hash(text: &str) -> String {
    format!("{:06x}", fnv1a(text) & 0xff_ffff)
}

fn sanitize(text: &str, max: usize) -> String {
    let s: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let s = s.trim_matches('-');
    s.chars()
        .take(max)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Returns the unique stack name of a cold run, so concurrent runs never share a stack:
/// `cold-<recipe>-<tag hash>-<build>` (recipe cut to 24 characters, build to 10) when that is
/// within [`max_stack_len`], else `cold-<recipe>-<hash of tag and build>`, else shortened with a
/// hash of the whole.
pub fn cold_stack_name(recipe: &str, tag: &str, build: &str) -> String {
    let max = max_stack_len(recipe);
    let build = sanitize(build, 10);
    let build = if build.is_empty() {
        "0".to_string()
    } else {
        build
    };
    let short = sanitize(recipe, 24);
    let full = format!("cold-{short}-{}-{build}", short_hash(tag));
    if full.len() <= max {
        return full;
    }
    let both = format!(
        "cold-{}-{}",
        sanitize(recipe, 64),
        short_hash(&format!("{tag}\n{build}"))
    );
    fit(both, max)
}

/// Returns the warm canonical's stack name, `warm-<recipe>`, shortened with a hash when it would
/// be longer than [`max_stack_len`] (a recipe name of more than 40 characters).
pub fn warm_stack_name(recipe: &str) -> String {
    fit(format!("warm-{recipe}"), max_stack_len(recipe))
}

/// Returns the domain the abra runner gives the app of `stack`, a name from [`cold_stack_name`]
/// or [`warm_stack_name`]: `<stack>.<suffix>` when abra's stack name for that domain is no longer
/// than abra's for `<recipe>.example.com` ([`max_stack_len`]), else `stack` alone (a one-label
/// domain, which abra's stack name keeps as it is). So the secrets abra names after the stack
/// never cross Docker's limit under canon where they fit under abra.
pub fn abra_app_domain(recipe: &str, stack: &str, suffix: &str) -> String {
    let full = format!("{stack}.{suffix}");
    if suffix.is_empty() || abra_stack_name(&full).len() > max_stack_len(recipe) {
        stack.to_string()
    } else {
        full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_unique_per_recipe_tag_and_build_and_valid() {
        let a = cold_stack_name("custom-html", "1.0.0+1.2", "41");
        assert!(a.starts_with("cold-custom-html-"), "{a}");
        assert_ne!(a, cold_stack_name("custom-html", "1.0.1+1.2", "41"));
        assert_ne!(a, cold_stack_name("custom-html", "1.0.0+1.2", "42"));
        assert_ne!(a, cold_stack_name("custom-htm", "1.0.0+1.2", "41"));
        let long = cold_stack_name(&"x_y".repeat(21), "t", "Local Run/99999999999");
        assert!(long.len() <= 45, "{long}");
        assert!(long
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_eq!(
            cold_stack_name("a", "t", "!!"),
            fit(format!("cold-a-{}", short_hash("t\n0")), 13)
        );
        assert_eq!(warm_stack_name("gitea"), "warm-gitea");
    }

    #[test]
    fn abra_names_a_stack_after_the_domain_cut_to_45_characters() {
        assert_eq!(
            abra_stack_name("bonfire.example.com"),
            "bonfire_example_com"
        );
        assert_eq!(max_stack_len("bonfire"), 19);
        let long = abra_stack_name(&format!("{}.example.com", "r".repeat(40)));
        assert_eq!(long.len(), 45);
        assert_eq!(max_stack_len(&"r".repeat(64)), 45);
    }

    #[test]
    fn run_and_warm_stack_names_are_never_longer_than_abras() {
        for recipe in [
            "a",
            "lemp",
            "bonfire",
            "traefik",
            "custom-html",
            "cfxa1b2c3d",
            &"x".repeat(33),
            &"y".repeat(34),
            &"z_z".repeat(15),
            &"w".repeat(64),
        ] {
            let max = max_stack_len(recipe);
            for (tag, build) in [
                ("1.0.0+1.2", "41"),
                ("2.0.1+1.0.6-social-amd64", "123456789"),
            ] {
                let cold = cold_stack_name(recipe, tag, build);
                assert!(cold.len() <= max, "{cold} is longer than {max}");
                assert!(cold.starts_with("cold-"), "{cold}");
                assert_ne!(cold, cold_stack_name(recipe, tag, "42"), "builds differ");
                assert_ne!(
                    cold,
                    cold_stack_name(recipe, "9.9.9+9", build),
                    "tags differ"
                );
            }
            let warm = warm_stack_name(recipe);
            assert!(warm.len() <= max, "{warm} is longer than {max}");
            assert!(warm.starts_with("warm-"), "{warm}");
        }
    }

    #[test]
    fn the_abra_runners_stack_names_are_never_longer_than_abras() {
        for recipe in [
            "a",
            "lemp",
            "bonfire",
            "custom-html",
            &"x".repeat(33),
            &"w".repeat(64),
        ] {
            let max = max_stack_len(recipe);
            for stack in [
                cold_stack_name(recipe, "1.0.0+1.2", "41"),
                warm_stack_name(recipe),
            ] {
                let domain = abra_app_domain(recipe, &stack, DEFAULT_DOMAIN_SUFFIX);
                let abra = abra_stack_name(&domain);
                assert!(abra.len() <= max, "{abra} is longer than {max}");
                if domain == stack {
                    assert_eq!(
                        abra, stack,
                        "a one-label domain is abra's stack name as it is"
                    );
                }
            }
        }
        // A suffix that fits is kept, so the app answers at a name under it.
        assert_eq!(
            abra_app_domain(&"r".repeat(30), "warm-r", "x.test"),
            "warm-r.x.test"
        );
        assert_eq!(
            abra_app_domain("gitea", "warm-gitea", "canon.localhost"),
            "warm-gitea"
        );
    }

    #[test]
    fn a_short_recipe_keeps_its_name_and_loses_only_the_build_from_the_stack_name() {
        // bonfire at bonfire.example.com: abra's stack is 19 characters, so is canon's.
        let cold = cold_stack_name("bonfire", "2.0.1+1.0.6-social-amd64", "41");
        assert_eq!(cold.len(), 19, "{cold}");
        assert!(cold.starts_with("cold-bonfire-"), "{cold}");
        assert_eq!(warm_stack_name("bonfire"), "warm-bonfire");
        let long = "a-recipe-name-that-is-very-long-indeed-yes";
        assert!(warm_stack_name(long).starts_with("warm-a-recipe-name"));
        assert_ne!(warm_stack_name(long), warm_stack_name(&format!("{long}x")));
    }
}
