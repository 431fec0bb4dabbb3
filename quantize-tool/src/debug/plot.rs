//! The debugger's chart: SQNR per layer, one row per layer in execution order (top to bottom),
//! both series (alone, cumulative), the flag threshold, and flagged layers marked.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context, Result};
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::ImageEncoder;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use super::{Analysis, Layer};

/// Width of the chart in pixels; its height grows with the number of layers.
const WIDTH: u32 = 1200;
/// Pixels per layer row.
const ROW: u32 = 26;
/// Pixels of the legend strip under the chart.
const LEGEND: u32 = 36;
/// Longest layer label, in characters; longer names keep their end.
const LABEL_CHARS: usize = 44;

const ALONE: RGBColor = RGBColor(31, 119, 180);
const CUMULATIVE: RGBColor = RGBColor(214, 39, 40);
const THRESHOLD: RGBColor = RGBColor(255, 127, 14);

/// Reads one series' value of a layer.
type Value = fn(&Layer) -> f64;

/// Registers DejaVu Sans, embedded, as plotters' sans-serif (no system fonts are read).
fn register_fonts() -> Result<()> {
    static REGISTER: Once = Once::new();
    let mut result = Ok(());
    REGISTER.call_once(|| {
        result = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| anyhow!("internal error: the embedded font does not load"));
    });
    result
}

/// The row label of a layer: flagged ones start with `!`.
fn label(analysis: &Analysis, index: usize) -> String {
    let l = &analysis.layers[index];
    let name = format!("{} {} ({})", l.index, l.name, l.op);
    let chars: Vec<char> = name.chars().collect();
    let short = if chars.len() > LABEL_CHARS {
        format!("…{}", chars[chars.len() - LABEL_CHARS + 1..].iter().collect::<String>())
    } else {
        name
    };
    if l.flagged {
        format!("! {short}")
    } else {
        short
    }
}

/// Draws the chart of `analysis` titled `title` as a PNG at `path`.
pub fn png(analysis: &Analysis, title: &str, path: &Path) -> Result<()> {
    register_fonts()?;
    let n = analysis.layers.len().max(1);
    let height = 150 + ROW * n as u32;
    let mut pixels = vec![0u8; (WIDTH * height * 3) as usize];
    draw(analysis, title, &mut pixels, height).map_err(|e| anyhow!("cannot draw the chart: {e}"))?;
    let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let encoder = PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        CompressionType::Best,
        FilterType::Adaptive,
    );
    encoder
        .write_image(&pixels, WIDTH, height, image::ExtendedColorType::Rgb8)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The x axis: every finite SQNR and the threshold, rounded out to 10 dB.
fn x_range(analysis: &Analysis) -> (f64, f64) {
    let values = analysis.layers.iter().flat_map(|l| [l.alone_db, l.cumulative_db]);
    let finite: Vec<f64> = values.chain([analysis.threshold_db()]).filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if finite.is_empty() {
        return (0.0, 100.0);
    }
    ((lo / 10.0).floor() * 10.0 - 5.0, (hi / 10.0).ceil() * 10.0 + 5.0)
}

fn draw(analysis: &Analysis, title: &str, pixels: &mut [u8], height: u32) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let n = analysis.layers.len();
    let root = BitMapBackend::with_buffer(pixels, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let (plot, legend) = root.split_vertically(height - LEGEND);
    let (lo, hi) = x_range(analysis);
    let labels: Vec<String> = (0..n).map(|i| label(analysis, i)).collect();
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32 * 8 + 20;
    // Row i (execution order) is drawn at y = n - 1 - i, so the first layer is on top.
    let row = |i: usize| SegmentValue::CenterOf(n - 1 - i);
    let name_of = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(k) if *k < n => labels[n - 1 - k].clone(),
        _ => String::new(),
    };
    let mut chart = ChartBuilder::on(&plot)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(label_width)
        .build_cartesian_2d(lo..hi, (0..n).into_segmented())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .y_labels(n)
        .y_label_formatter(&name_of)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("SQNR of the int8 output against float (dB, higher is better)")
        .y_desc("layer, in execution order")
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(&x))?;
    let clamp = |v: f64| v.clamp(lo, hi);
    let threshold = analysis.threshold_db();
    if threshold.is_finite() {
        chart
            .draw_series(LineSeries::new(
                [(threshold, SegmentValue::Exact(0)), (threshold, SegmentValue::Exact(n))],
                THRESHOLD.stroke_width(2),
            ))
            .map_err(|x| e(&x))?;
    }
    let series: [(&str, RGBColor, Value); 2] = [
        ("this layer alone quantized", ALONE, |l| l.alone_db),
        ("everything up to here quantized", CUMULATIVE, |l| l.cumulative_db),
    ];
    for (_, color, value) in series {
        let points: Vec<(f64, SegmentValue<usize>)> =
            analysis.layers.iter().enumerate().map(|(i, l)| (clamp(value(l)), row(i))).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.mix(0.5).stroke_width(1)))
            .map_err(|x| e(&x))?;
        chart
            .draw_series(points.into_iter().map(|p| Circle::new(p, 5, color.filled())))
            .map_err(|x| e(&x))?;
    }
    let flagged = analysis.layers.iter().enumerate().filter(|(_, l)| l.flagged);
    chart
        .draw_series(
            flagged.map(|(i, l)| Circle::new((clamp(l.alone_db), row(i)), 10, BLACK.stroke_width(2))),
        )
        .map_err(|x| e(&x))?;
    // The legend, in a strip under the chart where it hides no point.
    let flag_text = format!(
        "flag threshold (median alone − {} dB): {threshold:.1} dB; flagged: ! and ○",
        analysis.flag_db
    );
    let entries = [(series[0].0, series[0].1), (series[1].0, series[1].1), (flag_text.as_str(), THRESHOLD)];
    let mut x = 40;
    let y = (LEGEND / 2) as i32;
    for (i, (text, color)) in entries.into_iter().enumerate() {
        if i == 2 {
            legend
                .draw(&PathElement::new([(x - 8, y), (x + 8, y)], color.stroke_width(3)))
                .map_err(|x| e(&x))?;
        } else {
            legend.draw(&Circle::new((x, y), 5, color.filled())).map_err(|x| e(&x))?;
        }
        legend.draw(&Text::new(text, (x + 14, y - 9), ("sans-serif", 15))).map_err(|x| e(&x))?;
        x += 40 + 15 * text.chars().count() as i32 / 2;
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::Method;

    #[test]
    fn long_names_keep_their_end_and_flagged_layers_are_marked() {
        let layer = |name: &str, flagged| Layer {
            index: 3,
            name: name.into(),
            op: "Conv2d",
            tensor: String::new(),
            alone_db: 30.0,
            cumulative_db: 25.0,
            flagged,
        };
        let long = "model/block_12/depthwise/very_long_scope/Conv2D";
        let analysis = Analysis {
            layers: vec![layer("conv", true), layer(long, false)],
            samples: 1,
            method: Method::MinMax,
            median_db: 30.0,
            flag_db: 10.0,
        };
        assert_eq!(label(&analysis, 0), "! 3 conv (Conv2d)");
        let l = label(&analysis, 1);
        assert_eq!(l.chars().count(), LABEL_CHARS);
        assert!(l.starts_with('…') && l.ends_with("/Conv2D (Conv2d)"), "{l}");
        // 25 to 30 dB and the threshold at 20 dB, rounded out to tens and 5 dB beyond.
        assert_eq!(x_range(&analysis), (15.0, 35.0));
    }

    #[test]
    fn the_chart_is_a_png_of_the_expected_size() {
        let layers = (0..3)
            .map(|i| Layer {
                index: i,
                name: format!("layer{i}"),
                op: "Relu",
                tensor: String::new(),
                alone_db: 40.0 - 10.0 * i as f64,
                cumulative_db: 35.0 - 10.0 * i as f64,
                flagged: i == 2,
            })
            .collect();
        let analysis = Analysis { layers, samples: 1, method: Method::MinMax, median_db: 30.0, flag_db: 5.0 };
        let path = std::env::temp_dir().join(format!("ember-debug-plot-{}.png", std::process::id()));
        png(&analysis, "test", &path).unwrap();
        let image = image::open(&path).unwrap().to_rgb8();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(image.dimensions(), (WIDTH, 150 + 3 * ROW));
        // Something besides the white background was drawn in each series' colour.
        for color in [ALONE, CUMULATIVE] {
            assert!(image.pixels().any(|p| p.0 == [color.0, color.1, color.2]), "{color:?}");
        }
    }
}
