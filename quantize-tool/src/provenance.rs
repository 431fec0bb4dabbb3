//! Provenance: where a model file came from, written to its `META` section (docs/FORMAT.md §2.1).

use anyhow::{Context, Result};
use ember::format::meta::{Calibration, Provenance, SourceFormat, TOOL_LEN};
use ember::format::DType;
use sha2::{Digest, Sha256};

use crate::calibrate::Method;
use crate::emit::Precision;

/// The writing tool, as recorded in every model.
pub const TOOL: &str = concat!("ember-quantize ", env!("CARGO_PKG_VERSION"));

/// What the pipeline cannot see in the graph: the source file, when, and on what data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// SHA-256 of the source model file (zero when unknown).
    pub source_sha256: [u8; 32],
    /// The source model's format, which gives op source indices their meaning.
    pub source_format: SourceFormat,
    /// Creation time, seconds since 1970-01-01 UTC.
    pub created_unix: u64,
    /// Whether the calibration samples are seeded random noise rather than real data.
    pub random_calibration: bool,
}

impl Default for Origin {
    /// An unknown source created at time 0 (for models built from graphs in tests).
    fn default() -> Self {
        Self {
            source_sha256: [0; 32],
            source_format: SourceFormat::Unknown,
            created_unix: 0,
            random_calibration: false,
        }
    }
}

impl Origin {
    /// The origin of the source model file `source` of `format`, created now, or at
    /// `SOURCE_DATE_EPOCH` when that is set (reproducible builds).
    pub fn new(source: &[u8], format: SourceFormat, random_calibration: bool) -> Result<Self> {
        Ok(Self {
            source_sha256: Sha256::digest(source).into(),
            source_format: format,
            created_unix: creation_time()?,
            random_calibration,
        })
    }
}

/// Seconds since 1970-01-01 UTC: `SOURCE_DATE_EPOCH` if set, else the clock.
pub fn creation_time() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(epoch) => epoch.trim().parse().with_context(|| {
            format!("SOURCE_DATE_EPOCH='{epoch}' is not a whole number of seconds since 1970-01-01 UTC")
        }),
        Err(_) => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_secs()),
    }
}

/// What int8 calibration ran on and how, as recorded in the provenance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationSummary {
    /// The method that chose the ranges.
    pub method: Method,
    /// Samples used.
    pub samples: usize,
    /// SHA-256 of the samples ([`crate::calibrate::SampleHash`]).
    pub sha256: [u8; 32],
}

/// The provenance code of `method`, over real data or (`random`) seeded noise; `None` for a
/// histogram method over noise, which has no code (and no use: noise has no outliers to clip).
pub fn calibration_code(method: Method, random: bool) -> Option<Calibration> {
    match (method, random) {
        (Method::MinMax, false) => Some(Calibration::MinMax),
        (Method::MinMax, true) => Some(Calibration::MinMaxRandom),
        (_, true) => None,
        (Method::Percentile(_), false) => Some(Calibration::Percentile),
        (Method::Entropy, false) => Some(Calibration::Entropy),
        (Method::Mse, false) => Some(Calibration::Mse),
    }
}

/// The provenance record of a model at `precision` made from `origin`, calibrated (int8 only)
/// as `calib` says; `None` for int8 whose quantization came with the source (an import).
pub fn record(origin: &Origin, precision: Precision, calib: Option<&CalibrationSummary>) -> Provenance {
    let dtype = match precision {
        Precision::Int8 => DType::I8,
        Precision::F16 => DType::F16,
        Precision::F32 => DType::F32,
    };
    let calib = calib.filter(|_| precision == Precision::Int8);
    // Noise is recorded as noise whatever the method (`quantize` refuses histogram methods on it).
    let calibration = calib.map_or(Calibration::None, |c| {
        calibration_code(c.method, origin.random_calibration).unwrap_or(Calibration::MinMaxRandom)
    });
    let mut tool = [0; TOOL_LEN];
    tool[..TOOL.len()].copy_from_slice(TOOL.as_bytes());
    Provenance {
        source_sha256: origin.source_sha256,
        calib_sha256: calib.map_or([0; 32], |c| c.sha256),
        created: [origin.created_unix as u32, (origin.created_unix >> 32) as u32],
        calib_samples: calib.map_or(0, |c| c.samples as u32),
        precision: dtype as u8,
        calibration: calibration as u8,
        source_format: origin.source_format as u8,
        tool_len: TOOL.len() as u8,
        tool,
    }
}

/// Lowercase hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use tract_onnx::prelude::tract_ndarray::ArrayD;

    use super::*;
    use crate::calibrate::SampleHash;

    #[test]
    fn the_tool_name_fits_the_record() {
        assert!(TOOL.len() <= TOOL_LEN, "{TOOL}");
    }

    #[test]
    fn calibration_hash_depends_on_every_value_and_their_order() {
        let hash = |v: &[f32]| {
            let mut h = SampleHash::default();
            h.update(&[ArrayD::from_shape_vec(vec![v.len()], v.to_vec()).unwrap()]);
            h.finish()
        };
        let a = hash(&[1.0, 2.0]);
        assert_eq!(a, hash(&[1.0, 2.0]));
        assert_ne!(a, hash(&[2.0, 1.0]));
        assert_ne!(a, hash(&[1.0, 2.5]));
    }

    #[test]
    fn record_keeps_what_calibration_ran_on() {
        let summary = CalibrationSummary { method: Method::MinMax, samples: 7, sha256: [3; 32] };
        let p = record(&Origin::default(), Precision::Int8, Some(&summary));
        assert_eq!((p.calibration, p.calib_samples, p.calib_sha256), (Calibration::MinMax as u8, 7, [3; 32]));
        let random = Origin { random_calibration: true, ..Origin::default() };
        assert_eq!(
            record(&random, Precision::Int8, Some(&summary)).calibration,
            Calibration::MinMaxRandom as u8
        );
        assert_eq!(record(&random, Precision::F16, Some(&summary)).calibration, Calibration::None as u8);
        assert_eq!(calibration_code(Method::Entropy, false), Some(Calibration::Entropy));
        assert_eq!(calibration_code(Method::Percentile(99.0), false), Some(Calibration::Percentile));
        assert_eq!(calibration_code(Method::Mse, true), None);
    }

    #[test]
    fn record_round_trips_the_creation_time_and_names_the_tool() {
        let origin = Origin { created_unix: 0x1_2345_6789, ..Origin::default() };
        let p = record(&origin, Precision::F16, None);
        assert_eq!(p.created_unix(), 0x1_2345_6789);
        assert_eq!(p.tool(), TOOL);
        assert_eq!((p.calibration, p.calib_samples, p.calib_sha256), (Calibration::None as u8, 0, [0; 32]));
    }
}
