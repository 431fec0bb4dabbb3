//! Samples from a folder of PNG and JPEG images, one image decoded at a time, for a model with
//! one image input.

use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use image::imageops::FilterType;
use tract_onnx::prelude::tract_ndarray::{ArrayD, IxDyn};

use super::{DataError, Input, SampleSource};

/// Where the channel axis of an image input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// `[1, C, H, W]` (or `[C, H, W]`).
    Nchw,
    /// `[1, H, W, C]` (or `[H, W, C]`).
    Nhwc,
}

/// The channels an image input takes, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Channels {
    /// Red, green, blue.
    Rgb,
    /// Blue, green, red.
    Bgr,
    /// One grey channel.
    Gray,
}

/// How images become input values.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageOptions {
    /// Stretch every image to this width and height (which must be the input's).
    pub resize: Option<(u32, u32)>,
    /// Subtracted from each pixel value (0..=255), one per channel or one for all.
    pub mean: Vec<f32>,
    /// The difference is divided by this, one per channel or one for all.
    pub std: Vec<f32>,
    /// The input's layout; `None` infers it from where a 1- or 3-channel axis is.
    pub layout: Option<Layout>,
    /// The input's channels; `None` takes gray for 1 channel, RGB for 3.
    pub channels: Option<Channels>,
}

impl Default for ImageOptions {
    /// Pixel values 0..=255 as they are, layout and channels from the input's shape.
    fn default() -> Self {
        Self { resize: None, mean: vec![0.0], std: vec![1.0], layout: None, channels: None }
    }
}

/// Samples from the images of a folder, in file name order.
pub struct Images {
    files: Vec<PathBuf>,
    input: Input,
    layout: Layout,
    channels: Channels,
    /// Width and height.
    size: (u32, u32),
    mean: Vec<f32>,
    std: Vec<f32>,
    resize: bool,
}

/// The image geometry of an input shape: layout, channel count, height, width.
fn geometry(name: &str, shape: &[usize], layout: Option<Layout>) -> Result<(Layout, usize, usize, usize)> {
    let dims = match shape {
        [1, rest @ ..] if rest.len() == 3 => rest,
        _ if shape.len() == 3 => shape,
        _ => bail!(
            "input '{name}' has shape {shape:?}, not an image: images feed inputs of shape [1, C, H, W], \
             [1, H, W, C] or without the batch axis; give an .npy or .npz instead"
        ),
    };
    let colour = |c: usize| c == 1 || c == 3;
    let layout = match (layout, colour(dims[0]), colour(dims[2])) {
        (Some(l), _, _) => l,
        (None, true, false) => Layout::Nchw,
        (None, false, true) => Layout::Nhwc,
        (None, ..) => bail!(
            "cannot tell where the channels of input '{name}' {shape:?} are: pass --layout nchw or \
             --layout nhwc"
        ),
    };
    let (c, h, w) = match layout {
        Layout::Nchw => (dims[0], dims[1], dims[2]),
        Layout::Nhwc => (dims[2], dims[0], dims[1]),
    };
    ensure!(
        colour(c),
        "input '{name}' {shape:?} has {c} channels in {} layout; images give 1 (gray) or 3 \
         (RGB/BGR): check --layout",
        format!("{layout:?}").to_lowercase()
    );
    Ok((layout, c, h, w))
}

impl Images {
    /// Lists the `.png`, `.jpg` and `.jpeg` files of `dir` (other files are skipped) for a model
    /// with `inputs`, using at most `limit` of them.
    pub fn open(dir: &Path, inputs: &[Input], options: &ImageOptions, limit: usize) -> Result<Self> {
        let [(name, shape)] = inputs else {
            bail!(
                "the model has {} inputs; an image folder feeds one: give an .npz with one array per input",
                inputs.len()
            )
        };
        let (layout, c, h, w) = geometry(name, shape, options.layout)?;
        let channels = match (options.channels, c) {
            (None, 1) => Channels::Gray,
            (None, _) => Channels::Rgb,
            (Some(given @ Channels::Gray), 1) | (Some(given @ (Channels::Rgb | Channels::Bgr)), 3) => given,
            (Some(given), _) => bail!(
                "--channels {} gives {} channels, input '{name}' {shape:?} takes {c}: pass --channels {}",
                format!("{given:?}").to_lowercase(),
                if given == Channels::Gray { 1 } else { 3 },
                if c == 1 { "gray" } else { "rgb or --channels bgr" }
            ),
        };
        let per_channel = |values: &[f32], flag: &str| -> Result<Vec<f32>> {
            match values.len() {
                1 => Ok(vec![values[0]; c]),
                n if n == c => Ok(values.to_vec()),
                n => bail!("--{flag} has {n} values; input '{name}' has {c} channels: give 1 or {c}"),
            }
        };
        let (mean, std) = (per_channel(&options.mean, "mean")?, per_channel(&options.std, "std")?);
        ensure!(
            std.iter().all(|&s| s != 0.0 && s.is_finite()),
            "--std must be finite and non-zero, got {std:?}"
        );
        let size = (w as u32, h as u32);
        if let Some((rw, rh)) = options.resize {
            ensure!(
                (rw, rh) == size,
                "--resize {rw}x{rh} does not match input '{name}' {shape:?}, which takes {w}x{h} images: \
                 pass --resize {w}x{h}"
            );
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list the image folder {}", dir.display()))?
            .map(|entry| Ok(entry?.path()))
            .collect::<std::io::Result<Vec<_>>>()?
            .into_iter()
            .filter(|p| {
                let ext = p.extension().map(|e| e.to_string_lossy().to_lowercase());
                p.is_file() && matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg"))
            })
            .collect();
        ensure!(!files.is_empty(), "{} holds no .png, .jpg or .jpeg images", dir.display());
        files.sort();
        files.truncate(limit);
        Ok(Self {
            files,
            input: (name.clone(), shape.clone()),
            layout,
            channels,
            size,
            mean,
            std,
            resize: options.resize.is_some(),
        })
    }

    /// The input values of the image at `path`.
    fn load(&self, path: &Path) -> Result<ArrayD<f32>> {
        let (name, shape) = &self.input;
        let (w, h) = self.size;
        let img = image::open(path).with_context(|| {
            format!(
                "cannot decode {}: convert it to PNG or JPEG, or remove it from the folder",
                path.display()
            )
        })?;
        let img = if self.resize {
            img.resize_exact(w, h, FilterType::Triangle)
        } else {
            ensure!(
                (img.width(), img.height()) == (w, h),
                "{} is {}x{}, input '{name}' {shape:?} takes {w}x{h} images: pass --resize {w}x{h}, or give \
                 images of that size",
                path.display(),
                img.width(),
                img.height()
            );
            img
        };
        let pixels: Vec<u8> = match self.channels {
            Channels::Gray => img.into_luma8().into_raw(),
            Channels::Rgb => img.into_rgb8().into_raw(),
            Channels::Bgr => img.into_rgb8().into_raw().chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect(),
        };
        let c = self.mean.len();
        let (w, h) = (w as usize, h as usize);
        let value = |y: usize, x: usize, ch: usize| {
            (f32::from(pixels[(y * w + x) * c + ch]) - self.mean[ch]) / self.std[ch]
        };
        let values: Vec<f32> = match self.layout {
            Layout::Nhwc => (0..h * w * c).map(|i| value(i / (w * c), i / c % w, i % c)).collect(),
            Layout::Nchw => (0..c * h * w).map(|i| value(i / w % h, i % w, i / (h * w))).collect(),
        };
        Ok(ArrayD::from_shape_vec(IxDyn(shape), values)?)
    }
}

impl SampleSource for Images {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn for_each(&self, visit: &mut dyn FnMut(&[ArrayD<f32>]) -> Result<()>) -> Result<()> {
        for path in &self.files {
            let x = self.load(path).map_err(DataError::wrap)?;
            visit(std::slice::from_ref(&x))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::collect;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ember-images-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A 4×2 RGB image whose pixel (x, y) is (10x + y, 100, 200).
    fn save_rgb(path: &Path) {
        image::RgbImage::from_fn(4, 2, |x, y| image::Rgb([(10 * x + y) as u8, 100, 200])).save(path).unwrap();
    }

    fn first(source: &Images) -> ArrayD<f32> {
        collect(source).swap_remove(0).swap_remove(0)
    }

    #[test]
    fn images_become_inputs_in_either_layout_with_mean_std_and_channel_order() {
        let dir = scratch("layouts");
        save_rgb(&dir.join("a.png"));
        std::fs::write(dir.join("notes.txt"), "skipped").unwrap();
        let nchw = [("x".to_string(), vec![1, 3, 2, 4])];
        let options =
            ImageOptions { mean: vec![0.0, 100.0, 0.0], std: vec![1.0, 1.0, 2.0], ..Default::default() };
        let source = Images::open(&dir, &nchw, &options, 10).unwrap();
        assert_eq!(source.len(), 1);
        let x = first(&source);
        assert_eq!(x.shape(), &[1, 3, 2, 4]);
        assert_eq!((x[[0, 0, 1, 2]], x[[0, 1, 1, 2]], x[[0, 2, 0, 0]]), (21.0, 0.0, 100.0));
        let nhwc = [("x".to_string(), vec![1, 2, 4, 3])];
        let bgr = ImageOptions { channels: Some(Channels::Bgr), ..Default::default() };
        let x = first(&Images::open(&dir, &nhwc, &bgr, 10).unwrap());
        assert_eq!((x[[0, 1, 2, 0]], x[[0, 1, 2, 2]]), (200.0, 21.0));
        let gray = [("x".to_string(), vec![1, 1, 4, 4])];
        let resized = ImageOptions { resize: Some((4, 4)), ..Default::default() };
        assert_eq!(first(&Images::open(&dir, &gray, &resized, 10).unwrap()).shape(), &[1, 1, 4, 4]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn mismatches_name_what_the_input_takes() {
        let dir = scratch("mismatch");
        save_rgb(&dir.join("a.png"));
        let input = |shape: Vec<usize>| [("x".to_string(), shape)];
        let error = |shape: Vec<usize>, options: ImageOptions| match Images::open(
            &dir,
            &input(shape),
            &options,
            10,
        ) {
            Ok(source) => format!("{:#}", source.for_each(&mut |_| Ok(())).unwrap_err()),
            Err(e) => format!("{e:#}"),
        };
        let cases = [
            (
                vec![1, 3, 8, 8],
                ImageOptions::default(),
                "a.png is 4x2, input 'x' [1, 3, 8, 8] takes 8x8 images: pass --resize 8x8",
            ),
            (
                vec![1, 3, 8, 8],
                ImageOptions { resize: Some((4, 4)), ..Default::default() },
                "--resize 4x4 does not match",
            ),
            (vec![1, 3, 3, 3], ImageOptions::default(), "pass --layout nchw or --layout nhwc"),
            (
                vec![1, 1, 2, 4],
                ImageOptions { channels: Some(Channels::Rgb), ..Default::default() },
                "takes 1: pass --channels gray",
            ),
            (
                vec![1, 3, 2, 4],
                ImageOptions { mean: vec![1.0, 2.0], ..Default::default() },
                "--mean has 2 values",
            ),
            (vec![1, 10], ImageOptions::default(), "not an image"),
        ];
        for (shape, options, expected) in cases {
            let e = error(shape, options);
            assert!(e.contains(expected), "{expected:?} not in: {e}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
