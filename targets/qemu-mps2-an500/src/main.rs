//! `ember-bench` on QEMU's `mps2-an500` board (Cortex-M7): runs the model from `build.rs`
//! over its input batch and prints the report through semihosting, then exits QEMU.
//!
//! Times are instruction counts, not cycles: QEMU runs with `-icount shift=0` (one instruction
//! per nanosecond of virtual time) and does not model pipelines, caches or wait states (nor the
//! M7's dual issue, branch prediction or TCMs). Startup is cortex-m-rt's, as on the M4 board:
//! the M7 boots from the vector table at address 0 in Thread mode, and cortex-m-rt enables the
//! FPU (`eabihf` target).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hio};
use ember_bench::{Bench, Clock, StackPaint};
use panic_semihosting as _;

/// The generated model module (see `build.rs`).
#[allow(dead_code)] // Not every generated constant is needed here.
mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// SysTick's largest reload value (a 24-bit down counter).
const RELOAD: u32 = 0x00FF_FFFF;
/// SysTick runs on the 25 MHz processor clock; with `-icount shift=0` QEMU executes one
/// instruction per nanosecond, so one SysTick tick is 40 instructions.
const INSTRUCTIONS_PER_TICK: u64 = 40;

/// SysTick wraps (every 2^24 ticks), counted by its exception.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick extended to 64 bits by counting wraps; reports instructions (not cycles).
struct SysTickClock;

impl SysTickClock {
    /// Starts SysTick from `RELOAD` on the processor clock, with its wrap exception.
    fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self
    }
}

impl Clock for SysTickClock {
    const UNIT: &'static str = "instructions";

    fn now(&mut self) -> u64 {
        cortex_m::interrupt::free(|_| {
            let wraps = WRAPS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            // With interrupts masked, a wrap may be pending but not yet counted: then count it
            // and re-read the counter, which has certainly wrapped by now.
            let (wraps, current) =
                if SCB::is_pendst_pending() { (wraps + 1, SYST::get_current()) } else { (wraps, current) };
            let ticks = u64::from(wraps) * (u64::from(RELOAD) + 1) + u64::from(RELOAD - current);
            ticks * INSTRUCTIONS_PER_TICK
        })
    }
}

extern "C" {
    /// Lowest address of the stack (end of `.bss`/`.uninit`), from cortex-m-rt's `link.x`.
    static mut _stack_end: u32;
    /// Initial stack pointer: the top of the full-descending stack, from `link.x`.
    static _stack_start: u32;
}

#[entry]
fn main() -> ! {
    let arena = cortex_m::singleton!(: model::Arena = ember::Aligned([0; model::ARENA_BYTES]))
        .expect("main runs once");
    // SAFETY: `_stack_end.._stack_start` is the stack region cortex-m-rt's linker script reserves
    // above every static; nothing but the stack lives there.
    let stack = unsafe { StackPaint::paint(&raw mut _stack_end, &raw const _stack_start) };
    let peripherals = cortex_m::Peripherals::take().expect("peripherals are taken once");
    let mut clock = SysTickClock::start(peripherals.SYST);
    let mut console = hio::hstdout().expect("semihosting stdout");
    let mut layer_ticks = [0; model::OP_COUNT];
    let bench = Bench {
        board: "qemu-mps2-an500",
        model: &model::MODEL.0,
        arena: &mut arena.0,
        inputs: &model::INPUTS.0,
        layer_ticks: &mut layer_ticks,
    };
    if let Err(e) = ember_bench::run::<model::Kernels, _>(bench, &mut clock, &mut console, Some(&stack)) {
        panic!("benchmark failed: {e:?}");
    }
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}
