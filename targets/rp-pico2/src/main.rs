//! `ember-bench` on the Raspberry Pi Pico 2 (RP2350, Cortex-M33 core 0): runs the model from
//! `build.rs` over its input batch at 150 MHz and prints the report through defmt over RTT
//! (`probe-rs run`).
//!
//! Times are core cycles from the DWT cycle counter. Code and constants (the model) are read
//! from the external QSPI flash through the XIP cache, so cycles include cache misses.
#![no_std]
#![no_main]

use defmt_rtt as _;
use ember_bench::firmware::DwtClock;
use panic_probe as _;
use rp235x_hal as hal;

/// The boot ROM starts a Secure Arm image only if it carries this image definition.
#[link_section = ".start_block"]
#[used]
pub static IMAGE_DEF: hal::block::ImageDef = hal::block::ImageDef::secure_exe();

/// The Pico 2's crystal.
const XTAL_FREQ_HZ: u32 = 12_000_000;

ember_bench::firmware! {
    board: "rp-pico2",
    // rp235x-hal's entry releases the spinlocks (critical sections use one) and enables the
    // coprocessors before `main`.
    entry: hal::entry,
    clock: |core| {
        let mut device = hal::pac::Peripherals::take().expect("main takes the device peripherals once");
        let mut watchdog = hal::Watchdog::new(device.WATCHDOG);
        // 150 MHz system clock (PLL_SYS), 48 MHz USB clock (PLL_USB), from the crystal.
        let clocks = hal::clocks::init_clocks_and_plls(
            XTAL_FREQ_HZ,
            device.XOSC,
            device.CLOCKS,
            device.PLL_SYS,
            device.PLL_USB,
            &mut device.RESETS,
            &mut watchdog,
        );
        if clocks.is_err() {
            panic!("the crystal oscillator or a PLL did not start");
        }
        DwtClock::start(core.DCB, core.DWT)
    },
}
