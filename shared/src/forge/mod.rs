//! Placeholder: filled in by the forge work.
