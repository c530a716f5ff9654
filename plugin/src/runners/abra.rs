//! The built-in `abra` runner (placeholder while it is written).
