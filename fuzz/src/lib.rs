//! What the fuzz targets share: running a candidate model file the way firmware would, and
//! rewriting one field of a valid model file.

use core::mem::size_of;

use ember::format::{
    section, DType, Header, IoRecord, OpRecord, QuantRecord, Section, TensorRecord, HEADER_LEN,
};
use ember::{AlignedBytes, Error, Interpreter, Model, CRC32};

/// Accepted models that need a larger arena are not run (a mutant can claim gigabytes).
const MAX_ARENA: usize = 1 << 20;

/// Loads `bytes` as a model; if the runtime accepts it, reads every record through the public
/// accessors, checks that an arena one byte short is refused, fills the inputs from `bytes`
/// and runs it in an aligned and a misaligned arena. Panics only on a runtime bug: an accepted
/// model whose accessors fail, a short arena accepted, or a validated model that does not run.
pub fn exercise(bytes: &[u8]) {
    let aligned = AlignedBytes::new(bytes);
    let Ok(model) = Model::from_bytes(&aligned) else { return };
    for id in 0..model.tensor_count() {
        model.tensor(id as u16).expect("tensor of a loaded model");
    }
    for index in 0..model.op_count() {
        model.op(index as u16).expect("op of a loaded model");
    }
    for i in 0..model.input_count() {
        model.input(i).expect("input of a loaded model");
    }
    for i in 0..model.output_count() {
        model.output(i).expect("output of a loaded model");
    }
    let needed = model.arena_bytes();
    if needed > MAX_ARENA {
        return;
    }
    let mut buf = vec![0u8; needed + 32];
    let start = buf.as_ptr().align_offset(16);
    if needed > 0 {
        let short = Interpreter::new(&model, &mut buf[start..start + needed - 1]);
        match short {
            Err(Error::ArenaTooSmall { .. }) => {}
            Err(_) => return,
            Ok(_) => panic!("an arena one byte short was accepted"),
        }
    }
    for (from, to) in [(start, start + needed), (start + 1, buf.len())] {
        let mut interp = match Interpreter::new(&model, &mut buf[from..to]) {
            Ok(interp) => interp,
            Err(Error::ArenaTooSmall { .. }) => panic!("an arena of arena_bytes() was refused"),
            Err(_) => return,
        };
        let mut fill = bytes.iter().copied().cycle();
        for i in 0..model.input_count() {
            match model.input(i).expect("input of a loaded model").tensor.dtype {
                DType::I8 => {
                    let input = interp.input_i8(i).expect("int8 input");
                    input.iter_mut().zip(&mut fill).for_each(|(v, b)| *v = b as i8);
                }
                _ => {
                    let input = interp.input_f32(i).expect("f32 input");
                    for v in input.iter_mut() {
                        let word = [0; 4].map(|_| fill.next().unwrap_or(0));
                        *v = f32::from_le_bytes(word);
                    }
                }
            }
        }
        interp.invoke().expect("a validated model runs");
        for i in 0..model.output_count() {
            let mut values = vec![0f32; model.output(i).expect("output").tensor.len()];
            interp.get_output(i, &mut values).expect("output of the right length");
        }
    }
}

/// Bytes per record of each directory section; 4 for parameter structs (their fields are
/// 4-byte words) and 1 for constant data.
fn record_len(index: usize) -> usize {
    match index {
        section::TENSORS => size_of::<TensorRecord>(),
        section::OPS => size_of::<OpRecord>(),
        section::OP_IO => 2,
        section::QUANT => size_of::<QuantRecord>(),
        section::INPUTS | section::OUTPUTS => size_of::<IoRecord>(),
        section::PARAMS => 4,
        _ => 1,
    }
}

/// Rewrites one field of a model file: a header word, or a field of a record in one of the
/// sections the header locates, with a boundary value, a nearby value or random bits. Files
/// too short for a header get random bytes.
pub fn mutate_field(bytes: &mut [u8], rng: &mut fastrand::Rng) {
    if bytes.len() < HEADER_LEN {
        if let Some(b) = bytes.get_mut(rng.usize(..bytes.len().max(1))) {
            *b = rng.u8(..);
        }
        return;
    }
    let header: Header = bytemuck::pod_read_unaligned(&bytes[..HEADER_LEN]);
    let mut regions: Vec<(Section, usize)> =
        header.sections.iter().enumerate().map(|(i, s)| (*s, record_len(i))).collect();
    regions.push((header.meta, 4));
    let (offset, width) = match rng.usize(..regions.len() + 1) {
        0 => (4 * rng.usize(..HEADER_LEN / 4), 4),
        i => {
            let (s, record) = regions[i - 1];
            let (start, len) = (s.offset as usize, s.len as usize);
            if len == 0 || start.saturating_add(len) > bytes.len() {
                return;
            }
            // A whole field: a record, then a word (or byte) inside it.
            let records = len.div_ceil(record);
            let field = if record >= 4 { 4 * rng.usize(..record / 4) } else { 0 };
            let width = [1, 2, 4][rng.usize(..3)].min(record.max(1));
            (start + rng.usize(..records) * record + field, width)
        }
    };
    let Some(field) = bytes.get_mut(offset..offset + width) else { return };
    let mut old = [0u8; 4];
    old[..width].copy_from_slice(field);
    let old = u32::from_le_bytes(old);
    let file_len = header.file_len;
    let value = match rng.usize(..8) {
        0 => 0,
        1 => 1,
        2 => u32::MAX,
        3 => [0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, i32::MAX as u32, i32::MIN as u32][rng.usize(..8)],
        4 => old.wrapping_add(rng.u32(1..=16)),
        5 => old.wrapping_sub(rng.u32(1..=16)),
        6 => [file_len, file_len.wrapping_sub(1), file_len / 2, header.arena_bytes][rng.usize(..4)],
        _ => rng.u32(..),
    };
    field.copy_from_slice(&value.to_le_bytes()[..width]);
}

/// Recomputes the header's CRC over bytes `16..file_len` (or to the end when `file_len` is
/// out of range), so a mutant passes the integrity check.
pub fn fix_crc(bytes: &mut [u8]) {
    if bytes.len() < 16 {
        return;
    }
    let declared = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    let end = if (16..=bytes.len()).contains(&declared) { declared } else { bytes.len() };
    let crc = CRC32.checksum(&bytes[16..end]);
    bytes[12..16].copy_from_slice(&crc.to_le_bytes());
}
