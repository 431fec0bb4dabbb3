//! The numpy-broadcasting index walker shared by the elementwise binary kernels.
//!
//! Both operand shapes have the output's rank and each of their dimensions equals the
//! output's or is 1. The walker peels one leading axis at a time and switches to a flat loop
//! as soon as the remaining operand blocks are either whole (same shape as the output block)
//! or a single broadcast element, so same-shape and scalar operands never recurse and a
//! per-channel operand (`[1, 1, 1, C]` against `[N, H, W, C]`) runs a flat loop per pixel.
//! An operand may be the output buffer itself (in place): element `i` is read just before
//! output element `i` is written.

use super::Input;

/// Writes `f(a, b)` to every element of `out`, reading `a` and `b` with numpy broadcasting.
/// An [`Input::InPlace`] operand is the output itself, and has the output's shape.
#[inline]
pub fn broadcast_binary<T: Copy>(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<T>,
    b_shape: &[usize],
    b: Input<T>,
    out: &mut [T],
    f: impl Fn(T, T) -> T,
) {
    walk(out_shape, a_shape, a, b_shape, b, out, &f);
}

/// One level of [`broadcast_binary`]: `out` is the block spanned by `out_shape`, and `a` and
/// `b` are the operand blocks that feed it.
fn walk<T: Copy>(
    out_shape: &[usize],
    a_shape: &[usize],
    a: Input<T>,
    b_shape: &[usize],
    b: Input<T>,
    out: &mut [T],
    f: &impl Fn(T, T) -> T,
) {
    if out.is_empty() {
        return;
    }
    if let (Some(a), Some(b)) = (Lane::of(a, out.len()), Lane::of(b, out.len())) {
        for (i, o) in out.iter_mut().enumerate() {
            *o = f(a.at(i, *o), b.at(i, *o));
        }
        return;
    }
    let (Some((&n, out_rest)), Some((&na, a_rest)), Some((&nb, b_rest))) =
        (out_shape.split_first(), a_shape.split_first(), b_shape.split_first())
    else {
        return;
    };
    let out_block: usize = out_rest.iter().product();
    let a_block: usize = a_rest.iter().product();
    let b_block: usize = b_rest.iter().product();
    if out_block == 0 {
        return;
    }
    for (i, out_chunk) in out.chunks_exact_mut(out_block).take(n).enumerate() {
        let ia = if na == 1 { 0 } else { i };
        let ib = if nb == 1 { 0 } else { i };
        let (Some(a_chunk), Some(b_chunk)) =
            (a.slice(ia * a_block..(ia + 1) * a_block), b.slice(ib * b_block..(ib + 1) * b_block))
        else {
            return;
        };
        walk(out_rest, a_rest, a_chunk, b_rest, b_chunk, out_chunk, f);
    }
}

/// How one flat loop reads an operand block.
#[derive(Clone, Copy)]
enum Lane<'a, T> {
    /// A block with the output block's shape.
    Whole(&'a [T]),
    /// One element, broadcast over the output block.
    Splat(T),
    /// The output block itself.
    Output,
}

impl<'a, T: Copy> Lane<'a, T> {
    /// How to read `x` over an output block of `len` elements, if a flat loop can: every
    /// remaining dimension equals the output's or is 1, so a block with as many elements as
    /// the output block has its shape, and one with a single element is broadcast over it.
    #[inline(always)]
    fn of(x: Input<'a, T>, len: usize) -> Option<Self> {
        match x {
            Input::InPlace => Some(Lane::Output),
            Input::Separate(x) if x.len() == len => Some(Lane::Whole(x)),
            Input::Separate(&[v]) => Some(Lane::Splat(v)),
            Input::Separate(_) => None,
        }
    }

    /// The operand at flat index `i` of the block, where the output holds `out`; `i` is
    /// below the block's length, which a `Whole` slice has.
    #[inline(always)]
    fn at(self, i: usize, out: T) -> T {
        match self {
            Lane::Whole(x) => x[i],
            Lane::Splat(v) => v,
            Lane::Output => out,
        }
    }
}

/// Test support shared by the broadcasting kernels' tests: index reference, inputs, checks.
#[cfg(test)]
pub(crate) mod reference {
    use super::super::{ClampF32, ClampI8, Input};

    /// `(index into a, index into b)` for each output element in row-major order, computed
    /// by unravelling each flat output index independently of the walker.
    pub fn broadcast_indices(
        out_shape: &[usize],
        a_shape: &[usize],
        b_shape: &[usize],
    ) -> Vec<(usize, usize)> {
        let total: usize = out_shape.iter().product();
        (0..total)
            .map(|flat| {
                let mut rem = flat;
                let (mut ia, mut ib) = (0, 0);
                let (mut sa, mut sb) = (1, 1);
                for d in (0..out_shape.len()).rev() {
                    let coord = rem % out_shape[d];
                    rem /= out_shape[d];
                    if a_shape[d] != 1 {
                        ia += coord * sa;
                    }
                    if b_shape[d] != 1 {
                        ib += coord * sb;
                    }
                    sa *= a_shape[d];
                    sb *= b_shape[d];
                }
                (ia, ib)
            })
            .collect()
    }

    /// A broadcast-compatible triple `(out, a, b)` of shapes: `dims` are the output's, and
    /// bit `i` (for `a`) or `i + 8` (for `b`) of `mask` turns operand dim `i` into 1.
    pub fn shapes(dims: &[usize], mask: u32) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
        let operand = |shift: usize| {
            let bit = |i: usize| mask >> (i + shift) & 1 == 1;
            dims.iter().enumerate().map(|(i, &d)| if bit(i) { 1 } else { d }).collect()
        };
        (dims.to_vec(), operand(0), operand(8))
    }

    /// `n` int8 values counting from `start` by `step`, wrapping around.
    pub fn ramp_i8(n: usize, start: i32, step: i32) -> Vec<i8> {
        (0..n).map(|i| (start + step * i as i32).rem_euclid(256) as u8 as i8).collect()
    }

    /// `n` f32 values counting from `start` by `step`.
    pub fn ramp_f32(n: usize, start: f32, step: f32) -> Vec<f32> {
        (0..n).map(|i| start + step * i as f32).collect()
    }

    /// `n` pseudo-random int8 values from a proptest seed.
    pub fn noise_i8(n: usize, seed: u64) -> Vec<i8> {
        (0..n as u64)
            .map(|i| (seed.wrapping_mul(2 * i + 1).rotate_left(i as u32) >> 56) as u8 as i8)
            .collect()
    }

    /// Scales and zero points of `a`, `b` and the output.
    #[derive(Clone, Copy, Debug)]
    pub struct Quant {
        /// Scale and zero point of `a`.
        pub a: (f32, i32),
        /// Scale and zero point of `b`.
        pub b: (f32, i32),
        /// Scale and zero point of the output.
        pub out: (f32, i32),
    }

    /// Checks that `kernel` writes `expected` in place over each operand with the output's
    /// shape, and over both when they are the same values (a tensor combined with itself).
    pub fn check_in_place<'a, T: Copy + PartialEq + core::fmt::Debug>(
        shapes: [&[usize]; 3],
        (a, b): (&'a [T], &'a [T]),
        expected: &[T],
        kernel: impl Fn(Input<'a, T>, Input<'a, T>, &mut [T]),
    ) {
        let run = |a: Input<'a, T>, b: Input<'a, T>, mut out: Vec<T>| {
            kernel(a, b, &mut out);
            out
        };
        if shapes[1] == shapes[0] {
            assert_eq!(run(Input::InPlace, Input::Separate(b), a.to_vec()), expected, "a in place");
        }
        if shapes[2] == shapes[0] {
            assert_eq!(run(Input::Separate(a), Input::InPlace, b.to_vec()), expected, "b in place");
        }
        if shapes[1] == shapes[0] && a == b {
            assert_eq!(run(Input::InPlace, Input::InPlace, a.to_vec()), expected, "both in place");
        }
    }

    /// Checks an f32 kernel's output against `real(a, b)` in f64, clamped, within 1e-6
    /// relative.
    pub fn check_f32(
        shapes: [&[usize]; 3],
        (a, b): (&[f32], &[f32]),
        act: ClampF32,
        real: fn(f64, f64) -> f64,
        out: &[f32],
    ) {
        let pairs = broadcast_indices(shapes[0], shapes[1], shapes[2]);
        assert_eq!(out.len(), pairs.len());
        for (k, (&got, (i, j))) in out.iter().zip(pairs).enumerate() {
            let want = real(a[i].into(), b[j].into()).clamp(act.min.into(), act.max.into());
            let err = (f64::from(got) - want).abs();
            assert!(err <= want.abs() * 1e-6, "{k}: {got} vs {want}");
        }
    }

    /// Checks an int8 kernel's output against `real` on the dequantized operands, requantized
    /// in f64 and clamped, within 1 LSB.
    pub fn check_i8(
        shapes: [&[usize]; 3],
        (a, b): (&[i8], &[i8]),
        q: Quant,
        act: ClampI8,
        real: fn(f64, f64) -> f64,
        out: &[i8],
    ) {
        let dequantize = |x: i8, (s, z): (f32, i32)| f64::from(i32::from(x) - z) * f64::from(s);
        let pairs = broadcast_indices(shapes[0], shapes[1], shapes[2]);
        assert_eq!(out.len(), pairs.len());
        for (k, (&got, (i, j))) in out.iter().zip(pairs).enumerate() {
            let y = real(dequantize(a[i], q.a), dequantize(b[j], q.b)) / f64::from(q.out.0);
            let want = (y.round() as i32 + q.out.1).clamp(act.min, act.max);
            assert!((i32::from(got) - want).abs() <= 1, "{k}: {got} vs {want} ({q:?})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::reference::broadcast_indices;
    use super::*;
    use proptest::prelude::*;

    /// Runs the walker with `a` = `(index, _)` and `b` = `(_, index)` and `f` combining the two,
    /// so the output records the source indices. When an operand has the output's shape, also
    /// runs it in place and checks the output is the same.
    fn walked(out_shape: &[usize], a_shape: &[usize], b_shape: &[usize]) -> Vec<(usize, usize)> {
        let a: Vec<(usize, usize)> = (0..a_shape.iter().product()).map(|i| (i, usize::MAX)).collect();
        let b: Vec<(usize, usize)> = (0..b_shape.iter().product()).map(|i| (usize::MAX, i)).collect();
        let f = |x: (usize, usize), y: (usize, usize)| (x.0, y.1);
        let mut out = vec![(usize::MAX, usize::MAX); out_shape.iter().product()];
        broadcast_binary(out_shape, a_shape, Input::Separate(&a), b_shape, Input::Separate(&b), &mut out, f);
        if a_shape == out_shape {
            let mut in_place = a.clone();
            broadcast_binary(
                out_shape,
                a_shape,
                Input::InPlace,
                b_shape,
                Input::Separate(&b),
                &mut in_place,
                f,
            );
            assert_eq!(in_place, out, "a in place");
        }
        if b_shape == out_shape {
            let mut in_place = b.clone();
            broadcast_binary(
                out_shape,
                a_shape,
                Input::Separate(&a),
                b_shape,
                Input::InPlace,
                &mut in_place,
                f,
            );
            assert_eq!(in_place, out, "b in place");
        }
        out
    }

    #[test]
    fn walker_matches_unravelled_indices_on_edge_shapes() {
        let cases: &[(&[usize], &[usize], &[usize])] = &[
            (&[2, 3], &[2, 3], &[2, 3]),
            (&[1, 2, 2, 3], &[1, 1, 1, 3], &[1, 2, 2, 3]),
            (&[1, 2, 2, 3], &[1, 2, 2, 3], &[1, 1, 1, 3]),
            (&[1, 2, 2, 3], &[1, 1, 1, 1], &[1, 2, 2, 3]),
            (&[1, 2, 2, 3], &[1, 2, 2, 3], &[1, 1, 1, 1]),
            (&[2, 3], &[1, 1], &[1, 1]),
            (&[2, 3], &[2, 1], &[1, 3]),
            (&[2, 1, 3], &[1, 1, 3], &[2, 1, 1]),
            (&[3, 0, 2], &[3, 0, 1], &[1, 0, 2]),
            (&[2, 1, 2, 1, 2, 3], &[2, 1, 1, 1, 2, 1], &[1, 1, 2, 1, 1, 3]),
        ];
        for &(o, a, b) in cases {
            assert_eq!(walked(o, a, b), broadcast_indices(o, a, b), "{o:?} {a:?} {b:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn walker_matches_unravelled_indices(
            dims in prop::collection::vec(1usize..4, 1..=6),
            mask in any::<u32>(),
        ) {
            let (o, a, b) = super::reference::shapes(&dims, mask);
            prop_assert_eq!(walked(&o, &a, &b), broadcast_indices(&o, &a, &b));
        }
    }
}
