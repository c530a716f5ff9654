//! `canon-plugin sweep`: the weekly sweep ([`crate::sweep`]) with every setting as a flag.

use crate::settings::RawSettings;

/// `canon-plugin sweep`: every setting as a flag (flags win over `PLUGIN_*`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Boxed: the settings are large next to the other subcommands' arguments.
    #[command(flatten)]
    pub settings: Box<RawSettings>,
}
