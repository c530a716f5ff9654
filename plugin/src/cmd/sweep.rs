//! `canon-plugin sweep`: the weekly sweep ([`crate::sweep`]) with every setting of the sweep as a
//! flag.

use crate::settings::{ModeFlags, SweepMode};

/// `canon-plugin sweep`: the settings of the sweep as flags (flags win over `PLUGIN_*`); a flag
/// of tag mode is refused by name.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Boxed: the settings are large next to the other subcommands' arguments.
    #[command(flatten)]
    pub settings: Box<ModeFlags<SweepMode>>,
}
