//! The flags of the subcommands other than `run` and `sweep` (`canonical`, `state export`,
//! `mirror-sync`, `recipe plan`) that a variable can give, built from the settings table
//! ([`super::KNOWN_SETTINGS`], by each setting's [`Use`]) as [`SubcommandFlags`], and the reading
//! of flags and variables by it ([`SubcommandValues`]).
//!
//! The rules are the same as `run`'s and `sweep`'s: a flag wins over a variable, a variable over
//! the default, a blank value is unset, an old variable name is read last and warned about, a
//! secret file is read by the shared reader ([`canon_shared::settings::read_secret_file`]) and
//! every problem is reported at once, naming the setting, its variable and its flag. A secret has
//! no flag here, only its variable, so it never shows in process listings. `--help` shows each
//! flag's variables and default from the table.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use canon_shared::secret::Secret;
use canon_shared::settings::{read_secret_file, Problems, RawValues, SecretContent};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};

use super::table::{settings_of, SettingDoc, Use};

/// Returns the entry of the setting `name` that `place` reads.
fn entry(place: Use, name: &str) -> Option<&'static SettingDoc> {
    settings_of(place).find(|s| s.name == name)
}

/// A type that names one [`Use`], so the flags of [`SubcommandFlags`] are known to clap.
pub trait FlagGroup {
    /// The place whose settings the flags are.
    const USE: Use;
}

/// [`Use::CanonicalTarget`].
#[derive(Debug, Clone, Copy)]
pub struct CanonicalTarget;
impl FlagGroup for CanonicalTarget {
    const USE: Use = Use::CanonicalTarget;
}

/// [`Use::CanonicalBy`].
#[derive(Debug, Clone, Copy)]
pub struct CanonicalBy;
impl FlagGroup for CanonicalBy {
    const USE: Use = Use::CanonicalBy;
}

/// [`Use::CanonicalRewarm`].
#[derive(Debug, Clone, Copy)]
pub struct CanonicalRewarm;
impl FlagGroup for CanonicalRewarm {
    const USE: Use = Use::CanonicalRewarm;
}

/// [`Use::StateExport`].
#[derive(Debug, Clone, Copy)]
pub struct StateExport;
impl FlagGroup for StateExport {
    const USE: Use = Use::StateExport;
}

/// [`Use::MirrorSync`].
#[derive(Debug, Clone, Copy)]
pub struct MirrorSync;
impl FlagGroup for MirrorSync {
    const USE: Use = Use::MirrorSync;
}

/// [`Use::RecipePlan`].
#[derive(Debug, Clone, Copy)]
pub struct RecipePlan;
impl FlagGroup for RecipePlan {
    const USE: Use = Use::RecipePlan;
}

/// The environment variables, read once (the process's in `main`, a list in tests).
#[derive(Default, Clone, PartialEq, Eq)]
pub struct Variables(BTreeMap<String, String>);

impl fmt::Debug for Variables {
    /// Names only: a variable may hold a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Variables {
    /// Returns the variables of `(name, value)` pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Reads the process environment (variables that are not UTF-8 are ignored).
    pub fn from_process() -> Self {
        // As started, credentials included (they are no longer in the live environment);
        // `std::env::vars` would panic on a non-UTF-8 variable, those are skipped.
        Self::from_pairs(canon_shared::process_env::variables())
    }

    /// Returns the value of `name`, `None` when it is unset or blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// Returns every `(name, value)` pair.
    pub fn pairs(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone()))
    }
}

/// The flags of one [`Use`] as the command line gave them, built from the table: flatten it
/// into a subcommand's arguments and [`read`](Self::read) it with the variables.
pub struct SubcommandFlags<G> {
    /// The values given on the command line (blank ones unset).
    given: RawValues,
    /// The group.
    group: PhantomData<G>,
}

impl<G> fmt::Debug for SubcommandFlags<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SubcommandFlags").field(&self.given).finish()
    }
}

impl<G> Default for SubcommandFlags<G> {
    fn default() -> Self {
        Self {
            given: RawValues::default(),
            group: PhantomData,
        }
    }
}

impl<G> Clone for SubcommandFlags<G> {
    fn clone(&self) -> Self {
        Self {
            given: self.given.clone(),
            group: PhantomData,
        }
    }
}

impl<G: FlagGroup> SubcommandFlags<G> {
    /// Returns the values of the settings `G` reads: each flag, else its first variable that is
    /// set, else its first old variable that is set (with a warning naming the new one), else its
    /// default.
    pub fn read(&self, vars: &Variables) -> SubcommandValues {
        let mut values = RawValues::default();
        let mut renamed = Vec::new();
        for s in settings_of(G::USE) {
            let value = self
                .given
                .get(s.name)
                .or_else(|| s.env.iter().find_map(|v| vars.get(v)))
                .or_else(|| {
                    let (old, value) = s.old_env.iter().find_map(|v| Some((*v, vars.get(v)?)))?;
                    renamed.push((old, s.env[0]));
                    Some(value)
                })
                .unwrap_or(s.default);
            values.set(s.name, value);
        }
        for (old, new) in &renamed {
            tracing::warn!(variable = %old, instead = %new, "{old} is read until the next release only: set {new} instead.");
        }
        SubcommandValues {
            place: G::USE,
            values,
            renamed,
        }
    }
}

/// Returns the flag of one setting; its variables and default are in its help only, so clap
/// never takes a value from them (the table's rule does) and never prints a secret's value.
fn flag(s: &'static SettingDoc) -> Arg {
    let value_name = if s.name.ends_with("_file") {
        "PATH".to_string()
    } else {
        s.name.to_ascii_uppercase()
    };
    Arg::new(s.name)
        .long(s.flag.trim_start_matches("--"))
        .help(s.flag_help())
        .value_name(value_name)
        .action(ArgAction::Set)
}

impl<G: FlagGroup> clap::Args for SubcommandFlags<G> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        settings_of(G::USE)
            .filter(|s| s.has_flag_in(G::USE))
            .fold(cmd, |cmd, s| cmd.arg(flag(s)))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<G: FlagGroup> clap::FromArgMatches for SubcommandFlags<G> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = Self::default();
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for s in settings_of(G::USE).filter(|s| s.has_flag_in(G::USE)) {
            if matches.value_source(s.name) != Some(ValueSource::CommandLine) {
                continue;
            }
            if let Some(v) = matches.get_one::<String>(s.name) {
                self.given.set(s.name, v.clone());
            }
        }
        Ok(())
    }
}

/// The values of the settings one [`Use`] reads, flags over variables over defaults (strings;
/// blank is unset).
#[derive(Clone)]
pub struct SubcommandValues {
    /// The place whose settings these are.
    place: Use,
    /// The values, with the defaults filled in.
    values: RawValues,
    /// The old variable names that gave a value, each with its new name.
    renamed: Vec<(&'static str, &'static str)>,
}

impl fmt::Debug for SubcommandValues {
    /// The values, a token as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for s in settings_of(self.place) {
            if let Some(value) = self.values.get(s.name) {
                map.entry(&s.name, &if s.secret { "***" } else { value });
            }
        }
        map.finish()
    }
}

impl SubcommandValues {
    /// Returns the table entry of `name`.
    fn entry(&self, name: &str) -> Option<&'static SettingDoc> {
        let found = entry(self.place, name);
        // A name missing from the table is a typo in this crate, not a user error: debug builds
        // (and so every test) stop on it; a release build reads it as unset.
        debug_assert!(found.is_some(), "`{name}` is not read by {:?}", self.place);
        found
    }

    /// Returns the old variable names that gave a value, each with the name that replaces it.
    pub fn renamed(&self) -> &[(&'static str, &'static str)] {
        &self.renamed
    }

    /// Returns the text of `name` (its default when unset and it has one).
    pub fn text(&self, name: &str) -> Option<String> {
        self.entry(name)?;
        self.values.get(name).map(str::to_string)
    }

    /// Returns the value of `name` given by a flag or a variable, `None` when unset: for a
    /// setting whose default is a sentence (`runner`, `work_dir`), not a value.
    pub fn given(&self, name: &str) -> Option<String> {
        let s = self.entry(name)?;
        self.values
            .get(name)
            .filter(|v| *v != s.default)
            .map(str::to_string)
    }

    /// Returns the path `name` (its default when unset and it has one).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.text(name).map(PathBuf::from)
    }

    /// Returns the secret `name` (a secret setting, given by its variable), `None` when it is
    /// unset.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        let s = self.entry(name)?;
        debug_assert!(s.secret, "`{name}` is not a secret");
        self.values.get(name).map(Secret::new)
    }

    /// Returns the token in the file `name` names (a `*_file` setting of a token), read by the
    /// shared reader; a file that cannot be used is a problem naming the setting, its variable
    /// and its flag, never the content.
    pub fn token_from_file(&self, name: &str, problems: &mut Problems) -> Option<Secret> {
        let s = self.entry(name)?;
        debug_assert!(name.ends_with("_file"), "`{name}` is not a file setting");
        let file = self.values.get(name)?;
        let secret = name.strip_suffix("_file").unwrap_or(name);
        problems.check(
            read_secret_file(secret, Path::new(file), SecretContent::Token)
                .map_err(|p| p.replacen(&format!("`{name}`"), &s.label(), 1)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canon_shared::settings::Heading;
    use clap::Parser;

    /// A subcommand that flattens two places, as `canonical pin` does.
    #[derive(Debug, Parser)]
    struct Pin {
        #[command(flatten)]
        target: SubcommandFlags<CanonicalTarget>,
        #[command(flatten)]
        by: SubcommandFlags<CanonicalBy>,
    }

    fn parse(args: &[&str]) -> Pin {
        Pin::try_parse_from(std::iter::once("pin").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn a_flag_wins_over_its_variable_which_wins_over_the_default() {
        let vars = Variables::from_pairs([("PLUGIN_STATE_DIR", "/from/env"), ("USER", "ann")]);
        let pin = parse(&["--state-dir", "/from/flag"]);
        let target = pin.target.read(&vars);
        assert_eq!(target.path("state_dir"), Some(PathBuf::from("/from/flag")));
        assert_eq!(target.text("state_repo"), None);
        assert_eq!(pin.by.read(&vars).text("by").as_deref(), Some("ann"));
        let pin = parse(&[]);
        let target = pin.target.read(&vars);
        assert_eq!(target.path("state_dir"), Some(PathBuf::from("/from/env")));
        let none = Variables::default();
        assert_eq!(
            pin.target.read(&none).path("state_dir"),
            Some(PathBuf::from("./canon-state"))
        );
        assert_eq!(pin.by.read(&none).text("by").as_deref(), Some("unknown"));
        let by = Variables::from_pairs([("PLUGIN_BY", "bob"), ("USER", "ann")]);
        assert_eq!(pin.by.read(&by).text("by").as_deref(), Some("bob"));
    }

    #[test]
    fn an_old_variable_is_read_last_and_reported_with_its_new_name() {
        let old = Variables::from_pairs([("CANON_STATE_DIR", "/old"), ("CANON_STATE_REPO", "/r")]);
        let values = parse(&[]).target.read(&old);
        assert_eq!(values.path("state_dir"), Some(PathBuf::from("/old")));
        assert_eq!(values.text("state_repo").as_deref(), Some("/r"));
        assert_eq!(
            values.renamed(),
            [
                ("CANON_STATE_DIR", "PLUGIN_STATE_DIR"),
                ("CANON_STATE_REPO", "PLUGIN_STATE_REPO")
            ]
        );
        let both =
            Variables::from_pairs([("CANON_STATE_DIR", "/old"), ("PLUGIN_STATE_DIR", "/new")]);
        let values = parse(&[]).target.read(&both);
        assert_eq!(values.path("state_dir"), Some(PathBuf::from("/new")));
        assert!(values.renamed().is_empty(), "{:?}", values.renamed());
    }

    #[test]
    fn a_blank_variable_is_unset() {
        let vars = Variables::from_pairs([
            ("PLUGIN_STATE_DIR", ""),
            ("PLUGIN_STATE_REPO", "  "),
            ("USER", ""),
        ]);
        let pin = parse(&[]);
        let target = pin.target.read(&vars);
        assert_eq!(
            target.path("state_dir"),
            Some(PathBuf::from("./canon-state"))
        );
        assert_eq!(target.text("state_repo"), None);
        assert_eq!(pin.by.read(&vars).text("by").as_deref(), Some("unknown"));
    }

    #[test]
    fn an_unusable_token_file_names_the_setting_its_variable_and_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "  s3cr3t\n").unwrap();
        let vars = Variables::from_pairs([("PLUGIN_MIRROR_TOKEN_FILE", token.to_str().unwrap())]);
        let mut problems = Problems::new(Heading::Counted);
        let read = parse(&[])
            .target
            .read(&vars)
            .token_from_file("mirror_token_file", &mut problems);
        assert_eq!(
            read.map(|s| s.expose().to_string()).as_deref(),
            Some("s3cr3t")
        );
        assert!(problems.into_result().is_ok());

        std::fs::write(&token, "\n").unwrap();
        let missing = dir.path().join("missing");
        for (pin, want) in [
            (parse(&[]), format!("{} is empty", token.display())),
            (
                parse(&["--mirror-token-file", missing.to_str().unwrap()]),
                format!("cannot read {}", missing.display()),
            ),
        ] {
            let mut problems = Problems::new(Heading::Counted);
            let read = pin
                .target
                .read(&vars)
                .token_from_file("mirror_token_file", &mut problems);
            assert!(read.is_none());
            let text = problems.into_result().unwrap_err().to_string();
            assert!(
                text.contains(
                    "1 problem(s) with the settings:\n  - `mirror_token_file` (PLUGIN_MIRROR_TOKEN_FILE or --mirror-token-file): "
                ),
                "{text}"
            );
            assert!(text.contains(&want), "want {want:?} in {text}");
            assert!(!text.contains("s3cr3t"), "{text}");
        }
    }

    #[test]
    fn tokens_come_from_their_variables_only_and_a_blank_one_is_unset() {
        let vars = Variables::from_pairs([
            ("PLUGIN_UPSTREAM_TOKEN", "u-t0ken"),
            ("PLUGIN_MIRROR_TOKEN", " "),
        ]);
        let values = SubcommandFlags::<MirrorSync>::default().read(&vars);
        let upstream = values.secret("upstream_token");
        assert_eq!(upstream.as_ref().map(Secret::expose), Some("u-t0ken"));
        assert!(values.secret("mirror_token").is_none());
        let shown = format!("{vars:?} {values:?} {upstream:?}");
        assert!(!shown.contains("u-t0ken"), "{shown}");
        let old = Variables::from_pairs([("CANON_MIRROR_TOKEN", "m-t0ken")]);
        let values = SubcommandFlags::<RecipePlan>::default().read(&old);
        assert_eq!(
            values.secret("mirror_token").as_ref().map(Secret::expose),
            Some("m-t0ken")
        );
        assert_eq!(
            values.renamed(),
            [("CANON_MIRROR_TOKEN", "PLUGIN_MIRROR_TOKEN")]
        );
    }
}
