//! Compose interpolation: the one function that substitutes variables into every value canon
//! computes from a recipe's compose files itself (secret and network names, volume sources,
//! labels, the image, the deploy timeout label), by the rules `docker stack deploy` applies
//! (docker/cli's `cli/compose/template`), which is also what abra's compose loader uses.
//!
//! Separate from the `.env` reader ([`super::env_sample`]) because the two follow different
//! specifications: a `.env` line expands with godotenv's rules (no defaults, no errors), a compose
//! value with docker's template rules:
//!
//! | form                   | gives                                                   |
//! |------------------------|---------------------------------------------------------|
//! | `$V`, `${V}`           | the value of `V`, empty when unset                      |
//! | `${V:-d}`              | `d` when `V` is unset or empty                          |
//! | `${V-d}`               | `d` when `V` is unset                                   |
//! | `${V:?msg}`            | an error saying `msg` when `V` is unset or empty        |
//! | `${V?msg}`             | an error saying `msg` when `V` is unset                 |
//! | `$$`                   | a literal `$`                                           |
//! | any other `$`          | an error: the template is invalid                       |
//!
//! Docker's rules differ from a shell's (and from docker compose v2's) in ways a recipe can
//! trip over, and canon follows docker's:
//! - there is no `${V:+x}` or `${V+x}`: such a template is invalid, and `docker stack deploy`
//!   refuses the file;
//! - the text after an operator is taken literally up to the first `}`: `${A:-${B}}` gives
//!   `${B}` when `A` is unset (the default is `${B`, then a literal `}`), and `A`'s value
//!   followed by `}` when it is set;
//! - the unbraced form takes an operator too, up to the next `}` or the end of the text:
//!   `$A-x y` is `${A-x y}`;
//! - names are ASCII letters, digits and `_`, of either case, not starting with a digit;
//! - an operator is found anywhere in the text between the braces, `:-` first, then `-`, `:?`
//!   and `?`: `${A-x:-y}` looks up a variable called `A-x` (never set) and gives `y`.
//!
//! Canon is stricter than docker in one place, on purpose: docker keeps only the error of the
//! last form it substitutes (a later form that succeeds clears an earlier one's error), canon
//! reports the first error.

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
    /// A `$` starts no form docker knows (`$5`, `${}`, `${V:+x}`, an unclosed `${`).
    #[error("invalid interpolation format {template:?}: a `$` starts no variable docker knows (write `$$` for a literal `$`)")]
    Invalid {
        /// The whole text that holds it, as written.
        template: String,
    },
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

/// Returns `text` with every variable form substituted from `env` by docker's template rules
/// (see the module docs); the first invalid form, or the first `?` form whose variable is
/// missing, is an error.
pub fn interpolate(
    text: &str,
    env: &BTreeMap<String, String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let (form, consumed) =
            next_form(&rest[at + 1..]).ok_or_else(|| InterpolationError::Invalid {
                template: text.to_string(),
            })?;
        match form {
            Form::Dollar => out.push('$'),
            Form::Substitution(s) => out.push_str(&substitute(s, env)?),
        }
        rest = &rest[at + 1 + consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Returns the names of the variables `text` refers to, in order (a name more than once when it
/// is used more than once); empty when the text has none or is no valid template. The name is
/// the part before an operator, as docker's `ExtractVariables` reads it.
pub fn variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let Some((form, consumed)) = next_form(&rest[at + 1..]) else {
            return Vec::new();
        };
        if let Form::Substitution(s) = form {
            let cut = [":?", "?", ":-", "-"]
                .iter()
                .find_map(|sep| s.find(sep))
                .unwrap_or(s.len());
            names.push(s[..cut].to_string());
        }
        rest = &rest[at + 1 + consumed..];
    }
    names
}

/// What follows one `$`.
enum Form<'a> {
    /// `$$`.
    Dollar,
    /// A name with its operator, if any (`A`, `A:-d`), from `$A...` or `${A...}`.
    Substitution(&'a str),
}

/// Reads the form after a `$` (`after` starts right after it): the form and how many bytes of
/// `after` it takes; `None` when it is none (docker's "invalid" group).
fn next_form(after: &str) -> Option<(Form<'_>, usize)> {
    if after.starts_with('$') {
        return Some((Form::Dollar, 1));
    }
    if let Some(len) = substitution_len(after) {
        return Some((Form::Substitution(&after[..len]), len));
    }
    let inner = after.strip_prefix('{')?;
    let len = substitution_len(inner)?;
    inner[len..]
        .starts_with('}')
        .then(|| (Form::Substitution(&inner[..len]), len + 2))
}

/// Returns the length of docker's `[_a-z][_a-z0-9]*(?::?[-?][^}]*)?` (case-insensitive) at the
/// start of `s`: a name, then optionally an operator and the text up to the next `}`.
fn substitution_len(s: &str) -> Option<usize> {
    let name = name_len(s);
    if name == 0 {
        return None;
    }
    let op = &s[name..];
    let op_len = if op.starts_with(":-") || op.starts_with(":?") {
        2
    } else if op.starts_with('-') || op.starts_with('?') {
        1
    } else {
        return Some(name);
    };
    let operand = op[op_len..].find('}').unwrap_or(op.len() - op_len);
    Some(name + op_len + operand)
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

/// Substitutes one form's inside (`A`, `A:-d`, ...) as docker's substitute functions do, tried
/// in docker's order: `:-`, `-`, `:?`, `?`, each split at its first occurrence.
fn substitute(s: &str, env: &BTreeMap<String, String>) -> Result<String, InterpolationError> {
    let lookup = |name: &str| env.get(name);
    if let Some((name, default)) = s.split_once(":-") {
        return Ok(match lookup(name) {
            Some(v) if !v.is_empty() => v.clone(),
            _ => default.to_string(),
        });
    }
    if let Some((name, default)) = s.split_once('-') {
        return Ok(lookup(name).cloned().unwrap_or_else(|| default.to_string()));
    }
    for (sep, empty_is_missing) in [(":?", true), ("?", false)] {
        if let Some((name, message)) = s.split_once(sep) {
            return match lookup(name) {
                Some(v) if !(empty_is_missing && v.is_empty()) => Ok(v.clone()),
                _ => Err(InterpolationError::Required {
                    name: name.to_string(),
                    message: message.to_string(),
                }),
            };
        }
    }
    Ok(lookup(s).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docker/cli's test mapping (`cli/compose/template/template_test.go`): `FOO` set, `BAR`
    /// set and empty.
    fn docker_env() -> BTreeMap<String, String> {
        [("FOO", "first"), ("BAR", "")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Each case of docker/cli's own template tests, with the result docker asserts.
    #[test]
    fn docker_clis_own_template_cases_give_dockers_results() {
        let e = docker_env();
        let table: &[(&str, &str, &str)] = &[
            ("TestEscaped", "$${foo}", "${foo}"),
            ("TestSubstituteNoMatch", "foo", "foo"),
            ("TestNoValueNoDefault", "This ${missing} var", "This  var"),
            ("TestNoValueNoDefault", "This ${BAR} var", "This  var"),
            ("TestValueNoDefault", "This $FOO var", "This first var"),
            ("TestValueNoDefault", "This ${FOO} var", "This first var"),
            ("TestNoValueWithDefault", "ok ${missing:-def}", "ok def"),
            ("TestNoValueWithDefault", "ok ${missing-def}", "ok def"),
            ("TestEmptyValueWithSoftDefault", "ok ${BAR:-def}", "ok def"),
            ("TestValueWithSoftDefault", "ok ${FOO:-def}", "ok first"),
            ("TestEmptyValueWithHardDefault", "ok ${BAR-def}", "ok "),
            (
                "TestNonAlphanumericDefault",
                "ok ${BAR:-/non:-alphanumeric}",
                "ok /non:-alphanumeric",
            ),
            (
                "TestDefaultsForMandatoryVariables",
                "ok ${FOO:?err}",
                "ok first",
            ),
            (
                "TestDefaultsForMandatoryVariables",
                "ok ${FOO?err}",
                "ok first",
            ),
            ("TestDefaultsForMandatoryVariables", "ok ${BAR?err}", "ok "),
        ];
        for (case, input, want) in table {
            assert_eq!(
                interpolate(input, &e).as_deref(),
                Ok(*want),
                "{case}: {input}"
            );
        }
    }

    #[test]
    fn docker_clis_invalid_templates_are_errors() {
        let e = docker_env();
        // TestInvalid's templates, then forms docker has no rule for.
        for input in [
            "${",
            "$}",
            "${}",
            "${ }",
            "${ foo}",
            "${foo }",
            "${foo!}",
            "${FOO:+x}",
            "${FOO+x}",
            "cost $5",
            "trailing $",
            "${UNCLOSED",
            "$ {FOO}",
        ] {
            assert_eq!(
                interpolate(input, &e),
                Err(InterpolationError::Invalid {
                    template: input.to_string()
                }),
                "{input}"
            );
        }
        let err = interpolate("a $5 b", &e).unwrap_err().to_string();
        assert!(err.contains("\"a $5 b\"") && err.contains("$$"), "{err}");
    }

    #[test]
    fn docker_clis_mandatory_variable_errors_name_the_variable_and_message() {
        let e = docker_env();
        // TestMandatoryVariableErrors.
        let table = [
            (
                "not ok ${UNSET_VAR:?Mandatory Variable Unset}",
                "UNSET_VAR",
                "Mandatory Variable Unset",
            ),
            (
                "not ok ${BAR:?Mandatory Variable Empty}",
                "BAR",
                "Mandatory Variable Empty",
            ),
            ("not ok ${UNSET_VAR:?}", "UNSET_VAR", ""),
            (
                "not ok ${UNSET_VAR?Mandatory Variable Unset}",
                "UNSET_VAR",
                "Mandatory Variable Unset",
            ),
            ("not ok ${UNSET_VAR?}", "UNSET_VAR", ""),
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
        assert_eq!(
            interpolate("${DB_HOST:?DB_HOST is needed}", &e)
                .unwrap_err()
                .to_string(),
            "required variable DB_HOST is missing a value: DB_HOST is needed"
        );
        assert_eq!(
            interpolate("${X?}", &e).unwrap_err().to_string(),
            "required variable X is missing a value"
        );
    }

    /// Where docker's rules differ from a shell's, canon gives docker's result.
    #[test]
    fn forms_a_shell_reads_otherwise_give_what_docker_gives() {
        let e = docker_env();
        let table = [
            // A default is literal text up to the first `}`, never expanded.
            ("${missing:-${FOO}}", "${FOO}"),
            ("${FOO:-${BAR}}", "first}"),
            ("${missing:-pre_${FOO:-x}_post}", "pre_${FOO:-x_post}"),
            // The unbraced form takes an operator too.
            ("$missing-def", "def"),
            ("$FOO-def and more", "first"),
            ("$missing:-x} y", "x} y"),
            ("$FOO:x", "first:x"),
            // Names of either case; a name ends at the first other character.
            ("${foo}", ""),
            ("$FOO.x", "first.x"),
            ("$FOO_x", ""),
            // The first operator docker tries wins, anywhere in the braces.
            ("${missing-x:-y}", "y"),
            ("${FOO?x-y}", "y"),
            // `$$` is a literal dollar.
            ("$$", "$"),
            ("a$$$FOO", "a$first"),
            ("", ""),
        ];
        for (input, want) in table {
            assert_eq!(interpolate(input, &e).as_deref(), Ok(want), "{input}");
        }
        // A missing variable's `?` error inside an unused default is never raised: the default
        // is text.
        assert_eq!(
            interpolate("${FOO:-${missing:?no}}", &e).as_deref(),
            Ok("first}")
        );
    }

    #[test]
    fn the_variables_of_a_text_are_found_as_docker_extracts_them() {
        let table: &[(&str, &[&str])] = &[
            (
                "${STACK_NAME}_key_${SECRET_KEY_VERSION}",
                &["STACK_NAME", "SECRET_KEY_VERSION"],
            ),
            (
                "${STACK_NAME}_k_${SECRET_K_VERSION:-v1}",
                &["STACK_NAME", "SECRET_K_VERSION"],
            ),
            ("$bar", &["bar"]),
            ("${bar?:foo}", &["bar"]),
            ("${bar?foo}", &["bar"]),
            ("$docker:${project:-cli}", &["docker", "project"]),
            ("$${not} a variable", &[]),
            ("no variables", &[]),
            ("invalid $5 ${A}", &[]),
        ];
        for (input, want) in table {
            assert_eq!(variables(input), *want, "{input}");
        }
    }
}
