//! `fully_connected`: `[x [rows…, depth], w [units, depth], bias]` (+ `requant`) → `y [rows…, units]`.

use super::{input, output, shape_error, weighted, OpIo};
use crate::format::params::FullyConnectedParams;
use crate::kernels::{fully_connected, FcGeometry};
use crate::model::{Model, OpInfo};
use crate::Error;

pub(super) fn run(model: &Model, op: &OpInfo, io: Option<OpIo>) -> Result<(), Error> {
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
    if y.dims.last().map(|&d| d as usize) != Some(units) || y.len() != rows * units {
        return Err(shape_error(op, &y, "[rows…, units]"));
    }
    let g = FcGeometry { rows, depth, units };
    let kernels = weighted::Kernels {
        i8: fully_connected::fully_connected_i8,
        f32: fully_connected::fully_connected_f32::<f32>,
        f16: fully_connected::fully_connected_f32::<half::f16>,
    };
    weighted::run(model, op, io, &g, units, &p.act, kernels)
}
