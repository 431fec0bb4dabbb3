//! int8 ADD of same-shape operands with the doubling high multiplies as `SMMULR`.
//!
//! TFLite's ADD shifts each offset input left (20 bits for int8) and rescales it, then rescales
//! the sum: three requantizations per element. With `|x + offset| ≤ 255` and a left shift of at
//! most 20, each shifted input and the sum of the two rescaled ones stay below 2^30 in
//! magnitude, so every doubling high multiply is `SMMULR(2t, m)` exactly (as in
//! [`super::output`]), and the rounding divisions are the reference's own. An input's rescaled
//! value depends only on its byte, so both inputs' are tabulated once per call (2 KB of the op's
//! planned scratch) and each element costs two table loads and the output's requantization.

use super::output::smmulr;
use crate::kernels::add::{self, AddParams};
use crate::kernels::scratch::Scratch;
use crate::kernels::Input;
use crate::quant::Requant;

/// A factor of at most 1 (shift ≤ 0) as multiplier, right shift mask and its half.
#[derive(Clone, Copy)]
struct Factor {
    multiplier: i32,
    exponent: u32,
    mask: i32,
}

impl Factor {
    /// `r` if its shift is in −31..=0 and its multiplier not negative.
    fn new(r: Requant) -> Option<Self> {
        ((-31..=0).contains(&r.shift) && r.multiplier >= 0).then(|| {
            let exponent = r.shift.unsigned_abs();
            Self { multiplier: r.multiplier, exponent, mask: ((1i64 << exponent) - 1) as i32 }
        })
    }

    /// `t` times the factor as the reference's `Requant::apply` gives it, for `|t| < 2^30`.
    #[inline(always)]
    fn apply(self, t: i32) -> i32 {
        let y = smmulr(t << 1, self.multiplier);
        let threshold = (self.mask >> 1) - (y >> 31);
        (y >> self.exponent) + i32::from((y & self.mask) > threshold)
    }
}

/// [`add::add_i8`]: operands of the output's shape (or the output itself) element by element
/// with [`Factor::apply`] and two tables in `scratch` (`scratch::dsp::add_i8` bytes); broadcasts,
/// factors above 1, and too little scratch take the reference.
#[allow(clippy::too_many_arguments)]
pub fn add_i8(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<i8>,
    b_shape: &[usize],
    b: Input<i8>,
    p: &AddParams,
    out: &mut [i8],
    mut scratch: Scratch,
) {
    let (n, out_at) = (out.len(), out.as_mut_ptr());
    let operand = |x: Input<i8>| match x {
        Input::Separate(x) => (x.len() >= n).then_some(x.as_ptr()),
        Input::InPlace => Some(out_at.cast_const()),
    };
    let same_shapes = a_shape == out_shape && b_shape == out_shape;
    let factors = (Factor::new(p.a), Factor::new(p.b), Factor::new(p.output));
    let tables = scratch.take::<i32>(512);
    let (true, true, Some(a_at), Some(b_at), (Some(fa), Some(fb), Some(fo)), Some(tables)) =
        (same_shapes, (0..=20).contains(&p.left_shift), operand(a), operand(b), factors, tables)
    else {
        return add::add_i8(out_shape, a_shape, a, b_shape, b, p, out);
    };
    // Each input's rescaled value depends only on its byte: one table of 256 per input.
    let left = p.left_shift as u32;
    let (a_table, b_table) = tables.split_at_mut(256);
    for (byte, (ta, tb)) in a_table.iter_mut().zip(b_table.iter_mut()).enumerate() {
        let x = i32::from(byte as u8 as i8);
        *ta = fa.apply(x.wrapping_add(p.a_offset) << left);
        *tb = fb.apply(x.wrapping_add(p.b_offset) << left);
    }
    let (a_table, b_table) = tables.split_at(256);
    for i in 0..n {
        // SAFETY: i < n, and both operands hold n bytes (checked above, or are the output,
        // whose element i is read before it is written).
        let (x, y) = unsafe { (*a_at.add(i) as u8, *b_at.add(i) as u8) };
        let sum = a_table[usize::from(x)] + b_table[usize::from(y)];
        let value = p.act.apply(fo.apply(sum).wrapping_add(p.output_offset));
        // SAFETY: i < n = out.len().
        unsafe { *out_at.add(i) = value };
    }
}
