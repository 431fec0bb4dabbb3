//! Structure-aware: the corpus holds valid models; the mutator rewrites fields of their
//! records (header, section directory, tensors, ops, op I/O, parameters, quantization, I/O
//! descriptors, constants, metadata) with boundary and nearby values and recomputes the CRC,
//! so the mutants pass the integrity check and reach validation and the kernels.
#![no_main]

use libfuzzer_sys::{fuzz_mutator, fuzz_target, fuzzer_mutate};

fuzz_target!(|bytes: &[u8]| ember_fuzz::exercise(bytes));

fuzz_mutator!(|data: &mut [u8], size: usize, max_size: usize, seed: u32| {
    let mut rng = fastrand::Rng::with_seed(seed.into());
    // Mostly field rewrites; sometimes libFuzzer's own byte mutations (with the CRC fixed too).
    let size = if rng.usize(..8) == 0 {
        fuzzer_mutate(data, size, max_size)
    } else {
        for _ in 0..=rng.usize(..3) {
            ember_fuzz::mutate_field(&mut data[..size], &mut rng);
        }
        size
    };
    ember_fuzz::fix_crc(&mut data[..size]);
    size
});
