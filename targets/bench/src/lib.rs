//! The board-independent benchmark application.
//!
//! A board crate provides the model, an arena, an input batch (the items `ember-build`
//! generates), a [`Clock`] and a [`Report`] sink, then calls [`run`]. It runs every sample
//! through the [`Interpreter`], timing the whole inference and each op (through a [`Hook`]),
//! and reports a line-based protocol for a host program to parse:
//!
//! ```text
//! ember-bench v2 board=<name> clock=<instructions|cycles|nanoseconds> arena_bytes=<n> ops=<n>
//! sample index=<i> argmax=<k> output_crc32=<0x%08x> ticks=<n>
//! layer index=<op index> kind=<op kind name> ticks_total=<n>
//! drift saturated_total=<n> input_min=<x> input_max=<x>      (feature `telemetry` only)
//! summary samples=<n> ticks_total=<n> output_crc32=<0x%08x> stack_bytes=<n>
//! done
//! ```
//!
//! One `sample` line per sample (the ticks of its inference) and one `layer` line per op (its
//! ticks summed over all samples). `summary` gives the ticks of all inferences: a host divides
//! by `samples` for the mean, so the firmware needs no 64-bit division. The summary CRC32 (IEEE)
//! covers the output bytes of all samples concatenated; `stack_bytes` is the peak stack use
//! measured by [`StackPaint`] (0 when not measured). `drift` (feature `telemetry`) gives the
//! int8 outputs at -128/127 summed over all samples and ops, and input 0's range in real units.
//!
//! [`Lines`] writes these lines to any [`core::fmt::Write`]; firmware sends each line as one
//! defmt message (`firmware::Defmt`), whose format strings stay in the ELF's debug sections, so
//! the firmware carries neither them nor `core::fmt`, and `defmt-print` or `probe-rs` prints the
//! same lines.
//!
//! Features add what boards share: `firmware` the [`firmware!`] entry point, the defmt report,
//! stack painting and the DWT cycle clock; `systick` the SysTick instruction clock for QEMU;
//! `std` a clock and stdout for hosted programs.
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "firmware")]
pub mod firmware;
#[cfg(feature = "std")]
pub mod hosted;

use core::fmt;

use ember::format::{DType, OpKind};
#[cfg(feature = "telemetry")]
use ember::telemetry;
use ember::{Hook, Interpreter, Kernels, Model, OpEvent, OpOutput};

/// Ops whose saturations the `telemetry` feature counts: models with more are refused.
#[cfg(feature = "telemetry")]
const TELEMETRY_OPS: usize = 128;

/// The board's tick counter.
pub trait Clock {
    /// What one tick counts, printed as `clock=`: `"instructions"` or `"cycles"`.
    const UNIT: &'static str;

    /// The current tick count; never decreases.
    fn now(&mut self) -> u64;
}

/// What a board hands to [`run`]: the generated module's items and its name.
pub struct Bench<'a> {
    /// Board name, printed as `board=`.
    pub board: &'a str,
    /// The model file bytes (16-byte aligned).
    pub model: &'a [u8],
    /// The interpreter's arena (at least the model's arena bytes).
    pub arena: &'a mut [u8],
    /// The raw input batch: whole samples of input 0 in its internal layout and element type.
    pub inputs: &'a [u8],
    /// Per-op tick accumulators, at least one per op (e.g. `[0; OP_COUNT]`).
    pub layer_ticks: &'a mut [u64],
}

/// Where the report goes: one method per line of the protocol (see the crate docs).
pub trait Report {
    /// `ember-bench v2 board=… clock=… arena_bytes=… ops=…`
    fn header(&mut self, board: &str, clock: &str, arena_bytes: usize, ops: usize) -> Result<(), Error>;
    /// `sample index=… argmax=… output_crc32=… ticks=…`
    fn sample(&mut self, index: usize, argmax: usize, output_crc32: u32, ticks: u64) -> Result<(), Error>;
    /// `layer index=… kind=… ticks_total=…`
    fn layer(&mut self, index: usize, kind: OpKind, ticks_total: u64) -> Result<(), Error>;
    /// `drift saturated_total=… input_min=… input_max=…`
    #[cfg(feature = "telemetry")]
    fn drift(&mut self, saturated_total: u64, input_range: (f32, f32)) -> Result<(), Error>;
    /// `summary samples=… ticks_total=… output_crc32=… stack_bytes=…`, then `done`.
    fn summary(
        &mut self,
        samples: usize,
        ticks_total: u64,
        output_crc32: u32,
        stack_bytes: usize,
    ) -> Result<(), Error>;
}

/// The report as text lines on a [`core::fmt::Write`].
pub struct Lines<W>(pub W);

impl<W: fmt::Write> Report for Lines<W> {
    fn header(&mut self, board: &str, clock: &str, arena_bytes: usize, ops: usize) -> Result<(), Error> {
        Ok(writeln!(
            self.0,
            "ember-bench v2 board={board} clock={clock} arena_bytes={arena_bytes} ops={ops}"
        )?)
    }

    fn sample(&mut self, index: usize, argmax: usize, output_crc32: u32, ticks: u64) -> Result<(), Error> {
        Ok(writeln!(
            self.0,
            "sample index={index} argmax={argmax} output_crc32={output_crc32:#010x} ticks={ticks}"
        )?)
    }

    fn layer(&mut self, index: usize, kind: OpKind, ticks_total: u64) -> Result<(), Error> {
        Ok(writeln!(self.0, "layer index={index} kind={} ticks_total={ticks_total}", kind.name())?)
    }

    #[cfg(feature = "telemetry")]
    fn drift(&mut self, saturated_total: u64, (min, max): (f32, f32)) -> Result<(), Error> {
        Ok(writeln!(self.0, "drift saturated_total={saturated_total} input_min={min} input_max={max}")?)
    }

    fn summary(
        &mut self,
        samples: usize,
        ticks_total: u64,
        output_crc32: u32,
        stack_bytes: usize,
    ) -> Result<(), Error> {
        writeln!(
            self.0,
            "summary samples={samples} ticks_total={ticks_total} output_crc32={output_crc32:#010x} \
             stack_bytes={stack_bytes}"
        )?;
        Ok(writeln!(self.0, "done")?)
    }
}

/// Why a benchmark could not run.
#[derive(Debug)]
#[cfg_attr(feature = "firmware", derive(defmt::Format))]
pub enum Error {
    /// The runtime refused the model or failed while running it.
    Ember(ember::Error),
    /// The input batch is empty or not whole samples.
    PartialSample {
        /// Bytes of one sample.
        sample_bytes: usize,
        /// Bytes in the batch.
        batch_bytes: usize,
    },
    /// `layer_ticks` (or, with `telemetry`, the telemetry's op slots) has fewer entries than the
    /// model has ops.
    TooFewLayerSlots {
        /// Ops in the model.
        ops: usize,
    },
    /// Input 0 or output 0 is neither int8 nor f32.
    UnsupportedDType(DType),
    /// The report could not be written.
    Report,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Ember(e) => write!(f, "{e}"),
            Error::PartialSample { sample_bytes, batch_bytes } => write!(
                f,
                "the input batch has {batch_bytes} bytes: not a whole, non-zero number of {sample_bytes}-byte samples"
            ),
            Error::TooFewLayerSlots { ops } => write!(f, "fewer layer tick (or telemetry) slots than the model's {ops} ops"),
            Error::UnsupportedDType(dtype) => {
                write!(f, "input 0 or output 0 is {}: only int8 and f32 are supported", dtype.name())
            }
            Error::Report => f.write_str("the report could not be written"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl From<ember::Error> for Error {
    fn from(e: ember::Error) -> Self {
        Error::Ember(e)
    }
}

impl From<fmt::Error> for Error {
    fn from(_: fmt::Error) -> Self {
        Error::Report
    }
}

/// Times each op into per-op accumulators.
struct LayerTimer<'c, 't, C> {
    clock: &'c mut C,
    ticks: &'t mut [u64],
    start: u64,
}

impl<C: Clock> Hook for LayerTimer<'_, '_, C> {
    fn before(&mut self, _event: OpEvent) {
        self.start = self.clock.now();
    }

    fn after(&mut self, event: OpEvent, _output: OpOutput<'_>) {
        let elapsed = self.clock.now() - self.start;
        if let Some(t) = self.ticks.get_mut(usize::from(event.index)) {
            *t += elapsed;
        }
    }
}

/// Runs every sample of `bench.inputs` and sends the report to `report`.
pub fn run<K: Kernels, C: Clock>(
    bench: Bench<'_>,
    clock: &mut C,
    report: &mut impl Report,
    stack: Option<&StackPaint>,
) -> Result<(), Error> {
    let model = Model::from_bytes(bench.model)?;
    let ops = model.op_count();
    let layer_ticks = bench.layer_ticks.get_mut(..ops).ok_or(Error::TooFewLayerSlots { ops })?;
    layer_ticks.fill(0);
    let input = model.input(0)?.tensor;
    let sample_bytes = input.byte_len;
    if bench.inputs.is_empty() || !bench.inputs.len().is_multiple_of(sample_bytes) {
        return Err(Error::PartialSample { sample_bytes, batch_bytes: bench.inputs.len() });
    }
    let mut interp = Interpreter::<K>::with_kernels(&model, bench.arena)?;
    #[cfg(feature = "telemetry")]
    let (mut telemetry, mut saturated_total) = (telemetry::Telemetry::<TELEMETRY_OPS, 1>::default(), 0u64);
    #[cfg(feature = "telemetry")]
    if ops > TELEMETRY_OPS {
        return Err(Error::TooFewLayerSlots { ops });
    }
    report.header(bench.board, C::UNIT, model.arena_bytes(), ops)?;

    let mut all_outputs = ember::CRC32.digest();
    let mut total_ticks = 0u64;
    let mut samples = 0;
    for (index, sample) in bench.inputs.chunks_exact(sample_bytes).enumerate() {
        write_input(&mut interp, input.dtype, sample)?;
        let mut timer = LayerTimer { clock: &mut *clock, ticks: &mut *layer_ticks, start: 0 };
        let start = timer.clock.now();
        #[cfg(feature = "telemetry")]
        {
            telemetry.observe_inputs(&interp)?;
            interp.invoke_with(&mut (&mut timer, &mut telemetry))?;
        }
        #[cfg(not(feature = "telemetry"))]
        interp.invoke_with(&mut timer)?;
        let ticks = timer.clock.now() - start;
        #[cfg(feature = "telemetry")]
        {
            saturated_total += u64::from(telemetry.saturated());
        }
        let mut crc = ember::CRC32.digest();
        let argmax = read_output(&interp, |bytes| {
            crc.update(bytes);
            all_outputs.update(bytes);
        })?;
        report.sample(index, argmax, crc.finalize(), ticks)?;
        total_ticks += ticks;
        samples += 1;
    }

    for (index, &ticks) in layer_ticks.iter().enumerate() {
        report.layer(index, model.op(index as u16)?.kind, ticks)?;
    }
    #[cfg(feature = "telemetry")]
    report.drift(saturated_total, telemetry.input_range[0].unwrap_or_default())?;
    report.summary(samples, total_ticks, all_outputs.finalize(), stack.map_or(0, StackPaint::peak_bytes))
}

/// Copies one raw sample into input 0.
fn write_input<K: Kernels>(
    interp: &mut Interpreter<'_, '_, K>,
    dtype: DType,
    sample: &[u8],
) -> Result<(), Error> {
    match dtype {
        DType::I8 => {
            for (d, &s) in interp.input_i8(0)?.iter_mut().zip(sample) {
                *d = s as i8;
            }
        }
        DType::F32 => {
            for (d, s) in interp.input_f32(0)?.iter_mut().zip(sample.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        other => return Err(Error::UnsupportedDType(other)),
    }
    Ok(())
}

/// Feeds output 0's bytes (little-endian) to `sink` and returns the index of its first largest value.
fn read_output<K: Kernels>(
    interp: &Interpreter<'_, '_, K>,
    mut sink: impl FnMut(&[u8]),
) -> Result<usize, Error> {
    let dtype = interp.model().output(0)?.tensor.dtype;
    let argmax = match dtype {
        DType::I8 => {
            let values = interp.output_i8(0)?;
            values.iter().for_each(|&v| sink(&[v as u8]));
            first_max(values.iter().copied())
        }
        DType::F32 => {
            let values = interp.output_f32(0)?;
            values.iter().for_each(|v| sink(&v.to_le_bytes()));
            first_max(values.iter().copied())
        }
        other => return Err(Error::UnsupportedDType(other)),
    };
    Ok(argmax)
}

/// Index of the first largest value (0 for an empty sequence).
fn first_max<T: PartialOrd>(values: impl Iterator<Item = T>) -> usize {
    let mut best: Option<(usize, T)> = None;
    for (i, v) in values.enumerate() {
        if best.as_ref().is_none_or(|(_, b)| v > *b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// Peak stack use, measured by painting the unused stack with a pattern at startup and finding
/// the lowest word that no longer holds it.
pub struct StackPaint {
    bottom: *const u32,
    top: usize,
}

/// The paint: any value works; this one is unlikely to be a stored value.
const PAINT: u32 = 0xDEAD_BEEF;

impl StackPaint {
    /// Paints every word from `bottom` up to the current stack pointer (a full-descending stack
    /// that ends at `top`).
    ///
    /// # Safety
    ///
    /// `bottom..top` must be the stack region (word-aligned, writable), no data may live between
    /// `bottom` and the stack pointer (it is overwritten), and nothing else may be placed there
    /// afterwards, since [`StackPaint::peak_bytes`] reads it.
    #[cfg(target_arch = "arm")]
    pub unsafe fn paint(bottom: *mut u32, top: *const u32) -> Self {
        // One assembly loop that compares against the live stack pointer on every word: written
        // in Rust, the compiler may read SP before pushing this function's own frame below it.
        // SAFETY: writes only words in `bottom..sp`, unused stack per the caller's contract.
        unsafe {
            core::arch::asm!(
                "2:",
                "mov {sp}, sp",
                "cmp {word}, {sp}",
                "bhs 3f",
                "str {paint}, [{word}], #4",
                "b 2b",
                "3:",
                word = inout(reg) bottom => _,
                sp = out(reg) _,
                paint = in(reg) PAINT,
                options(nostack),
            );
        }
        Self { bottom, top: top as usize }
    }

    /// Peak stack bytes used since [`StackPaint::paint`]: from the lowest overwritten word to the top.
    pub fn peak_bytes(&self) -> usize {
        let mut word = self.bottom;
        while (word as usize) < self.top {
            // SAFETY: `word` is in the stack region `bottom..top` given to `paint`, which is
            // readable memory; volatile because the compiler cannot see who wrote it.
            if unsafe { word.read_volatile() } != PAINT {
                break;
            }
            // SAFETY: stays within `bottom..=top`, checked by the loop condition.
            word = unsafe { word.add(1) };
        }
        self.top - word as usize
    }
}
