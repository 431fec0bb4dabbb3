//! `dequantize`: int8 values to f32 with a per-tensor scale and zero point (TFLite's DEQUANTIZE).

use crate::quant::dequantize_i8;

/// `out[i] = (x[i] − zero_point) × scale`, the product in f32 as TFLite's reference kernel.
pub fn dequantize(x: &[i8], scale: f32, zero_point: i32, out: &mut [f32]) {
    for (o, &q) in out.iter_mut().zip(x) {
        *o = dequantize_i8(q, scale, zero_point);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quantize::quantize;

    #[test]
    fn hand_computed() {
        let mut out = [0.0; 5];
        dequantize(&[-128, -3, 0, 5, 127], 0.5, -3, &mut out);
        assert_eq!(out, [-62.5, 0.0, 1.5, 4.0, 65.0]);
    }

    #[test]
    fn every_byte_survives_a_round_trip_through_quantize() {
        let x: Vec<i8> = (-128..=127).collect();
        for (scale, zero_point) in [(1.0 / 256.0, -128), (0.0173, 7), (3.5, 127)] {
            let mut real = vec![0.0; x.len()];
            dequantize(&x, scale, zero_point, &mut real);
            let mut back = vec![0; x.len()];
            quantize(&real, scale, zero_point, &mut back);
            assert_eq!(back, x, "scale {scale}, zero point {zero_point}");
        }
    }
}
