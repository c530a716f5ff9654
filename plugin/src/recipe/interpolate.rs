//! Compose interpolation: the one function that substitutes variables into every value canon
//! computes from a recipe's compose files itself (secret and network names, volume sources,
//! labels, the image, the deploy timeout label).
//!
//! Separate from the `.env` reader ([`super::env_sample`]) because the two follow different
//! specifications: a `.env` line expands with godotenv's rules (no defaults, no errors), a compose
//! value with docker compose's (the compose specification's "Interpolation" section):
//!
//! | form          | gives                                                   |
//! |---------------|---------------------------------------------------------|
//! | `$V`, `${V}`  | the value of `V`, empty when unset                      |
//! | `${V:-d}`     | `d` when `V` is unset or empty                          |
//! | `${V-d}`      | `d` when `V` is unset                                   |
//! | `${V:?msg}`   | an error saying `msg` when `V` is unset or empty        |
//! | `${V?msg}`    | an error saying `msg` when `V` is unset                 |
//! | `${V:+x}`     | `x` when `V` is set and not empty, else empty           |
//! | `${V+x}`      | `x` when `V` is set, else empty                         |
//! | `$$`          | a literal `$`                                           |
//!
//! The text after an operator (`d`, `msg`, `x`) is itself interpolated, so `${A:-${B}}` works as
//! in compose. A `$` that starts none of these forms (`$5`, an unclosed `${`) is kept as written:
//! docker compose refuses such a template, and `docker stack deploy` reports it in its own words
//! when canon hands it the files.

use std::collections::BTreeMap;

/// Why a value could not be interpolated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InterpolationError {
    /// `${V:?msg}` or `${V?msg}` met a missing value; the message is the recipe's own.
    #[error("required variable {name} is missing a value{}", message_suffix(.message))]
    Required {
        /// The variable.
        name: String,
        /// The recipe's message after `?` (may be empty).
        message: String,
    },
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Returns `text` with every compose variable form substituted from `env` (see the module docs
/// for the forms); the first `?` form whose variable is missing is an error.
pub fn interpolate(
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = matching_brace(body) else {
                // Unclosed: kept literally (see the module docs).
                out.push_str(&rest[at..]);
                return Ok(out);
            };
            match braced(&body[..end], env)? {
                Some(value) => out.push_str(&value),
                None => out.push_str(&rest[at..at + 2 + end + 1]),
            }
            rest = &body[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
            } else {
                out.push_str(env.get(&after[..len]).map(String::as_str).unwrap_or(""));
            }
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Returns the length of the variable name at the start of `s` (`[A-Za-z_][A-Za-z0-9_]*`), 0 when
/// there is none.
fn name_len(s: &str) -> usize {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, c)) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return 0,
    }
    chars
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|(i, _)| i)
        .unwrap_or(s.len())
}

/// Substitutes the inside of one `${...}`; `None` when it is no valid form (kept as written).
fn braced(
    inner: &str,
    env: &BTreeMap<String, String>,
) -> Result<Option<String>, InterpolationError> {
    let len = name_len(inner);
    if len == 0 {
        return Ok(None);
    }
    let (name, op) = inner.split_at(len);
    let value = env.get(name);
    let set_and_not_empty = value.is_some_and(|v| !v.is_empty());
    let own = || value.cloned().unwrap_or_default();
    let operand = |prefix: &str| &op[prefix.len()..];
    let resolved = if op.is_empty() {
        own()
    } else if op.starts_with(":-") {
        if set_and_not_empty {
            own()
        } else {
            interpolate(operand(":-"), env)?
        }
    } else if op.starts_with('-') {
        if value.is_some() {
            own()
        } else {
            interpolate(operand("-"), env)?
        }
    } else if op.starts_with(":?") || op.starts_with('?') {
        let strict = op.starts_with(':');
        let missing = if strict {
            !set_and_not_empty
        } else {
            value.is_none()
        };
        if missing {
            let prefix = if strict { ":?" } else { "?" };
            return Err(InterpolationError::Required {
                name: name.to_string(),
                message: interpolate(operand(prefix), env)?,
            });
        }
        own()
    } else if op.starts_with(":+") {
        if set_and_not_empty {
            interpolate(operand(":+"), env)?
        } else {
            String::new()
        }
    } else if op.starts_with('+') {
        if value.is_some() {
            interpolate(operand("+"), env)?
        } else {
            String::new()
        }
    } else {
        return Ok(None);
    };
    Ok(Some(resolved))
}

/// Returns the index of the `}` closing a `${`, counting nested `${...}`.
fn matching_brace(rest: &str) -> Option<usize> {
    let mut depth = 0usize;
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("STACK_NAME", "s1"), ("EMPTY", ""), ("V", "v2")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn interpolation_follows_compose_rules() {
        let e = env();
        let table = [
            ("${STACK_NAME}_key_${V}", "s1_key_v2"),
            ("$STACK_NAME.x", "s1.x"),
            ("${MISSING:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${MISSING-d}", "d"),
            ("${MISSING}", ""),
            ("$$HOME", "$HOME"),
            ("Host(`${STACK_NAME}`)", "Host(`s1`)"),
            ("cost $5", "cost $5"),
            ("${UNCLOSED", "${UNCLOSED"),
            ("${MISSING:-${V}}", "v2"),
        ];
        for (input, want) in table {
            assert_eq!(interpolate(input, &e).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn every_compose_form_substitutes_as_docker_compose_does() {
        let e = env();
        let table = [
            // plain
            ("$V", "v2"),
            ("${V}", "v2"),
            ("$MISSING", ""),
            ("${MISSING}", ""),
            ("${EMPTY}", ""),
            ("$STACK_NAME.x", "s1.x"),
            ("${STACK_NAME}_key_${V}", "s1_key_v2"),
            ("pre-$V-post", "pre-v2-post"),
            // :- default when unset or empty
            ("${MISSING:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${V:-d}", "v2"),
            // - default when unset only
            ("${MISSING-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${V-d}", "v2"),
            // :+ replacement when set and not empty
            ("${V:+x}", "x"),
            ("${EMPTY:+x}", ""),
            ("${MISSING:+x}", ""),
            // + replacement when set
            ("${V+x}", "x"),
            ("${EMPTY+x}", "x"),
            ("${MISSING+x}", ""),
            // ? forms pass through a present value
            ("${V:?gone}", "v2"),
            ("${V?gone}", "v2"),
            ("${EMPTY?gone}", ""),
            // $$ is a literal dollar
            ("$$", "$"),
            ("$$HOME", "$HOME"),
            ("$${V}", "${V}"),
            ("a$$$V", "a$v2"),
            // nesting in the operand
            ("${MISSING:-${V}}", "v2"),
            ("${MISSING:-pre_${V:-x}_post}", "pre_v2_post"),
            ("${V:+[${STACK_NAME}]}", "[s1]"),
            // bonfire's timeout label
            ("${TIMEOUT:-300}", "300"),
            // text around is kept
            ("Host(`${STACK_NAME}`)", "Host(`s1`)"),
            ("no variables", "no variables"),
            ("", ""),
        ];
        for (input, want) in table {
            assert_eq!(interpolate(input, &e).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn a_dollar_that_starts_no_form_is_kept_as_written() {
        let e = env();
        for input in [
            "cost $5",
            "${UNCLOSED",
            "trailing $",
            "${}",
            "${1X}",
            "${V!x}",
        ] {
            assert_eq!(interpolate(input, &e).as_deref(), Ok(input), "{input}");
        }
    }

    #[test]
    fn a_missing_required_variable_is_an_error_with_the_recipes_message() {
        let e = env();
        let table = [
            (
                "${MISSING:?set MISSING first}",
                "MISSING",
                "set MISSING first",
            ),
            ("${EMPTY:?must not be empty}", "EMPTY", "must not be empty"),
            ("${MISSING?unset}", "MISSING", "unset"),
            ("${MISSING:?}", "MISSING", ""),
            ("x ${MISSING?for ${STACK_NAME}} y", "MISSING", "for s1"),
        ];
        for (input, name, message) in table {
            assert_eq!(
                interpolate(input, &e),
                Err(InterpolationError::Required {
                    name: name.into(),
                    message: message.into()
                }),
                "{input}"
            );
        }
        let err = interpolate("${DB_HOST:?DB_HOST is needed}", &e).unwrap_err();
        assert_eq!(
            err.to_string(),
            "required variable DB_HOST is missing a value: DB_HOST is needed"
        );
        assert_eq!(
            interpolate("${X?}", &e).unwrap_err().to_string(),
            "required variable X is missing a value"
        );
    }

    #[test]
    fn a_required_error_in_an_unused_operand_is_not_raised() {
        let e = env();
        assert_eq!(interpolate("${V:-${MISSING:?no}}", &e).as_deref(), Ok("v2"));
        assert!(interpolate("${MISSING:-${ALSO:?no}}", &e).is_err());
    }
}
