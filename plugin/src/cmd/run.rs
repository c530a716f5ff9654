//! `canon-plugin run`: tag mode ([`crate::tag_mode`]) with every setting of tag mode as a flag.

use crate::settings::{ModeFlags, TagMode};

/// `canon-plugin run`: the settings of tag mode as flags (flags win over `PLUGIN_*`); a flag of
/// the sweep is refused by name.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Boxed: the settings are large next to the other subcommands' arguments.
    #[command(flatten)]
    pub settings: Box<ModeFlags<TagMode>>,
}
