//! A validated, zero-copy view of a model file.
//!
//! [`Model::from_bytes`] checks the file's structure once — CRC, section bounds, every tensor
//! and op record, the tensors each op reads and writes, graph order and the memory plan.
//! [`Model::validate_ops`] checks each op's parameters and shapes with the code of the kernels
//! a program links (the interpreter calls it), so the interpreter can run the model without
//! ever reading out of bounds, and a firmware carries the checks of its own ops only.

use bytemuck::Pod;

use crate::format::layout::WeightLayout;
use crate::format::meta::{Calibration, Provenance, SourceFormat, TOOL_LEN};
use crate::format::{
    params, section, DType, Header, IoRecord, OpKind, OpRecord, QuantRecord, Storage, TensorRecord, ALIGN,
    HEADER_LEN, MAGIC, MAX_RANK, NO_ALIAS, OP_SINGLE_ROUNDING, PER_TENSOR, VERSION,
};
use crate::ops;
use crate::quant::Rounding;
use crate::Error;

/// A validated model, borrowing its bytes (which may live in flash).
#[derive(Clone, Copy, Debug)]
pub struct Model<'a> {
    tensors: &'a [TensorRecord],
    ops: &'a [OpRecord],
    op_io: &'a [u16],
    params: &'a [u8],
    quant: &'a [QuantRecord],
    inputs: &'a [IoRecord],
    outputs: &'a [IoRecord],
    blob: &'a [u8],
    arena_bytes: usize,
    meta: &'a [u8],
}

/// The model's `META` section, read in place: where it came from.
#[derive(Clone, Copy, Debug)]
pub struct Metadata<'a> {
    /// How the model was made.
    pub provenance: &'a Provenance,
    /// Per op, the index of the source model's operator it came from (or `format::meta::NO_SOURCE`).
    pub sources: &'a [u32],
}

/// A tensor's description.
#[derive(Clone, Copy, Debug)]
pub struct TensorInfo<'a> {
    /// Index in the model.
    pub id: u16,
    /// Element type.
    pub dtype: DType,
    /// Where the bytes live.
    pub storage: Storage,
    /// Dimensions.
    pub dims: &'a [u32],
    /// Byte offset (blob or arena).
    pub offset: usize,
    /// Byte length.
    pub byte_len: usize,
    /// Quantization: empty for float tensors.
    pub quant: &'a [QuantRecord],
    /// Quantized axis for per-channel quantization.
    pub quant_axis: Option<usize>,
    /// Tensor whose storage this one shares.
    pub alias_of: Option<u16>,
    /// First op during which the tensor is alive.
    pub live_first: u16,
    /// Last op during which the tensor is alive.
    pub live_last: u16,
    /// How the bytes are arranged (not standard for int8 weights laid out for a kernel set).
    pub layout: WeightLayout,
}

impl TensorInfo<'_> {
    /// Number of elements (the dims', not the layout's padding).
    pub fn len(&self) -> usize {
        match self.layout {
            WeightLayout::Standard => self.byte_len / self.dtype.size(),
            _ => product(self.dims),
        }
    }

    /// Filters (the first dim) and weights per filter (the product of the others) of a weight
    /// tensor.
    pub fn filters_depth(&self) -> (usize, usize) {
        match self.dims.split_first() {
            Some((&f, rest)) => (f as usize, product(rest)),
            None => (1, 1),
        }
    }

    /// Whether the tensor has no elements (never true in a valid model).
    pub fn is_empty(&self) -> bool {
        self.byte_len == 0
    }

    /// Per-tensor scale and zero point (the first record; `(1.0, 0)` for float tensors).
    pub fn scale_zero_point(&self) -> (f32, i32) {
        self.quant.first().map_or((1.0, 0), |q| (q.scale, q.zero_point))
    }

    /// Arena byte range, for activations.
    pub(crate) fn arena_range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset + self.byte_len
    }
}

/// The product of `dims`, saturating (the loader checks it for every tensor it accepts).
fn product(dims: &[u32]) -> usize {
    dims.iter().fold(1, |p: usize, &d| p.saturating_mul(d as usize))
}

/// An operator's description.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo<'a> {
    /// Index in the model.
    pub index: u16,
    /// Kind.
    pub kind: OpKind,
    /// Input tensor ids.
    pub inputs: &'a [u16],
    /// Output tensor ids.
    pub outputs: &'a [u16],
    /// Parameter bytes.
    pub params: &'a [u8],
    /// Scratch buffer (arena offset, length).
    pub scratch: (usize, usize),
    /// How its int8 requantization rounds.
    pub rounding: Rounding,
}

impl<'a> OpInfo<'a> {
    /// Reads the parameter struct (its length was checked at load time).
    pub fn params<P: Pod>(&self) -> Result<P, Error> {
        bytemuck::try_pod_read_unaligned(self.params).map_err(|_| self.error("parameter length"))
    }

    /// An error about this op.
    pub fn error(&self, reason: &'static str) -> Error {
        Error::BadOp { op: self.index, kind: Some(self.kind), reason }
    }
}

/// A model input or output as the user sees it.
#[derive(Clone, Copy, Debug)]
pub struct IoInfo<'a> {
    /// The tensor holding the data, in the internal layout.
    pub tensor: TensorInfo<'a>,
    /// Name in the original model.
    pub name: &'a str,
    /// Shape in the original model.
    pub onnx_dims: &'a [u32],
    /// Internal axis `i` is original axis `perm[i]`.
    pub perm: &'a [u8],
}

fn section<'a, T: Pod>(bytes: &'a [u8], header: &Header, index: usize) -> Result<&'a [T], Error> {
    let s = header.sections.get(index).copied().unwrap_or(header.meta);
    let bad = Error::BadSection { section: index as u8 };
    let start = s.offset as usize;
    let end = start.checked_add(s.len as usize).ok_or(bad)?;
    let raw = bytes.get(start..end).ok_or(bad)?;
    if start < HEADER_LEN || !start.is_multiple_of(4) {
        return Err(bad);
    }
    bytemuck::try_cast_slice(raw).map_err(|_| bad)
}

impl<'a> Model<'a> {
    /// Validates `bytes` (16-byte aligned, as written by `ember-quantize`) and returns the model.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        if cfg!(target_endian = "big") {
            return Err(Error::BigEndian);
        }
        let Some(head) = bytes.get(..HEADER_LEN) else {
            return Err(Error::Truncated { needed: HEADER_LEN, got: bytes.len() });
        };
        if !(bytes.as_ptr() as usize).is_multiple_of(ALIGN) {
            return Err(Error::MisalignedModel);
        }
        let header: Header = bytemuck::pod_read_unaligned(head);
        if header.magic != MAGIC {
            return Err(Error::BadMagic);
        }
        if header.version != VERSION {
            return Err(Error::UnsupportedVersion { found: header.version });
        }
        let stray_meta = header.meta.len == 0 && header.meta.offset != 0;
        if header.flags != 0 || header.reserved != 0 || stray_meta {
            return Err(Error::BadSection { section: u8::MAX });
        }
        let file_len = header.file_len as usize;
        let covered = bytes.get(16..file_len).filter(|_| file_len >= HEADER_LEN);
        let (Some(bytes), Some(covered)) = (bytes.get(..file_len), covered) else {
            return Err(Error::Truncated { needed: file_len.max(HEADER_LEN), got: bytes.len() });
        };
        let found = crate::CRC32.checksum(covered);
        if found != header.crc32 {
            return Err(Error::CrcMismatch { expected: header.crc32, found });
        }
        let blob: &[u8] = section(bytes, &header, section::BLOB)?;
        if !(header.sections[section::BLOB].offset as usize).is_multiple_of(ALIGN) {
            return Err(Error::BadSection { section: section::BLOB as u8 });
        }
        let model = Model {
            tensors: section(bytes, &header, section::TENSORS)?,
            ops: section(bytes, &header, section::OPS)?,
            op_io: section(bytes, &header, section::OP_IO)?,
            params: section(bytes, &header, section::PARAMS)?,
            quant: section(bytes, &header, section::QUANT)?,
            inputs: section(bytes, &header, section::INPUTS)?,
            outputs: section(bytes, &header, section::OUTPUTS)?,
            blob,
            arena_bytes: header.arena_bytes as usize,
            meta: match header.meta.len {
                0 => &[],
                _ => section(bytes, &header, section::META)?,
            },
        };
        model.validate()?;
        Ok(model)
    }

    /// Checks every op's parameters and shapes, and that `K` links its kernel.
    /// [`crate::Interpreter::with_kernels`] calls it; with [`crate::AllKernels`] it checks
    /// everything any program could run.
    pub fn validate_ops<K: ops::Kernels>(&self) -> Result<(), Error> {
        for index in 0..self.ops.len() as u16 {
            ops::prepare::<K>(self, &self.op(index)?)?;
        }
        Ok(())
    }

    /// Scratch bytes the kernels of `target` need to run op `index` (what `ember-quantize`
    /// plans for it).
    pub fn scratch_needed(
        &self,
        index: u16,
        target: crate::kernels::scratch::Target,
    ) -> Result<usize, Error> {
        ops::scratch_bytes::<ops::AllKernels>(self, &self.op(index)?, target)
    }

    /// Checks that every op plans the scratch `target`'s kernels need, as the interpreter of a
    /// firmware running them does ([`Error::ScratchTooSmall`] for the first op short of it).
    pub fn check_scratch(&self, target: crate::kernels::scratch::Target) -> Result<(), Error> {
        for index in 0..self.ops.len() as u16 {
            ops::check_scratch::<ops::AllKernels>(self, &self.op(index)?, target)?;
        }
        Ok(())
    }

    /// Arena bytes the interpreter needs (for a 16-byte aligned arena).
    pub fn arena_bytes(&self) -> usize {
        self.arena_bytes
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// Number of operators.
    pub fn op_count(&self) -> usize {
        self.ops.len()
    }

    /// Number of model inputs.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Number of model outputs.
    pub fn output_count(&self) -> usize {
        self.outputs.len()
    }

    /// Bytes of constant data (weights, biases, tables).
    pub fn weight_bytes(&self) -> usize {
        self.blob.len()
    }

    /// The `META` section (`None` if the file has none), read in place.
    pub fn metadata(&self) -> Option<Metadata<'a>> {
        let (provenance, sources) = self.meta.split_at_checked(core::mem::size_of::<Provenance>())?;
        Some(Metadata {
            provenance: bytemuck::try_from_bytes(provenance).ok()?,
            sources: bytemuck::try_cast_slice(sources).ok()?,
        })
    }

    /// Describes tensor `id`.
    pub fn tensor(&self, id: u16) -> Result<TensorInfo<'a>, Error> {
        let bad = |reason| Error::BadTensor { tensor: id, reason };
        let r = self.tensors.get(id as usize).ok_or(bad("no such tensor"))?;
        let dtype = DType::from_u8(r.dtype).ok_or(bad("unknown element type"))?;
        let storage = match r.storage {
            0 => Storage::Constant,
            1 => Storage::Arena,
            _ => return Err(bad("unknown storage")),
        };
        let rank = r.rank as usize;
        let dims = r.dims.get(..rank).ok_or(bad("rank above 6"))?;
        let start = r.quant_start as usize;
        let quant = start
            .checked_add(r.quant_count as usize)
            .and_then(|end| self.quant.get(start..end))
            .ok_or(bad("quantization records out of range"))?;
        Ok(TensorInfo {
            id,
            dtype,
            storage,
            dims,
            offset: r.offset as usize,
            byte_len: r.byte_len as usize,
            quant,
            quant_axis: (r.quant_axis != PER_TENSOR).then_some(r.quant_axis as usize),
            alias_of: (r.alias_of != NO_ALIAS).then_some(r.alias_of),
            live_first: r.live_first,
            live_last: r.live_last,
            layout: WeightLayout::from_u8(r.layout).ok_or(bad("unknown weight layout"))?,
        })
    }

    /// Describes operator `index`.
    pub fn op(&self, index: u16) -> Result<OpInfo<'a>, Error> {
        let r = self.ops.get(index as usize).ok_or(Error::BadOp {
            op: index,
            kind: None,
            reason: "no such op",
        })?;
        let bad = |reason| Error::BadOp { op: index, kind: OpKind::from_u8(r.kind), reason };
        let kind = OpKind::from_u8(r.kind).ok_or(bad("unknown op kind"))?;
        let rounding = match r.flags {
            0 => Rounding::Double,
            OP_SINGLE_ROUNDING
                if matches!(kind, OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::FullyConnected) =>
            {
                Rounding::Single
            }
            OP_SINGLE_ROUNDING => return Err(bad("single rounding on an op that does not requantize")),
            _ => return Err(bad("unknown op flags (written by a newer ember-quantize?)")),
        };
        let start = r.io_start as usize;
        let io = start
            .checked_add(r.n_inputs as usize + r.n_outputs as usize)
            .and_then(|end| self.op_io.get(start..end))
            .ok_or(bad("tensor ids out of range"))?;
        let p_start = r.params_offset as usize;
        let params = p_start
            .checked_add(r.params_len as usize)
            .and_then(|end| self.params.get(p_start..end))
            .ok_or(bad("parameters out of range"))?;
        if r.params_len as usize != params::params_len(kind) {
            return Err(bad("parameter block has the wrong length for this op kind"));
        }
        let (inputs, outputs) = io.split_at_checked(r.n_inputs as usize).ok_or(bad("inputs out of range"))?;
        Ok(OpInfo {
            index,
            kind,
            inputs,
            outputs,
            params,
            scratch: (r.scratch_offset as usize, r.scratch_len as usize),
            rounding,
        })
    }

    /// Describes model input `index`.
    pub fn input(&self, index: usize) -> Result<IoInfo<'a>, Error> {
        self.io(self.inputs, index)
    }

    /// Describes model output `index`.
    pub fn output(&self, index: usize) -> Result<IoInfo<'a>, Error> {
        self.io(self.outputs, index)
    }

    fn io(&self, records: &'a [IoRecord], index: usize) -> Result<IoInfo<'a>, Error> {
        let r = records.get(index).ok_or(Error::NoSuchIo { index, count: records.len() })?;
        let bad = |reason| Error::BadIo { index: index as u16, reason };
        let name = r.name.get(..r.name_len as usize).ok_or(bad("name longer than 60 bytes"))?;
        let name = core::str::from_utf8(name).map_err(|_| bad("name is not UTF-8"))?;
        let rank = r.onnx_rank as usize;
        if rank > MAX_RANK {
            return Err(bad("rank above 6"));
        }
        let padding_is_zero = r.reserved == [0; 2]
            && r.onnx_dims.iter().skip(rank).all(|&d| d == 0)
            && r.perm.iter().skip(rank).all(|&p| p == 0)
            && r.name.iter().skip(name.len()).all(|&c| c == 0);
        if !padding_is_zero {
            return Err(bad("reserved bytes or entries past the rank are not zero"));
        }
        Ok(IoInfo {
            tensor: self.tensor(r.tensor)?,
            name,
            onnx_dims: r.onnx_dims.get(..rank).ok_or(bad("rank above 6"))?,
            perm: r.perm.get(..rank).ok_or(bad("rank above 6"))?,
        })
    }

    /// Constant tensor bytes, in place in the model.
    pub(crate) fn constant_bytes(&self, t: &TensorInfo) -> Result<&'a [u8], Error> {
        t.offset
            .checked_add(t.byte_len)
            .and_then(|end| self.blob.get(t.offset..end))
            .ok_or(Error::BadTensor { tensor: t.id, reason: "constant data outside the blob" })
    }

    fn validate(&self) -> Result<(), Error> {
        if self.tensors.len() >= NO_ALIAS as usize || self.ops.len() > u16::MAX as usize {
            return Err(Error::BadSection { section: section::TENSORS as u8 });
        }
        let last_op = self.ops.len().saturating_sub(1) as u16;
        for id in 0..self.tensors.len() as u16 {
            self.validate_tensor(id, last_op)?;
        }
        for index in 0..self.ops.len() as u16 {
            let op = self.op(index)?;
            self.validate_op_io(&op)?;
        }
        self.validate_io()?;
        self.validate_plan()?;
        self.validate_meta()
    }

    /// Checks the `META` section's length (a provenance record and one source per op) and that
    /// its enumerations are known and its padding zero.
    fn validate_meta(&self) -> Result<(), Error> {
        if self.meta.is_empty() {
            return Ok(());
        }
        let bad = |reason| Error::BadMetadata { reason };
        let Metadata { provenance: p, sources } = self.metadata().ok_or(bad("shorter than its record"))?;
        if sources.len() != self.ops.len() {
            return Err(bad("the number of op source indices differs from the number of ops"));
        }
        if !matches!(DType::from_u8(p.precision), Some(DType::I8 | DType::F16 | DType::F32)) {
            return Err(bad("unknown precision"));
        }
        if Calibration::from_u8(p.calibration).is_none() || SourceFormat::from_u8(p.source_format).is_none() {
            return Err(bad("unknown calibration method or source format"));
        }
        let tool_len = p.tool_len as usize;
        if tool_len > TOOL_LEN || p.tool.iter().skip(tool_len).any(|&c| c != 0) || p.tool().len() != tool_len
        {
            return Err(bad("tool name is not zero-padded UTF-8"));
        }
        Ok(())
    }

    fn validate_tensor(&self, id: u16, last_op: u16) -> Result<(), Error> {
        let t = self.tensor(id)?;
        let bad = |reason| Error::BadTensor { tensor: id, reason };
        let r = self.tensors.get(id as usize).ok_or(bad("no such tensor"))?;
        if r.reserved != 0 || r.reserved2 != 0 || r.dims.iter().skip(t.dims.len()).any(|&d| d != 0) {
            return Err(bad("reserved fields or dims past the rank are not zero"));
        }
        let mut elements = 1usize;
        for &d in t.dims {
            if d == 0 {
                return Err(bad("zero-sized dimension"));
            }
            elements = elements.checked_mul(d as usize).ok_or(bad("too many elements"))?;
        }
        let (filters, depth) = t.filters_depth();
        let laid_out = match t.layout {
            WeightLayout::Standard => elements.checked_mul(t.dtype.size()),
            layout if layout.is_depthwise() && !matches!(t.dims, [1, 3, 3, _]) => {
                return Err(bad("depthwise weight layouts hold only [1, 3, 3, C] weights"));
            }
            layout if t.dtype == DType::I8 && t.storage == Storage::Constant && t.dims.len() >= 2 => {
                layout.byte_len(filters, depth)
            }
            _ => return Err(bad("only int8 constants of rank 2 or more have a weight layout")),
        };
        if laid_out != Some(t.byte_len) {
            return Err(bad("byte length does not match shape, element type and layout"));
        }
        match t.storage {
            Storage::Constant => {
                if t.offset % ALIGN != 0 {
                    return Err(bad("constant not 16-byte aligned in the blob"));
                }
                if !t.layout.holds_weights(self.constant_bytes(&t)?) {
                    return Err(bad("depthwise weights not doubled int8 with equal middle-tap copies"));
                }
            }
            Storage::Arena => {
                if !matches!(t.dtype, DType::I8 | DType::F32) {
                    return Err(bad("activations must be i8 or f32"));
                }
                let end = t.offset.checked_add(t.byte_len).ok_or(bad("arena range overflows"))?;
                if end > self.arena_bytes || t.offset % t.dtype.size() != 0 {
                    return Err(bad("arena range outside the plan or misaligned"));
                }
                if t.live_first > t.live_last || t.live_last > last_op {
                    return Err(bad("lifetime outside the op list"));
                }
            }
        }
        match (t.quant.len(), t.quant_axis) {
            (0, None) => {}
            (1, None) => {}
            (n, Some(axis)) if t.dims.get(axis).map(|&d| d as usize) == Some(n) => {}
            _ => return Err(bad("quantization count does not match its axis")),
        }
        for q in t.quant {
            if !(q.scale.is_finite() && q.scale > 0.0) {
                return Err(bad("quantization scale must be finite and positive"));
            }
            if !(-128..=127).contains(&q.zero_point) || (t.dtype != DType::I8 && q.zero_point != 0) {
                return Err(bad("zero point out of range"));
            }
        }
        if t.dtype == DType::I8 && t.storage == Storage::Arena && t.quant.len() != 1 {
            return Err(bad("int8 activations need per-tensor quantization"));
        }
        if let Some(root) = t.alias_of {
            let r = self.tensor(root)?;
            if r.alias_of.is_some()
                || r.storage != Storage::Arena
                || t.storage != Storage::Arena
                || r.offset != t.offset
                || r.byte_len != t.byte_len
                || r.dtype != t.dtype
                || t.live_first < r.live_first
                || t.live_last > r.live_last
            {
                return Err(bad("alias does not share its root's storage and lifetime"));
            }
        }
        Ok(())
    }

    /// Checks that every op reads tensors that are alive and already written, and writes
    /// activations exactly at their first live op.
    fn validate_op_io(&self, op: &OpInfo) -> Result<(), Error> {
        if op.outputs.len() != 1 {
            return Err(op.error("every op has exactly one output"));
        }
        for (i, &id) in op.inputs.iter().enumerate() {
            let t = self.tensor(id)?;
            let weights = match op.kind {
                OpKind::Conv2d | OpKind::FullyConnected => !t.layout.is_depthwise(),
                OpKind::DepthwiseConv2d => t.layout.is_depthwise(),
                _ => false,
            };
            if t.layout != WeightLayout::Standard && !(i == 1 && weights) {
                return Err(op.error("reads a laid-out weight tensor where it takes the standard layout"));
            }
            if t.storage == Storage::Arena {
                // Written before: a model input, or the output of the op where it becomes alive.
                let written = self.is_input(id)
                    || (t.live_first < op.index && self.op(t.live_first)?.outputs.contains(&id));
                if !written || op.index > t.live_last {
                    return Err(op.error("reads a tensor outside its lifetime"));
                }
            }
        }
        // Each tensor has one `live_first`, so at most one op can write it.
        let out = self.tensor(*op.outputs.first().ok_or(op.error("no output"))?)?;
        if out.storage != Storage::Arena || out.live_first != op.index || self.is_input(out.id) {
            return Err(op.error("output must be an arena tensor first alive at this op"));
        }
        let (s_off, s_len) = op.scratch;
        if s_off.checked_add(s_len).is_none_or(|end| end > self.arena_bytes) {
            return Err(op.error("scratch buffer outside the arena"));
        }
        if s_len > 0 && !s_off.is_multiple_of(ALIGN) {
            return Err(op.error("scratch buffer not 16-byte aligned"));
        }
        Ok(())
    }

    fn is_input(&self, id: u16) -> bool {
        self.inputs.iter().any(|r| r.tensor == id)
    }

    fn validate_io(&self) -> Result<(), Error> {
        if self.inputs.is_empty() || self.outputs.is_empty() {
            return Err(Error::BadIo { index: 0, reason: "a model needs inputs and outputs" });
        }
        let last_op = self.ops.len().saturating_sub(1) as u16;
        for (records, is_output) in [(self.inputs, false), (self.outputs, true)] {
            for index in 0..records.len() {
                let io = self.io(records, index)?;
                let bad = |reason| Error::BadIo { index: index as u16, reason };
                let t = io.tensor;
                if t.storage != Storage::Arena {
                    return Err(bad("inputs and outputs must live in the arena"));
                }
                if !is_output && t.live_first != 0 {
                    return Err(bad("inputs must be alive from the first op"));
                }
                if is_output && t.live_last != last_op {
                    return Err(bad("outputs must stay alive until the last op"));
                }
                let mut seen = [false; MAX_RANK];
                let mut elements = 1usize;
                for (i, &p) in io.perm.iter().enumerate() {
                    let p = p as usize;
                    match seen.get_mut(p) {
                        Some(seen) if p < io.perm.len() && !*seen => *seen = true,
                        _ => return Err(bad("perm is not a permutation")),
                    }
                    let original = io.onnx_dims.get(p);
                    if t.dims.get(i) != original {
                        return Err(bad("shape is not the permuted original shape"));
                    }
                    elements = elements.saturating_mul(original.map_or(0, |&d| d as usize));
                }
                if io.perm.len() != t.dims.len() || elements != t.len() {
                    return Err(bad("original rank differs from the tensor's"));
                }
            }
        }
        Ok(())
    }

    /// Checks that no two arena regions alive during the same op overlap, except an output
    /// written in place over an input of its op.
    fn validate_plan(&self) -> Result<(), Error> {
        let n = self.tensors.len() as u16;
        for a in 0..n {
            let ta = self.tensor(a)?;
            if ta.storage != Storage::Arena || ta.alias_of.is_some() {
                continue;
            }
            for b in a + 1..n {
                let tb = self.tensor(b)?;
                if tb.storage != Storage::Arena || tb.alias_of.is_some() {
                    continue;
                }
                let live = ta.live_first <= tb.live_last && tb.live_first <= ta.live_last;
                if live
                    && overlaps(ta.arena_range(), tb.arena_range())
                    && !self.in_place(&ta, &tb)?
                    && !self.in_place(&tb, &ta)?
                {
                    return Err(Error::PlanOverlap { a, b });
                }
            }
        }
        for index in 0..self.ops.len() as u16 {
            let (offset, len) = self.op(index)?.scratch;
            if len == 0 {
                continue;
            }
            for b in 0..n {
                let tb = self.tensor(b)?;
                let live = tb.live_first <= index && index <= tb.live_last;
                if tb.storage == Storage::Arena && live && overlaps(offset..offset + len, tb.arena_range()) {
                    return Err(Error::PlanOverlap { a: u16::MAX, b });
                }
            }
        }
        Ok(())
    }

    /// Whether `y` is written in place over `x`: `y` is the output of an op that can run in
    /// place ([`OpKind::runs_in_place`]) and reads `x` or an alias of it, `x` dies at that op
    /// and is no model input and (not even through an alias) no model output, and both have
    /// the same bytes and element type.
    fn in_place(&self, x: &TensorInfo, y: &TensorInfo) -> Result<bool, Error> {
        let index = y.live_first;
        if x.live_last != index
            || x.arena_range() != y.arena_range()
            || x.dtype != y.dtype
            || self.is_input(x.id)
        {
            return Ok(false);
        }
        let op = self.op(index)?;
        Ok(op.kind.runs_in_place()
            && op.outputs == [y.id]
            && op.inputs.iter().any(|&id| self.root(id) == x.id)
            && !self.outputs.iter().any(|r| self.root(r.tensor) == x.id))
    }

    /// The tensor whose storage `id` uses: the tensor it aliases, or itself.
    fn root(&self, id: u16) -> u16 {
        match self.tensors.get(id as usize) {
            Some(r) if r.alias_of != NO_ALIAS => r.alias_of,
            _ => id,
        }
    }
}

fn overlaps(a: core::ops::Range<usize>, b: core::ops::Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

#[cfg(test)]
impl<'a> Model<'a> {
    /// An unvalidated model over in-memory records, for unit tests of validation code.
    pub(crate) fn from_parts(
        tensors: &'a [TensorRecord],
        ops: &'a [OpRecord],
        op_io: &'a [u16],
        params: &'a [u8],
        arena_bytes: usize,
    ) -> Self {
        Model {
            tensors,
            ops,
            op_io,
            params,
            quant: &[],
            inputs: &[],
            outputs: &[],
            blob: &[],
            arena_bytes,
            meta: &[],
        }
    }
}

/// A per-tensor (unquantized) tensor record at offset 0; the byte length saturates at `u32::MAX`.
#[cfg(test)]
pub(crate) fn tensor_record(dtype: DType, storage: Storage, dims: &[u32]) -> TensorRecord {
    let mut record = TensorRecord {
        dtype: dtype as u8,
        rank: dims.len() as u8,
        storage: storage as u8,
        quant_axis: PER_TENSOR,
        alias_of: NO_ALIAS,
        ..Default::default()
    };
    record.dims[..dims.len()].copy_from_slice(dims);
    let bytes = dims.iter().fold(dtype.size() as u64, |n, &d| n.saturating_mul(u64::from(d)));
    record.byte_len = u32::try_from(bytes).unwrap_or(u32::MAX);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_io_range_past_the_address_space_is_an_error() {
        // `io_start + n_inputs` overflowed `usize` on 32-bit targets.
        let ops = [OpRecord {
            kind: OpKind::Relu as u8,
            n_inputs: 1,
            n_outputs: 1,
            io_start: u32::MAX,
            params_len: 8,
            ..Default::default()
        }];
        let model = Model::from_parts(&[], &ops, &[0, 1], &[0; 8], 0);
        let expected = Error::BadOp { op: 0, kind: Some(OpKind::Relu), reason: "tensor ids out of range" };
        assert_eq!(model.op(0).err(), Some(expected));
    }

    /// An int8 constant `[3, 5]` (three filters of five) in `layout`, its length `byte_len`.
    fn laid_out(layout: WeightLayout, byte_len: u32) -> TensorRecord {
        let mut r = tensor_record(DType::I8, Storage::Constant, &[3, 5]);
        (r.layout, r.byte_len) = (layout as u8, byte_len);
        r
    }

    #[test]
    fn weight_layouts_need_int8_constants_of_their_length() {
        let reason = |records: &[TensorRecord]| match Model::from_parts(records, &[], &[], &[], 0)
            .validate_tensor(0, 0)
        {
            Err(Error::BadTensor { reason, .. }) => reason,
            other => panic!("{other:?}"),
        };
        // Pairs: 2 pairs × 2 groups × 8 bytes; the wide layout twice that.
        assert_eq!(reason(&[laid_out(WeightLayout::DspPairs, 32)]), "constant data outside the blob");
        assert_eq!(reason(&[laid_out(WeightLayout::DspPairsWide, 64)]), "constant data outside the blob");
        let wrong_length = "byte length does not match shape, element type and layout";
        assert_eq!(reason(&[laid_out(WeightLayout::DspPairs, 15)]), wrong_length);
        assert_eq!(reason(&[laid_out(WeightLayout::DspPairsWide, 32)]), wrong_length);
        let mut unknown = laid_out(WeightLayout::DspPairs, 32);
        unknown.layout = 5;
        assert_eq!(reason(&[unknown]), "unknown weight layout");
        // Depthwise layouts: only [1, 3, 3, C] of 96 bytes per 4 channels, whose lanes are doubled
        // int8 with equal middle-tap copies.
        let depthwise = |dims: &[u32], byte_len| {
            let mut r = tensor_record(DType::I8, Storage::Constant, dims);
            (r.layout, r.byte_len) = (WeightLayout::DspDepthwiseRows as u8, byte_len);
            r
        };
        let shape = "depthwise weight layouts hold only [1, 3, 3, C] weights";
        assert_eq!(reason(&[depthwise(&[1, 9, 1, 4], 96)]), shape);
        assert_eq!(reason(&[laid_out(WeightLayout::DspDepthwiseColumns, 96)]), shape);
        assert_eq!(reason(&[depthwise(&[1, 3, 3, 6], 96)]), wrong_length);
        let blob = |lanes: [i16; 48]| lanes.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
        let records = [depthwise(&[1, 3, 3, 4], 96)];
        let check = |blob: &[u8]| {
            Model { blob, ..Model::from_parts(&records, &[], &[], &[], 0) }.validate_tensor(0, 0)
        };
        let mut lanes = [0i16; 48];
        lanes[1] = 2;
        assert_eq!(
            check(&blob(lanes)),
            Err(Error::BadTensor {
                tensor: 0,
                reason: "depthwise weights not doubled int8 with equal middle-tap copies"
            })
        );
        lanes[4] = 2;
        assert_eq!(check(&blob(lanes)), Ok(()));
        let only = "only int8 constants of rank 2 or more have a weight layout";
        let mut wide_type = tensor_record(DType::I32, Storage::Constant, &[2, 4]);
        wide_type.layout = WeightLayout::DspPairs as u8;
        let mut activation = tensor_record(DType::I8, Storage::Arena, &[2, 4]);
        activation.layout = WeightLayout::DspPairs as u8;
        let mut vector = tensor_record(DType::I8, Storage::Constant, &[8]);
        vector.layout = WeightLayout::DspPairs as u8;
        for r in [wide_type, activation, vector] {
            assert_eq!(reason(&[r]), only);
        }
    }

    #[test]
    fn laid_out_weights_are_read_only_as_weights() {
        let tensors = [
            tensor_record(DType::I8, Storage::Constant, &[1, 5]),
            laid_out(WeightLayout::DspPairs, 32),
            tensor_record(DType::I8, Storage::Arena, &[1, 3]),
        ];
        let op = |kind: OpKind, io_start| OpRecord {
            kind: kind as u8,
            n_inputs: 2,
            n_outputs: 1,
            io_start,
            params_len: params::params_len(kind) as u32,
            ..Default::default()
        };
        let ops = [op(OpKind::FullyConnected, 0), op(OpKind::Add, 3), op(OpKind::DepthwiseConv2d, 6)];
        let zeros = [0; 64];
        let model = Model::from_parts(&tensors, &ops, &[0, 1, 2, 1, 0, 2, 0, 1, 2], &zeros, 16);
        assert_eq!(model.validate_op_io(&model.op(0).unwrap()), Ok(()));
        let refused = |op: u16, kind| Error::BadOp {
            op,
            kind: Some(kind),
            reason: "reads a laid-out weight tensor where it takes the standard layout",
        };
        assert_eq!(model.validate_op_io(&model.op(1).unwrap()), Err(refused(1, OpKind::Add)));
        // Filters in a pairs layout are not depthwise weights.
        assert_eq!(model.validate_op_io(&model.op(2).unwrap()), Err(refused(2, OpKind::DepthwiseConv2d)));
    }

    #[test]
    fn constant_range_past_the_address_space_is_an_error() {
        // `offset + byte_len` overflowed `usize` (on 32-bit targets, for offsets from the file).
        let model = Model::from_parts(&[], &[], &[], &[], 0);
        let t = TensorInfo {
            id: 0,
            dtype: DType::I8,
            storage: Storage::Constant,
            dims: &[16],
            offset: usize::MAX - 7,
            byte_len: 16,
            quant: &[],
            quant_axis: None,
            alias_of: None,
            live_first: 0,
            live_last: 0,
            layout: WeightLayout::Standard,
        };
        let expected = Error::BadTensor { tensor: 0, reason: "constant data outside the blob" };
        assert_eq!(model.constant_bytes(&t), Err(expected));
    }

    /// In-place outputs (check 27): an f32 model over `[1, 8]` tensors `0..offsets.len()` at
    /// the given arena offsets; tensor 0 is the input, each op is `(kind, inputs, output)`,
    /// and a reshape output aliases its input.
    fn model(offsets: &[usize], ops: &[(OpKind, &[u16], u16)], outputs: &[u16]) -> crate::AlignedBytes {
        crate::AlignedBytes::new(&builder(offsets, ops, outputs).finish().unwrap())
    }

    /// The builder of [`model`], not yet serialized.
    fn builder(
        offsets: &[usize],
        ops: &[(OpKind, &[u16], u16)],
        outputs: &[u16],
    ) -> crate::format::writer::ModelBuilder {
        use crate::format::params::{
            AddParams, FusedAct, NoParams, SoftmaxParams, TransposeParams, UnaryParams,
        };
        use crate::format::writer::{IoDesc, ModelBuilder};
        let mut b = ModelBuilder::new();
        for _ in offsets {
            b.activation(DType::F32, &[1, 8], None).unwrap();
        }
        for &(kind, inputs, output) in ops {
            match kind {
                OpKind::Add => {
                    let r = crate::quant::Requant::default();
                    let p = AddParams { act: FusedAct::NONE, left_shift: 0, a: r, b: r, output: r };
                    b.op(kind, inputs, &[output], &p)
                }
                OpKind::Softmax => {
                    let p =
                        SoftmaxParams { beta: 1.0, input_multiplier: 0, input_left_shift: 0, diff_min: 0 };
                    b.op(kind, inputs, &[output], &p)
                }
                OpKind::Transpose => {
                    let mut perm = [0; MAX_RANK];
                    perm[1] = 1;
                    b.op(kind, inputs, &[output], &TransposeParams { perm })
                }
                OpKind::Reshape => {
                    b.alias(output, inputs[0]);
                    b.op(kind, inputs, &[output], &NoParams)
                }
                _ => b.op(kind, inputs, &[output], &UnaryParams { a: 0.0, b: 0.0 }),
            }
            .unwrap();
        }
        for (id, &offset) in offsets.iter().enumerate() {
            b.place(id as u16, offset);
        }
        b.arena_bytes(offsets.iter().max().map_or(0, |&end| end + 32));
        let io = |tensor: u16| IoDesc {
            tensor,
            name: format!("t{tensor}"),
            onnx_shape: vec![1, 8],
            perm: vec![0, 1],
        };
        b.input(io(0));
        for &t in outputs {
            b.output(io(t));
        }
        b
    }

    fn provenance() -> Provenance {
        let mut p = Provenance {
            source_sha256: [0xab; 32],
            calib_sha256: [0xcd; 32],
            created: [0x6789_abcd, 0x1],
            calib_samples: 200,
            precision: DType::I8 as u8,
            calibration: Calibration::MinMax as u8,
            source_format: SourceFormat::Tflite as u8,
            tool_len: 4,
            tool: [0; TOOL_LEN],
        };
        p.tool[..4].copy_from_slice(b"test");
        p
    }

    /// A relu then a sigmoid, with `provenance` and source indices 7 and 3.
    fn with_metadata(provenance: Provenance) -> Vec<u8> {
        let mut b = builder(&[0, 32, 64], &[(OpKind::Relu, &[0], 1), (OpKind::Sigmoid, &[1], 2)], &[2]);
        b.set_provenance(provenance);
        b.set_op_source(0, 7);
        b.set_op_source(1, 3);
        b.finish().unwrap()
    }

    #[test]
    fn metadata_round_trips_in_place() {
        let bytes = crate::AlignedBytes::new(&with_metadata(provenance()));
        let meta = Model::from_bytes(&bytes).unwrap().metadata().unwrap();
        assert_eq!(*meta.provenance, provenance());
        assert_eq!(meta.provenance.created_unix(), 0x1_6789_abcd);
        assert_eq!(meta.provenance.tool(), "test");
        assert_eq!(meta.sources, [7, 3]);
        let plain = model(&[0, 32, 64], &[(OpKind::Relu, &[0], 1), (OpKind::Sigmoid, &[1], 2)], &[2]);
        assert!(Model::from_bytes(&plain).unwrap().metadata().is_none());
    }

    /// `bytes` with `edit` applied and the CRC fixed.
    fn edited(bytes: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> crate::AlignedBytes {
        let mut bytes = bytes.to_vec();
        edit(&mut bytes);
        let crc = crate::CRC32.checksum(&bytes[16..]);
        bytes[12..16].copy_from_slice(&crc.to_le_bytes());
        crate::AlignedBytes::new(&bytes)
    }

    #[test]
    fn inconsistent_metadata_is_refused() {
        let bad = |p: Provenance, reason| {
            let bytes = crate::AlignedBytes::new(&with_metadata(p));
            assert_eq!(Model::from_bytes(&bytes).err(), Some(Error::BadMetadata { reason }), "{p:?}");
        };
        bad(Provenance { precision: DType::I32 as u8, ..provenance() }, "unknown precision");
        let unknown = "unknown calibration method or source format";
        bad(Provenance { calibration: 6, ..provenance() }, unknown);
        bad(Provenance { source_format: 3, ..provenance() }, unknown);
        let tool = "tool name is not zero-padded UTF-8";
        bad(Provenance { tool_len: TOOL_LEN as u8 + 1, ..provenance() }, tool);
        bad(Provenance { tool_len: 3, ..provenance() }, tool);
        let mut p = provenance();
        p.tool[0] = 0xff;
        bad(p, tool);

        let bytes = with_metadata(provenance());
        let meta_len_at = 24;
        // One source index short: the length no longer matches the op count.
        let short =
            edited(&bytes, |b| b[meta_len_at..meta_len_at + 4].copy_from_slice(&(108u32 + 4).to_le_bytes()));
        let reason = "the number of op source indices differs from the number of ops";
        assert_eq!(Model::from_bytes(&short).err(), Some(Error::BadMetadata { reason }));
        // An empty section must not point anywhere.
        let stray = edited(&bytes, |b| b[meta_len_at..meta_len_at + 4].copy_from_slice(&0u32.to_le_bytes()));
        assert_eq!(Model::from_bytes(&stray).err(), Some(Error::BadSection { section: u8::MAX }));
        // A section past the end of the file.
        let past = edited(&bytes, |b| b[20..24].copy_from_slice(&u32::MAX.to_le_bytes()));
        assert_eq!(Model::from_bytes(&past).err(), Some(Error::BadSection { section: 8 }));
    }

    /// The first output's bytes after running `bytes` on a ramp input.
    fn run(bytes: &[u8]) -> Vec<u8> {
        let model = Model::from_bytes(bytes).unwrap();
        let mut arena = vec![0u8; model.arena_bytes() + 16];
        let mut interp = crate::Interpreter::new(&model, &mut arena).unwrap();
        interp.set_input(0, &[-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 3.0, 7.0]).unwrap();
        interp.invoke().unwrap();
        bytemuck::cast_slice(interp.output_f32(0).unwrap()).to_vec()
    }

    #[test]
    fn outputs_written_in_place_give_the_same_bytes() {
        use OpKind::*;
        // relu → t1, sigmoid over t1, add over it (the model input is read too), softmax over that.
        let ops: &[(OpKind, &[u16], u16)] =
            &[(Relu, &[0], 1), (Sigmoid, &[1], 2), (Add, &[2, 0], 3), (Softmax, &[3], 4)];
        let in_place = model(&[0, 32, 32, 32, 32], ops, &[4]);
        let separate = model(&[0, 32, 64, 32, 64], ops, &[4]);
        assert_eq!(run(&in_place), run(&separate));
        // The add's other operand may be the overwritten one.
        let ops: &[(OpKind, &[u16], u16)] = &[(Relu, &[0], 1), (Sigmoid, &[1], 2), (Add, &[0, 2], 3)];
        assert_eq!(run(&model(&[0, 32, 32, 32], ops, &[3])), run(&model(&[0, 32, 64, 32], ops, &[3])));
    }

    #[test]
    fn only_ops_that_can_run_in_place_overwrite_an_input_that_dies_there() {
        use OpKind::*;
        let rejected = |offsets: &[usize], ops: &[(OpKind, &[u16], u16)], outputs: &[u16], a: u16, b: u16| {
            let bytes = model(offsets, ops, outputs);
            assert_eq!(Model::from_bytes(&bytes).err(), Some(Error::PlanOverlap { a, b }), "{ops:?}");
        };
        // A transpose cannot run in place.
        rejected(&[0, 32, 32], &[(Relu, &[0], 1), (Transpose, &[1], 2)], &[2], 1, 2);
        // The overwritten tensor is read later.
        rejected(&[0, 32, 32, 64], &[(Relu, &[0], 1), (Sigmoid, &[1], 2), (Add, &[2, 1], 3)], &[3], 1, 2);
        // A model input, and a model output (directly and through a reshape alias).
        rejected(&[0, 0], &[(Relu, &[0], 1)], &[1], 0, 1);
        rejected(&[0, 32, 32], &[(Relu, &[0], 1), (Sigmoid, &[1], 2)], &[2, 1], 1, 2);
        let ops: &[(OpKind, &[u16], u16)] = &[(Relu, &[0], 1), (Reshape, &[1], 2), (Sigmoid, &[1], 3)];
        rejected(&[0, 32, 32, 32], ops, &[3, 2], 1, 3);
        // Not exactly the same bytes.
        rejected(&[0, 32, 48], &[(Relu, &[0], 1), (Sigmoid, &[1], 2)], &[2], 1, 2);
    }
}
