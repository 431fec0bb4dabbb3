//! CONCAT along one axis, as one strided copy per input (shared by every element type).

/// Copies `src` (shape `[outer, part]`) into columns `[offset, offset + part)` of `out`
/// (shape `[outer, total]`); called once per input by the glue.
pub fn concat_part<T: Copy>(
    outer: usize,
    part: usize,
    total: usize,
    offset: usize,
    src: &[T],
    out: &mut [T],
) {
    let Some(end) = offset.checked_add(part).filter(|&end| part > 0 && end <= total) else {
        return;
    };
    for (row, out_row) in src.chunks_exact(part).zip(out.chunks_exact_mut(total)).take(outer) {
        out_row[offset..end].copy_from_slice(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Concatenates `parts` (each `[outer, width]`) with the kernel, one call per part.
    fn concat<T: Copy + Default>(outer: usize, parts: &[(usize, Vec<T>)]) -> Vec<T> {
        let total = parts.iter().map(|p| p.0).sum();
        let mut out = vec![T::default(); outer * total];
        let mut offset = 0;
        for (width, data) in parts {
            concat_part(outer, *width, total, offset, data, &mut out);
            offset += width;
        }
        out
    }

    /// Independent reference: element `(r, c)` of the output looks its source part up.
    fn reference<T: Copy>(outer: usize, parts: &[(usize, Vec<T>)]) -> Vec<T> {
        let mut out = Vec::new();
        for r in 0..outer {
            for (width, data) in parts {
                out.extend((0..*width).map(|c| data[r * width + c]));
            }
        }
        out
    }

    #[test]
    fn three_parts_hand_checked() {
        let parts = vec![(1, vec![1i8, 2]), (3, vec![10, 11, 12, 20, 21, 22]), (2, vec![-1, -2, -3, -4])];
        assert_eq!(concat(2, &parts), [1, 10, 11, 12, -1, -2, 2, 20, 21, 22, -3, -4]);
        let parts = vec![(2, vec![0.5f32, 1.5]), (1, vec![-7.0]), (1, vec![f32::INFINITY])];
        assert_eq!(concat(1, &parts), [0.5, 1.5, -7.0, f32::INFINITY]);
    }

    #[test]
    fn inconsistent_or_empty_parts_are_ignored() {
        let mut out = [0i8; 4];
        concat_part(2, 0, 2, 0, &[], &mut out);
        concat_part(2, 2, 2, 1, &[1, 2, 3, 4], &mut out);
        concat_part(2, 1, 2, usize::MAX, &[1, 2], &mut out);
        assert_eq!(out, [0; 4]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn random_parts_match_reference(
            outer in 1usize..5,
            widths in prop::collection::vec(1usize..5, 1..5),
            seed in any::<i8>(),
        ) {
            let parts: Vec<(usize, Vec<i8>)> = widths
                .iter()
                .enumerate()
                .map(|(k, &w)| {
                    let data = (0..outer * w).map(|i| seed.wrapping_add((i * 7 + k * 31) as i8));
                    (w, data.collect())
                })
                .collect();
            prop_assert_eq!(concat(outer, &parts), reference(outer, &parts));
            let parts_f32: Vec<(usize, Vec<f32>)> = parts
                .iter()
                .map(|(w, d)| (*w, d.iter().map(|&v| f32::from(v) * 0.5).collect()))
                .collect();
            prop_assert_eq!(concat(outer, &parts_f32), reference(outer, &parts_f32));
        }
    }
}
