//! Arbitrary bytes as a model file: loading, validation and (when accepted) a run must return
//! values, never panic or touch memory outside their buffers.
#![no_main]

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| ember_fuzz::exercise(bytes));
