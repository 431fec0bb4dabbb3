//! Building and running board firmware, and reading the report it prints.
//!
//! Firmware prints the line protocol of `targets/bench` (see targets/README.md):
//! `ember-bench v1 …`, one `sample` line per input, one `layer` line per op, `summary`, `done`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use object::{Object, ObjectSection};

use crate::{root, run_checked};

/// A board crate under `targets/`.
pub struct Board {
    /// Short name used in reports.
    pub name: &'static str,
    /// Crate folder, relative to the workspace root.
    pub dir: &'static str,
    /// Binary name.
    pub binary: &'static str,
    /// Rust target triple.
    pub target: &'static str,
}

/// Cortex-M4F on QEMU `mps2-an386`.
pub const QEMU_M4: Board = Board {
    name: "qemu-m4",
    dir: "targets/qemu-mps2-an386",
    binary: "ember-qemu-m4",
    target: "thumbv7em-none-eabihf",
};

/// One inference on the board.
#[derive(Debug, PartialEq)]
pub struct Sample {
    /// Index of the output's largest element.
    pub argmax: usize,
    /// CRC32 of the output bytes.
    pub output_crc32: u32,
}

/// What the firmware printed.
#[derive(Debug, PartialEq)]
pub struct Report {
    /// Board's name for itself.
    pub board: String,
    /// What a tick counts (`instructions` under QEMU, `cycles` on hardware).
    pub clock: String,
    /// Arena bytes the model needs.
    pub arena_bytes: u64,
    /// Every inference, in input order.
    pub samples: Vec<Sample>,
    /// Mean ticks per op, `(op index, kind, ticks)`.
    pub layers: Vec<(usize, String, u64)>,
    /// Mean ticks per inference.
    pub ticks_per_inference: u64,
    /// CRC32 over all output bytes of all samples.
    pub output_crc32: u32,
    /// Peak stack use measured by painting.
    pub stack_bytes: u64,
}

/// Flash and static RAM of a firmware image, from its ELF sections.
#[derive(Debug, PartialEq)]
pub struct ElfSizes {
    /// Bytes stored in flash: vector table, code, read-only data, initialized data.
    pub flash: u64,
    /// Bytes of static RAM: initialized and zeroed data.
    pub ram: u64,
}

fn fields(line: &str) -> HashMap<&str, &str> {
    line.split_whitespace().filter_map(|kv| kv.split_once('=')).collect()
}

fn field<T: std::str::FromStr>(f: &HashMap<&str, &str>, key: &str, line: &str) -> Result<T> {
    let v = f.get(key).with_context(|| format!("no {key}= in {line:?}"))?;
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok().and_then(|n| n.to_string().parse().ok()),
        None => v.parse().ok(),
    };
    parsed.with_context(|| format!("bad {key}={v} in {line:?}"))
}

/// Parses the firmware's report.
pub fn parse(text: &str) -> Result<Report> {
    let mut lines = text.lines().map(str::trim).skip_while(|l| !l.starts_with("ember-bench "));
    let head = lines.next().context("the firmware printed no `ember-bench` header")?;
    let h = fields(head);
    let mut report = Report {
        board: field(&h, "board", head)?,
        clock: field(&h, "clock", head)?,
        arena_bytes: field(&h, "arena_bytes", head)?,
        samples: Vec::new(),
        layers: Vec::new(),
        ticks_per_inference: 0,
        output_crc32: 0,
        stack_bytes: 0,
    };
    let mut done = false;
    for line in lines {
        let f = fields(line);
        match line.split_whitespace().next() {
            Some("sample") => report.samples.push(Sample {
                argmax: field(&f, "argmax", line)?,
                output_crc32: field(&f, "output_crc32", line)?,
            }),
            Some("layer") => report.layers.push((
                field(&f, "index", line)?,
                field(&f, "kind", line)?,
                field(&f, "ticks", line)?,
            )),
            Some("summary") => {
                report.ticks_per_inference = field(&f, "ticks_per_inference", line)?;
                report.output_crc32 = field(&f, "output_crc32", line)?;
                report.stack_bytes = field(&f, "stack_bytes", line)?;
            }
            Some("done") => {
                done = true;
                break;
            }
            _ => {}
        }
    }
    if !done {
        bail!("the firmware's report ended before `done`:\n{text}");
    }
    Ok(report)
}

/// Flash and RAM of an ELF image by section name (cortex-m-rt's layout).
pub fn elf_sizes(elf: &Path) -> Result<ElfSizes> {
    let data = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let file = object::File::parse(&*data)?;
    let size = |names: &[&str]| -> u64 {
        file.sections().filter(|s| s.name().is_ok_and(|n| names.contains(&n))).map(|s| s.size()).sum()
    };
    Ok(ElfSizes {
        flash: size(&[".vector_table", ".text", ".rodata", ".data"]),
        ram: size(&[".data", ".bss", ".uninit"]),
    })
}

/// Builds `board`'s firmware with `model` and `inputs` embedded, runs it, returns its report
/// and the firmware's ELF path.
pub fn run(board: &Board, model: &Path, inputs: &Path) -> Result<(Report, PathBuf)> {
    let dir = root().join(board.dir);
    let out = run_checked(
        Command::new("cargo")
            .args(["run", "--quiet", "--release"])
            .current_dir(&dir)
            .env("EMBER_MODEL", model.canonicalize()?)
            .env("EMBER_INPUTS", inputs.canonicalize()?),
    )?;
    let text = String::from_utf8_lossy(&out.stdout);
    let report = parse(&text).with_context(|| format!("board {}", board.name))?;
    let elf = dir.join("target").join(board.target).join("release").join(board.binary);
    Ok((report, elf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_line_protocol() {
        let text = "boot noise\nember-bench v1 board=qemu-m4 clock=instructions arena_bytes=768 ops=6\n\
            sample index=0 argmax=2 output_crc32=0x0000abcd ticks=100\n\
            sample index=1 argmax=0 output_crc32=0x00000001 ticks=102\n\
            layer index=0 kind=conv2d ticks=40\n\
            summary samples=2 ticks_per_inference=101 output_crc32=0xdeadbeef stack_bytes=512\ndone\n";
        let r = parse(text).unwrap();
        assert_eq!(r.board, "qemu-m4");
        assert_eq!(r.arena_bytes, 768);
        assert_eq!(
            r.samples,
            [Sample { argmax: 2, output_crc32: 0xabcd }, Sample { argmax: 0, output_crc32: 1 }]
        );
        assert_eq!(r.layers, [(0, "conv2d".to_string(), 40)]);
        assert_eq!((r.ticks_per_inference, r.output_crc32, r.stack_bytes), (101, 0xdeadbeef, 512));
        assert!(parse("ember-bench v1 board=x clock=y arena_bytes=1\n").is_err(), "no done line");
    }
}
