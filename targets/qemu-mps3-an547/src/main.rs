//! `ember-bench` on QEMU's `mps3-an547` board (Cortex-M55 in Arm's SSE-300 subsystem): runs the
//! model from `build.rs` over its input batch and prints the report through semihosting, then
//! exits QEMU.
//!
//! Times are instruction counts, not cycles: QEMU runs with `-icount shift=0` (one instruction
//! per nanosecond of virtual time) and does not model pipelines, caches or wait states.
//!
//! Startup differs from the M4 board only in what cortex-m-rt features `Cargo.toml` turns on.
//! The M55 has the Security Extension and QEMU resets it into Secure state, taking the initial
//! stack pointer and reset vector from VTOR_S = 0 (the ITCM); everything here runs Secure and
//! privileged, so the registers below (SysTick, SCB, CPACR) are their Secure banks. With the SAU
//! off and `SAU_CTRL.ALLNS` = 0 all memory is Secure, so no SAU, MPC or PPC setup is needed.
//! cortex-m-rt's reset handler sets VTOR_S to the vector table at its linked Secure-alias address
//! (`set-vtor`), sets MSPLIM to the stack's lowest address (`set-msplim`) and enables the FPU
//! (CPACR, `eabihf` target). Helium (MVE) is not used.
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
/// SysTick runs on the 32 MHz processor clock (the SSE-300's MAINCLK; QEMU wires no SysTick
/// reference clock on this board); with `-icount shift=0` QEMU executes one instruction per
/// nanosecond, so one SysTick tick is 31.25 instructions: ticks × 125 / 4.
const INSTRUCTIONS_PER_TICK_X4: u64 = 125;

/// SysTick wraps (every 2^24 ticks), counted by its exception.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick extended to 64 bits by counting wraps; reports instructions (not cycles), rounded
/// down to a whole instruction (a reading is exact to one tick, 31.25 instructions).
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
            ticks * INSTRUCTIONS_PER_TICK_X4 / 4
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
        board: "qemu-mps3-an547",
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
