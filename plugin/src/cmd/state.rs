//! `canon-plugin state export`: a state dir's canonical records and histories in the layout of
//! a git state repository, for moving a host's state into one.
//!
//! It writes `<out>/<recipe>/canonical.json` and `<out>/<recipe>/history.jsonl` for every recipe
//! folder of the state dir that has either, read and checked as canon reads them (a corrupt
//! record stops the export, naming it). Caches, locks, runs and the listener's journal stay
//! behind. `<out>` must be empty or missing; commit it on `main` and push it as the repository.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use canon_shared::recipe::RecipeName;
use canon_shared::state::{write_atomic, StateDir};
use clap::{Args as ClapArgs, Subcommand};

use crate::settings::{StateExport, SubcommandFlags, Variables};

/// `state` subcommands.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Write a state dir's records in the state repository layout.
    #[command(
        after_help = "Example:\n  canon-plugin state export --state-dir /var/lib/canon --out ./canon-state-repo"
    )]
    Export(ExportArgs),
}

/// Where from and where to.
#[derive(Debug, ClapArgs)]
pub struct ExportArgs {
    /// The state directory to export (`--state-dir`, from
    /// [`crate::settings::KNOWN_SETTINGS`]).
    #[command(flatten)]
    pub settings: SubcommandFlags<StateExport>,
    /// The folder to write the repository layout into (empty or missing).
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `state` subcommand; its settings not given as flags come from `vars`.
pub fn main(cmd: StateCommand, vars: &Variables) -> ExitCode {
    let StateCommand::Export(args) = cmd;
    // The table gives it a default, so it is never unset.
    let state_dir = args
        .settings
        .read(vars)
        .path("state_dir")
        .unwrap_or_default();
    if let Err(why) = super::require_state_dir(&state_dir) {
        canon_shared::errln!("error: {why}");
        return ExitCode::from(crate::exit::EXIT_USAGE);
    }
    match export(&state_dir, &args.out) {
        Ok(recipes) => {
            for r in &recipes {
                canon_shared::outln!("exported {r}");
            }
            canon_shared::outln!(
                "{} recipes written to {}; commit them on main and push as the state repository",
                recipes.len(),
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            canon_shared::errln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Exports every recipe with a record or a history; returns their names, sorted.
pub fn export(state_dir: &Path, out: &Path) -> Result<Vec<RecipeName>, String> {
    if out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| format!("cannot read {}: {e}", out.display()))?
            .next()
            .is_some()
    {
        return Err(format!(
            "{} is not empty; export into an empty or new folder",
            out.display()
        ));
    }
    let state = StateDir::new(state_dir);
    let entries = std::fs::read_dir(state_dir)
        .map_err(|e| format!("cannot read the state dir {}: {e}", state_dir.display()))?;
    let mut names: Vec<RecipeName> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| RecipeName::parse(&e.file_name().to_string_lossy()).ok())
        .filter(|n| state.canonical_path(n).exists() || state.history_path(n).exists())
        .collect();
    names.sort();
    // An export of nothing is most likely the wrong folder: say so rather than write nothing.
    if names.is_empty() {
        return Err(format!(
            "{} holds no recipe with a canonical record or a history: nothing to export",
            state_dir.display()
        ));
    }
    // Everything is read and checked before anything is written.
    let mut files = Vec::new();
    for name in &names {
        let record = state.read_canonical(name).map_err(|e| e.to_string())?;
        let history = state.read_history(name).map_err(|e| e.to_string())?;
        if let Some(record) = record {
            let mut bytes = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
            bytes.push(b'\n');
            files.push((name.clone(), "canonical.json", bytes));
        }
        if !history.is_empty() {
            let mut bytes = Vec::new();
            for entry in &history {
                bytes.extend(serde_json::to_vec(entry).map_err(|e| e.to_string())?);
                bytes.push(b'\n');
            }
            files.push((name.clone(), "history.jsonl", bytes));
        }
    }
    for (name, file, bytes) in files {
        let dir = out.join(name.as_str());
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        write_atomic(&dir, &dir.join(file), &bytes).map_err(|e| e.to_string())?;
    }
    Ok(names)
}
