//! Cross-crate tests and benches of the Ember workspace live in `tests/` and `benches/`.
