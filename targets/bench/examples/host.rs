//! Runs the benchmark on the host, to compare its output CRCs with a board's report:
//! `cargo run --release --example host -- <model.ember> <inputs.bin>`.
//!
//! Ticks are host nanoseconds (`clock=nanoseconds`), only good for the CRCs and argmaxes;
//! `stack_bytes` is 0 (not measured on the host).

use std::time::Instant;

use ember::AlignedBytes;
use ember_bench::{Bench, Clock};

/// Nanoseconds since the clock was made.
struct HostClock(Instant);

impl Clock for HostClock {
    const UNIT: &'static str = "nanoseconds";

    fn now(&mut self) -> u64 {
        self.0.elapsed().as_nanos() as u64
    }
}

/// Prints to stdout.
struct Stdout;

impl core::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        print!("{s}");
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, inputs] = args.as_slice() else {
        return Err("usage: host <model.ember> <inputs.bin>".into());
    };
    let model = AlignedBytes::new(&std::fs::read(model)?);
    let inputs = AlignedBytes::new(&std::fs::read(inputs)?);
    let parsed = ember::Model::from_bytes(&model)?;
    // Room to align the arena's start to 16 bytes.
    let mut arena = vec![0u8; parsed.arena_bytes() + 15];
    let mut layer_ticks = vec![0u64; parsed.op_count()];
    let bench = Bench {
        board: "host",
        model: &model,
        arena: &mut arena,
        inputs: &inputs,
        layer_ticks: &mut layer_ticks,
    };
    ember_bench::run::<ember::AllKernels, _>(bench, &mut HostClock(Instant::now()), &mut Stdout, None)
        .map_err(|e| format!("{e:?}"))?;
    Ok(())
}
