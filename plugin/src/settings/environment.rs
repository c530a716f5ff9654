//! The raw environment: `PLUGIN_*` (and the old names still read) and the `run`/`sweep` flags
//! ([`ModeFlags`]) as strings ([`RawSettings`], both built from the settings table), and Drone's
//! build metadata with the listener's `CANON_*` build parameters ([`DroneMeta`]), read once into
//! an [`Environment`].
//!
//! Nothing here judges a value: an empty one is unset (Drone sets a `from_secret` whose secret is
//! missing to `""`), everything else is carried as text to [`super::Settings::parse`].

use std::fmt;
use std::marker::PhantomData;

use canon_shared::settings::{RawValues, SettingType};
use clap::{Arg, ArgAction, ArgMatches};
use serde::Deserialize;

use super::subcommands::FlagGroup;
use super::table::{plugin_setting, plugin_settings, setting_doc, SettingDoc, Use};

/// Raw settings exactly as they arrived, by setting name (strings; unset when blank). Read from
/// `PLUGIN_*`, and from the `run` and `sweep` subcommands' flags (which win). Both are made from
/// [`super::KNOWN_SETTINGS`]: a setting added to the table is a variable and a flag with no more
/// code.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawSettings {
    /// Every setting that was given.
    pub(super) values: RawValues,
    /// `--cold`: a ref run installs fresh, as if `warm` were false (a flag only, not a setting).
    pub(super) cold: bool,
}

/// The id and long name of the `--cold` flag.
const COLD: &str = "cold";

impl RawSettings {
    /// Returns the settings of `(name, value)` pairs, as flags would give them. A name that is
    /// not a plugin setting of [`super::KNOWN_SETTINGS`] is ignored.
    pub fn from_values<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let values = RawValues::from_pairs(pairs, |name| plugin_setting(name).map(|s| s.name));
        Self {
            values,
            cold: false,
        }
    }

    /// Returns the value of the setting `name`, `None` when it is unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        // A name missing from the table is a typo in this crate, not a user error: debug builds
        // (and so every test) stop on it; a release build reads it as unset.
        debug_assert!(setting_doc(name).is_some(), "`{name}` is not in the table");
        self.values.get(name)
    }

    /// Returns the value of the setting `name` as an owned string, `None` when it is unset.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }

    /// Returns true when `--cold` was given.
    pub fn cold(&self) -> bool {
        self.cold
    }

    /// Returns the plugin settings that were given, with their values, in table order.
    pub fn given(&self) -> impl Iterator<Item = (&'static SettingDoc, &str)> + '_ {
        plugin_settings().filter_map(|s| Some((s, self.values.get(s.name)?)))
    }

    /// Returns `self` with every unset value taken from `fallback` (flags over `PLUGIN_*`).
    pub fn or(self, fallback: RawSettings) -> RawSettings {
        RawSettings {
            values: self.values.or(fallback.values),
            cold: self.cold || fallback.cold,
        }
    }
}

/// Returns the flag of one setting: `--name VALUE`, booleans also as a bare `--name`; hidden
/// unless `place` reads it (the flags of the other mode are accepted, to be refused by name).
fn flag(s: &'static SettingDoc, place: Use) -> Arg {
    let value_name = match s.kind {
        SettingType::Boolean => "BOOL".to_string(),
        _ if s.name.ends_with("_file") => "PATH".to_string(),
        _ => s.name.to_ascii_uppercase(),
    };
    let arg = Arg::new(s.name)
        .long(s.flag.trim_start_matches("--"))
        .help(s.flag_help())
        .value_name(value_name)
        .action(ArgAction::Set)
        // `mode` is Drone's choice; a subcommand is the mode.
        .hide(!s.used_in(place) || s.name == "mode");
    let arg = if s.kind == SettingType::Boolean {
        arg.num_args(0..=1).default_missing_value("true")
    } else {
        arg
    };
    // The pairs that exclude each other on a command line.
    match s.name {
        "tag" => arg.conflicts_with("ref"),
        // The first run on a host says so in one short word.
        "init_state" => arg.visible_alias("init"),
        "warm" => arg.conflicts_with(COLD),
        _ => arg,
    }
}

/// The flags of `run` (`G` is [`TagMode`]) or `sweep` ([`SweepMode`]): every plugin setting as a
/// flag, `--help` showing only the mode's own; [`super::Settings::parse`] refuses the others by
/// name. Flags win over `PLUGIN_*`.
pub struct ModeFlags<G> {
    /// The flags given.
    raw: RawSettings,
    /// The mode.
    mode: PhantomData<G>,
}

impl<G> fmt::Debug for ModeFlags<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ModeFlags").field(&self.raw).finish()
    }
}

impl<G> ModeFlags<G> {
    /// Returns the flags given, as raw settings.
    pub fn into_raw(self) -> RawSettings {
        self.raw
    }
}

/// [`Use::Tag`]: the flags of `run`.
#[derive(Debug, Clone, Copy)]
pub struct TagMode;
impl FlagGroup for TagMode {
    const USE: Use = Use::Tag;
}

/// [`Use::Sweep`]: the flags of `sweep`.
#[derive(Debug, Clone, Copy)]
pub struct SweepMode;
impl FlagGroup for SweepMode {
    const USE: Use = Use::Sweep;
}

impl<G: FlagGroup> clap::Args for ModeFlags<G> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let cold = Arg::new(COLD)
            .long(COLD)
            .help("A ref run installs fresh, as if `warm` were false (a flag only)")
            .action(ArgAction::SetTrue)
            .hide(G::USE != Use::Tag);
        let mut cmd = cmd;
        for s in plugin_settings() {
            cmd = cmd.arg(flag(s, G::USE));
            // `--cold` is shown beside the setting it overrides.
            if s.name == "warm" {
                cmd = cmd.arg(cold.clone());
            }
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<G: FlagGroup> clap::FromArgMatches for ModeFlags<G> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut flags = ModeFlags {
            raw: RawSettings::default(),
            mode: PhantomData,
        };
        flags.update_from_arg_matches(matches)?;
        Ok(flags)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for s in plugin_settings() {
            if let Some(v) = matches.get_one::<String>(s.name) {
                self.raw.values.set(s.name, v.clone());
            }
        }
        self.raw.cold |= matches.get_flag(COLD);
        Ok(())
    }
}

/// Build metadata from Drone (`DRONE_*`) and the listener's build parameters (`CANON_*`).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct DroneMeta {
    /// `push`, `pull_request`, `tag`, `promote`, `rollback`, `cron` or `custom`.
    pub drone_build_event: Option<String>,
    /// The tag, set only when the build's ref is `refs/tags/...`.
    pub drone_tag: Option<String>,
    /// The build's commit.
    pub drone_commit_sha: Option<String>,
    /// The build's ref, e.g. `refs/tags/1.2.0+3.4.5`.
    pub drone_commit_ref: Option<String>,
    /// The build number.
    pub drone_build_number: Option<String>,
    /// A link to the build.
    pub drone_build_link: Option<String>,
    /// `owner/name` of the repository the build runs in.
    pub drone_repo: Option<String>,
    /// The workspace (the working directory of a plugin step).
    pub drone_workspace: Option<String>,
    /// The listener's build parameter: the recipe.
    pub canon_recipe: Option<String>,
    /// The listener's build parameter: the tag.
    pub canon_tag: Option<String>,
    /// The listener's build parameter: the tag's commit.
    pub canon_commit: Option<String>,
    /// `http` or `https`: with the host, the Drone server's URL.
    pub drone_system_proto: Option<String>,
    /// The Drone server's host name.
    pub drone_system_host: Option<String>,
}

/// Everything read from the process environment, once.
#[derive(Debug, Default, Clone)]
pub struct Environment {
    /// `PLUGIN_*` values.
    pub plugin: RawSettings,
    /// `DRONE_*` and `CANON_*` values.
    pub drone: DroneMeta,
    /// `PLUGIN_*` names that are not known settings (warned about: probably typos).
    pub unknown: Vec<String>,
    /// The old variable names that gave a setting (read until the next release, warned about),
    /// each with the name that replaces it.
    pub renamed: Vec<(&'static str, &'static str)>,
}

/// The environment could not be read (envy failing on the shape, which string fields make
/// unlikely).
#[derive(Debug, thiserror::Error)]
#[error("cannot read settings from the environment: {0}")]
pub struct EnvironmentError(#[from] envy::Error);

impl Environment {
    /// Reads settings from `KEY=VALUE` pairs (the process env in `main`, a list in tests).
    pub fn from_pairs<I, K, V>(pairs: I) -> Result<Self, EnvironmentError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let pairs: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            // Drone sets a `from_secret` whose secret is missing to "": that is unset.
            .filter(|(_, v)| !v.is_empty())
            .collect();
        let mut values = RawValues::from_pairs(pairs.iter().cloned(), |variable| {
            let name = variable.strip_prefix("PLUGIN_")?;
            plugin_setting(&name.to_ascii_lowercase()).map(|s| s.name)
        });
        // An old name gives a setting only when its `PLUGIN_*` variable is unset.
        let mut renamed = Vec::new();
        let unset: Vec<_> = plugin_settings()
            .filter(|s| values.get(s.name).is_none())
            .collect();
        for s in unset {
            let old = s.old_env.iter().find_map(|old| {
                let (_, value) = pairs.iter().find(|(k, _)| k == old)?;
                Some((*old, value))
            });
            if let Some((old, value)) = old {
                values.set(s.name, value.clone());
                renamed.push((old, s.env[0]));
            }
        }
        let plugin = RawSettings {
            values,
            cold: false,
        };
        let drone: DroneMeta = envy::from_iter(pairs.iter().cloned())?;
        let unknown = pairs
            .iter()
            .filter_map(|(k, _)| k.strip_prefix("PLUGIN_"))
            .filter(|name| plugin_setting(&name.to_ascii_lowercase()).is_none())
            .map(|name| format!("PLUGIN_{name}"))
            .collect();
        Ok(Self {
            plugin,
            drone,
            unknown,
            renamed,
        })
    }

    /// Reads the process environment (variables that are not UTF-8 are ignored).
    pub fn from_process() -> Result<Self, EnvironmentError> {
        // As started, credentials included (they are no longer in the live environment);
        // `std::env::vars` would panic on a non-UTF-8 variable, those are skipped.
        Self::from_pairs(canon_shared::process_env::variables())
    }
}

/// Returns a `DRONE_*` or `CANON_*` value, `None` when it is unset or blank.
pub(super) fn drone_value(v: &Option<String>) -> Option<String> {
    v.clone().filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_plugin_settings_are_listed() {
        let e = Environment::from_pairs([("PLUGIN_PROMOTE_COMAND", "x"), ("PLUGIN_RECIPE", "a")])
            .unwrap();
        assert_eq!(e.unknown, ["PLUGIN_PROMOTE_COMAND"]);
    }

    /// The `run` subcommand flattens its [`ModeFlags`] like this.
    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[command(flatten)]
        raw: ModeFlags<TagMode>,
    }

    #[test]
    fn every_documented_flag_is_a_flag() {
        use clap::Parser;
        for s in plugin_settings() {
            let arg = format!("{}=x", s.flag);
            let parsed = Flags::try_parse_from(["canon-plugin", arg.as_str()]);
            assert!(parsed.is_ok(), "{}: {}", s.flag, parsed.unwrap_err());
        }
        let f = Flags::try_parse_from(["canon-plugin", "--listener-url", "http://l:8088"]).unwrap();
        assert_eq!(f.raw.into_raw().get("listener_url"), Some("http://l:8088"));
        let f =
            Flags::try_parse_from(["canon-plugin", "--quick", "--cold", "--ref", "main"]).unwrap();
        let raw = f.raw.into_raw();
        assert_eq!(raw.get("quick"), Some("true"));
        assert_eq!(raw.get("ref"), Some("main"));
        assert!(raw.cold());
        assert!(
            Flags::try_parse_from(["canon-plugin", "--tag", "1.0.0+1", "--ref", "main"]).is_err()
        );
        assert!(Flags::try_parse_from(["canon-plugin", "--warm", "--cold"]).is_err());
    }

    #[test]
    fn an_old_variable_gives_its_setting_only_when_the_new_one_is_unset() {
        let e =
            Environment::from_pairs([("CANON_ENROLLMENT", "old.yml"), ("CANON_STATE_DIR", "/s")])
                .unwrap();
        assert_eq!(e.plugin.get("config"), Some("old.yml"));
        assert_eq!(e.plugin.get("state_dir"), Some("/s"));
        assert_eq!(
            e.renamed,
            [
                ("CANON_ENROLLMENT", "PLUGIN_CONFIG"),
                ("CANON_STATE_DIR", "PLUGIN_STATE_DIR")
            ]
        );
        let e = Environment::from_pairs([
            ("CANON_ENROLLMENT", "old.yml"),
            ("PLUGIN_CONFIG", "new.yml"),
        ])
        .unwrap();
        assert_eq!(e.plugin.get("config"), Some("new.yml"));
        assert!(e.renamed.is_empty(), "{:?}", e.renamed);
    }

    #[test]
    fn plugin_listener_url_is_read() {
        let e = Environment::from_pairs([("PLUGIN_LISTENER_URL", "http://l:8088")]).unwrap();
        assert_eq!(e.plugin.get("listener_url"), Some("http://l:8088"));
        assert!(e.unknown.is_empty(), "{:?}", e.unknown);
    }
}
