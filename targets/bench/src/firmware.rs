//! What every Cortex-M board crate shares: the [`firmware!`](crate::firmware!) entry point, the
//! [`Console`] a board prints to, stack painting over cortex-m-rt's stack and the cycle clock.
//!
//! A board crate is then its memory map (`memory.x`), its clock, its console and its name:
//!
//! ```ignore
//! ember_bench::firmware! {
//!     board: "qemu-mps2-an386",
//!     clock: |core| SysTickClock::<40>::start(core.SYST),
//!     console: Semihosting::stdout(),
//! }
//! ```

use cortex_m::peripheral::{DCB, DWT};
use ember::Kernels;

use crate::{Bench, Clock, Error, StackPaint};

#[cfg(feature = "defmt")]
mod defmt_console;
#[cfg(feature = "semihosting")]
mod semihosting;
#[cfg(feature = "systick")]
mod systick;

#[cfg(feature = "defmt")]
pub use defmt_console::Defmt;
#[cfg(feature = "semihosting")]
pub use semihosting::Semihosting;
#[cfg(feature = "systick")]
pub use systick::SysTickClock;

/// A firmware's output channel: it prints the report and ends the program.
pub trait Console: core::fmt::Write {
    /// Ends the program: successfully after a complete report (`Ok`), or as a failure after
    /// printing why (`Err`, through its `Display`).
    fn exit(&mut self, result: Result<(), Error>) -> !;
}

/// Runs the benchmark (see [`crate::run`]) and ends the program through `console`.
pub fn run_and_exit<K: Kernels>(
    bench: Bench<'_>,
    clock: &mut impl Clock,
    console: &mut impl Console,
    stack: &StackPaint,
) -> ! {
    let result = crate::run::<K, _>(bench, clock, console, Some(stack));
    console.exit(result)
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
/// the stack, starts the clock, runs every sample of `model::INPUTS` and ends through the
/// console.
///
/// - `board`: the name printed as `board=`;
/// - `entry` (optional): the entry-point attribute, cortex-m-rt's `entry` by default (a HAL's
///   own, e.g. `rp235x_hal::entry`, where it does chip setup before `main`);
/// - `clock`: a closure from the core peripherals (`cortex_m::Peripherals`) to the board's
///   [`Clock`](crate::Clock); it also does any chip setup the benchmark needs (e.g. the system
///   clock), since it runs before the benchmark and after the stack is painted;
/// - `console`: the board's [`Console`].
///
/// The arena is a static of the generated `model::Arena` type (exactly the planned size). The
/// firmware must keep cortex-m-rt's stack region free of other data (see [`paint_stack`]).
#[macro_export]
macro_rules! firmware {
    (board: $board:expr, clock: $clock:expr, console: $console:expr $(,)?) => {
        $crate::firmware! {
            board: $board,
            entry: $crate::firmware::__private::entry,
            clock: $clock,
            console: $console,
        }
    };
    (board: $board:expr, entry: $entry:meta, clock: $clock:expr, console: $console:expr $(,)?) => {
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
            let mut console = $console;
            let mut layer_ticks = [0; model::OP_COUNT];
            let bench = $crate::Bench {
                board: $board,
                model: &model::MODEL.0,
                arena: &mut arena.0,
                inputs: &model::INPUTS.0,
                layer_ticks: &mut layer_ticks,
            };
            $crate::firmware::run_and_exit::<model::Kernels>(bench, &mut clock, &mut console, &stack)
        }
    };
}
