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

use defmt_semihosting as _;
use ember_bench::firmware::SysTickClock;
use panic_probe as _;

ember_bench::firmware! {
    board: "qemu-mps2-an500",
    // SysTick runs on the 25 MHz processor clock: a tick is 40 instructions.
    clock: |core| SysTickClock::<40>::start(core.SYST),
}
