//! Permutation algebra for layout propagation.
//!
//! Every logical (ONNX) tensor is stored with a permutation `perm`: internal = transpose(logical,
//! perm), i.e. `internal.shape[i] == logical.shape[perm[i]]`. Conv-like ops want NCHW-logical
//! tensors stored NHWC (`perm == NHWC`).

/// The NCHW -> NHWC permutation.
pub(super) const NHWC: [usize; 4] = [0, 2, 3, 1];

/// The identity permutation of `rank` axes.
pub(super) fn identity(rank: usize) -> Vec<usize> {
    (0..rank).collect()
}

/// Inverse permutation: `inverse(p)[p[i]] == i`.
pub(super) fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    perm.iter().enumerate().for_each(|(i, &p)| inv[p] = i);
    inv
}

/// `shape` transposed by `perm`: `out[i] = shape[perm[i]]`.
pub(super) fn permute<T: Copy>(shape: &[T], perm: &[usize]) -> Vec<T> {
    perm.iter().map(|&p| shape[p]).collect()
}

/// The transpose taking a tensor stored with `from` to storage with `to`: `permute(permute(l, from), t) == permute(l, to)`.
pub(super) fn between(from: &[usize], to: &[usize]) -> Vec<usize> {
    let inv = inverse(from);
    to.iter().map(|&a| inv[a]).collect()
}

/// True if transposing a tensor of `shape` by `perm` keeps the element order (only size-1 axes move).
pub(super) fn keeps_order(shape: &[usize], perm: &[usize]) -> bool {
    let moved: Vec<usize> = perm.iter().copied().filter(|&a| shape[a] != 1).collect();
    moved.windows(2).all(|w| w[0] < w[1])
}

/// A permutation `p` with `permute(from, p) == to` that only moves size-1 axes, if one exists.
pub(super) fn unit_move(from: &[usize], to: &[usize]) -> Option<Vec<usize>> {
    if from.len() != to.len() {
        return None;
    }
    let mut big = (0..from.len()).filter(|&a| from[a] != 1);
    let mut unit = (0..from.len()).filter(|&a| from[a] == 1);
    let perm: Vec<usize> =
        to.iter().map(|&d| if d == 1 { unit.next() } else { big.next() }).collect::<Option<_>>()?;
    (permute(from, &perm) == to).then_some(perm)
}

/// Transposes row-major `data` of `shape` by `perm`.
pub(super) fn transpose_data<T: Copy>(data: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
    let rank = shape.len();
    let mut in_strides = vec![1; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out_shape = permute(shape, perm);
    let strides = permute(&in_strides, perm);
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0; rank];
    for _ in 0..data.len() {
        out.push(data[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for a in (0..rank).rev() {
            idx[a] += 1;
            if idx[a] < out_shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perm_algebra() {
        let logical = [1, 3, 4, 5];
        assert_eq!(permute(&logical, &NHWC), vec![1, 4, 5, 3]);
        let t = between(&identity(4), &NHWC);
        assert_eq!(permute(&logical, &t), permute(&logical, &NHWC));
        let back = between(&NHWC, &identity(4));
        assert_eq!(permute(&permute(&logical, &NHWC), &back), logical.to_vec());
        assert!(keeps_order(&[1, 8, 1, 1], &NHWC));
        assert!(!keeps_order(&[1, 8, 2, 1], &NHWC));
        assert_eq!(unit_move(&[1, 1, 49, 10], &[1, 49, 10, 1]), Some(vec![0, 2, 3, 1]));
        assert_eq!(unit_move(&[1, 2, 3], &[1, 3, 2]), None);
        let data: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(transpose_data(&data, &[2, 3], &[1, 0]), vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }
}
