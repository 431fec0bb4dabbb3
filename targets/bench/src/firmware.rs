//! What every Cortex-M board crate shares: the [`firmware!`](crate::firmware!) entry point, the
//! defmt [`Defmt`] report, the semihosting exit, stack painting over cortex-m-rt's stack and the
//! cycle clock.
//!
//! A board crate is then its memory map (`memory.x`), its clock, its defmt logger (the output
//! channel: `defmt-semihosting` under QEMU, `defmt-rtt` under `probe-rs`) and its name:
//!
//! ```ignore
//! use defmt_semihosting as _;
//! use panic_probe as _;
//!
//! ember_bench::firmware! {
//!     board: "qemu-mps2-an386",
//!     clock: |core| SysTickClock::<40>::start(core.SYST),
//! }
//! ```
//!
//! The report's format strings live in the ELF's `.defmt` section, not in flash; `defmt-print`
//! (QEMU, through `targets/qemu-run`) or `probe-rs run` turn the frames back into the report
//! lines of [`crate::Lines`].

use cortex_m::peripheral::{DCB, DWT};
use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug;
use ember::format::OpKind;
use ember::Kernels;

use crate::{Bench, Clock, Error, Report, StackPaint};

#[cfg(feature = "no-device-interrupts")]
mod interrupts;
#[cfg(feature = "systick")]
mod systick;

#[cfg(feature = "systick")]
pub use systick::SysTickClock;

/// The report as defmt messages, one per line of the protocol.
pub struct Defmt;

impl Report for Defmt {
    fn header(&mut self, board: &str, clock: &str, arena_bytes: usize, ops: usize) -> Result<(), Error> {
        defmt::println!(
            "ember-bench v2 board={=str} clock={=str} arena_bytes={=usize} ops={=usize}",
            board,
            clock,
            arena_bytes,
            ops
        );
        Ok(())
    }

    fn sample(&mut self, index: usize, argmax: usize, output_crc32: u32, ticks: u64) -> Result<(), Error> {
        defmt::println!(
            "sample index={=usize} argmax={=usize} output_crc32={=u32:#010x} ticks={=u64}",
            index,
            argmax,
            output_crc32,
            ticks
        );
        Ok(())
    }

    fn layer(&mut self, index: usize, kind: OpKind, ticks_total: u64) -> Result<(), Error> {
        // `OpKind`'s defmt format is its snake_case name, kept in the ELF, not in flash.
        defmt::println!("layer index={=usize} kind={} ticks_total={=u64}", index, kind, ticks_total);
        Ok(())
    }

    #[cfg(feature = "telemetry")]
    fn drift(&mut self, saturated_total: u64, (min, max): (f32, f32)) -> Result<(), Error> {
        defmt::println!(
            "drift saturated_total={=u64} input_min={=f32} input_max={=f32}",
            saturated_total,
            min,
            max
        );
        Ok(())
    }

    fn summary(
        &mut self,
        samples: usize,
        ticks_total: u64,
        output_crc32: u32,
        stack_bytes: usize,
    ) -> Result<(), Error> {
        defmt::println!(
            "summary samples={=usize} ticks_total={=u64} output_crc32={=u32:#010x} stack_bytes={=usize}",
            samples,
            ticks_total,
            output_crc32,
            stack_bytes
        );
        defmt::println!("done");
        Ok(())
    }
}

/// Runs the benchmark (see [`crate::run`]), reporting through defmt, and ends the program: a
/// semihosting exit with status 0, or 1 after printing why it failed.
pub fn run_and_exit<K: Kernels>(bench: Bench<'_>, clock: &mut impl Clock, stack: &StackPaint) -> ! {
    #[cfg(feature = "verify")]
    time_verification(clock);
    match crate::run::<K, _>(bench, clock, &mut Defmt, Some(stack)) {
        Ok(()) => exit(true),
        Err(e) => {
            defmt::println!("benchmark failed: {}", e);
            exit(false)
        }
    }
}

/// Times `ember::verify::verify` of the committed signed digits model with its public key
/// (feature `verify`) and prints `verify bytes=… ticks=… ok=…`.
#[cfg(feature = "verify")]
fn time_verification(clock: &mut impl Clock) {
    const SIGNED: &[u8] = include_bytes!("../../models/digits_int8.signed.ember");
    const KEY: [u8; 32] = *include_bytes!("../../models/digits_int8.ember.pub");
    let start = clock.now();
    let verified = ember::verify::verify(core::hint::black_box(SIGNED), &KEY);
    let ticks = clock.now() - start;
    defmt::println!("verify bytes={=usize} ticks={=u64} ok={=bool}", SIGNED.len(), ticks, verified.is_ok());
}

/// Ends the program with a semihosting exit (QEMU and `probe-rs run` exit with status 0 on
/// `success`, else 1); waits if the host carries on.
pub fn exit(success: bool) -> ! {
    debug::exit(if success { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

/// A fault, or a panic (`panic-probe` ends in `udf`): reported, then a failing exit instead of
/// cortex-m-rt's endless loop, so QEMU ends at once.
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::println!("hard fault at pc={=u32:#010x} (a panic, or a fault in the firmware)", frame.pc());
    exit(false)
}

/// Paints the stack region of cortex-m-rt's linker script (`_stack_end` up to `_stack_start`)
/// from its bottom up to the current stack pointer.
///
/// # Safety
///
/// Nothing but the stack may live in that region: the firmware must not place a heap or other
/// data after `.uninit` (cortex-m-rt's `__sheap`), since everything below the stack pointer is
/// overwritten.
pub unsafe fn paint_stack() -> StackPaint {
    extern "C" {
        /// Lowest address of the stack (end of `.bss`/`.uninit`), from cortex-m-rt's `link.x`.
        static mut _stack_end: u32;
        /// Initial stack pointer: the top of the full-descending stack, from `link.x`.
        static _stack_start: u32;
    }
    // SAFETY: `_stack_end.._stack_start` is the stack region cortex-m-rt's linker script reserves
    // above every static, and the caller guarantees nothing else lives there.
    unsafe { StackPaint::paint(&raw mut _stack_end, &raw const _stack_start) }
}

/// The DWT cycle counter (`CYCCNT`), extended to 64 bits; for real boards (`clock=cycles`).
///
/// The counter is 32 bits wide, so two readings must be less than 2^32 cycles apart (35 s at
/// 120 MHz): the benchmark reads it before and after every op.
pub struct DwtClock {
    cycles: u64,
    last: u32,
}

impl DwtClock {
    /// Enables tracing (`DEMCR.TRCENA`) and starts the cycle counter. The core must have one
    /// (`DWT_CTRL.NOCYCCNT` = 0), as every Cortex-M3/M4/M7/M33/M55 with a DWT unit does.
    pub fn start(mut dcb: DCB, mut dwt: DWT) -> Self {
        dcb.enable_trace();
        dwt.enable_cycle_counter();
        Self { cycles: 0, last: DWT::cycle_count() }
    }
}

impl Clock for DwtClock {
    const UNIT: &'static str = "cycles";

    fn now(&mut self) -> u64 {
        let count = DWT::cycle_count();
        self.cycles += u64::from(count.wrapping_sub(self.last));
        self.last = count;
        self.cycles
    }
}

/// Items the [`firmware!`](crate::firmware!) expansion names; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use cortex_m::singleton;
    pub use cortex_m_rt::entry;

    use crate::Clock;

    /// Takes the core peripherals (once, in `main`) and starts the board's clock with them.
    pub fn start_clock<C: Clock>(start: impl FnOnce(cortex_m::Peripherals) -> C) -> C {
        start(cortex_m::Peripherals::take().expect("main takes the core peripherals once"))
    }
}

/// Defines a board's entry point: the model module `build.rs` generated with `ember-build`
/// (`mod model`; the board crate depends on `ember`, which it names), and a `main` that paints
/// the stack, starts the clock, runs every sample of `model::INPUTS`, reports through defmt
/// and ends with a semihosting exit.
///
/// - `board`: the name printed as `board=`;
/// - `entry` (optional): the entry-point attribute, cortex-m-rt's `entry` by default (a HAL's
///   own, e.g. `rp235x_hal::entry`, where it does chip setup before `main`);
/// - `clock`: a closure from the core peripherals (`cortex_m::Peripherals`) to the board's
///   [`Clock`](crate::Clock); it also does any chip setup the benchmark needs (e.g. the system
///   clock), since it runs before the benchmark and after the stack is painted.
///
/// The arena is a static of the generated `model::Arena` type (exactly the planned size). The
/// firmware must keep cortex-m-rt's stack region free of other data (see [`paint_stack`]).
#[macro_export]
macro_rules! firmware {
    (board: $board:expr, clock: $clock:expr $(,)?) => {
        $crate::firmware! {
            board: $board,
            entry: $crate::firmware::__private::entry,
            clock: $clock,
        }
    };
    (board: $board:expr, entry: $entry:meta, clock: $clock:expr $(,)?) => {
        /// The model module generated by `build.rs`.
        #[allow(dead_code)] // Not every generated constant is needed here.
        mod model {
            include!(concat!(env!("OUT_DIR"), "/model.rs"));
        }

        #[$entry]
        fn main() -> ! {
            let arena = $crate::firmware::__private::singleton!(
                : model::Arena = ember::Aligned([0; model::ARENA_BYTES])
            )
            .expect("main runs once");
            // SAFETY: the stack region holds nothing but the stack: a board crate built with
            // this macro has no heap (the documented contract of `firmware!`).
            let stack = unsafe { $crate::firmware::paint_stack() };
            let mut clock = $crate::firmware::__private::start_clock($clock);
            let mut layer_ticks = [0; model::OP_COUNT];
            let bench = $crate::Bench {
                board: $board,
                model: &model::MODEL.0,
                arena: &mut arena.0,
                inputs: &model::INPUTS.0,
                layer_ticks: &mut layer_ticks,
            };
            $crate::firmware::run_and_exit::<model::Kernels>(bench, &mut clock, &stack)
        }
    };
}
