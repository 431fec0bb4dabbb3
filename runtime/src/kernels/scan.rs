//! Scans of int8 tensors for the drift telemetry: how many bytes equal a value, and the range of
//! int8 values.

/// How many of `bytes` equal `value`, four bytes per step without branches (SWAR).
pub fn count_equal(bytes: &[u8], value: u8) -> u32 {
    const LOW7: u32 = 0x7f7f_7f7f;
    let pattern = u32::from_ne_bytes([value; 4]);
    let (words, rest) = bytes.as_chunks::<4>();
    let mut total = 0;
    // Each byte lane of `lanes` counts matches in its position: at most 255 words per block.
    for block in words.chunks(255) {
        let mut lanes = 0u32;
        for &word in block {
            let x = u32::from_ne_bytes(word) ^ pattern;
            // The high bit of each byte is set exactly where that byte of `x` is zero (the low
            // seven bits are added without carries between bytes).
            lanes += !(((x & LOW7) + LOW7) | x | LOW7) >> 7;
        }
        let pairs = (lanes & 0x00ff_00ff) + ((lanes >> 8) & 0x00ff_00ff);
        total += (pairs & 0xffff) + (pairs >> 16);
    }
    total + rest.iter().map(|&b| u32::from(b == value)).sum::<u32>()
}

/// The smallest and the largest of `values` (`None` when empty).
pub fn range_i8(values: &[i8]) -> Option<(i8, i8)> {
    let (lo, hi) = values.iter().fold((i8::MAX, i8::MIN), |(lo, hi), &q| (lo.min(q), hi.max(q)));
    (lo <= hi).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn count_equal_counts_like_a_plain_loop(
            bytes in proptest::collection::vec(proptest::sample::select(vec![0u8, 1, 0x7f, 0x80, 0xff]), 0..2100),
            value in proptest::sample::select(vec![0u8, 0x7f, 0x80, 0xff]),
        ) {
            let expected = bytes.iter().filter(|&&b| b == value).count() as u32;
            proptest::prop_assert_eq!(count_equal(&bytes, value), expected);
        }
    }

    #[test]
    fn count_equal_handles_long_runs_of_matches() {
        // More than 255 words of all-matching bytes: every lane's counter reaches its limit.
        let bytes = vec![0x7f; 4 * 600 + 3];
        assert_eq!(count_equal(&bytes, 0x7f), bytes.len() as u32);
        assert_eq!(count_equal(&bytes, 0x80), 0);
    }

    #[test]
    fn range_of_values() {
        assert_eq!(range_i8(&[]), None);
        assert_eq!(range_i8(&[5]), Some((5, 5)));
        assert_eq!(range_i8(&[3, -128, 127, 0]), Some((-128, 127)));
    }
}
