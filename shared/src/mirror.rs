//! Placeholder: filled in by the mirror work.
