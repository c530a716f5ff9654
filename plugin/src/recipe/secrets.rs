//! How a recipe's generated secret is made, as abra makes it.
//!
//! A compose secret's version is the part of its interpolated `name:` after the last `_`
//! (`${STACK_NAME}_app_key_${SECRET_APP_KEY_VERSION:-v1}` gives `v1`), as abra reads it; a name
//! that ends in `_` has no version, and abra refuses to deploy it. How to generate the value is
//! said by the modifiers in the trailing comment of the `.env.sample` line of the variable that
//! the name refers to (`SECRET_APP_KEY_VERSION=v1 # length=128`): the last variable the `name:`
//! refers to, as written.
//!
//! Every modifier is honoured, or named in a warning:
//! - `length=N`: N characters (1 to 4096); without it, 32. Another value is refused.
//! - `charset=`: `default` and `alnum` (letters and digits), `hex` (`0-9a-f`) and
//!   `special-chars` (letters, digits and [`SPECIAL_CHARS`]). Another value is a warning, and
//!   the default alphabet is used.
//! - `generate=false`: abra leaves the value to an operator (`abra app secret insert`). A run has
//!   no operator, so canon makes a random test value and says so, unless the enrollment supplies
//!   the value in a file (`secrets: {<key>: <file>}`).
//! - any other `name=value` word is a warning; abra reads only these three.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::interpolate::variables;

/// How long a generated secret is when `.env.sample` gives no `length=`.
pub const DEFAULT_LENGTH: usize = 32;
/// The longest `length=` canon generates.
pub const MAX_LENGTH: usize = 4096;
/// The characters `charset=special-chars` adds to letters and digits: ASCII punctuation without
/// quotes, backslash and backtick, so a value survives a shell or a YAML file unquoted.
pub const SPECIAL_CHARS: &str = "!#%&()*+,-./:;<=>?@[]^_{|}~";

/// The alphabet a secret is generated from (`charset=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// `charset=default` or none: letters and digits.
    Default,
    /// `charset=alnum`: letters and digits.
    Alnum,
    /// `charset=hex`: `0-9a-f`.
    Hex,
    /// `charset=special-chars`: letters, digits and [`SPECIAL_CHARS`].
    SpecialChars,
}

impl Charset {
    /// Returns the charset a `charset=` value names, `None` for one canon does not know.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "default" => Charset::Default,
            "alnum" => Charset::Alnum,
            "hex" => Charset::Hex,
            "special-chars" => Charset::SpecialChars,
            _ => return None,
        })
    }

    /// Returns the modifier's value for this charset.
    pub fn as_str(self) -> &'static str {
        match self {
            Charset::Default => "default",
            Charset::Alnum => "alnum",
            Charset::Hex => "hex",
            Charset::SpecialChars => "special-chars",
        }
    }

    /// Returns the characters a value of this charset is made of.
    pub fn alphabet(self) -> Vec<u8> {
        const LETTERS_DIGITS: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        match self {
            Charset::Default | Charset::Alnum => LETTERS_DIGITS.to_vec(),
            Charset::Hex => b"0123456789abcdef".to_vec(),
            Charset::SpecialChars => [LETTERS_DIGITS, SPECIAL_CHARS.as_bytes()].concat(),
        }
    }
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Generated from its charset, as `abra app secret generate` does.
    Generated,
    /// `generate=false` and nothing supplied: a random test value stands in for the operator's.
    TestValue,
    /// The enrollment supplies the value in this file.
    File(PathBuf),
}

impl Source {
    /// Returns the source's name in the plan (`generated`, `test value`, `file`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Generated => "generated",
            Source::TestValue => "test value",
            Source::File(_) => "file",
        }
    }
}

/// How to make one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The compose secret's key (`app_key`).
    pub key: String,
    /// The variable its `name:` refers to last, whose `.env.sample` line holds the modifiers
    /// (`SECRET_APP_KEY_VERSION`); `None` when the name refers to none.
    pub version_var: Option<String>,
    /// Its version: the interpolated name after its last `_` (`v1`).
    pub version: String,
    /// How many characters to generate.
    pub length: usize,
    /// Whether the length came from a `length=` modifier.
    pub length_given: bool,
    /// The alphabet of a generated value.
    pub charset: Charset,
    /// Where the value comes from.
    pub source: Source,
    /// What the plan and the report say about it: modifiers canon ignores, a test value.
    pub notes: Vec<String>,
}

/// Why a secret cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The interpolated name ends in `_`: abra finds no version in it.
    #[error("secret `{key}`: its name `{name}` ends in `_`, so it has no version{hint} (abra refuses to deploy it: \"missing version for secret? ({key})\")")]
    NoVersion {
        /// The compose key.
        key: String,
        /// The interpolated name.
        name: String,
        /// Which variable to set, when the name refers to one.
        hint: String,
    },
    /// `length=` is no whole number canon generates.
    #[error(
        "secret `{key}`: {var}: `length={value}` is not a whole number from 1 to {MAX_LENGTH}"
    )]
    Length {
        /// The compose key.
        key: String,
        /// The variable whose line holds the modifier.
        var: String,
        /// The modifier's value.
        value: String,
    },
    /// The enrollment's file for the secret could not be read (its content is never shown).
    #[error("secret `{key}`: cannot read the value the enrollment supplies in {path}: {message}")]
    File {
        /// The compose key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
}

/// Returns the env variable that versions the compose secret `key` by Co-op Cloud's naming
/// convention (`SECRET_<KEY>_VERSION`); the one a release note or an operator usually names.
pub fn version_var(key: &str) -> String {
    format!(
        "SECRET_{}_VERSION",
        key.to_ascii_uppercase().replace('-', "_")
    )
}

/// Returns how to make the compose secret `key`, whose `name:` interpolates to `name` and is
/// written `name_as_written` (`None`: the file gives no `name:`), with `.env.sample`'s modifiers
/// per variable; or why it cannot be made.
pub fn spec(
    key: &str,
    name: &str,
    name_as_written: Option<&str>,
    modifiers: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<SecretSpec, SecretError> {
    let version_var = name_as_written.and_then(|n| variables(n).pop());
    let version = match name.rfind('_') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    if version.is_empty() {
        return Err(SecretError::NoVersion {
            key: key.to_string(),
            name: name.to_string(),
            hint: version_var
                .as_deref()
                .map(|v| format!("; set {v} in the app env"))
                .unwrap_or_default(),
        });
    }
    let mut spec = SecretSpec {
        key: key.to_string(),
        version_var: version_var.clone(),
        version: version.to_string(),
        length: DEFAULT_LENGTH,
        length_given: false,
        charset: Charset::Default,
        source: Source::Generated,
        notes: Vec::new(),
    };
    let Some(var) = version_var else {
        return Ok(spec);
    };
    for (name, value) in modifiers.get(&var).into_iter().flatten() {
        match name.as_str() {
            "length" => {
                spec.length = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LENGTH).contains(n))
                    .ok_or_else(|| SecretError::Length {
                        key: key.to_string(),
                        var: var.clone(),
                        value: value.clone(),
                    })?;
                spec.length_given = true;
            }
            "charset" => match Charset::parse(value) {
                Some(c) => spec.charset = c,
                None => spec.notes.push(format!(
                    "secret `{key}`: {var}: `charset={value}` is not one canon knows (default, alnum, hex, special-chars); it is generated from letters and digits"
                )),
            },
            "generate" => match value.as_str() {
                "true" => {}
                "false" => {
                    spec.source = Source::TestValue;
                    spec.notes.push(format!(
                        "secret `{key}`: {var} says `generate=false` (an operator inserts it); this run uses a random test value, as the enrollment supplies none"
                    ));
                }
                other => spec.notes.push(format!(
                    "secret `{key}`: {var}: `generate={other}` is neither true nor false; it is generated"
                )),
            },
            other => spec.notes.push(format!(
                "secret `{key}`: {var}: unknown secret modifier `{other}={value}`, ignored"
            )),
        }
    }
    Ok(spec)
}

impl SecretSpec {
    /// Makes the value supplied in `path` this secret's, in place of a generated or test value.
    pub fn supply(&mut self, path: &Path) {
        if self.source == Source::TestValue {
            self.notes.retain(|n| !n.contains("random test value"));
        }
        self.source = Source::File(path.to_path_buf());
    }

    /// Returns the secret's value: generated, a test value, or the supplied file's content (one
    /// trailing newline removed, as a file written with `echo` has one).
    pub fn value(&self) -> Result<String, SecretError> {
        match &self.source {
            Source::Generated | Source::TestValue => Ok(generate(self.length, self.charset)),
            Source::File(path) => {
                let mut text = canon_shared::bounded_read::read_to_string(
                    path,
                    canon_shared::bounded_read::SECRET_FILE,
                )
                .map_err(|e| SecretError::File {
                    key: self.key.clone(),
                    path: path.clone(),
                    message: match e.kind() {
                        // What was refused (a special file, too large), never the content.
                        std::io::ErrorKind::InvalidData => e.to_string(),
                        kind => kind.to_string(),
                    },
                })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                Ok(text)
            }
        }
    }
}

/// Returns `length` random characters of `charset`, each drawn uniformly from the thread's
/// cryptographically secure generator.
pub fn generate(length: usize, charset: Charset) -> String {
    use rand::RngExt;
    let alphabet = charset.alphabet();
    let mut rng = rand::rng();
    (0..length)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::recipe::compose::tests::env;

    const VAR: &str = "SECRET_SECRET_KEY_BASE_VERSION";
    const WRITTEN: &str = "${STACK_NAME}_secret_key_base_${SECRET_SECRET_KEY_BASE_VERSION:-v1}";

    fn with(pairs: &[(&str, &str)]) -> Result<SecretSpec, SecretError> {
        let mods = BTreeMap::from([(VAR.to_string(), env(pairs))]);
        spec(
            "secret_key_base",
            "s_secret_key_base_v1",
            Some(WRITTEN),
            &mods,
        )
    }

    #[test]
    fn the_version_is_the_interpolated_name_after_its_last_underscore() {
        let table: &[(&str, Option<&str>, &str, Option<&str>)] = &[
            (
                "s_app_key_v1",
                Some("${STACK_NAME}_app_key_${SECRET_APP_KEY_VERSION}"),
                "v1",
                Some("SECRET_APP_KEY_VERSION"),
            ),
            (
                "s_mail_key_v2",
                Some("${STACK_NAME}_mail_key_${SECRET_MAIL_KEY_VERSION:-v1}"),
                "v2",
                Some("SECRET_MAIL_KEY_VERSION"),
            ),
            (
                "s_ovh_consumer_key_v1",
                Some("${STACK_NAME}_ovh_consumer_key_${SECRET_OVH_CONSUMER_KEY}"),
                "v1",
                Some("SECRET_OVH_CONSUMER_KEY"),
            ),
            (
                "s_fixed_v3",
                Some("${STACK_NAME}_fixed_v3"),
                "v3",
                Some("STACK_NAME"),
            ),
            ("plain", None, "plain", None),
        ];
        for (name, written, version, var) in table {
            let s = spec("k", name, *written, &BTreeMap::new()).unwrap();
            assert_eq!(s.version, *version, "{name}");
            assert_eq!(s.version_var.as_deref(), *var, "{name}");
            assert_eq!(
                (s.length, s.charset, &s.source),
                (DEFAULT_LENGTH, Charset::Default, &Source::Generated)
            );
        }
    }

    #[test]
    fn a_name_ending_in_an_underscore_is_refused_as_abra_refuses_it() {
        let err = spec(
            "ovh_consumer_key",
            "s_ovh_consumer_key_",
            Some("${STACK_NAME}_ovh_consumer_key_${SECRET_OVH_CONSUMER_KEY}"),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`s_ovh_consumer_key_` ends in `_`"), "{err}");
        assert!(
            err.contains("set SECRET_OVH_CONSUMER_KEY in the app env"),
            "{err}"
        );
        assert!(
            err.contains("missing version for secret? (ovh_consumer_key)"),
            "{err}"
        );
    }

    #[test]
    fn modifiers_are_honoured_or_named_in_a_note() {
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, &'a str)>,
            usize,
            Charset,
            Source,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (
                "none",
                vec![],
                DEFAULT_LENGTH,
                Charset::Default,
                Source::Generated,
                None,
            ),
            (
                "bonfire's length=128",
                vec![("length", "128")],
                128,
                Charset::Default,
                Source::Generated,
                None,
            ),
            (
                "llamenos' hex",
                vec![("length", "64"), ("charset", "hex")],
                64,
                Charset::Hex,
                Source::Generated,
                None,
            ),
            (
                "llamenos' alnum",
                vec![("length", "20"), ("charset", "alnum")],
                20,
                Charset::Alnum,
                Source::Generated,
                None,
            ),
            (
                "special-chars",
                vec![("charset", "special-chars")],
                DEFAULT_LENGTH,
                Charset::SpecialChars,
                Source::Generated,
                None,
            ),
            (
                "charset=default",
                vec![("charset", "default")],
                DEFAULT_LENGTH,
                Charset::Default,
                Source::Generated,
                None,
            ),
            (
                "generate=true",
                vec![("generate", "true")],
                DEFAULT_LENGTH,
                Charset::Default,
                Source::Generated,
                None,
            ),
            (
                "generate=false",
                vec![("generate", "false"), ("length", "16")],
                16,
                Charset::Default,
                Source::TestValue,
                Some("random test value"),
            ),
            (
                "unknown charset",
                vec![("charset", "emoji")],
                DEFAULT_LENGTH,
                Charset::Default,
                Source::Generated,
                Some("`charset=emoji` is not one canon knows"),
            ),
            (
                "unknown modifier",
                vec![("colour", "red")],
                DEFAULT_LENGTH,
                Charset::Default,
                Source::Generated,
                Some("unknown secret modifier `colour=red`"),
            ),
            (
                "odd generate",
                vec![("generate", "maybe")],
                DEFAULT_LENGTH,
                Charset::Default,
                Source::Generated,
                Some("`generate=maybe`"),
            ),
        ];
        for (name, mods, length, charset, source, note) in cases {
            let s = with(&mods).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(
                (s.length, s.charset, &s.source),
                (length, charset, &source),
                "{name}"
            );
            match note {
                None => assert!(s.notes.is_empty(), "{name}: {:?}", s.notes),
                Some(n) => assert!(
                    s.notes.len() == 1 && s.notes[0].contains(n) && s.notes[0].contains(VAR),
                    "{name}: {:?}",
                    s.notes
                ),
            }
        }
    }

    #[test]
    fn a_length_canon_cannot_generate_is_refused() {
        for bad in ["0", "100000", "long", "-1"] {
            let err = with(&[("length", bad)]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("length={bad}")) && err.contains(VAR),
                "{err}"
            );
            assert!(
                !err.contains("abra"),
                "abra would not refuse it in these words: {err}"
            );
        }
    }

    #[test]
    fn modifiers_belong_to_the_variable_the_name_refers_to() {
        // A modifier on a variable whose name merely contains the secret's is not its.
        let mods = BTreeMap::from([
            ("SECRET_KEY_VERSION".to_string(), env(&[("length", "7")])),
            ("STACK_NAME".to_string(), env(&[("length", "9")])),
        ]);
        let s = spec(
            "secret_key",
            "s_secret_key_v1",
            Some("${STACK_NAME}_secret_key_${SECRET_SECRET_KEY_VERSION}"),
            &mods,
        )
        .unwrap();
        assert_eq!(s.length, DEFAULT_LENGTH);
        let s = spec(
            "key",
            "s_key_v1",
            Some("${STACK_NAME}_key_${SECRET_KEY_VERSION}"),
            &mods,
        )
        .unwrap();
        assert_eq!(s.length, 7);
    }

    #[test]
    fn generated_values_have_the_length_and_alphabet_asked_for() {
        for charset in [
            Charset::Default,
            Charset::Alnum,
            Charset::Hex,
            Charset::SpecialChars,
        ] {
            let alphabet = charset.alphabet();
            for n in [1, 32, 128, 1000] {
                let v = generate(n, charset);
                assert_eq!(v.len(), n);
                assert!(v.bytes().all(|b| alphabet.contains(&b)), "{charset:?}: {v}");
            }
            assert_ne!(generate(64, charset), generate(64, charset));
        }
        let hex = generate(4000, Charset::Hex);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let special = generate(4000, Charset::SpecialChars);
        assert!(special
            .bytes()
            .any(|b| SPECIAL_CHARS.as_bytes().contains(&b)));
        assert!(!special.contains(['"', '\'', '\\', '`', ' ']));
    }

    #[test]
    fn a_supplied_file_gives_the_value_and_replaces_the_test_value() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("orcid");
        std::fs::write(&file, "from-the-operator\n").unwrap();
        let mut s = with(&[("generate", "false")]).unwrap();
        assert_eq!(
            s.value().unwrap().len(),
            DEFAULT_LENGTH,
            "a test value stands in"
        );
        s.supply(&file);
        assert_eq!(s.source, Source::File(file.clone()));
        assert!(s.notes.is_empty(), "{:?}", s.notes);
        assert_eq!(s.value().unwrap(), "from-the-operator");
        s.supply(&tmp.path().join("missing"));
        let err = s.value().unwrap_err().to_string();
        assert!(
            err.contains("missing") && err.contains("`secret_key_base`"),
            "{err}"
        );
    }
}
