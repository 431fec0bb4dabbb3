//! Links the memory map of the target's QEMU board (`memory-m4.x` for Armv7E-M, `memory-m55.x`
//! for Armv8-M Mainline) as `memory.x`, and the empty `device.x`.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let memory = if target.starts_with("thumbv8m") { "memory-m55.x" } else { "memory-m4.x" };
    std::fs::copy(memory, out.join("memory.x")).expect("copy the memory map");
    std::fs::copy("device.x", out.join("device.x")).expect("copy device.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={memory}");
    println!("cargo:rerun-if-changed=device.x");
}
