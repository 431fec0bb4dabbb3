//! Corrupt model files never crash the runtime.
//!
//! Each test feeds at least 10,000 mutated model files to [`Model::from_bytes`] and
//! [`Model::validate_ops`]. When a file is accepted, the test also uses it the way a caller would: reads every tensor, op, input and
//! output description, builds an [`Interpreter`] over an exact arena, a one-byte-too-small one
//! and a misaligned one, fills the inputs with random bytes, calls `invoke` and reads the
//! outputs. Passing proves that every one of those calls returns `Ok` or an [`Error`] and none
//! panics (debug builds also panic on arithmetic overflow) or hangs. It also proves that
//! validation checks everything the kernels rely on: every accepted model runs (`invoke` is
//! `Ok`) and a too-small arena is rejected with `ArenaTooSmall`.
//!
//! The seed corpus holds valid files that `ember-quantize` writes from committed ONNX models in
//! int8, f16, f32 and mixed int8/float, and from a chain of every op kind that can run in place (written over
//! its input: docs/FORMAT.md §10, check 27); together they use every op kind. Two families of
//! mutations:
//!
//! * raw corruption: truncations, 1–8 bit flips, byte overwrites, random files, and random
//!   bytes behind a valid header prefix;
//! * structural: rewrites of header, section, tensor, op, op-io, parameter, quantization,
//!   input/output and constant-data fields with boundary, nearby and random values, and
//!   consistent reshapes of tensors (dims, byte length and arena size changed together).
//!
//! Half of the raw mutations and all structural ones get their CRC recomputed, so they pass
//! the integrity checks and reach deep validation. Each test prints a histogram of outcomes
//! (`cargo test --test fuzz_model -- --nocapture`) and asserts that outcomes are varied: many
//! files are accepted and run, and the deep validation errors occur.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

mod common;

use ember::format::layout::WeightLayout;
use ember::format::params::{ConvParams, FusedAct, PadParams, TransposeParams};
use ember::format::writer::{IoDesc, ModelBuilder, Quant};
use ember::format::{
    section, DType, Header, IoRecord, OpKind, OpRecord, QuantRecord, TensorRecord, MAX_RANK,
};
use ember::{AlignedBytes, AllKernels, Error, Interpreter, Model};
use ember_quantize::algorithms::Settings;
use ember_quantize::calibrate::Method;
use ember_quantize::emit::Precision;
use ember_quantize::mixed::Mixed;
use ember_quantize::plan::Options;
use ember_quantize::provenance::Origin;
use ember_quantize::{host, npy, onnx, pipeline};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

/// Mutated files each test feeds to the runtime (one per proptest case).
const FILES_PER_TEST: u32 = 10_240;

/// Accepted models needing a larger arena are not run (a mutation can claim gigabytes).
const MAX_RUN_ARENA: usize = 1 << 24;

/// A valid model file of the corpus.
struct Seed {
    name: String,
    bytes: Vec<u8>,
}

/// Quantizes small committed models, each at several precisions, once per test process.
fn corpus() -> &'static [Seed] {
    static CORPUS: OnceLock<Vec<Seed>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
        let ops = [
            "add_broadcast",
            "mul_broadcast",
            "concat",
            "softmax",
            "avgpool",
            "maxpool",
            "pad",
            "transpose",
            "sigmoid",
            "tanh",
            "clip_relu6",
            "leaky_relu",
            "hard_swish",
            "hard_sigmoid",
            "reshape_flatten",
            "depthwise",
            "depthwise_multiplier",
        ];
        let mut models: Vec<(String, _, _)> = ops
            .iter()
            .map(|op| {
                let dir = root.join("ops");
                (op.to_string(), dir.join(format!("{op}.onnx")), dir.join(format!("{op}.npz")))
            })
            .collect();
        let digits = root.join("digits");
        models.push(("digits_cnn".into(), digits.join("digits_cnn.onnx"), digits.join("calib_x.npy")));
        let mut seeds = Vec::new();
        for (name, model, calib) in models {
            let graph = onnx::load_onnx(&model, &[]).expect("committed model loads");
            let data = if calib.extension().is_some_and(|e| e == "npz") {
                npy::read_npz_array(&calib, "input_0")
            } else {
                npy::read_npy(&calib)
            };
            let shape = &graph.inputs[0].onnx_shape;
            let samples = data.and_then(|data| host::samples(&data, shape));
            let mut samples: Vec<Vec<_>> =
                samples.unwrap_or_else(|e| panic!("{name}: {e:#}")).into_iter().map(|s| vec![s]).collect();
            samples.truncate(8);
            let precisions: &[Precision] = if matches!(name.as_str(), "digits_cnn" | "softmax") {
                &[Precision::Int8, Precision::F16, Precision::F32]
            } else {
                &[Precision::Int8, Precision::F32]
            };
            for &precision in precisions {
                let written = pipeline::build(&graph, precision, Some(&samples)).expect("quantizes");
                seeds.push(Seed { name: format!("{name} {precision:?}"), bytes: written.bytes });
            }
            if matches!(name.as_str(), "digits_cnn" | "depthwise") {
                // Weights laid out for the Cortex-M DSP kernels (the 3×3 depthwise layer's in
                // `dsp-depthwise-rows`).
                for layout in [WeightLayout::DspPairs, WeightLayout::DspPairsWide] {
                    let options = Options { layout, ..Options::default() };
                    let written = pipeline::build_with(&graph, Precision::Int8, Some(&samples), options)
                        .expect("quantizes");
                    seeds.push(Seed { name: format!("{name} Int8 {}", layout.name()), bytes: written.bytes });
                }
            }
            if name == "digits_cnn" {
                // Mixed: an int8 input dequantized for float conv2, and an f32 input through
                // float conv1, quantized for int8, dequantized for float fc.
                for float in [&["conv2"][..], &["conv1", "fc"]] {
                    let names: Vec<String> = float.iter().map(|n| n.to_string()).collect();
                    let calib = pipeline::Calibration { source: &samples.as_slice(), method: Method::MinMax };
                    let (settings, options) = (Settings::default(), Options::default());
                    let mixed = Mixed::KeepFloat(&names);
                    let written =
                        pipeline::build_mixed(&graph, calib, &settings, mixed, options, &Origin::default())
                            .expect("quantizes");
                    seeds.push(Seed { name: format!("{name} mixed {float:?}"), bytes: written.bytes });
                }
            }
        }
        let chain = common::in_place_graph();
        let samples: Vec<Vec<_>> = (0..8)
            .map(|i| {
                vec![ArrayD::from_shape_fn(IxDyn(&[1, 2, 2, 3]), |d| {
                    (i + d[1] * 6 + d[2] * 3 + d[3]) as f32 / 4.0 - 2.0
                })]
            })
            .collect();
        seeds.push(Seed { name: "depthwise columns Int8 dsp-pairs".into(), bytes: depthwise_columns() });
        for (dtype, precision) in [(DType::I8, Precision::Int8), (DType::F32, Precision::F32)] {
            seeds.push(Seed { name: format!("pad_transpose {precision:?}"), bytes: pad_transpose(dtype) });
            let written = pipeline::build(&chain, precision, Some(&samples)).expect("quantizes");
            assert!(written.plan.in_place_ops > 0, "the chain has ops in place");
            seeds.push(Seed { name: format!("in_place_chain {precision:?}"), bytes: written.bytes });
        }
        check_corpus(&seeds);
        seeds
    })
}

/// A pad → transpose model written directly: the quantizer folds the committed models' pads
/// into convolutions and their transposes into input layouts, so none of them keeps these ops.
fn pad_transpose(dtype: DType) -> Vec<u8> {
    let quant = (dtype == DType::I8).then_some(Quant::PerTensor { scale: 0.05, zero_point: -3 });
    let shapes = [[1, 3, 4, 2], [1, 5, 6, 2], [1, 6, 5, 2]];
    let mut b = ModelBuilder::new();
    let ids = shapes.map(|shape| b.activation(dtype, &shape, quant.as_ref()).expect("activation"));
    let mut pads = [[0; 2]; MAX_RANK];
    pads[1] = [1, 1];
    pads[2] = [0, 2];
    b.op(OpKind::Pad, &[ids[0]], &[ids[1]], &PadParams { pads, value: 0.5, qvalue: -3 }).expect("pad");
    let mut perm = [0; MAX_RANK];
    perm[..4].copy_from_slice(&[0, 2, 1, 3]);
    b.op(OpKind::Transpose, &[ids[1]], &[ids[2]], &TransposeParams { perm }).expect("transpose");
    let mut offset = 0;
    for id in ids {
        b.place(id, offset);
        offset += b.byte_len(id).next_multiple_of(16);
    }
    b.arena_bytes(offset);
    let io = |tensor: u16, name: &str, shape: [usize; 4]| IoDesc {
        tensor,
        name: name.into(),
        onnx_shape: shape.to_vec(),
        perm: vec![0, 1, 2, 3],
    };
    b.input(io(ids[0], "x", shapes[0]));
    b.output(io(ids[2], "y", shapes[2]));
    b.finish().expect("a valid model")
}

/// An int8 3×3 depthwise convolution of 4 channels over an 8 × 6 image (padding 1) whose
/// weights the DSP layouts store in `dsp-depthwise-columns` (the output has more rows than
/// columns), laid out for the DSP kernels.
fn depthwise_columns() -> Vec<u8> {
    let shape = [1, 8, 6, 4];
    let quant = Quant::PerTensor { scale: 0.05, zero_point: -3 };
    let mut b = ModelBuilder::new();
    let [x, y] = [0, 1].map(|_| b.activation(DType::I8, &shape, Some(&quant)).expect("activation"));
    let w_quant = Quant::PerChannel { axis: 3, scales: vec![0.01; 4] };
    let weights: Vec<i8> = (0..36).map(|i| (i * 29 % 255 - 127) as i8).collect();
    let w = b.constant_of(DType::I8, &[1, 3, 3, 4], &weights, Some(&w_quant)).expect("weights");
    let bias = b.constant_of(DType::I32, &[4], &[100i32, -50, 0, 7], None).expect("bias");
    let requant = b.constant_of(DType::I32, &[4, 2], &[1i32 << 30, -3].repeat(4), None).expect("requant");
    let p = ConvParams { stride: [1, 1], dilation: [1, 1], pad: [1, 1, 1, 1], act: FusedAct::NONE };
    b.op(OpKind::DepthwiseConv2d, &[x, w, bias, requant], &[y], &p).expect("depthwise_conv2d");
    assert_eq!(b.lay_out_weights(WeightLayout::DspPairs), 1, "the weights laid out");
    b.place(x, 0);
    b.place(y, 192);
    b.arena_bytes(384);
    let io = |tensor: u16, name: &str| IoDesc {
        tensor,
        name: name.into(),
        onnx_shape: shape.to_vec(),
        perm: vec![0, 1, 2, 3],
    };
    b.input(io(x, "x"));
    b.output(io(y, "y"));
    b.finish().expect("a valid model")
}

/// Checks the corpus is what the mutations assume: valid files whose CRC this test's CRC32
/// reproduces, using every op kind, in int8 and f32, and every weight layout.
fn check_corpus(seeds: &[Seed]) {
    let (mut kinds, mut layouts) = (Vec::new(), Vec::new());
    for seed in seeds {
        assert_eq!(crc32(&seed.bytes[16..]), read_le(&seed.bytes, 12, 4), "{}: CRC32", seed.name);
        let bytes = AlignedBytes::new(&seed.bytes);
        let model = Model::from_bytes(&bytes).unwrap_or_else(|e| panic!("{}: {e}", seed.name));
        let dtype = model.input(0).expect("an input").tensor.dtype;
        for index in 0..model.op_count() {
            kinds.push((model.op(index as u16).expect("op").kind, dtype));
        }
        layouts.extend((0..model.tensor_count()).map(|id| model.tensor(id as u16).expect("tensor").layout));
    }
    let unused: Vec<_> =
        WeightLayout::ALL.iter().filter(|l| !layouts.contains(l)).map(|l| l.name()).collect();
    assert!(unused.is_empty(), "the corpus has no weights in {unused:?}");
    let missing: Vec<String> = OpKind::ALL
        .iter()
        .flat_map(|&kind| [DType::I8, DType::F32].map(|dtype| (kind, dtype)))
        .filter(|pair| !kinds.contains(pair))
        .map(|(kind, dtype)| format!("{} on {}", kind.name(), dtype.name()))
        .collect();
    assert!(missing.is_empty(), "the corpus lacks {missing:?}");
}

/// Outcome counts of one test.
#[derive(Default)]
struct Stats {
    files: AtomicUsize,
    invoked: AtomicUsize,
    /// `Ok`, or the error variant, with the error's reason when it has one.
    outcomes: Mutex<BTreeMap<(String, String), usize>>,
}

impl Stats {
    fn record(&self, outcome: &Result<Model, Error>) {
        self.files.fetch_add(1, Ordering::Relaxed);
        let key = match outcome {
            Ok(_) => ("Ok".to_string(), String::new()),
            Err(e) => {
                let debug = format!("{e:?}");
                let variant = debug.split([' ', '{', '(']).next().unwrap_or_default().to_string();
                let reason = match e {
                    Error::BadTensor { reason, .. }
                    | Error::BadOp { reason, .. }
                    | Error::BadIo { reason, .. } => reason.to_string(),
                    Error::ShapeMismatch { kind, expected, .. } => {
                        format!("{}: {expected}", kind.name())
                    }
                    _ => String::new(),
                };
                (variant, reason)
            }
        };
        *self.outcomes.lock().unwrap().entry(key).or_default() += 1;
    }

    /// Files per variant (`Ok` or an error variant).
    fn by_variant(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for ((variant, _), n) in self.outcomes.lock().unwrap().iter() {
            *out.entry(variant.clone()).or_default() += n;
        }
        out
    }

    /// Prints the histogram and checks the test really fed `FILES_PER_TEST` files.
    fn report(&self, test: &str) -> BTreeMap<String, usize> {
        let files = self.files.load(Ordering::Relaxed);
        let variants = self.by_variant();
        println!(
            "{test}: {files} mutated files, {} accepted models invoked",
            self.invoked.load(Ordering::Relaxed)
        );
        for (variant, n) in &variants {
            println!("  {variant:<16} {n:>6}");
            for ((v, reason), m) in self.outcomes.lock().unwrap().iter() {
                if v == variant && !reason.is_empty() {
                    println!("      {m:>6}  {reason}");
                }
            }
        }
        assert!(files >= FILES_PER_TEST as usize, "{test}: only {files} files ran");
        variants
    }
}

/// Loads `bytes` as a model and, if it is accepted, runs it; panics only on a runtime bug.
fn exercise(bytes: &[u8], input_seed: u64, stats: &Stats) {
    let aligned = AlignedBytes::new(bytes);
    let loaded = Model::from_bytes(&aligned).and_then(|m| m.validate_ops::<AllKernels>().map(|()| m));
    stats.record(&loaded);
    if let Ok(model) = loaded {
        if run(&model, input_seed) {
            stats.invoked.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Uses every entry point on an accepted model; returns whether it was invoked.
fn run(model: &Model, input_seed: u64) -> bool {
    for id in 0..model.tensor_count() {
        model.tensor(id as u16).expect("validated tensor");
    }
    for index in 0..model.op_count() {
        model.op(index as u16).expect("validated op");
    }
    for i in 0..model.input_count() {
        model.input(i).expect("validated input");
    }
    for i in 0..model.output_count() {
        model.output(i).expect("validated output");
    }
    let needed = model.arena_bytes();
    if needed > MAX_RUN_ARENA {
        return false;
    }
    let mut buf = vec![0u8; needed + 32];
    let aligned = buf.as_ptr().align_offset(16);
    if needed > 0 {
        let small = Interpreter::new(model, &mut buf[aligned..aligned + needed - 1]);
        assert!(matches!(small, Err(Error::ArenaTooSmall { .. })), "arena one byte short accepted");
    }
    let mut rng = input_seed;
    for (start, end) in [(aligned, aligned + needed), (aligned + 1, buf.len())] {
        let mut interp =
            Interpreter::new(model, &mut buf[start..end]).expect("arena of arena_bytes() after alignment");
        for i in 0..model.input_count() {
            match model.input(i).expect("validated input").tensor.dtype {
                DType::I8 => {
                    interp.input_i8(i).expect("int8 input").iter_mut().for_each(|v| *v = next(&mut rng) as i8)
                }
                _ => interp
                    .input_f32(i)
                    .expect("f32 input")
                    .iter_mut()
                    .for_each(|v| *v = f32::from_bits(next(&mut rng) as u32)),
            }
        }
        interp.invoke().expect("a validated model runs");
        for i in 0..model.output_count() {
            let mut values = vec![0f32; model.output(i).expect("validated output").tensor.len()];
            interp.get_output(i, &mut values).expect("output of the right length");
        }
    }
    true
}

/// splitmix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC32 (IEEE), as the model header stores it.
fn crc32(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| CRC_TABLE[((c ^ b as u32) & 0xff) as usize] ^ (c >> 8))
}

/// Recomputes the header's CRC over bytes `16..file_len` (or to the end if `file_len` is off).
fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() < 16 {
        return;
    }
    let declared = read_le(bytes, 8, 4) as usize;
    let end = if (16..=bytes.len()).contains(&declared) { declared } else { bytes.len() };
    let crc = crc32(&bytes[16..end]);
    write_le(bytes, 12, 4, crc);
}

fn read_le(bytes: &[u8], at: usize, width: usize) -> u32 {
    bytes[at..at + width].iter().rev().fold(0, |v, &b| (v << 8) | b as u32)
}

fn write_le(bytes: &mut [u8], at: usize, width: usize, value: u32) {
    bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
}

/// Raw corruption, positions taken modulo the file length.
#[derive(Clone, Debug)]
enum Raw {
    /// Keep the first `at` bytes.
    Truncate { at: usize },
    /// Flip bit `bit` of byte `at`, for each pair.
    BitFlips(Vec<(usize, u8)>),
    /// Overwrite bytes from `at` on.
    Overwrite { at: usize, bytes: Vec<u8> },
    /// A file of random bytes.
    Random(Vec<u8>),
    /// The seed's first 16 bytes (magic, version, length) followed by random bytes.
    RandomBody(Vec<u8>),
}

fn raw_strategy() -> impl Strategy<Value = Raw> {
    prop_oneof![
        any::<usize>().prop_map(|at| Raw::Truncate { at }),
        vec((any::<usize>(), 0u8..8), 1..=8).prop_map(Raw::BitFlips),
        (any::<usize>(), vec(any::<u8>(), 1..=16)).prop_map(|(at, bytes)| Raw::Overwrite { at, bytes }),
        vec(any::<u8>(), 0..=2048).prop_map(Raw::Random),
        vec(any::<u8>(), 0..=2048).prop_map(Raw::RandomBody),
    ]
}

/// Applies `raw` to a copy of `seed`; with `fix`, also makes the header's length and CRC match.
fn apply_raw(seed: &[u8], raw: &Raw, fix: bool) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match raw {
        Raw::Truncate { at } => bytes.truncate(at % bytes.len()),
        Raw::BitFlips(flips) => {
            let len = bytes.len();
            for &(at, bit) in flips {
                bytes[at % len] ^= 1 << bit;
            }
        }
        Raw::Overwrite { at, bytes: new } => {
            let start = at % bytes.len();
            let end = (start + new.len()).min(bytes.len());
            bytes[start..end].copy_from_slice(&new[..end - start]);
        }
        Raw::Random(random) => return random.clone(),
        Raw::RandomBody(random) => {
            bytes.truncate(16);
            bytes.extend_from_slice(random);
        }
    }
    if fix && bytes.len() >= 16 {
        if matches!(raw, Raw::Truncate { .. } | Raw::RandomBody(_)) {
            let len = bytes.len() as u32;
            write_le(&mut bytes, 8, 4, len);
        }
        fix_crc(&mut bytes);
    }
    bytes
}

/// A group of records in the file.
#[derive(Clone, Copy, Debug)]
enum Records {
    Header,
    Tensors,
    Ops,
    OpIo,
    Params,
    Quant,
    Inputs,
    Outputs,
    Blob,
}

const RECORDS: [Records; 9] = [
    Records::Header,
    Records::Tensors,
    Records::Ops,
    Records::OpIo,
    Records::Params,
    Records::Quant,
    Records::Inputs,
    Records::Outputs,
    Records::Blob,
];

/// An integer field: byte offset in its record and width in bytes.
type Field = (usize, usize);

impl Records {
    /// Section holding the records (the header is record 0 at offset 0).
    fn section(self) -> Option<usize> {
        Some(match self {
            Records::Header => return None,
            Records::Tensors => section::TENSORS,
            Records::Ops => section::OPS,
            Records::OpIo => section::OP_IO,
            Records::Params => section::PARAMS,
            Records::Quant => section::QUANT,
            Records::Inputs => section::INPUTS,
            Records::Outputs => section::OUTPUTS,
            Records::Blob => section::BLOB,
        })
    }

    fn record_len(self) -> usize {
        match self {
            Records::Header => size_of::<Header>(),
            Records::Tensors => size_of::<TensorRecord>(),
            Records::Ops => size_of::<OpRecord>(),
            Records::OpIo => 2,
            Records::Params => 4,
            Records::Quant => size_of::<QuantRecord>(),
            Records::Inputs | Records::Outputs => size_of::<IoRecord>(),
            Records::Blob => 1,
        }
    }

    /// The fields mutations target.
    fn fields(self) -> Vec<Field> {
        match self {
            Records::Header => {
                let mut f = vec![(4, 2), (6, 2), (8, 4), (offset_of!(Header, arena_bytes), 4)];
                let dir = offset_of!(Header, sections);
                f.extend((0..2 * section::COUNT).map(|i| (dir + 4 * i, 4)));
                f
            }
            Records::Tensors => {
                let mut f = vec![
                    (offset_of!(TensorRecord, dtype), 1),
                    (offset_of!(TensorRecord, rank), 1),
                    (offset_of!(TensorRecord, storage), 1),
                    (offset_of!(TensorRecord, quant_axis), 1),
                    (offset_of!(TensorRecord, offset), 4),
                    (offset_of!(TensorRecord, byte_len), 4),
                    (offset_of!(TensorRecord, quant_start), 4),
                    (offset_of!(TensorRecord, quant_count), 4),
                    (offset_of!(TensorRecord, alias_of), 2),
                    (offset_of!(TensorRecord, live_first), 2),
                    (offset_of!(TensorRecord, live_last), 2),
                    (offset_of!(TensorRecord, layout), 1),
                ];
                f.extend((0..MAX_RANK).map(|i| (offset_of!(TensorRecord, dims) + 4 * i, 4)));
                f
            }
            Records::Ops => vec![
                (offset_of!(OpRecord, kind), 1),
                (offset_of!(OpRecord, n_inputs), 1),
                (offset_of!(OpRecord, n_outputs), 1),
                (offset_of!(OpRecord, io_start), 4),
                (offset_of!(OpRecord, params_offset), 4),
                (offset_of!(OpRecord, params_len), 4),
                (offset_of!(OpRecord, scratch_offset), 4),
                (offset_of!(OpRecord, scratch_len), 4),
            ],
            Records::OpIo => vec![(0, 2)],
            Records::Params | Records::Blob => vec![(0, self.record_len())],
            Records::Quant => {
                vec![(offset_of!(QuantRecord, scale), 4), (offset_of!(QuantRecord, zero_point), 4)]
            }
            Records::Inputs | Records::Outputs => {
                let mut f = vec![
                    (offset_of!(IoRecord, tensor), 2),
                    (offset_of!(IoRecord, name_len), 1),
                    (offset_of!(IoRecord, onnx_rank), 1),
                ];
                f.extend((0..MAX_RANK).map(|i| (offset_of!(IoRecord, perm) + i, 1)));
                f.extend((0..MAX_RANK).map(|i| (offset_of!(IoRecord, onnx_dims) + 4 * i, 4)));
                f
            }
        }
    }

    /// File offset of record `index` (modulo the record count), if there are records.
    fn locate(self, file: &[u8], index: usize) -> Option<usize> {
        let Some(s) = self.section() else {
            return Some(0);
        };
        let dir = offset_of!(Header, sections) + 8 * s;
        let (offset, len) = (read_le(file, dir, 4) as usize, read_le(file, dir + 4, 4) as usize);
        let count = len / self.record_len();
        (count > 0).then(|| offset + index % count * self.record_len())
    }
}

/// Values written into fields: around boundaries, float specials, nearby and random.
const INTERESTING: [u32; 31] = [
    0,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    15,
    16,
    17,
    31,
    32,
    127,
    128,
    255,
    256,
    0x7fff,
    0x8000,
    0xfffe,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x3f80_0000, // 1.0
    0x7f80_0000, // inf
    0xff80_0000, // -inf
    0x7fc0_0000, // NaN
];

#[derive(Clone, Debug)]
enum Value {
    Interesting(usize),
    Delta(i8),
    Random(u32),
}

impl Value {
    fn new_value(&self, old: u32) -> u32 {
        match *self {
            Value::Interesting(i) => INTERESTING[i % INTERESTING.len()],
            Value::Delta(d) => old.wrapping_add(d as i32 as u32),
            Value::Random(v) => v,
        }
    }
}

fn value_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<usize>().prop_map(Value::Interesting),
        (-16i8..=16).prop_map(Value::Delta),
        any::<u32>().prop_map(Value::Random),
    ]
}

/// A CRC-preserving structural mutation.
#[derive(Clone, Debug)]
enum Patch {
    /// Rewrites field `field` of record `record` of a record group.
    Field { records: usize, record: usize, field: usize, value: Value },
    /// Sets dim `dim` of tensor `tensor` to `size` and keeps the tensor consistent: its byte
    /// length follows, and the arena grows to hold it.
    Resize { tensor: usize, dim: usize, size: u32 },
}

fn patch_strategy() -> impl Strategy<Value = Patch> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>(), any::<usize>(), value_strategy())
            .prop_map(|(records, record, field, value)| Patch::Field { records, record, field, value }),
        1 => (any::<usize>(), any::<usize>(), prop_oneof![1u32..=64, any::<u32>()])
            .prop_map(|(tensor, dim, size)| Patch::Resize { tensor, dim, size }),
    ]
}

fn apply_patch(bytes: &mut [u8], patch: &Patch) {
    match *patch {
        Patch::Field { records, record, field, ref value } => {
            let records = RECORDS[records % RECORDS.len()];
            let fields = records.fields();
            let (offset, width) = fields[field % fields.len()];
            let Some(at) = records.locate(bytes, record).map(|r| r + offset) else {
                return;
            };
            if at + width <= bytes.len() {
                let old = read_le(bytes, at, width);
                write_le(bytes, at, width, value.new_value(old));
            }
        }
        Patch::Resize { tensor, dim, size } => {
            let Some(at) = Records::Tensors.locate(bytes, tensor) else {
                return;
            };
            if at + size_of::<TensorRecord>() > bytes.len() {
                return;
            }
            let field = |name: usize, width| read_le(bytes, at + name, width);
            let rank = (field(offset_of!(TensorRecord, rank), 1) as usize).min(MAX_RANK);
            let Some(elem) = DType::from_u8(field(offset_of!(TensorRecord, dtype), 1) as u8) else {
                return;
            };
            if rank == 0 {
                return;
            }
            let dims_at = at + offset_of!(TensorRecord, dims);
            let mut dims = [0u32; MAX_RANK];
            for (i, d) in dims[..rank].iter_mut().enumerate() {
                *d = read_le(bytes, dims_at + 4 * i, 4);
            }
            dims[dim % rank] = size;
            let len = dims[..rank].iter().try_fold(elem.size() as u64, |n, &d| n.checked_mul(u64::from(d)));
            let Some(len) = len.and_then(|n| u32::try_from(n).ok()) else {
                return;
            };
            let end = u64::from(field(offset_of!(TensorRecord, offset), 4)) + u64::from(len);
            let in_arena = field(offset_of!(TensorRecord, storage), 1) == 1;
            write_le(bytes, dims_at + 4 * (dim % rank), 4, size);
            write_le(bytes, at + offset_of!(TensorRecord, byte_len), 4, len);
            let arena = offset_of!(Header, arena_bytes);
            if in_arena && end > u64::from(read_le(bytes, arena, 4)) {
                write_le(bytes, arena, 4, u32::try_from(end).unwrap_or(u32::MAX));
            }
        }
    }
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: FILES_PER_TEST, failure_persistence: None, ..Config::default() })
}

#[test]
fn raw_corruption_never_panics() {
    let seeds = corpus();
    let stats = Stats::default();
    let strategy = (any::<usize>(), raw_strategy(), any::<bool>(), any::<u64>());
    runner()
        .run(&strategy, |(seed, raw, fix, input_seed)| {
            let bytes = apply_raw(&seeds[seed % seeds.len()].bytes, &raw, fix);
            exercise(&bytes, input_seed, &stats);
            Ok(())
        })
        .unwrap();
    let variants = stats.report("raw corruption");
    for variant in ["Ok", "Truncated", "BadMagic", "CrcMismatch", "BadSection"] {
        assert!(variants.get(variant).copied().unwrap_or(0) > 0, "no file gave {variant}");
    }
    assert!(stats.invoked.load(Ordering::Relaxed) > 0, "no corrupted model ran");
}

#[test]
fn structural_mutations_reach_deep_validation() {
    let seeds = corpus();
    let stats = Stats::default();
    let strategy = (any::<usize>(), vec(patch_strategy(), 1..=3), any::<u64>());
    runner()
        .run(&strategy, |(seed, patches, input_seed)| {
            let mut bytes = seeds[seed % seeds.len()].bytes.clone();
            for patch in &patches {
                apply_patch(&mut bytes, patch);
            }
            fix_crc(&mut bytes);
            exercise(&bytes, input_seed, &stats);
            Ok(())
        })
        .unwrap();
    let variants = stats.report("structural mutations");
    for variant in ["Ok", "BadSection", "BadTensor", "BadOp", "ShapeMismatch", "BadIo"] {
        assert!(variants.get(variant).copied().unwrap_or(0) > 0, "no file gave {variant}");
    }
    let invoked = stats.invoked.load(Ordering::Relaxed);
    assert!(invoked >= FILES_PER_TEST as usize / 20, "only {invoked} mutated models ran");
}
