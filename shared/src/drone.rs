//! Placeholder: filled in by the drone work.
