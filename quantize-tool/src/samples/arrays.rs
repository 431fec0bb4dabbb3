//! Samples streamed from `.npy` files (first axis = samples) and `.npz` archives (one array per
//! model input, by name, else in order): only the header is read up front, then one sample at a
//! time.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use npyz::npz::NpzArchive;
use npyz::{NpyFile, Order, TypeChar};
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

use super::{check_finite, DataError, Input, SampleSource};
use crate::npy::{check_shape, truncated};

/// The element types a sample array may hold, read as f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Element {
    F32,
    F64,
    I8,
    I32,
    I64,
    U8,
}

impl Element {
    fn of(dtype: &npyz::DType) -> Result<Self> {
        let npyz::DType::Plain(ty) = dtype else {
            bail!("structured (record) arrays are not supported: store a plain float32 array")
        };
        Ok(match (ty.type_char(), ty.size_field()) {
            (TypeChar::Float, 4) => Self::F32,
            (TypeChar::Float, 8) => Self::F64,
            (TypeChar::Int, 1) => Self::I8,
            (TypeChar::Int, 4) => Self::I32,
            (TypeChar::Int, 8) => Self::I64,
            (TypeChar::Uint, 1) => Self::U8,
            _ => bail!(
                "element type '{ty}' is not supported (float32, float64, int8, uint8, int32 and int64 \
                 are): convert the array, e.g. with numpy's x.astype(numpy.float32)"
            ),
        })
    }

    /// The values of `npy`, one by one, as f32.
    fn values<'r>(
        self,
        npy: NpyFile<impl Read + 'r>,
    ) -> Result<Box<dyn Iterator<Item = io::Result<f32>> + 'r>> {
        Ok(match self {
            Self::F32 => Box::new(npy.data::<f32>()?),
            Self::F64 => Box::new(npy.data::<f64>()?.map(|v| v.map(|v| v as f32))),
            Self::I8 => Box::new(npy.data::<i8>()?.map(|v| v.map(f32::from))),
            Self::I32 => Box::new(npy.data::<i32>()?.map(|v| v.map(|v| v as f32))),
            Self::I64 => Box::new(npy.data::<i64>()?.map(|v| v.map(|v| v as f32))),
            Self::U8 => Box::new(npy.data::<u8>()?.map(|v| v.map(f32::from))),
        })
    }
}

/// How many samples of `shape` an array of shape `data` holds: 1 if it is one sample, else
/// its first axis, whose entries must have `shape` (or, for a batch-1 input, `shape` without
/// its batch axis). Data with the right number of elements in other dims (flattened, or NHWC
/// for an NCHW input) is refused rather than silently reshaped.
pub fn sample_count(data: &[usize], shape: &[usize]) -> Result<usize> {
    if data == shape {
        return Ok(1);
    }
    let per_sample = data.get(1..).unwrap_or_default();
    let unbatched = shape.split_first().filter(|(&n, _)| n == 1).map(|(_, rest)| rest);
    if per_sample == shape || Some(per_sample) == unbatched {
        return Ok(data[0]);
    }
    let dims = |d: &[usize]| d.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
    let (mut have, mut want) = (per_sample.to_vec(), unbatched.unwrap_or(shape).to_vec());
    have.sort_unstable();
    want.sort_unstable();
    let hint = if have == want && !have.is_empty() {
        " The same dims in another order: is the data in another layout (e.g. NHWC for an NCHW \
         input)? Transpose it to the model's layout."
    } else if per_sample.iter().product::<usize>() == shape.iter().product::<usize>() {
        " It has the right number of elements per sample but not the model's dims: reshape it if \
         that is really its layout."
    } else {
        ""
    };
    bail!(
        "data of shape {data:?} does not hold samples of shape {shape:?}: give an array of shape [N, {}] \
         (first axis = samples) or one sample of shape {shape:?}.{hint}",
        dims(shape)
    )
}

/// One model input's array: where it is and how it is stored.
struct Member {
    /// The array's name inside an `.npz` archive; `None` for an `.npy` file.
    name: Option<String>,
    element: Element,
    shape: Vec<usize>,
}

/// Samples streamed from an `.npy` or `.npz` file.
pub struct Arrays {
    path: PathBuf,
    inputs: Vec<Input>,
    members: Vec<Member>,
    count: usize,
}

impl Arrays {
    /// Reads the headers of `path` (`.npz` by its extension, else `.npy`) and checks that they
    /// hold samples for a model with `inputs`, of which at most `limit` are used.
    pub fn open(path: &Path, inputs: &[Input], limit: usize) -> Result<Self> {
        let npz = path.extension().is_some_and(|e| e == "npz");
        let mut members = Vec::with_capacity(inputs.len());
        if npz {
            let mut zip = npyz::zip::ZipArchive::new(BufReader::new(open(path)?))
                .with_context(|| format!("{} is not a readable .npz (zip) archive", path.display()))?;
            let names: Vec<String> = NpzArchive::open(path)?.array_names().map(str::to_string).collect();
            ensure!(
                names.len() >= inputs.len(),
                "{} holds {} arrays, the model has {} inputs ({}): give one array per input, named after it",
                path.display(),
                names.len(),
                inputs.len(),
                inputs.iter().map(|(n, _)| format!("'{n}'")).collect::<Vec<_>>().join(", ")
            );
            for (i, (input, _)) in inputs.iter().enumerate() {
                let name = names.iter().find(|n| *n == input).unwrap_or(&names[i]).clone();
                let file_name = npyz::npz::file_name_from_array_name(&name);
                check_shape(zip.by_name(&file_name)?)
                    .with_context(|| format!("{}: array {name} is corrupt", path.display()))?;
                let npy = NpyFile::new(zip.by_name(&file_name)?).with_context(|| {
                    format!("{}: array {name} has a bad or truncated header", path.display())
                })?;
                members.push(member(Some(name), &npy)?);
            }
        } else {
            ensure!(
                inputs.len() == 1,
                "the model has {} inputs: give an .npz with one array per input",
                inputs.len()
            );
            check_shape(BufReader::new(open(path)?))
                .with_context(|| format!("{} is corrupt", path.display()))?;
            let npy = NpyFile::new(BufReader::new(open(path)?)).with_context(|| {
                format!("{} is not a readable .npy file (bad or truncated header)", path.display())
            })?;
            members.push(member(None, &npy).with_context(|| format!("reading {}", path.display()))?);
        }
        let mut count = usize::MAX;
        for (m, (name, shape)) in members.iter().zip(inputs) {
            let n = sample_count(&m.shape, shape).with_context(|| match &m.name {
                Some(array) => format!("{}: array '{array}' for input '{name}'", path.display()),
                None => format!("{}: input '{name}'", path.display()),
            })?;
            count = count.min(n);
        }
        Ok(Self { path: path.to_path_buf(), inputs: inputs.to_vec(), members, count: count.min(limit) })
    }

    fn stream(&self, visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>) -> Result<()> {
        let (path, shown) = (&self.path, self.path.display());
        if self.members[0].name.is_none() {
            let npy = NpyFile::new(BufReader::new(open(path)?))?;
            let streams = vec![self.members[0].element.values(npy)?];
            return self.visit_all(streams, visit);
        }
        // One archive per input, so each array streams on its own.
        let mut archives: Vec<NpzArchive<BufReader<File>>> =
            self.members.iter().map(|_| NpzArchive::open(path)).collect::<io::Result<_>>()?;
        let streams = archives
            .iter_mut()
            .zip(&self.members)
            .map(|(archive, m)| {
                let name = m.name.as_deref().unwrap_or_default();
                let npy = archive.by_name(name)?.with_context(|| format!("{shown}: no array '{name}'"))?;
                m.element.values(npy)
            })
            .collect::<Result<_>>()?;
        self.visit_all(streams, visit)
    }

    fn visit_all<'r>(
        &self,
        mut streams: Vec<Box<dyn Iterator<Item = io::Result<f32>> + 'r>>,
        visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>,
    ) -> Result<()> {
        let origin = self.path.display().to_string();
        for index in 0..self.count {
            let sample = streams
                .iter_mut()
                .zip(&self.inputs)
                .map(|(stream, (name, shape))| {
                    let len = shape.iter().product();
                    let values = stream
                        .take(len)
                        .collect::<io::Result<Vec<f32>>>()
                        .map_err(truncated)
                        .with_context(|| format!("{origin}: sample {index} of input '{name}'"))?;
                    ensure!(
                        values.len() == len,
                        "{origin}: sample {index} of input '{name}': the file ends before all the values \
                         its header declares: it is truncated; write it again"
                    );
                    Ok(ArrayD::from_shape_vec(IxDyn(shape), values)?)
                })
                .collect::<Result<Vec<_>>>()
                .map_err(DataError::wrap)?;
            check_finite(&origin, index, &self.inputs, &sample).map_err(DataError::wrap)?;
            visit(&sample)?;
        }
        Ok(())
    }
}

fn open(path: &Path) -> Result<File> {
    File::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn member<R: Read>(name: Option<String>, npy: &NpyFile<R>) -> Result<Member> {
    ensure!(
        npy.order() == Order::C,
        "the array is stored in Fortran order: save it in C order (numpy.ascontiguousarray)"
    );
    let element = Element::of(&npy.dtype())?;
    Ok(Member { name, element, shape: npy.shape().iter().map(|&d| d as usize).collect() })
}

impl SampleSource for Arrays {
    fn len(&self) -> usize {
        self.count
    }

    fn for_each(&self, visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>) -> Result<()> {
        self.stream(visit)
    }
}

#[cfg(test)]
mod tests {
    use npyz::WriterBuilder;

    use super::*;
    use crate::npy::npy_bytes;
    use crate::samples::collect;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ember-arrays-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn sample_counts_follow_the_first_axis_or_one_sample() {
        assert_eq!(sample_count(&[1, 3, 4], &[1, 3, 4]).unwrap(), 1);
        assert_eq!(sample_count(&[7, 1, 3, 4], &[1, 3, 4]).unwrap(), 7);
        assert_eq!(sample_count(&[7, 3, 4], &[1, 3, 4]).unwrap(), 7);
        let e = sample_count(&[7, 4, 3], &[1, 3, 4]).unwrap_err().to_string();
        assert!(
            e.contains("[7, 4, 3] does not hold samples of shape [1, 3, 4]") && e.contains("another layout"),
            "{e}"
        );
    }

    #[test]
    fn npy_samples_stream_in_order_up_to_the_limit_and_in_any_integer_type() {
        let dir = scratch("npy");
        let path = dir.join("x.npy");
        std::fs::write(&path, npy_bytes(&[5, 2, 3], (0..30).map(|v| v as u8)).unwrap()).unwrap();
        let inputs = [("x".to_string(), vec![1, 2, 3])];
        let source = Arrays::open(&path, &inputs, 4).unwrap();
        let all = collect(&source);
        assert_eq!((source.len(), all.len()), (4, 4));
        assert_eq!(all[3][0].shape(), &[1, 2, 3]);
        assert_eq!(all[3][0].iter().copied().collect::<Vec<_>>(), [18.0, 19.0, 20.0, 21.0, 22.0, 23.0]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn npz_arrays_are_matched_to_inputs_by_name() {
        let dir = scratch("npz");
        let path = dir.join("x.npz");
        let mut npz = npyz::npz::NpzWriter::create(&path).unwrap();
        for (name, first) in [("b", 100.0f32), ("a", 0.0)] {
            let mut w = npz
                .array(name, Default::default())
                .unwrap()
                .default_dtype()
                .shape(&[3, 2])
                .begin_nd()
                .unwrap();
            w.extend((0..6).map(|v| first + v as f32)).unwrap();
            w.finish().unwrap();
        }
        drop(npz);
        let inputs = [("a".to_string(), vec![2]), ("b".to_string(), vec![2])];
        let all = collect(&Arrays::open(&path, &inputs, 100).unwrap());
        assert_eq!(all.len(), 3);
        assert_eq!(all[1][0].as_slice().unwrap(), [2.0, 3.0]);
        assert_eq!(all[1][1].as_slice().unwrap(), [102.0, 103.0]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
