//! Reading and writing sample arrays: `.npy` (first axis = samples) and `.npz` (one array per
//! model input).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, Context, Result};
use npyz::npz::NpzArchive;
use npyz::WriterBuilder;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

/// Reads an `.npy` array of any float or integer type as f32.
pub fn read_npy(path: &Path) -> Result<ArrayD<f32>> {
    let open = || File::open(path).with_context(|| format!("cannot open {}", path.display()));
    check_shape(BufReader::new(open()?)).with_context(|| format!("{} is corrupt", path.display()))?;
    let file = BufReader::new(open()?);
    let npy = npyz::NpyFile::new(file).with_context(|| {
        format!("{} is not a readable .npy file (bad or truncated header)", path.display())
    })?;
    to_array(npy).with_context(|| format!("reading {}", path.display()))
}

fn to_array<R: std::io::Read>(npy: npyz::NpyFile<R>) -> Result<ArrayD<f32>> {
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let npyz::DType::Plain(ty) = npy.dtype() else {
        bail!("structured (record) arrays are not supported: store a plain float32 array")
    };
    let values: Vec<f32> = match (ty.type_char(), ty.size_field()) {
        (npyz::TypeChar::Float, 4) => npy.into_vec::<f32>().map_err(truncated)?,
        (npyz::TypeChar::Float, 8) => {
            npy.into_vec::<f64>().map_err(truncated)?.into_iter().map(|v| v as f32).collect()
        }
        (npyz::TypeChar::Int, 1) => {
            npy.into_vec::<i8>().map_err(truncated)?.into_iter().map(f32::from).collect()
        }
        (npyz::TypeChar::Int, 4) => {
            npy.into_vec::<i32>().map_err(truncated)?.into_iter().map(|v| v as f32).collect()
        }
        (npyz::TypeChar::Int, 8) => {
            npy.into_vec::<i64>().map_err(truncated)?.into_iter().map(|v| v as f32).collect()
        }
        (npyz::TypeChar::Uint, 1) => {
            npy.into_vec::<u8>().map_err(truncated)?.into_iter().map(f32::from).collect()
        }
        _ => bail!(
            "element type '{ty}' is not supported (float32, float64, int8, uint8, int32 and int64 are): \
             convert the array, e.g. with numpy's x.astype(numpy.float32)"
        ),
    };
    Ok(ArrayD::from_shape_vec(IxDyn(&shape), values)?)
}

/// Explains an end of file inside the data.
pub fn truncated(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        anyhow::anyhow!(
            "the file ends before all the values its header declares: it is truncated; write it again"
        )
    } else {
        e.into()
    }
}

/// Fails if the `.npy` header read from `r` declares more elements than a 64-bit size can hold
/// (npyz overflows on such shapes). Anything else wrong is left for npyz to report.
pub fn check_shape(mut r: impl Read) -> Result<()> {
    let mut prefix = [0u8; 12];
    if r.read_exact(&mut prefix).is_err() || &prefix[..6] != b"\x93NUMPY" {
        return Ok(());
    }
    let (len, text_start) = match prefix[6] {
        1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as usize, 10),
        _ => (u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize, 12),
    };
    let mut header = prefix[text_start..].to_vec();
    r.take(len.saturating_sub(header.len()) as u64).read_to_end(&mut header)?;
    let header = String::from_utf8_lossy(&header);
    let Some(shape) = header.split_once("'shape'").and_then(|(_, rest)| {
        let (_, tuple) = rest.split_once('(')?;
        Some(tuple.split_once(')')?.0)
    }) else {
        return Ok(());
    };
    // 16 bytes: the widest element type (complex128), so byte counts cannot overflow either.
    let elements =
        shape.split(',').filter_map(|d| d.trim().parse::<u64>().ok()).try_fold(16u64, u64::checked_mul);
    if elements.is_none() {
        bail!("its header declares the shape ({shape}), more elements than any file holds; write the array again");
    }
    Ok(())
}

/// Reads every array of an `.npz` archive, in the archive's order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, ArrayD<f32>)>> {
    let open = || File::open(path).with_context(|| format!("cannot open {}", path.display()));
    if let Ok(mut zip) = npyz::zip::ZipArchive::new(BufReader::new(open()?)) {
        for i in 0..zip.len() {
            let member = zip.by_index(i)?;
            let name = member.name().to_string();
            check_shape(member).with_context(|| format!("{}: array {name} is corrupt", path.display()))?;
        }
    }
    let mut npz = NpzArchive::open(path).with_context(|| format!("opening {}", path.display()))?;
    let names: Vec<String> = npz.array_names().map(str::to_string).collect();
    names
        .into_iter()
        .map(|name| {
            let npy = npz.by_name(&name)?.with_context(|| format!("{name} missing"))?;
            Ok((name.clone(), to_array(npy).with_context(|| format!("array {name}"))?))
        })
        .collect()
}

/// Reads one array from an `.npz` archive.
pub fn read_npz_array(path: &Path, name: &str) -> Result<ArrayD<f32>> {
    let mut npz = NpzArchive::open(path).with_context(|| format!("opening {}", path.display()))?;
    let npy = npz.by_name(name)?.with_context(|| format!("{}: no array '{name}'", path.display()))?;
    to_array(npy)
}

/// Values of `shape` (row-major) as the bytes of an `.npy` file of their element type.
pub fn npy_bytes<T: npyz::AutoSerialize>(
    shape: &[usize],
    values: impl IntoIterator<Item = T>,
) -> Result<Vec<u8>> {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut bytes = Vec::new();
    let mut writer =
        npyz::WriteOptions::<T>::new().default_dtype().shape(&shape).writer(&mut bytes).begin_nd()?;
    writer.extend(values)?;
    writer.finish()?;
    Ok(bytes)
}

/// Whether the `.npy` file at `path` holds int8 values.
pub fn is_int8_npy(path: &Path) -> Result<bool> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let npy = npyz::NpyFile::new(BufReader::new(file)).with_context(|| {
        format!("{} is not a readable .npy file (bad or truncated header)", path.display())
    })?;
    Ok(
        matches!(npy.dtype(), npyz::DType::Plain(ty) if ty.type_char() == npyz::TypeChar::Int && ty.size_field() == 1),
    )
}

/// Writes an f32 array as an `.npy` file.
pub fn write_npy(path: &Path, array: &ArrayD<f32>) -> Result<()> {
    std::fs::write(path, npy_bytes(array.shape(), array.iter().copied())?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Splits sample data into per-sample input lists for a model whose inputs are `(name,
/// shape)`: an `.npy` file feeds a single-input model (first axis = samples), an `.npz` file
/// holds one array per input, matched by name or else by order.
pub fn load_samples(path: &Path, inputs: &[(String, Vec<usize>)]) -> Result<Vec<Vec<ArrayD<f32>>>> {
    let arrays: Vec<ArrayD<f32>> = if path.extension().is_some_and(|e| e == "npz") {
        let all = read_npz(path)?;
        if all.len() < inputs.len() {
            bail!("{} holds {} arrays, the model has {} inputs", path.display(), all.len(), inputs.len());
        }
        inputs
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                let by_name = all.iter().find(|(n, _)| n == name || n.trim_end_matches(".npy") == name);
                by_name.unwrap_or(&all[i]).1.clone()
            })
            .collect()
    } else {
        if inputs.len() != 1 {
            bail!("the model has {} inputs: give an .npz with one array per input", inputs.len());
        }
        vec![read_npy(path)?]
    };
    let per_input: Vec<Vec<ArrayD<f32>>> = arrays
        .iter()
        .zip(inputs)
        .map(|(a, (name, shape))| {
            crate::host::samples(a, shape).with_context(|| format!("{}: input '{name}'", path.display()))
        })
        .collect::<Result<_>>()?;
    let count = per_input.iter().map(Vec::len).min().unwrap_or(0);
    Ok((0..count).map(|s| per_input.iter().map(|v| v[s].clone()).collect()).collect())
}
