//! `fully_connected`: `[x [rows…, depth], w [units, depth], bias]` (+ `requant`) → `y [rows…, units]`.

use core::marker::PhantomData;

use super::{input, is_int8, links_layout, output, shape_error, weighted, Kernels, OpIo};
use crate::format::layout::WeightLayout;
use crate::format::params::FullyConnectedParams;
use crate::format::OpKind;
use crate::kernels::scratch::{Scratch, ScratchOp};
use crate::kernels::{ClampF32, FcGeometry, Int8Params, LaidOut, Weight};
use crate::model::{Model, OpInfo};
use crate::Error;

pub(super) fn run<K: Kernels>(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
    let (p, g) = shapes(model, op)?;
    weighted::run::<K, FullyConnectedKernels<K>>(model, op, io, &g, g.units, &p.act)
}

/// What the kernels' scratch depends on (int8 only: the float kernels need none).
pub(super) fn scratch_op(model: &Model, op: &OpInfo) -> Result<Option<ScratchOp>, Error> {
    let g = shapes(model, op)?.1;
    Ok(is_int8(op, &input(model, op, 0)?)?.then_some(ScratchOp::FullyConnectedI8(g)))
}

/// The parameters and the checked geometry.
fn shapes(model: &Model, op: &OpInfo) -> Result<(FullyConnectedParams, FcGeometry), Error> {
    let p: FullyConnectedParams = op.params()?;
    let (x, w, y) = (input(model, op, 0)?, input(model, op, 1)?, output(model, op)?);
    let [units, depth] = match *w.dims {
        [u, d] => [u as usize, d as usize],
        _ => return Err(shape_error(op, &w, "[units, depth]")),
    };
    if x.dims.last().map(|&d| d as usize) != Some(depth) {
        return Err(shape_error(op, &x, "last axis = the weights' depth"));
    }
    let rows = x.len() / depth;
    if y.dims.last().map(|&d| d as usize) != Some(units) || Some(y.len()) != rows.checked_mul(units) {
        return Err(shape_error(op, &y, "[rows…, units]"));
    }
    Ok((p, FcGeometry { rows, depth, units }))
}

/// `fully_connected`'s kernels in a firmware linking kernels `K`.
struct FullyConnectedKernels<K>(PhantomData<K>);

impl<K: Kernels> weighted::WeightedKernels for FullyConnectedKernels<K> {
    const KIND: OpKind = OpKind::FullyConnected;
    type Geometry = FcGeometry;

    fn links(layout: WeightLayout) -> bool {
        links_layout::<K>(layout)
    }

    fn i8(
        g: &FcGeometry,
        q: &Int8Params,
        x: &[i8],
        w: LaidOut,
        bias: &[i32],
        out: &mut [i8],
        scratch: Scratch,
    ) {
        use crate::kernels::selected::{fully_connected_i8, fully_connected_i8_laid_out};
        use WeightLayout::*;
        // As in `conv2d`: only the layouts `K` links have a kernel here.
        match w.layout {
            Standard if links_layout::<K>(Standard) => {
                fully_connected_i8(g, q, x, w.bytes, bias, out, scratch)
            }
            DspPairs if links_layout::<K>(DspPairs) => {
                fully_connected_i8_laid_out::<{ DspPairs as u8 }>(g, q, x, w.bytes, bias, out, scratch)
            }
            DspPairsWide if links_layout::<K>(DspPairsWide) => {
                fully_connected_i8_laid_out::<{ DspPairsWide as u8 }>(g, q, x, w.bytes, bias, out, scratch)
            }
            _ => {}
        }
    }

    fn float<W: Weight>(
        g: &FcGeometry,
        x: &[f32],
        w: &[W],
        bias: &[f32],
        act: ClampF32,
        out: &mut [f32],
        _: Scratch,
    ) {
        crate::kernels::selected::fully_connected_f32(g, x, w, bias, act, out)
    }
}

#[cfg(test)]
mod tests {
    use crate::format::params::FullyConnectedParams;
    use crate::format::{DType, OpKind, OpRecord, Storage};
    use crate::model::{tensor_record, Model};
    use crate::Error;

    #[test]
    fn output_size_past_the_address_space_is_a_shape_error() {
        // 2^26 rows × 128 units overflowed `usize` on 32-bit targets; the output holds fewer.
        let tensors = [
            tensor_record(DType::I8, Storage::Arena, &[1 << 26, 32]),
            tensor_record(DType::I8, Storage::Constant, &[128, 32]),
            tensor_record(DType::I8, Storage::Arena, &[1 << 26, 128]),
        ];
        let params_len = size_of::<FullyConnectedParams>();
        let ops = [OpRecord {
            kind: OpKind::FullyConnected as u8,
            n_inputs: 2,
            n_outputs: 1,
            params_len: params_len as u32,
            ..Default::default()
        }];
        let params = [0; 64];
        let model = Model::from_parts(&tensors, &ops, &[0, 1, 2], &params[..params_len], 0);
        assert_eq!(
            crate::ops::prepare::<crate::AllKernels>(&model, &model.op(0).unwrap()),
            Err(Error::ShapeMismatch {
                op: 0,
                kind: OpKind::FullyConnected,
                tensor: 2,
                expected: "[rows…, units]"
            })
        );
    }
}
