//! Runs the benchmark on the host, to compare its output CRCs with a board's report:
//! `cargo run --release --example host -- <model.ember> <inputs.bin>`.
//!
//! Ticks are host nanoseconds (`clock=nanoseconds`), only good for the CRCs and argmaxes;
//! `stack_bytes` is 0 (not measured on the host).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, inputs] = args.as_slice() else {
        return Err("usage: host <model.ember> <inputs.bin>".into());
    };
    ember_bench::hosted::run_files("host", model.as_ref(), inputs.as_ref())
}
