//! The report format, on the host, with the committed digits model and a fake clock.

use ember::AlignedBytes;
use ember_bench::{Bench, Clock, Error, Lines};

/// Advances by 10 ticks per reading.
struct FakeClock(u64);

impl Clock for FakeClock {
    const UNIT: &'static str = "instructions";

    fn now(&mut self) -> u64 {
        self.0 += 10;
        self.0
    }
}

fn digits() -> (AlignedBytes, AlignedBytes) {
    let model = AlignedBytes::new(include_bytes!("../../models/digits_int8.ember"));
    let inputs = AlignedBytes::new(include_bytes!("../../models/digits_inputs.bin"));
    (model, inputs)
}

fn run(inputs: &[u8], layer_slots: usize) -> Result<String, Error> {
    let (model, _) = digits();
    let mut arena = ember::Aligned([0u8; 2048]);
    let mut layer_ticks = vec![0; layer_slots];
    let bench =
        Bench { board: "test", model: &model, arena: &mut arena.0, inputs, layer_ticks: &mut layer_ticks };
    let mut out = String::new();
    ember_bench::run::<ember::AllKernels, _>(bench, &mut FakeClock(0), &mut Lines(&mut out), None)?;
    Ok(out)
}

#[test]
fn report_has_a_header_one_line_per_sample_and_op_a_summary_and_done() {
    let (_, inputs) = digits();
    let report = run(&inputs[..3 * 64], 6).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines[0], "ember-bench v2 board=test clock=instructions arena_bytes=1056 ops=6");
    // 10 ticks per reading: the inference's end is 13 readings after its start (two per op, one at the end).
    assert_eq!(lines[1], "sample index=0 argmax=2 output_crc32=0x0354d709 ticks=130");
    assert!(lines[2].starts_with("sample index=1 argmax=0 output_crc32=0x82c83e4d ticks="));
    assert!(lines[3].starts_with("sample index=2 argmax=4 "));
    assert_eq!(lines[4], "layer index=0 kind=conv2d ticks_total=30");
    assert_eq!(lines[9], "layer index=5 kind=fully_connected ticks_total=30");
    assert!(lines[10].starts_with("summary samples=3 ticks_total=390 output_crc32=0x"));
    assert!(lines[10].ends_with(" stack_bytes=0"));
    assert_eq!(lines[11..], ["done"]);
}

#[test]
fn partial_samples_and_missing_layer_slots_are_errors() {
    let (_, inputs) = digits();
    assert!(matches!(
        run(&inputs[..100], 6),
        Err(Error::PartialSample { sample_bytes: 64, batch_bytes: 100 })
    ));
    assert!(matches!(run(&[], 6), Err(Error::PartialSample { .. })));
    assert!(matches!(run(&inputs, 5), Err(Error::TooFewLayerSlots { ops: 6 })));
}

#[test]
fn the_whole_batch_gives_the_crc_the_qemu_board_reports() {
    let (_, inputs) = digits();
    let report = run(&inputs, 6).unwrap();
    let summary = report.lines().find(|l| l.starts_with("summary ")).unwrap();
    assert!(summary.starts_with("summary samples=32 ticks_total=4160 output_crc32=0xcc39630f "), "{summary}");
}
