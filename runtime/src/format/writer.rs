//! Builds model files (host only): the quantizer writes through the same records the
//! runtime reads.

use bytemuck::Pod;

use super::layout::WeightLayout;
use super::meta::{Provenance, NO_SOURCE};
use super::params::params_len;
use super::{
    section, DType, Header, IoRecord, OpKind, OpRecord, QuantRecord, Section, Storage, TensorRecord, ALIGN,
    HEADER_LEN, MAGIC, MAX_RANK, NO_ALIAS, PER_TENSOR, VERSION,
};

/// Quantization of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Quant {
    /// One scale and zero point.
    PerTensor {
        /// Scale.
        scale: f32,
        /// Zero point.
        zero_point: i32,
    },
    /// One scale per index along `axis` (zero point 0).
    PerChannel {
        /// Quantized axis.
        axis: usize,
        /// Scales.
        scales: Vec<f32>,
    },
}

/// Everything wrong with a model being built: a bug in the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// An input or output descriptor being built.
#[derive(Clone, Debug)]
pub struct IoDesc {
    /// Tensor holding the data.
    pub tensor: u16,
    /// Name in the original model (at most 60 bytes).
    pub name: String,
    /// Shape in the original model.
    pub onnx_shape: Vec<usize>,
    /// Internal axis `i` is original axis `perm[i]`.
    pub perm: Vec<usize>,
}

/// Accumulates tensors, ops and descriptors, then serializes them with [`ModelBuilder::finish`].
#[derive(Clone, Debug, Default)]
pub struct ModelBuilder {
    tensors: Vec<TensorRecord>,
    quant: Vec<QuantRecord>,
    ops: Vec<OpRecord>,
    op_io: Vec<u16>,
    params: Vec<u8>,
    inputs: Vec<IoDesc>,
    outputs: Vec<IoDesc>,
    blob: Vec<u8>,
    arena_bytes: usize,
    provenance: Option<Provenance>,
    sources: Vec<u32>,
}

fn record(dtype: DType, shape: &[usize], storage: Storage) -> Result<TensorRecord, BuildError> {
    if shape.len() > MAX_RANK {
        return Err(BuildError(format!("rank {} above {MAX_RANK}", shape.len())));
    }
    let mut dims = [0u32; MAX_RANK];
    for (d, &s) in dims.iter_mut().zip(shape) {
        *d = u32::try_from(s).map_err(|_| BuildError(format!("dimension {s} too large")))?;
    }
    let bytes = shape.iter().product::<usize>() * dtype.size();
    Ok(TensorRecord {
        dtype: dtype as u8,
        rank: shape.len() as u8,
        storage: storage as u8,
        quant_axis: PER_TENSOR,
        dims,
        byte_len: u32::try_from(bytes).map_err(|_| BuildError("tensor above 4 GiB".into()))?,
        alias_of: NO_ALIAS,
        ..Default::default()
    })
}

impl ModelBuilder {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    fn push_tensor(&mut self, mut r: TensorRecord, quant: Option<&Quant>) -> Result<u16, BuildError> {
        r.quant_start = self.quant.len() as u32;
        match quant {
            None => {}
            Some(Quant::PerTensor { scale, zero_point }) => {
                self.quant.push(QuantRecord { scale: *scale, zero_point: *zero_point });
                r.quant_count = 1;
            }
            Some(Quant::PerChannel { axis, scales }) => {
                r.quant_axis = *axis as u8;
                r.quant_count = scales.len() as u32;
                self.quant.extend(scales.iter().map(|&scale| QuantRecord { scale, zero_point: 0 }));
            }
        }
        let id = u16::try_from(self.tensors.len())
            .ok()
            .filter(|&id| id != NO_ALIAS)
            .ok_or(BuildError("more than 65534 tensors".into()))?;
        self.tensors.push(r);
        Ok(id)
    }

    /// Adds a constant whose little-endian bytes are `data`; returns its id.
    pub fn constant(
        &mut self,
        dtype: DType,
        shape: &[usize],
        data: &[u8],
        quant: Option<&Quant>,
    ) -> Result<u16, BuildError> {
        let mut r = record(dtype, shape, Storage::Constant)?;
        if data.len() != r.byte_len as usize {
            return Err(BuildError(format!(
                "constant of shape {shape:?} needs {} bytes, got {}",
                r.byte_len,
                data.len()
            )));
        }
        self.blob.resize(self.blob.len().next_multiple_of(ALIGN), 0);
        r.offset = self.blob.len() as u32;
        self.blob.extend_from_slice(data);
        self.push_tensor(r, quant)
    }

    /// Adds a constant from plain values.
    pub fn constant_of<T: Pod>(
        &mut self,
        dtype: DType,
        shape: &[usize],
        values: &[T],
        quant: Option<&Quant>,
    ) -> Result<u16, BuildError> {
        self.constant(dtype, shape, bytemuck::cast_slice(values), quant)
    }

    /// Adds an activation (placed later with [`ModelBuilder::place`]); returns its id.
    pub fn activation(
        &mut self,
        dtype: DType,
        shape: &[usize],
        quant: Option<&Quant>,
    ) -> Result<u16, BuildError> {
        self.push_tensor(record(dtype, shape, Storage::Arena)?, quant)
    }

    /// Makes activation `alias` share `root`'s storage (for `reshape`).
    pub fn alias(&mut self, alias: u16, root: u16) {
        let root = self.root(root);
        self.tensors[alias as usize].alias_of = root;
    }

    /// The tensor whose storage `id` uses.
    pub fn root(&self, id: u16) -> u16 {
        match self.tensors[id as usize].alias_of {
            NO_ALIAS => id,
            root => root,
        }
    }

    /// Appends an op; returns its index.
    pub fn op<P: Pod>(
        &mut self,
        kind: OpKind,
        inputs: &[u16],
        outputs: &[u16],
        params: &P,
    ) -> Result<u16, BuildError> {
        let bytes = bytemuck::bytes_of(params);
        if bytes.len() != params_len(kind) {
            return Err(BuildError(format!("wrong parameter struct for {}", kind.name())));
        }
        let index = self.ops.len();
        self.ops.push(OpRecord {
            kind: kind as u8,
            n_inputs: inputs.len() as u8,
            n_outputs: outputs.len() as u8,
            io_start: self.op_io.len() as u32,
            params_offset: self.params.len() as u32,
            params_len: bytes.len() as u32,
            ..Default::default()
        });
        self.op_io.extend_from_slice(inputs);
        self.op_io.extend_from_slice(outputs);
        self.params.extend_from_slice(bytes);
        self.sources.push(NO_SOURCE);
        u16::try_from(index).map_err(|_| BuildError("more than 65535 ops".into()))
    }

    /// Makes op `op`'s int8 requantization round once (see [`super::OP_SINGLE_ROUNDING`]).
    pub fn set_single_rounding(&mut self, op: u16) {
        self.ops[op as usize].flags |= super::OP_SINGLE_ROUNDING;
    }

    /// Whether op `op`'s int8 requantization rounds once.
    pub fn single_rounding(&self, op: u16) -> bool {
        self.ops[op as usize].flags & super::OP_SINGLE_ROUNDING != 0
    }

    /// Op `op`'s parameter struct.
    pub fn op_params<P: Pod>(&self, op: u16) -> P {
        let r = &self.ops[op as usize];
        bytemuck::pod_read_unaligned(&self.params[r.params_offset as usize..][..r.params_len as usize])
    }

    /// Tensor `id`'s quantization records.
    pub fn quant(&self, id: u16) -> &[QuantRecord] {
        let r = &self.tensors[id as usize];
        &self.quant[r.quant_start as usize..][..r.quant_count as usize]
    }

    /// Constant `id`'s bytes, to rewrite in place.
    pub fn constant_mut(&mut self, id: u16) -> &mut [u8] {
        let r = &self.tensors[id as usize];
        &mut self.blob[r.offset as usize..][..r.byte_len as usize]
    }

    /// Records that op `op` came from operator `source` of the source model (an ONNX node or
    /// TFLite operator index, see [`super::meta::SourceFormat`]). Written only with a provenance.
    pub fn set_op_source(&mut self, op: u16, source: u32) {
        self.sources[op as usize] = source;
    }

    /// Writes a `META` section with `provenance` and each op's source index.
    pub fn set_provenance(&mut self, provenance: Provenance) {
        self.provenance = Some(provenance);
    }

    /// Declares a model input.
    pub fn input(&mut self, desc: IoDesc) {
        self.inputs.push(desc);
    }

    /// Declares a model output.
    pub fn output(&mut self, desc: IoDesc) {
        self.outputs.push(desc);
    }

    /// Number of tensors so far.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// Number of ops so far.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Tensor `id`'s record so far (planning sets its offset, `finish` its lifetime).
    pub fn tensor(&self, id: u16) -> &TensorRecord {
        &self.tensors[id as usize]
    }

    /// The kind of op `index` (`None` only for a kind byte this builder never writes).
    pub fn op_kind(&self, index: usize) -> Option<OpKind> {
        OpKind::from_u8(self.ops[index].kind)
    }

    /// The input tensor ids of op `index`.
    pub fn op_inputs(&self, index: usize) -> &[u16] {
        let r = &self.ops[index];
        let start = r.io_start as usize;
        &self.op_io[start..start + r.n_inputs as usize]
    }

    /// The output tensor ids of op `index`.
    pub fn op_outputs(&self, index: usize) -> &[u16] {
        let r = &self.ops[index];
        let start = r.io_start as usize + r.n_inputs as usize;
        &self.op_io[start..start + r.n_outputs as usize]
    }

    /// The model inputs declared so far.
    pub fn inputs(&self) -> &[IoDesc] {
        &self.inputs
    }

    /// The model outputs declared so far.
    pub fn outputs(&self) -> &[IoDesc] {
        &self.outputs
    }

    /// Whether tensor `id` lives in the arena (and is not an alias).
    pub fn is_arena_root(&self, id: u16) -> bool {
        let t = &self.tensors[id as usize];
        t.storage == Storage::Arena as u8 && t.alias_of == NO_ALIAS
    }

    /// Byte length of tensor `id`.
    pub fn byte_len(&self, id: u16) -> usize {
        self.tensors[id as usize].byte_len as usize
    }

    /// Inclusive op range during which each tensor is alive (model inputs from op 0, outputs
    /// to the last op, others from their producer to their last reader; an alias extends its
    /// root's range). Constants get `(0, 0)`.
    pub fn lifetimes(&self) -> Vec<(u16, u16)> {
        let last = self.ops.len().saturating_sub(1) as u16;
        let mut live: Vec<Option<(u16, u16)>> = vec![None; self.tensors.len()];
        let mut touch = |id: u16, at: u16| {
            let l = live[id as usize].get_or_insert((at, at));
            l.0 = l.0.min(at);
            l.1 = l.1.max(at);
        };
        for d in &self.inputs {
            touch(d.tensor, 0);
        }
        for d in &self.outputs {
            touch(d.tensor, last);
        }
        for i in 0..self.ops.len() {
            for &id in self.op_inputs(i).iter().chain(self.op_outputs(i)) {
                touch(id, i as u16);
            }
        }
        let mut out: Vec<(u16, u16)> = live.iter().map(|l| l.unwrap_or((0, 0))).collect();
        for (id, t) in self.tensors.iter().enumerate() {
            if t.alias_of != NO_ALIAS {
                let (first, last) = out[id];
                let root = &mut out[t.alias_of as usize];
                root.1 = root.1.max(last);
                root.0 = root.0.min(first);
            }
        }
        out
    }

    /// Places activation `id` (and implicitly its aliases) at arena `offset`.
    pub fn place(&mut self, id: u16, offset: usize) {
        self.tensors[id as usize].offset = offset as u32;
    }

    /// Sets the op's scratch buffer.
    pub fn scratch(&mut self, op: u16, offset: usize, len: usize) {
        let r = &mut self.ops[op as usize];
        r.scratch_offset = offset as u32;
        r.scratch_len = len as u32;
    }

    /// Sets the arena size of the memory plan.
    pub fn arena_bytes(&mut self, bytes: usize) {
        self.arena_bytes = bytes;
    }

    /// Rewrites the weights of every int8 `conv2d` and `fully_connected` in the filter layout
    /// `layout` (one of [`WeightLayout::FILTERS`]) and, for a DSP one, those of every int8
    /// `depthwise_conv2d` the DSP 3×3 path takes in the depthwise layout of its sweep
    /// ([`crate::kernels::dsp_depthwise::weight_layout`]); docs/FORMAT.md §3.1. A weight tensor
    /// that another op reads stays in the standard layout. Returns how many tensors changed.
    pub fn lay_out_weights(&mut self, layout: WeightLayout) -> usize {
        if layout == WeightLayout::Standard || !WeightLayout::FILTERS.contains(&layout) {
            return 0;
        }
        // Per tensor: the layout of its first use, and whether every use takes it.
        let mut choice: Vec<Option<WeightLayout>> = vec![None; self.tensors.len()];
        let mut agreed = vec![true; self.tensors.len()];
        for op in 0..self.ops.len() {
            for (i, &id) in self.op_inputs(op).iter().enumerate() {
                let use_as = if i == 1 { self.weight_layout(op, id, layout) } else { None };
                let first = *choice[id as usize].get_or_insert(use_as.unwrap_or(WeightLayout::Standard));
                agreed[id as usize] &= use_as == Some(first);
            }
        }
        let mut order: Vec<usize> = (0..self.tensors.len())
            .filter(|&id| self.tensors[id].storage == Storage::Constant as u8)
            .collect();
        order.sort_by_key(|&id| self.tensors[id].offset);
        let mut blob = Vec::with_capacity(self.blob.len());
        let mut changed = 0;
        for id in order {
            let t = &mut self.tensors[id];
            let data = &self.blob[t.offset as usize..][..t.byte_len as usize];
            blob.resize(blob.len().next_multiple_of(ALIGN), 0);
            t.offset = blob.len() as u32;
            match choice[id] {
                Some(to) if agreed[id] && to != WeightLayout::Standard && t.layout == 0 => {
                    let filters = t.dims[0] as usize;
                    let depth = t.dims[1..t.rank as usize].iter().map(|&d| d as usize).product();
                    let mut laid = vec![0; to.byte_len(filters, depth).unwrap_or(0)];
                    to.pack(bytemuck::cast_slice(data), filters, depth, &mut laid);
                    (t.layout, t.byte_len) = (to as u8, laid.len() as u32);
                    blob.extend_from_slice(&laid);
                    changed += 1;
                }
                _ => blob.extend_from_slice(data),
            }
        }
        self.blob = blob;
        changed
    }

    /// The layout of tensor `id` read as op `op`'s weights (input 1) in a model laid out for
    /// filters in `layout`, if not the standard one.
    fn weight_layout(&self, op: usize, id: u16, layout: WeightLayout) -> Option<WeightLayout> {
        let t = &self.tensors[id as usize];
        if t.dtype != DType::I8 as u8 || t.storage != Storage::Constant as u8 || t.rank < 2 {
            return None;
        }
        match self.op_kind(op)? {
            OpKind::Conv2d | OpKind::FullyConnected => Some(layout),
            OpKind::DepthwiseConv2d => self.depthwise_layout(op),
            _ => None,
        }
    }

    /// The depthwise layout of int8 `depthwise_conv2d` `op`'s weights, if the DSP 3×3 path
    /// takes the layer.
    fn depthwise_layout(&self, op: usize) -> Option<WeightLayout> {
        use crate::kernels::{dsp_depthwise, ConvGeometry, Nhwc};
        use crate::quant::{Requant, Rounding};
        let (inputs, outputs) = (self.op_inputs(op), self.op_outputs(op));
        let dims = |id: u16| {
            let t = &self.tensors[id as usize];
            match t.dims[..t.rank as usize] {
                [a, b, c, d] => Some([a, b, c, d].map(|v| v as usize)),
                _ => None,
            }
        };
        let nhwc = |[n, h, w, c]: [usize; 4]| Nhwc { n, h, w, c };
        let (&[x, w, bias, requant], &[y]) = (inputs, outputs) else { return None };
        let (input, output, [_, kh, kw, _]) = (dims(x)?, dims(y)?, dims(w)?);
        let p: super::params::ConvParams = self.op_params(op as u16);
        let g = ConvGeometry {
            input: nhwc(input),
            output: nhwc(output),
            kernel: [kh, kw],
            stride: p.stride.map(|v| v as usize),
            dilation: p.dilation.map(|v| v as usize),
            pad: [p.pad[0] as usize, p.pad[1] as usize],
        };
        let constant = |id: u16| {
            let t = &self.tensors[id as usize];
            let constant = t.storage == Storage::Constant as u8 && t.dtype == DType::I32 as u8;
            constant.then(|| &self.blob[t.offset as usize..][..t.byte_len as usize])
        };
        let bias: Vec<i32> = bytemuck::pod_collect_to_vec(constant(bias)?);
        let requant: Vec<Requant> = bytemuck::pod_collect_to_vec(constant(requant)?);
        let rounding = if self.single_rounding(op as u16) { Rounding::Single } else { Rounding::Double };
        dsp_depthwise::weight_layout(&g, &requant, &bias, rounding)
    }

    /// Serializes the model: header, sections, 16-byte aligned blob, CRC.
    pub fn finish(mut self) -> Result<Vec<u8>, BuildError> {
        let lifetimes = self.lifetimes();
        for (id, t) in self.tensors.iter_mut().enumerate() {
            if t.storage == Storage::Arena as u8 {
                (t.live_first, t.live_last) = lifetimes[id];
            }
        }
        for id in 0..self.tensors.len() {
            let root = self.tensors[id].alias_of;
            if root != NO_ALIAS {
                self.tensors[id].offset = self.tensors[root as usize].offset;
            }
        }
        let inputs = self.inputs.iter().map(io_record).collect::<Result<Vec<_>, _>>()?;
        let outputs = self.outputs.iter().map(io_record).collect::<Result<Vec<_>, _>>()?;
        let mut out = vec![0u8; HEADER_LEN];
        let mut sections = [Section::default(); section::COUNT];
        let mut put = |out: &mut Vec<u8>, index: usize, bytes: &[u8], align: usize| {
            out.resize(out.len().next_multiple_of(align), 0);
            sections[index] = Section { offset: out.len() as u32, len: bytes.len() as u32 };
            out.extend_from_slice(bytes);
        };
        put(&mut out, section::TENSORS, bytemuck::cast_slice(&self.tensors), 4);
        put(&mut out, section::OPS, bytemuck::cast_slice(&self.ops), 4);
        put(&mut out, section::OP_IO, bytemuck::cast_slice(&self.op_io), 4);
        put(&mut out, section::PARAMS, &self.params, 4);
        put(&mut out, section::QUANT, bytemuck::cast_slice(&self.quant), 4);
        put(&mut out, section::INPUTS, bytemuck::cast_slice(&inputs), 4);
        put(&mut out, section::OUTPUTS, bytemuck::cast_slice(&outputs), 4);
        let mut meta = Section::default();
        if let Some(provenance) = &self.provenance {
            out.resize(out.len().next_multiple_of(4), 0);
            let bytes = [bytemuck::bytes_of(provenance), bytemuck::cast_slice(&self.sources)].concat();
            meta = Section { offset: out.len() as u32, len: bytes.len() as u32 };
            out.extend_from_slice(&bytes);
        }
        put(&mut out, section::BLOB, &self.blob, ALIGN);
        let file_len = u32::try_from(out.len()).map_err(|_| BuildError("model above 4 GiB".into()))?;
        let mut header = Header {
            magic: MAGIC,
            version: VERSION,
            file_len,
            arena_bytes: self.arena_bytes as u32,
            meta,
            sections,
            ..Default::default()
        };
        out[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
        header.crc32 = crate::CRC32.checksum(&out[16..]);
        out[..HEADER_LEN].copy_from_slice(bytemuck::bytes_of(&header));
        Ok(out)
    }
}

fn io_record(d: &IoDesc) -> Result<IoRecord, BuildError> {
    let mut r = IoRecord::default();
    let name = d.name.as_bytes();
    if name.len() > r.name.len() {
        return Err(BuildError(format!("input/output name '{}' longer than 60 bytes", d.name)));
    }
    if d.onnx_shape.len() > MAX_RANK || d.perm.len() != d.onnx_shape.len() {
        return Err(BuildError(format!("input/output '{}' has a bad shape or perm", d.name)));
    }
    r.tensor = d.tensor;
    r.name_len = name.len() as u8;
    r.name[..name.len()].copy_from_slice(name);
    r.onnx_rank = d.onnx_shape.len() as u8;
    for (i, (&s, &p)) in d.onnx_shape.iter().zip(&d.perm).enumerate() {
        r.onnx_dims[i] = s as u32;
        r.perm[i] = p as u8;
    }
    Ok(r)
}
