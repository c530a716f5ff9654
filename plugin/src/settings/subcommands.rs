//! The other subcommands' settings table: every setting of `canonical`, `state export`,
//! `mirror-sync` and `recipe plan` that a variable gives (a flag of the subcommand, or for the
//! tokens only the variable), with its variables, default, type and help, in one list
//! ([`SUBCOMMAND_SETTINGS`]), the flags built from it ([`SubcommandFlags`]) and the reading of
//! flags and variables by it ([`SubcommandValues`]).
//!
//! Separate from [`super::KNOWN_SETTINGS`] because these are not plugin settings: Drone never
//! passes them, they accept other variables (`CANON_STATE_DIR` alone for the state dir, `USER`
//! for who pins) and their help differs per subcommand. The rules are the same as `run`'s and
//! `sweep`'s: a flag wins over a variable, a blank value is unset, a secret file is read by the
//! shared reader ([`canon_shared::settings::read_secret_file`]) and every problem is reported at
//! once, naming the setting, its variable and its flag. clap only shows the variable and the
//! default in `--help`; the values it would take from them are ignored, so the table's rule
//! decides.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use canon_shared::secret::Secret;
use canon_shared::settings::{read_secret_file, Problems, RawValues, SecretContent};
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};

/// The flags that one `#[command(flatten)]` adds to a subcommand's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Where `canonical show|pin|unpin|badge` finds the records.
    CanonicalTarget,
    /// Who `canonical pin|unpin` records.
    CanonicalBy,
    /// What `state export` exports.
    StateExport,
    /// Where `mirror-sync` keeps its caches.
    MirrorSync,
    /// The tokens `mirror-sync` and `recipe plan` fetch and push with (variables only, so they
    /// never show in process listings).
    GitTokens,
}

impl Group {
    /// Returns the subcommands (as typed after `canon-plugin`) whose arguments hold the group.
    pub fn commands(self) -> &'static [&'static str] {
        match self {
            Group::CanonicalTarget => &[
                "canonical show",
                "canonical pin",
                "canonical badge",
                "canonical unpin",
            ],
            Group::CanonicalBy => &["canonical pin", "canonical unpin"],
            Group::StateExport => &["state export"],
            Group::MirrorSync => &["mirror-sync"],
            Group::GitTokens => &["mirror-sync", "recipe plan"],
        }
    }
}

/// What a subcommand setting holds, and so how it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Free text.
    Text,
    /// A file or directory path, as given (relative to the working directory).
    Path,
    /// The path of a file holding a token, read by the shared secret-file reader (trimmed).
    TokenFile,
    /// A token, given only by a variable (it has no flag: flags show in `ps`).
    Token,
}

/// One subcommand setting: a flag and the variables that give it when the flag is absent.
#[derive(Debug, Clone, Copy)]
pub struct SubcommandSetting {
    /// The flags it is one of.
    pub group: Group,
    /// The setting's name, snake_case (the flag's id).
    pub name: &'static str,
    /// Every environment variable it is read from, first wins.
    pub env: &'static [&'static str],
    /// The command-line flag (empty for a [`Kind::Token`], which has none).
    pub flag: &'static str,
    /// The value's type.
    pub kind: Kind,
    /// The default, as text (empty: no default).
    pub default: &'static str,
    /// The flag's one-line help (`--help`).
    pub help: &'static str,
}

impl SubcommandSetting {
    /// Returns how problems name the setting: `` `name` (VARIABLE or --flag) ``.
    pub fn label(&self) -> String {
        let variables = self.env.join(" or ");
        if self.flag.is_empty() {
            format!("`{}` ({variables})", self.name)
        } else {
            format!("`{}` ({variables} or {})", self.name, self.flag)
        }
    }
}

/// Every subcommand setting that a variable can give, in `--help` order within each group.
pub const SUBCOMMAND_SETTINGS: &[SubcommandSetting] = &[
    SubcommandSetting {
        group: Group::CanonicalTarget,
        name: "state_dir",
        env: &["CANON_STATE_DIR"],
        flag: "--state-dir",
        kind: Kind::Path,
        default: "./canon-state",
        help: "The state directory (with a state repository: this host's clone and locks)",
    },
    SubcommandSetting {
        group: Group::CanonicalTarget,
        name: "state_repo",
        env: &["CANON_STATE_REPO"],
        flag: "--state-repo",
        kind: Kind::Text,
        default: "",
        help: "A git state repository holding the canonical records instead of the state dir",
    },
    SubcommandSetting {
        group: Group::CanonicalTarget,
        name: "mirror_token_file",
        env: &["PLUGIN_MIRROR_TOKEN_FILE"],
        flag: "--mirror-token-file",
        kind: Kind::TokenFile,
        default: "",
        help: "A file holding the token for the state repository over HTTPS (the mirror token)",
    },
    SubcommandSetting {
        group: Group::CanonicalTarget,
        name: "ssh_key_file",
        env: &["PLUGIN_SSH_KEY_FILE"],
        flag: "--ssh-key-file",
        kind: Kind::Path,
        default: "",
        help: "A private key file for a state repository over SSH",
    },
    SubcommandSetting {
        group: Group::CanonicalBy,
        name: "by",
        env: &["USER"],
        flag: "--by",
        kind: Kind::Text,
        default: "unknown",
        help: "Who (default: $USER)",
    },
    SubcommandSetting {
        group: Group::StateExport,
        name: "state_dir",
        env: &["CANON_STATE_DIR"],
        flag: "--state-dir",
        kind: Kind::Path,
        default: "./canon-state",
        help: "The state directory to export",
    },
    SubcommandSetting {
        group: Group::MirrorSync,
        name: "state_dir",
        env: &["CANON_STATE_DIR"],
        flag: "--state-dir",
        kind: Kind::Path,
        default: "./canon-state",
        help: "With --config: the state directory; caches live at `<state>/<recipe>/upstream.git`",
    },
    SubcommandSetting {
        group: Group::GitTokens,
        name: "upstream_token",
        env: &["CANON_UPSTREAM_TOKEN"],
        flag: "",
        kind: Kind::Token,
        default: "",
        help: "Token for HTTPS access to upstream repositories",
    },
    SubcommandSetting {
        group: Group::GitTokens,
        name: "mirror_token",
        env: &["CANON_MIRROR_TOKEN"],
        flag: "",
        kind: Kind::Token,
        default: "",
        help: "Token for HTTPS access to mirror repositories (and closing their merged PRs)",
    },
];

/// Returns the settings of `group`, in table order.
pub fn group_settings(group: Group) -> impl Iterator<Item = &'static SubcommandSetting> {
    SUBCOMMAND_SETTINGS.iter().filter(move |s| s.group == group)
}

/// Returns the entry of the setting `name` in `group`.
fn entry(group: Group, name: &str) -> Option<&'static SubcommandSetting> {
    group_settings(group).find(|s| s.name == name)
}

/// A type that names one [`Group`], so the flags of [`SubcommandFlags`] are known to clap.
pub trait FlagGroup {
    /// The group.
    const GROUP: Group;
}

/// [`Group::CanonicalTarget`].
#[derive(Debug, Clone, Copy)]
pub struct CanonicalTarget;
impl FlagGroup for CanonicalTarget {
    const GROUP: Group = Group::CanonicalTarget;
}

/// [`Group::CanonicalBy`].
#[derive(Debug, Clone, Copy)]
pub struct CanonicalBy;
impl FlagGroup for CanonicalBy {
    const GROUP: Group = Group::CanonicalBy;
}

/// [`Group::StateExport`].
#[derive(Debug, Clone, Copy)]
pub struct StateExport;
impl FlagGroup for StateExport {
    const GROUP: Group = Group::StateExport;
}

/// [`Group::MirrorSync`].
#[derive(Debug, Clone, Copy)]
pub struct MirrorSync;
impl FlagGroup for MirrorSync {
    const GROUP: Group = Group::MirrorSync;
}

/// [`Group::GitTokens`].
#[derive(Debug, Clone, Copy)]
pub struct GitTokens;
impl FlagGroup for GitTokens {
    const GROUP: Group = Group::GitTokens;
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
        // `std::env::vars` panics on a non-UTF-8 variable; skip those instead.
        Self::from_pairs(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
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

/// The flags of one [`Group`] as the command line gave them, built from the table: flatten it
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
    /// Returns the group's values: each flag, else its first variable that is set, else its
    /// default.
    pub fn read(&self, vars: &Variables) -> SubcommandValues {
        let mut values = RawValues::default();
        for s in group_settings(G::GROUP) {
            let value = self
                .given
                .get(s.name)
                .or_else(|| s.env.iter().find_map(|v| vars.get(v)))
                .unwrap_or(s.default);
            values.set(s.name, value);
        }
        SubcommandValues {
            group: G::GROUP,
            values,
        }
    }
}

/// Returns the flag of one setting; its variable and default are shown by `--help` only.
fn flag(s: &'static SubcommandSetting) -> Arg {
    let arg = Arg::new(s.name)
        .long(s.flag.trim_start_matches("--"))
        .help(s.help)
        .value_name(s.name.to_ascii_uppercase())
        .action(ArgAction::Set);
    // clap shows `[env: …]` and `[default: …]` from these; `update_from_arg_matches` keeps
    // only what the command line gave, so a blank variable is unset as in the table's rule.
    let arg = match s.env.first() {
        Some(variable) => arg.env(*variable),
        None => arg,
    };
    if s.default.is_empty() {
        arg
    } else {
        arg.default_value(s.default)
    }
}

impl<G: FlagGroup> clap::Args for SubcommandFlags<G> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        group_settings(G::GROUP)
            .filter(|s| !s.flag.is_empty())
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
        for s in group_settings(G::GROUP).filter(|s| !s.flag.is_empty()) {
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

/// The values of one [`Group`]'s settings, flags over variables over defaults (strings; blank is
/// unset).
#[derive(Clone)]
pub struct SubcommandValues {
    /// The group.
    group: Group,
    /// The values, with the defaults filled in.
    values: RawValues,
}

impl fmt::Debug for SubcommandValues {
    /// The values, a token as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for s in group_settings(self.group) {
            if let Some(value) = self.values.get(s.name) {
                map.entry(&s.name, &if s.kind == Kind::Token { "***" } else { value });
            }
        }
        map.finish()
    }
}

impl SubcommandValues {
    /// Returns the table entry of `name`.
    fn entry(&self, name: &str) -> Option<&'static SubcommandSetting> {
        let found = entry(self.group, name);
        // A name missing from the table is a typo in this crate, not a user error: debug builds
        // (and so every test) stop on it; a release build reads it as unset.
        debug_assert!(found.is_some(), "`{name}` is not in {:?}", self.group);
        found
    }

    /// Returns the text of `name` (its default when unset and it has one).
    pub fn text(&self, name: &str) -> Option<String> {
        self.entry(name)?;
        self.values.get(name).map(str::to_string)
    }

    /// Returns the path `name` (its default when unset and it has one).
    pub fn path(&self, name: &str) -> Option<PathBuf> {
        self.text(name).map(PathBuf::from)
    }

    /// Returns the secret `name` (a [`Kind::Token`] setting), `None` when it is unset.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        let s = self.entry(name)?;
        debug_assert_eq!(s.kind, Kind::Token, "`{name}` is not a token");
        self.values.get(name).map(Secret::new)
    }

    /// Returns the token in the file `name` names (a [`Kind::TokenFile`] setting), read by the
    /// shared reader; a file that cannot be used is a problem naming the setting, its variable
    /// and its flag, never the content.
    pub fn token_from_file(&self, name: &str, problems: &mut Problems) -> Option<Secret> {
        let s = self.entry(name)?;
        debug_assert_eq!(s.kind, Kind::TokenFile, "`{name}` is not a token file");
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
    use clap::{CommandFactory, Parser};

    /// A subcommand that flattens two groups, as `canonical pin` does.
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
        let vars = Variables::from_pairs([("CANON_STATE_DIR", "/from/env"), ("USER", "ann")]);
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
    }

    #[test]
    fn a_blank_variable_is_unset() {
        let vars = Variables::from_pairs([
            ("CANON_STATE_DIR", ""),
            ("CANON_STATE_REPO", "  "),
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
            ("CANON_UPSTREAM_TOKEN", "u-t0ken"),
            ("CANON_MIRROR_TOKEN", " "),
        ]);
        let values = SubcommandFlags::<GitTokens>::default().read(&vars);
        let upstream = values.secret("upstream_token");
        assert_eq!(upstream.as_ref().map(Secret::expose), Some("u-t0ken"));
        assert!(values.secret("mirror_token").is_none());
        let shown = format!("{vars:?} {values:?} {upstream:?}");
        assert!(!shown.contains("u-t0ken"), "{shown}");
    }

    /// Returns every subcommand of `cmd` with its path (`canonical pin`).
    fn subcommands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name()).trim().to_string();
            out.push((sub_path.clone(), sub.clone()));
            subcommands(sub, &sub_path, out);
        }
    }

    #[test]
    fn every_flag_with_a_variable_is_in_the_table() {
        let mut all = Vec::new();
        subcommands(&crate::cli::Cli::command(), "", &mut all);
        let mut seen = Vec::new();
        for (path, cmd) in &all {
            for arg in cmd.get_arguments() {
                let Some(variable) = arg.get_env() else {
                    continue;
                };
                let variable = variable.to_string_lossy();
                let flag = format!("--{}", arg.get_long().unwrap_or_default());
                let found = SUBCOMMAND_SETTINGS.iter().find(|s| {
                    s.group.commands().contains(&path.as_str())
                        && s.flag == flag
                        && s.env.first() == Some(&variable.as_ref())
                        && s.name == arg.get_id().as_str()
                });
                let Some(s) = found else {
                    panic!("`{path} {flag}` reads {variable}, which the subcommand settings table does not give it");
                };
                let defaults: Vec<_> = arg
                    .get_default_values()
                    .iter()
                    .map(|d| d.to_string_lossy().to_string())
                    .collect();
                let want: Vec<_> = Some(s.default)
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .into_iter()
                    .collect();
                assert_eq!(defaults, want, "`{path} {flag}`");
                seen.push((path.clone(), s.name));
            }
        }
        for s in SUBCOMMAND_SETTINGS {
            for path in s.group.commands() {
                assert!(all.iter().any(|(p, _)| p == path), "no subcommand `{path}`");
            }
        }
        for s in SUBCOMMAND_SETTINGS.iter().filter(|s| !s.flag.is_empty()) {
            for path in s.group.commands() {
                assert!(
                    seen.contains(&(path.to_string(), s.name)),
                    "`{path}` has no {} reading {:?}",
                    s.flag,
                    s.env
                );
            }
        }
    }

    #[test]
    fn every_entry_is_well_formed() {
        for s in SUBCOMMAND_SETTINGS {
            if s.kind == Kind::Token {
                assert!(s.flag.is_empty(), "{}: a token has no flag", s.name);
                continue;
            }
            assert_eq!(s.flag, format!("--{}", s.name.replace('_', "-")));
            assert!(!s.env.is_empty(), "{} has no variable", s.name);
            assert!(
                !s.help.ends_with('.'),
                "{}: clap shows help without a period",
                s.name
            );
            let dupes = group_settings(s.group).filter(|o| o.name == s.name).count();
            assert_eq!(dupes, 1, "{} twice in {:?}", s.name, s.group);
        }
    }
}
