//! `ember-bench` on the STM32 NUCLEO-L4R5ZI (STM32L4R5ZI, Cortex-M4F), the MLPerf Tiny reference
//! board: runs the model from `build.rs` over its input batch at 120 MHz and prints the report
//! through defmt over RTT (`probe-rs run`).
//!
//! Times are core cycles from the DWT cycle counter, including flash wait states: the flash
//! runs with 5 wait states at 120 MHz behind ST's ART accelerator (instruction and data caches
//! on, as after reset; prefetch off, as after reset).
#![no_std]
#![no_main]

use defmt_rtt as _;
use ember_bench::firmware::DwtClock;
use panic_probe as _;
use stm32l4::stm32l4r5;

ember_bench::firmware! {
    board: "nucleo-l4r5zi",
    clock: |core| {
        let device = stm32l4r5::Peripherals::take().expect("main takes the device peripherals once");
        sysclk_120mhz(&device);
        DwtClock::start(core.DCB, core.DWT)
    },
}

/// Runs the core at 120 MHz (RM0432, "Range 1 boost mode" and "Clock switching"): PLL from
/// HSI16 (÷1 × 15 = 240 MHz VCO, ÷2), Range 1 boost mode, 5 flash wait states. APB1 and APB2
/// stay undivided.
fn sysclk_120mhz(device: &stm32l4r5::Peripherals) {
    let (rcc, pwr, flash) = (&device.RCC, &device.PWR, &device.FLASH);

    // Above 80 MHz the regulator must be in Range 1 boost mode, entered with HCLK halved until
    // at least 1 µs after the switch to the faster clock.
    rcc.apb1enr1().modify(|_, w| w.pwren().set_bit());
    // SAFETY: 0b1000 is HPRE "SYSCLK / 2", a valid AHB prescaler.
    rcc.cfgr().modify(|_, w| unsafe { w.hpre().bits(0b1000) });
    pwr.cr5().modify(|_, w| w.r1mode().boost_mode());
    flash.acr().modify(|_, w| w.latency().ws5());
    while !flash.acr().read().latency().is_ws5() {}

    rcc.cr().modify(|_, w| w.hsion().set_bit());
    while rcc.cr().read().hsirdy().bit_is_clear() {}
    rcc.pllcfgr().write(|w| {
        // SAFETY: PLLSRC 0b10 = HSI16, PLLM 0 = ÷1 (16 MHz input, within 2.66..16 MHz), PLLN 15
        // (240 MHz VCO, within 64..344 MHz), PLLR 0b00 = ÷2: the PLL's documented ranges.
        unsafe { w.pllsrc().bits(0b10).pllm().bits(0).plln().bits(15).pllr().bits(0b00) }.pllren().set_bit()
    });
    rcc.cr().modify(|_, w| w.pllon().set_bit());
    while rcc.cr().read().pllrdy().bit_is_clear() {}

    // SAFETY: SW 0b11 selects PLLCLK as the system clock.
    rcc.cfgr().modify(|_, w| unsafe { w.sw().bits(0b11) });
    while rcc.cfgr().read().sws().bits() != 0b11 {}
    // 1 µs is 60 cycles at the halved 60 MHz HCLK.
    cortex_m::asm::delay(120);
    // SAFETY: 0b0000 is HPRE "SYSCLK not divided".
    rcc.cfgr().modify(|_, w| unsafe { w.hpre().bits(0b0000) });
}
