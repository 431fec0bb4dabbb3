//! TRANSPOSE of an N-D tensor with ONNX semantics (one implementation for every element type).

/// Permutes the axes of `x` (of `shape`): output axis `i` is input axis `perm[i]`.
pub fn transpose<T: Copy>(shape: &[usize], perm: &[usize], x: &[T], out: &mut [T]) {
    let Some((&axis, rest)) = perm.split_first() else {
        // No axes left: the single element is copied as is.
        for (o, &v) in out.iter_mut().zip(x) {
            *o = v;
        }
        return;
    };
    let (Some(&n), Some(inner)) = (shape.get(axis), shape.get(axis + 1..)) else {
        return;
    };
    // Input elements between consecutive coordinates along `axis`.
    let stride = inner.iter().product::<usize>().max(1);
    if rest.is_empty() {
        for (o, &v) in out.iter_mut().zip(x.iter().step_by(stride)) {
            *o = v;
        }
        return;
    }
    // Output elements per coordinate along this (outermost remaining) output axis.
    let Some(block) = out.len().checked_div(n).filter(|&b| b > 0) else {
        return;
    };
    for (i, out_slice) in out.chunks_exact_mut(block).enumerate() {
        if let Some(x_rest) = x.get(i * stride..) {
            transpose(shape, rest, x_rest, out_slice);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs the kernel into a fresh output.
    fn transposed<T: Copy + Default>(shape: &[usize], perm: &[usize], x: &[T]) -> Vec<T> {
        let mut out = vec![T::default(); x.len()];
        transpose(shape, perm, x, &mut out);
        out
    }

    /// Independent reference: each input element scattered to its permuted output position.
    fn reference<T: Copy + Default>(shape: &[usize], perm: &[usize], x: &[T]) -> Vec<T> {
        let out_shape: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
        let mut out = vec![T::default(); x.len()];
        for (flat, &v) in x.iter().enumerate() {
            let mut coords = vec![0; shape.len()];
            let mut rem = flat;
            for axis in (0..shape.len()).rev() {
                coords[axis] = rem % shape[axis];
                rem /= shape[axis];
            }
            let dst = perm.iter().zip(&out_shape).fold(0, |acc, (&a, &d)| acc * d + coords[a]);
            out[dst] = v;
        }
        out
    }

    #[test]
    fn four_d_permutation_hand_checked() {
        // NHWC [1, 2, 2, 3] to NCHW with perm [0, 3, 1, 2].
        let x: Vec<i8> = (0..12).collect();
        assert_eq!(transposed(&[1, 2, 2, 3], &[0, 3, 1, 2], &x), [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
        let xf: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let out = transposed(&[1, 2, 2, 3], &[0, 3, 1, 2], &xf);
        assert_eq!(out, [0.0, 3.0, 6.0, 9.0, 1.0, 4.0, 7.0, 10.0, 2.0, 5.0, 8.0, 11.0]);
        // A 2-D transpose and the identity.
        assert_eq!(transposed(&[2, 3], &[1, 0], &[1, 2, 3, 4, 5, 6]), [1, 4, 2, 5, 3, 6]);
        assert_eq!(transposed(&[2, 3], &[0, 1], &[1, 2, 3, 4, 5, 6]), [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn four_d_permutations_match_reference() {
        let shape = [2, 3, 4, 5];
        let x: Vec<i8> = (0..120).collect();
        for perm in [[3, 2, 1, 0], [1, 3, 0, 2], [0, 2, 3, 1], [2, 0, 1, 3]] {
            assert_eq!(transposed(&shape, &perm, &x), reference(&shape, &perm, &x), "{perm:?}");
        }
    }

    #[test]
    fn invalid_perm_does_not_panic() {
        let mut out = [0i8; 6];
        transpose(&[2, 3], &[5, 0], &[1, 2, 3, 4, 5, 6], &mut out);
        transpose::<i8>(&[2, 0], &[1, 0], &[], &mut []);
        transpose(&[2, 3], &[1, 0], &[1, 2, 3, 4, 5, 6], &mut out[..2]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_permutations_match_reference(
            shape in prop::collection::vec(1usize..4, 1..=6),
            keys in prop::collection::vec(any::<u32>(), 6),
        ) {
            let mut perm: Vec<usize> = (0..shape.len()).collect();
            perm.sort_by_key(|&a| keys[a]);
            let len: usize = shape.iter().product();
            let x: Vec<i8> = (0..len).map(|i| (i % 253) as i8).collect();
            prop_assert_eq!(transposed(&shape, &perm, &x), reference(&shape, &perm, &x));
            let xf: Vec<f32> = x.iter().map(|&v| f32::from(v) - 0.5).collect();
            prop_assert_eq!(transposed(&shape, &perm, &xf), reference(&shape, &perm, &xf));
        }
    }
}
