//! Constant-value PAD of an N-D tensor (one implementation shared by every element type).

/// Pads `x` (of `shape`) with `value` into `out`; `pads[i]` is `[before, after]` for axis `i`.
pub fn pad<T: Copy>(shape: &[usize], pads: &[[usize; 2]], value: T, x: &[T], out: &mut [T]) {
    let (Some((&n, inner_shape)), Some((&[before, _], inner_pads))) =
        (shape.split_first(), pads.split_first())
    else {
        // Rank 0: the single element is copied as is.
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v;
        }
        return;
    };
    // Element counts of one input and one output slice along this axis.
    let in_block: usize = inner_shape.iter().product();
    let out_block: usize = inner_shape.iter().zip(inner_pads).map(|(&d, &[b, a])| d + b + a).product();
    let (head, rest) = out.split_at_mut(before.saturating_mul(out_block).min(out.len()));
    let (middle, tail) = rest.split_at_mut(n.saturating_mul(out_block).min(rest.len()));
    head.fill(value);
    tail.fill(value);
    if inner_shape.is_empty() {
        for (o, &v) in middle.iter_mut().zip(x) {
            *o = v;
        }
    } else if in_block == 0 || out_block == 0 {
        middle.fill(value);
    } else {
        for (x_slice, out_slice) in x.chunks_exact(in_block).zip(middle.chunks_exact_mut(out_block)) {
            pad(inner_shape, inner_pads, value, x_slice, out_slice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs the kernel into a fresh output of the padded shape.
    fn padded<T: Copy + Default>(shape: &[usize], pads: &[[usize; 2]], value: T, x: &[T]) -> Vec<T> {
        let len = shape.iter().zip(pads).map(|(&d, p)| d + p[0] + p[1]).product();
        let mut out = vec![T::default(); len];
        pad(shape, pads, value, x, &mut out);
        out
    }

    /// Independent reference: each output element unravelled and mapped back to the input.
    fn reference<T: Copy>(shape: &[usize], pads: &[[usize; 2]], value: T, x: &[T]) -> Vec<T> {
        let out_shape: Vec<usize> = shape.iter().zip(pads).map(|(&d, p)| d + p[0] + p[1]).collect();
        let len: usize = out_shape.iter().product();
        (0..len)
            .map(|flat| {
                let (mut rem, mut src, mut stride) = (flat, 0, 1);
                for axis in (0..shape.len()).rev() {
                    let coord = rem % out_shape[axis];
                    rem /= out_shape[axis];
                    let Some(c) = coord.checked_sub(pads[axis][0]).filter(|&c| c < shape[axis]) else {
                        return value;
                    };
                    src += c * stride;
                    stride *= shape[axis];
                }
                x[src]
            })
            .collect()
    }

    #[test]
    fn asymmetric_pads_with_a_value_hand_checked() {
        // [2, 2] padded by (1, 0) rows and (0, 2) columns with 9.
        let out = padded(&[2, 2], &[[1, 0], [0, 2]], 9i8, &[1, 2, 3, 4]);
        assert_eq!(out, [9, 9, 9, 9, 1, 2, 9, 9, 3, 4, 9, 9]);
        let out = padded(&[1, 1, 2, 1], &[[0, 0], [1, 1], [0, 1], [2, 0]], -0.5f32, &[1.0, 2.0]);
        let v = -0.5;
        #[rustfmt::skip]
        assert_eq!(out, [
            v, v, v, v, v, v, v, v, v,
            v, v, 1.0, v, v, 2.0, v, v, v,
            v, v, v, v, v, v, v, v, v,
        ]);
    }

    #[test]
    fn zero_pads_copy_and_empty_inputs_fill() {
        let x: Vec<i8> = (0..24).collect();
        assert_eq!(padded(&[2, 3, 4], &[[0, 0]; 3], 0, &x), x);
        assert_eq!(padded(&[2, 0], &[[0, 1], [1, 0]], 5i8, &[]), [5; 3]);
        assert_eq!(padded(&[], &[], 5i8, &[7]), [7]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_pads_match_reference(
            dims in prop::collection::vec((1usize..4, 0usize..3, 0usize..3), 1..=5),
            value in any::<i8>(),
        ) {
            let shape: Vec<usize> = dims.iter().map(|d| d.0).collect();
            let pads: Vec<[usize; 2]> = dims.iter().map(|d| [d.1, d.2]).collect();
            let len: usize = shape.iter().product();
            let x: Vec<i8> = (0..len).map(|i| (i % 251) as i8).collect();
            prop_assert_eq!(padded(&shape, &pads, value, &x), reference(&shape, &pads, value, &x));
            let xf: Vec<f32> = x.iter().map(|&v| f32::from(v) * 0.25).collect();
            let vf = f32::from(value);
            prop_assert_eq!(padded(&shape, &pads, vf, &xf), reference(&shape, &pads, vf, &xf));
        }
    }
}
