//! A clock and stdout for programs with an operating system (the host example, Linux boards).

use std::boxed::Box;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;
use std::{format, vec};

use ember::{AlignedBytes, AllKernels, Kernels};

use crate::{Bench, Clock, Error, Lines};

/// Nanoseconds since the clock was made (`clock=nanoseconds`), from [`Instant`].
pub struct InstantClock(Instant);

impl InstantClock {
    /// Starts counting from now.
    pub fn start() -> Self {
        Self(Instant::now())
    }
}

impl Clock for InstantClock {
    const UNIT: &'static str = "nanoseconds";

    fn now(&mut self) -> u64 {
        // u64 nanoseconds last 584 years.
        self.0.elapsed().as_nanos() as u64
    }
}

/// The process's stdout, locked once.
pub struct Stdout(std::io::StdoutLock<'static>);

impl Stdout {
    /// Locks stdout for the benchmark's lifetime.
    pub fn lock() -> Self {
        Self(std::io::stdout().lock())
    }
}

impl core::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

/// Runs the benchmark with `K`'s kernels, timing with [`InstantClock`] and printing the report to
/// stdout.
pub fn run<K: Kernels>(board: &str, model: &[u8], inputs: &[u8], arena: &mut [u8]) -> Result<(), Error> {
    let mut layer_ticks = vec![0; ember::Model::from_bytes(model)?.op_count()];
    let bench = Bench { board, model, arena, inputs, layer_ticks: &mut layer_ticks };
    crate::run::<K, _>(bench, &mut InstantClock::start(), &mut Lines(Stdout::lock()), None)
}

/// Runs the benchmark on a model file and a raw input batch file with every kernel linked,
/// printing the report to stdout.
pub fn run_files(board: &str, model: &Path, inputs: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let read = |path: &Path| {
        std::fs::read(path)
            .map(|bytes| AlignedBytes::new(&bytes))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let (model, inputs) = (read(model)?, read(inputs)?);
    // Room to align the arena's start to 16 bytes.
    let mut arena = vec![0u8; ember::Model::from_bytes(&model)?.arena_bytes() + 15];
    run::<AllKernels>(board, &model, &inputs, &mut arena)?;
    Ok(())
}
