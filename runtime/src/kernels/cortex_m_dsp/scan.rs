//! The telemetry scans of [`crate::kernels::scan`] with byte-lane SIMD, sixteen (count) or eight
//! (range) bytes per loop step: matches of a value as the lanes where `USUB8` of the bytes xor the value minus 1 borrows,
//! turned into 0/1 bytes by `SEL` and added up by `USADA8`; the range as running lane-wise
//! signed maxima and minima (`SSUB8` sets the GE flags, `SEL` keeps the larger or smaller).

use core::arch::asm;

use crate::kernels::scan;

/// How many of `bytes` equal `value`: the bytes before the first word boundary one at a time,
/// then sixteen per loop step (two `LDRD`, the four words' 0/1 match bytes summed by `UADD8`,
/// then one `USADA8`), the rest one at a time.
pub fn count_equal(bytes: &[u8], value: u8) -> u32 {
    let (head, aligned) = bytes.split_at(bytes.as_ptr().align_offset(4).min(bytes.len()));
    let (blocks, rest) = aligned.as_chunks::<16>();
    let mut total = scan::count_equal(head, value) + scan::count_equal(rest, value);
    if let ([first, ..], [.., last]) = (blocks, blocks) {
        // SAFETY: reads the 16-byte blocks from the first (`p`, word-aligned as `LDRD` needs) to
        // just past the last (`end`), all inside `bytes`; only registers and flags change.
        unsafe {
            asm!(
                "2:",
                "ldrd {t}, {u}, [{p}], #8",
                "ldrd {v}, {w}, [{p}], #8",
                "eor {t}, {t}, {pattern}",
                "eor {u}, {u}, {pattern}",
                "eor {v}, {v}, {pattern}",
                "eor {w}, {w}, {pattern}",
                "usub8 {t}, {t}, {ones}",
                "sel {t}, {zero}, {ones}",
                "usub8 {u}, {u}, {ones}",
                "sel {u}, {zero}, {ones}",
                "usub8 {v}, {v}, {ones}",
                "sel {v}, {zero}, {ones}",
                "usub8 {w}, {w}, {ones}",
                "sel {w}, {zero}, {ones}",
                "uadd8 {t}, {t}, {u}",
                "uadd8 {v}, {v}, {w}",
                "uadd8 {t}, {t}, {v}",
                "usada8 {total}, {t}, {zero}, {total}",
                "cmp {p}, {end}",
                "bne 2b",
                p = inout(reg) first.as_ptr() => _,
                end = in(reg) last.as_ptr().wrapping_add(16),
                total = inout(reg) total,
                t = out(reg) _,
                u = out(reg) _,
                v = out(reg) _,
                w = out(reg) _,
                pattern = in(reg) u32::from_ne_bytes([value; 4]),
                ones = in(reg) 0x0101_0101u32,
                zero = in(reg) 0u32,
                options(nostack, readonly),
            );
        }
    }
    total
}

/// The smallest and the largest of `values` (`None` when empty).
pub fn range_i8(values: &[i8]) -> Option<(i8, i8)> {
    let (pairs, rest) = values.as_chunks::<8>();
    let ([first, ..], [.., last]) = (pairs, pairs) else { return scan::range_i8(rest) };
    // Every lane starts at the first value, so the lanes' extremes are the pairs' extremes.
    let start = u32::from_ne_bytes([first[0] as u8; 4]);
    let (mut low, mut high) = (start, start);
    // SAFETY: as in `count_equal`.
    unsafe {
        asm!(
            "2:",
            "ldr {t}, [{p}], #4",
            "ldr {u}, [{p}], #4",
            "ssub8 {d}, {t}, {high}",
            "sel {high}, {t}, {high}",
            "ssub8 {d}, {t}, {low}",
            "sel {low}, {low}, {t}",
            "ssub8 {d}, {u}, {high}",
            "sel {high}, {u}, {high}",
            "ssub8 {d}, {u}, {low}",
            "sel {low}, {low}, {u}",
            "cmp {p}, {end}",
            "bne 2b",
            p = inout(reg) first.as_ptr() => _,
            end = in(reg) last.as_ptr().wrapping_add(8),
            low = inout(reg) low,
            high = inout(reg) high,
            t = out(reg) _,
            u = out(reg) _,
            d = out(reg) _,
            options(nostack, readonly),
        );
    }
    let lanes = |w: u32| w.to_ne_bytes().map(|b| b as i8);
    let lo = lanes(low).into_iter().chain(rest.iter().copied()).min();
    let hi = lanes(high).into_iter().chain(rest.iter().copied()).max();
    lo.zip(hi)
}
