//! Building and running board firmware, and reading the report it prints.
//!
//! Firmware prints the line protocol of `targets/bench` (see targets/README.md):
//! `ember-bench v2 …`, one `sample` line per input, one `layer` line per op, `summary`, `done`.
//! Tick totals are divided by the sample count here, so the firmware needs no 64-bit division.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ember::format::DType;
use ember::{Interpreter, Model};
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

/// Cortex-M7 on QEMU `mps2-an500`.
pub const QEMU_M7: Board = Board {
    name: "qemu-m7",
    dir: "targets/qemu-mps2-an500",
    binary: "ember-qemu-m7",
    target: "thumbv7em-none-eabihf",
};

/// Cortex-M55 on QEMU `mps3-an547`.
pub const QEMU_M55: Board = Board {
    name: "qemu-m55",
    dir: "targets/qemu-mps3-an547",
    binary: "ember-qemu-m55",
    target: "thumbv8m.main-none-eabihf",
};

/// Every board `--board` can name.
pub const BOARDS: &[&Board] = &[&QEMU_M4, &QEMU_M7, &QEMU_M55];

/// The boards run when none is named (each was checked to build and match the host).
pub const DEFAULT_BOARDS: &[&Board] = &[&QEMU_M4, &QEMU_M7, &QEMU_M55];

/// The board called `name`.
pub fn by_name(name: &str) -> Result<&'static Board> {
    BOARDS.iter().copied().find(|b| b.name == name).with_context(|| {
        let names: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
        format!("unknown board {name:?}: one of {}", names.join(", "))
    })
}

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
    /// Ticks of all inferences together.
    pub ticks_total: u64,
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
        ticks_total: 0,
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
                field(&f, "ticks_total", line)?,
            )),
            Some("summary") => {
                let samples: u64 = field(&f, "samples", line)?;
                ensure!(samples > 0, "no samples in {line:?}");
                report.ticks_total = field(&f, "ticks_total", line)?;
                report.ticks_per_inference = report.ticks_total / samples;
                for layer in &mut report.layers {
                    layer.2 /= samples;
                }
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

/// The `FLASH` and `RAM` lengths in bytes of a cortex-m-rt `memory.x` (which must define both).
pub fn memory_regions(memory_x: &str) -> Result<(u64, u64)> {
    let length = |region: &str| -> Result<u64> {
        let line = memory_x
            .lines()
            .map(|l| l.trim())
            .find(|l| l.split([' ', ':', '(']).next() == Some(region))
            .with_context(|| format!("memory.x has no {region} region"))?;
        let value = line
            .split_once("LENGTH")
            .and_then(|(_, v)| v.trim_start().strip_prefix('='))
            .with_context(|| format!("no LENGTH in {line:?}"))?
            .trim()
            .trim_end_matches([',', ';'])
            .trim();
        let (digits, unit) = match value.strip_suffix(['K', 'k']) {
            Some(d) => (d, 1 << 10),
            None => match value.strip_suffix(['M', 'm']) {
                Some(d) => (d, 1 << 20),
                None => (value, 1),
            },
        };
        let n = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => digits.parse().ok(),
        };
        Ok(n.with_context(|| format!("bad LENGTH in {line:?}"))? * unit)
    };
    Ok((length("FLASH")?, length("RAM")?))
}

/// Which kernels a firmware build runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The hand-written kernels of the board's core (Cortex-M DSP, Helium), where it has them.
    Optimized,
    /// The portable reference kernels only (the runtime built with `EMBER_NO_DSP=1`, which
    /// turns Helium off too), in a
    /// target folder of their own so the two builds do not undo each other.
    Reference,
}

impl Kernels {
    /// The board's cargo target folder for these kernels.
    fn target_dir(self, board: &Board) -> PathBuf {
        let dir = root().join(board.dir).join("target");
        match self {
            Kernels::Optimized => dir,
            Kernels::Reference => dir.join("reference"),
        }
    }

    /// `cargo SUBCOMMAND --quiet --release` in `board`'s crate with `model` and `inputs` embedded.
    fn cargo(self, board: &Board, subcommand: &str, model: &Path, inputs: &Path) -> Result<Command> {
        let mut cmd = Command::new("cargo");
        cmd.args([subcommand, "--quiet", "--release"])
            .current_dir(root().join(board.dir))
            .env("CARGO_TARGET_DIR", self.target_dir(board))
            .env("EMBER_MODEL", model.canonicalize()?)
            .env("EMBER_INPUTS", inputs.canonicalize()?);
        match self {
            Kernels::Optimized => cmd.env_remove("EMBER_NO_DSP").env_remove("EMBER_NO_HELIUM"),
            Kernels::Reference => cmd.env("EMBER_NO_DSP", "1"),
        };
        Ok(cmd)
    }
}

/// The firmware's ELF path for a build with `kernels`.
pub fn elf_path(board: &Board, kernels: Kernels) -> PathBuf {
    kernels.target_dir(board).join(board.target).join("release").join(board.binary)
}

/// Why a firmware image does not fit its board's memory map.
#[derive(Debug, PartialEq)]
pub struct Misfit {
    /// The linker's first overflow message.
    pub why: String,
    /// Bytes by which the image overflows `FLASH`, when the linker says (the largest amount it
    /// gives for that region); `None` when only another region overflows.
    pub flash_overflow: Option<u64>,
}

/// Why a build failed: `Ok(misfit)` when the image does not fit the memory map (the linker's
/// overflow messages), `Err` for any other failure.
fn build_error(board: &Board, err: anyhow::Error) -> Result<Misfit> {
    let text = format!("{err:#}");
    let overflows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("will not fit in region") || l.contains("overflowed by"))
        .collect();
    let Some(&first) = overflows.first() else {
        return Err(err.context(format!("building the {} firmware", board.name)));
    };
    // `  = note: rust-lld: error: section '.rodata' will not fit in region 'FLASH': overflowed by …`
    let why = first.rsplit("error: ").next().unwrap_or(first).trim().to_string();
    let flash_overflow = overflows
        .iter()
        .filter(|l| l.contains("region 'FLASH'"))
        .filter_map(|l| l.split_once("overflowed by ")?.1.split_whitespace().next()?.parse::<u64>().ok())
        .max();
    Ok(Misfit { why, flash_overflow })
}

/// Builds `board`'s firmware with `kernels` and with `model` and `inputs` embedded:
/// `Ok(Err(misfit))` when the image does not fit the board's memory map.
pub fn build(
    board: &Board,
    kernels: Kernels,
    model: &Path,
    inputs: &Path,
) -> Result<std::result::Result<PathBuf, Misfit>> {
    match run_checked(&mut kernels.cargo(board, "build", model, inputs)?) {
        Ok(_) => Ok(Ok(elf_path(board, kernels))),
        Err(e) => Ok(Err(build_error(board, e)?)),
    }
}

/// Builds `board`'s firmware with `model` and `inputs` embedded, runs it, returns its report
/// and the firmware's ELF path.
pub fn run(board: &Board, model: &Path, inputs: &Path) -> Result<(Report, PathBuf)> {
    if let Err(misfit) = build(board, Kernels::Optimized, model, inputs)? {
        bail!("the firmware does not fit board {}: {}", board.name, misfit.why);
    }
    let report = run_built(board, Kernels::Optimized, model, inputs, Duration::from_secs(1800))?;
    Ok((report, elf_path(board, Kernels::Optimized)))
}

/// Runs the firmware that `build` made (with the same `kernels`, `model` and `inputs`, so cargo
/// does not rebuild) through the board's cargo runner, killing it after `timeout`.
pub fn run_built(
    board: &Board,
    kernels: Kernels,
    model: &Path,
    inputs: &Path,
    timeout: Duration,
) -> Result<Report> {
    let mut cmd = kernels.cargo(board, "run", model, inputs)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout ends QEMU (cargo's child) too.
        .process_group(0);
    let mut child = cmd.spawn().with_context(|| format!("cannot run {cmd:?}"))?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut stderr = child.stderr.take().context("no stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    let Some(status) = status else {
        bail!(
            "board {} did not finish within {} s (a hard fault or an endless loop?):\n{stdout}{stderr}",
            board.name,
            timeout.as_secs()
        );
    };
    ensure!(status.success(), "board {} failed ({status}):\n{stdout}{stderr}", board.name);
    parse(&stdout).with_context(|| format!("board {}", board.name))
}

/// The host's counterpart of the report's summary `output_crc32`: CRC32 over output 0's bytes
/// for every sample of `batch`, concatenated — what `ember-bench` computes (see [`host_outputs`]).
pub fn host_output_crc(model: &Model, batch: &[u8]) -> Result<u32> {
    Ok(ember::CRC32.checksum(&host_outputs(model, batch)?.concat()))
}

/// Output 0's bytes (int8 as-is, f32 little-endian) on the host, one row per sample of `batch`
/// (raw input 0 samples in the model's internal layout and element type).
pub fn host_outputs(model: &Model, batch: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut arena = vec![0u8; model.arena_bytes() + 16];
    let mut interp = Interpreter::new(model, &mut arena)?;
    let input = model.input(0)?.tensor;
    let output = model.output(0)?.tensor;
    ensure!(
        !batch.is_empty() && batch.len().is_multiple_of(input.byte_len),
        "the batch has {} bytes, not whole samples of {} bytes",
        batch.len(),
        input.byte_len
    );
    let mut rows = Vec::new();
    for sample in batch.chunks_exact(input.byte_len) {
        match input.dtype {
            DType::I8 => interp.input_i8(0)?.iter_mut().zip(sample).for_each(|(d, &s)| *d = s as i8),
            DType::F32 => interp
                .input_f32(0)?
                .iter_mut()
                .zip(sample.chunks_exact(4))
                .for_each(|(d, s)| *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]])),
            other => bail!("input 0 is {}: only int8 and f32 inputs are supported", other.name()),
        }
        interp.invoke()?;
        rows.push(match output.dtype {
            DType::I8 => interp.output_i8(0)?.iter().map(|&v| v as u8).collect(),
            DType::F32 => interp.output_f32(0)?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            other => bail!("output 0 is {}: only int8 and f32 outputs are supported", other.name()),
        });
    }
    Ok(rows)
}

/// The CRC32 ([`ember::CRC32`]) of `a` followed by `b`, from `crc_a` = CRC32(`a`), `crc_b` =
/// CRC32(`b`) and `len_b` = `b.len()`: the CRC over all outputs of a batch run in chunks.
///
/// A CRC is affine in its message bits, so CRC(a ‖ b) = CRC(a ‖ 0ⁿ) ⊕ CRC(b) ⊕ CRC(0ⁿ) for
/// n = `len_b`; CRC(a ‖ 0ⁿ) continues the register `crc_a` left over n zero bytes.
pub fn crc32_concat(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    let algorithm = ember::CRC32.algorithm;
    // `digest_with_initial` reflects its argument as it reflects `init`; the register after `a`
    // is `crc_a ^ xorout` (CRC-32/ISO-HDLC: refin = refout, so `finalize` does not reflect).
    let register = crc_a ^ algorithm.xorout;
    let initial = if algorithm.refin { register.reverse_bits() } else { register };
    let mut continued = ember::CRC32.digest_with_initial(initial);
    let mut zeros = ember::CRC32.digest();
    let block = [0u8; 256];
    let mut left = len_b;
    while left > 0 {
        let n = left.min(block.len());
        continued.update(&block[..n]);
        zeros.update(&block[..n]);
        left -= n;
    }
    continued.finalize() ^ crc_b ^ zeros.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_line_protocol() {
        let text = "boot noise\nember-bench v2 board=qemu-m4 clock=instructions arena_bytes=768 ops=6\n\
            sample index=0 argmax=2 output_crc32=0x0000abcd ticks=100\n\
            sample index=1 argmax=0 output_crc32=0x00000001 ticks=102\n\
            layer index=0 kind=conv2d ticks_total=80\n\
            summary samples=2 ticks_total=202 output_crc32=0xdeadbeef stack_bytes=512\ndone\n";
        let r = parse(text).unwrap();
        assert_eq!(r.board, "qemu-m4");
        assert_eq!(r.arena_bytes, 768);
        assert_eq!(
            r.samples,
            [Sample { argmax: 2, output_crc32: 0xabcd }, Sample { argmax: 0, output_crc32: 1 }]
        );
        assert_eq!(r.layers, [(0, "conv2d".to_string(), 40)]);
        assert_eq!((r.ticks_total, r.ticks_per_inference), (202, 101));
        assert_eq!((r.output_crc32, r.stack_bytes), (0xdeadbeef, 512));
        assert!(parse("ember-bench v2 board=x clock=y arena_bytes=1\n").is_err(), "no done line");
    }

    #[test]
    fn tells_overflow_from_other_build_errors() {
        let overflow = anyhow::anyhow!(
            "cargo build failed:\n  = note: rust-lld: error: section '.rodata' will not fit in region 'FLASH': \
             overflowed by 110440 bytes\n          rust-lld: error: section '.data' will not fit in region 'FLASH'\n\
             rust-lld: error: section '.data' will not fit in region 'FLASH': overflowed by 110452 bytes"
        );
        assert_eq!(
            build_error(&QEMU_M55, overflow).unwrap(),
            Misfit {
                why: "section '.rodata' will not fit in region 'FLASH': overflowed by 110440 bytes".into(),
                flash_overflow: Some(110_452),
            }
        );
        let ram = anyhow::anyhow!(
            "rust-lld: error: section '.bss' will not fit in region 'RAM': overflowed by 8 bytes"
        );
        assert_eq!(build_error(&QEMU_M55, ram).unwrap().flash_overflow, None);
        assert!(build_error(&QEMU_M55, anyhow::anyhow!("error[E0425]: cannot find value")).is_err());
    }

    #[test]
    fn joins_crcs_of_consecutive_chunks() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
        for (split, tail) in [(0, 1000), (1, 999), (400, 600), (999, 1), (1000, 0)] {
            let (a, b) = bytes.split_at(split);
            assert_eq!(tail, b.len());
            let joined = crc32_concat(ember::CRC32.checksum(a), ember::CRC32.checksum(b), b.len());
            assert_eq!(joined, ember::CRC32.checksum(&bytes), "split at {split}");
        }
    }

    #[test]
    fn reads_memory_x_lengths() {
        let m4 = "MEMORY\n{\n  FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n  RAM   : ORIGIN = 0x20000000, LENGTH = 4M\n}\n";
        assert_eq!(memory_regions(m4).unwrap(), (4 << 20, 4 << 20));
        let other = "MEMORY {\n FLASH (rx) : ORIGIN = 0x10000000, LENGTH = 512K\n             RAM (rwx): ORIGIN = 0x30000000, LENGTH = 0x00020000\n DTCM : ORIGIN = 0, LENGTH = 1K\n}";
        assert_eq!(memory_regions(other).unwrap(), (512 << 10, 0x20000));
        assert!(memory_regions("MEMORY { RAM : ORIGIN = 0, LENGTH = 4K }").is_err(), "no FLASH");
    }
}
