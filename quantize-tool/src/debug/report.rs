//! The debugger's tables: JSON (the whole analysis) and CSV (one row per layer), both ranked
//! worst first, and the text table `debug` prints.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;

use super::{Analysis, Layer};

/// A layer with its rank (1 = worst), as the JSON and CSV rows hold it.
#[derive(Serialize)]
struct Row<'a> {
    rank: usize,
    index: usize,
    name: &'a str,
    op: &'a str,
    tensor: &'a str,
    alone_db: f64,
    cumulative_db: f64,
    flagged: bool,
}

fn rows(analysis: &Analysis) -> impl Iterator<Item = Row<'_>> {
    analysis.ranked().into_iter().enumerate().map(|(i, l): (usize, &Layer)| Row {
        rank: i + 1,
        index: l.index,
        name: &l.name,
        op: l.op,
        tensor: &l.tensor,
        alone_db: l.alone_db,
        cumulative_db: l.cumulative_db,
        flagged: l.flagged,
    })
}

/// The JSON document: `model`, `calibration`, `samples`, `median_alone_db`, `flag_db`,
/// `threshold_db` and `layers` (ranked rows). Infinite SQNRs (no error at all) are `null`.
pub fn json(analysis: &Analysis, model: &str) -> Result<String> {
    #[derive(Serialize)]
    struct Document<'a> {
        model: &'a str,
        calibration: String,
        samples: usize,
        median_alone_db: f64,
        flag_db: f64,
        threshold_db: f64,
        layers: Vec<Row<'a>>,
    }
    let document = Document {
        model,
        calibration: analysis.method.to_string(),
        samples: analysis.samples,
        median_alone_db: analysis.median_db,
        flag_db: analysis.flag_db,
        threshold_db: analysis.threshold_db(),
        layers: rows(analysis).collect(),
    };
    Ok(serde_json::to_string_pretty(&document)? + "\n")
}

/// The CSV table: a header, then one ranked row per layer (`inf` for no error at all).
pub fn csv(analysis: &Analysis) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows(analysis) {
        writer.serialize(row)?;
    }
    Ok(writer.into_inner().map_err(|e| e.into_error())?)
}

/// The ranked table as text, one line per layer, flagged layers marked with `!`.
pub fn text(analysis: &Analysis) -> String {
    let mut out =
        format!("{:>4}  {:>9}  {:>14}  {:<16} layer (op index)\n", "rank", "alone dB", "cumulative dB", "op");
    for l in rows(analysis) {
        let mark = if l.flagged { "!" } else { " " };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{:>3}{mark}  {:>9.2}  {:>14.2}  {:<16} {} ({})",
            l.rank, l.alone_db, l.cumulative_db, l.op, l.name, l.index
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::Method;

    fn analysis() -> Analysis {
        let layer = |index, name: &str, alone_db, flagged| Layer {
            index,
            name: name.into(),
            op: "Conv2d",
            tensor: format!("{name}_out"),
            alone_db,
            cumulative_db: 30.0,
            flagged,
        };
        Analysis {
            layers: vec![
                layer(0, "a,1", 40.0, false),
                layer(1, "b", 12.0, true),
                layer(2, "c", f64::INFINITY, false),
            ],
            samples: 3,
            method: Method::Entropy,
            median_db: 26.0,
            flag_db: 10.0,
        }
    }

    #[test]
    fn json_ranks_worst_first_and_writes_infinity_as_null() {
        let v: serde_json::Value = serde_json::from_str(&json(&analysis(), "m.onnx").unwrap()).unwrap();
        assert_eq!(v["calibration"], "entropy");
        assert_eq!(v["threshold_db"], 16.0);
        let names: Vec<&str> =
            v["layers"].as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["b", "a,1", "c"]);
        assert_eq!(v["layers"][0]["rank"], 1);
        assert_eq!(v["layers"][0]["flagged"], true);
        assert!(v["layers"][2]["alone_db"].is_null());
    }

    #[test]
    fn csv_quotes_names_and_writes_infinity_as_inf() {
        let text = String::from_utf8(csv(&analysis()).unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "rank,index,name,op,tensor,alone_db,cumulative_db,flagged");
        assert_eq!(lines[1], "1,1,b,Conv2d,b_out,12.0,30.0,true");
        assert_eq!(lines[2], "2,0,\"a,1\",Conv2d,\"a,1_out\",40.0,30.0,false");
        assert_eq!(lines[3], "3,2,c,Conv2d,c_out,inf,30.0,false");
    }

    #[test]
    fn text_marks_flagged_layers() {
        let text = text(&analysis());
        let flagged: Vec<&str> = text.lines().filter(|l| l.starts_with("  1!")).collect();
        assert_eq!(flagged.len(), 1, "{text}");
        assert!(flagged[0].ends_with("b (1)"), "{text}");
    }
}
