//! The names of the stacks a run deploys: a cold run's unique `cold-<recipe>-<tag hash>-<build>`
//! and the warm canonical's `warm-<recipe>`, and the domain suffix their apps get. Shared by the
//! docker runner (stack names) and the abra runner (app domains), so both find and sweep the same
//! objects, and by `recipe plan`, which resolves a plan as the docker runner would deploy it.

/// The domain suffix a run's apps get by default: an app's domain is `<stack>.canon.localhost`.
pub const DEFAULT_DOMAIN_SUFFIX: &str = "canon.localhost";

/// Returns a short stable hash (FNV-1a, 6 hex digits) of `text`, for names, not for security.
pub fn short_hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:06x}", h & 0xff_ffff)
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

/// Returns the unique stack name of a cold run: `cold-<recipe>-<tag hash>-<build>` (recipe cut to
/// 24 characters, build to 10), so concurrent runs never share a stack.
pub fn cold_stack_name(recipe: &str, tag: &str, build: &str) -> String {
    let build = sanitize(build, 10);
    let build = if build.is_empty() {
        "0".to_string()
    } else {
        build
    };
    format!(
        "cold-{}-{}-{}",
        sanitize(recipe, 24),
        short_hash(tag),
        build
    )
}

/// Returns the warm canonical's stack name, `warm-<recipe>`.
pub fn warm_stack_name(recipe: &str) -> String {
    format!("warm-{recipe}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_unique_per_recipe_tag_and_build_and_valid() {
        let a = cold_stack_name("custom-html", "1.0.0+1.2", "41");
        assert!(
            a.starts_with("cold-custom-html-") && a.ends_with("-41"),
            "{a}"
        );
        assert_ne!(a, cold_stack_name("custom-html", "1.0.1+1.2", "41"));
        assert_ne!(a, cold_stack_name("custom-html", "1.0.0+1.2", "42"));
        assert_ne!(a, cold_stack_name("custom-htm", "1.0.0+1.2", "41"));
        let long = cold_stack_name(&"x_y".repeat(30), "t", "Local Run/99999999999");
        assert!(long.len() <= 46, "{long}");
        assert!(long
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
        assert_eq!(
            cold_stack_name("a", "t", "!!"),
            format!("cold-a-{}-0", short_hash("t"))
        );
        assert_eq!(warm_stack_name("gitea"), "warm-gitea");
    }
}
