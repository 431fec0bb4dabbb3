//! SysTick as an instruction counter under QEMU `-icount shift=0`.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;

use crate::Clock;

/// SysTick's largest reload value (a 24-bit down counter).
const RELOAD: u32 = 0x00FF_FFFF;

/// SysTick wraps (every 2^24 ticks), counted by its exception.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// SysTick on the processor clock, extended to 64 bits by counting wraps, reporting
/// instructions (`clock=instructions`, not cycles): `NUM / DEN` instructions per tick.
///
/// With `-icount shift=0` QEMU executes one instruction per nanosecond of virtual time, so a
/// tick of an `f` MHz SysTick is `1000 / f` instructions: 40 at 25 MHz (`SysTickClock<40>`),
/// 31.25 at 32 MHz (`SysTickClock<125, 4>`, rounded down to a whole instruction; each reading is
/// exact to one tick).
pub struct SysTickClock<const NUM: u64, const DEN: u64 = 1>(());

impl<const NUM: u64, const DEN: u64> SysTickClock<NUM, DEN> {
    /// Starts SysTick from its largest reload value on the processor clock, with its wrap
    /// exception.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        Self(())
    }
}

impl<const NUM: u64, const DEN: u64> Clock for SysTickClock<NUM, DEN> {
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
            ticks * NUM / DEN
        })
    }
}
