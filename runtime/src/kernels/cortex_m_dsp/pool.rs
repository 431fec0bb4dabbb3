//! Average pooling with the window sums of four channels at a time in 16-bit lanes.

use crate::kernels::conv2d::for_each_window;
use crate::kernels::pool::{self, rounded_div};
use crate::kernels::{ClampI8, ConvGeometry};

/// [`pool::average_pool_i8`] with each window's sums of four channels in two words of 16-bit
/// lanes (`SXTAB16` of every cell's word), then TFLite's rounded division per channel. Channel
/// counts not a multiple of 4 and windows the lanes cannot sum ([`pool::lane_sums_fit`]) run the
/// reference.
pub fn average_pool_i8(g: &ConvGeometry, x: &[i8], act: ClampI8, out: &mut [i8]) {
    let c = g.output.c;
    if !c.is_multiple_of(4) || !pool::lane_sums_fit(g, x, out) {
        return pool::average_pool_i8(g, x, act, out);
    }
    for_each_window(g, |window, pixel| {
        for c0 in (0..c).step_by(4) {
            // Lanes: channels (c0, c0 + 2) in `even`, (c0 + 1, c0 + 3) in `odd`.
            let (mut even, mut odd) = (0u32, 0u32);
            window.for_each_run(|_, px, count| {
                // SAFETY: a run has `count ≥ 1` consecutive pixels from `px` inside the input
                // (`lane_sums_fit`), and each load reads channels c0..c0 + 4 ≤ c of one of them (unaligned
                // `LDR` is allowed on these cores).
                unsafe {
                    core::arch::asm!(
                        "2:",
                        "ldr {v}, [{p}]",
                        "add {p}, {step}",
                        "sxtab16 {even}, {even}, {v}",
                        "sxtab16 {odd}, {odd}, {v}, ror #8",
                        "subs {n}, #1",
                        "bne 2b",
                        p = inout(reg) x.as_ptr().add(px * c + c0) => _,
                        n = inout(reg) count => _,
                        even = inout(reg) even,
                        odd = inout(reg) odd,
                        step = in(reg) c,
                        v = out(reg) _,
                        options(nostack, readonly),
                    );
                }
            });
            let cells = window.len();
            let lane =
                |word: u32, high: bool| i32::from((if high { word >> 16 } else { word }) as u16 as i16);
            let sums = [lane(even, false), lane(odd, false), lane(even, true), lane(odd, true)];
            for (o, sum) in out[pixel * c + c0..][..4].iter_mut().zip(sums) {
                *o = act.apply(rounded_div(sum, cells));
            }
        }
    });
}
