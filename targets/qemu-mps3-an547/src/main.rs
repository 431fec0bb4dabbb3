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
//! privileged, so the registers used (SysTick, SCB, CPACR) are their Secure banks. With the SAU
//! off and `SAU_CTRL.ALLNS` = 0 all memory is Secure, so no SAU, MPC or PPC setup is needed.
//! cortex-m-rt's reset handler sets VTOR_S to the vector table at its linked Secure-alias address
//! (`set-vtor`), sets MSPLIM to the stack's lowest address (`set-msplim`) and enables the FPU
//! (CPACR, `eabihf` target), which also enables Helium (MVE) for Ember's Helium kernels.
#![no_std]
#![no_main]

use defmt_semihosting as _;
use ember_bench::firmware::SysTickClock;
use panic_probe as _;

ember_bench::firmware! {
    board: "qemu-mps3-an547",
    // SysTick runs on the 32 MHz processor clock (the SSE-300's MAINCLK; QEMU wires no SysTick
    // reference clock on this board): a tick is 31.25 instructions, reported rounded down.
    clock: |core| SysTickClock::<125, 4>::start(core.SYST),
}
