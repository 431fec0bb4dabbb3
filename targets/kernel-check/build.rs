//! Links the memory map of the target's QEMU board (`memory-m4.x` for Armv7E-M, `memory-m55.x`
//! for Armv8-M Mainline) as `memory.x`, and the empty `device.x`; sets `helium` on the M55.

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
    // The M55 build (target-cpu=cortex-m55, see .cargo/config.toml) has ember's Helium kernels
    // unless EMBER_NO_HELIUM or EMBER_NO_DSP turns them off (runtime/build.rs): check them too.
    println!("cargo::rustc-check-cfg=cfg(helium)");
    println!("cargo::rerun-if-env-changed=EMBER_NO_HELIUM");
    println!("cargo::rerun-if-env-changed=EMBER_NO_DSP");
    let helium_off =
        std::env::var_os("EMBER_NO_HELIUM").is_some() || std::env::var_os("EMBER_NO_DSP").is_some();
    if target.starts_with("thumbv8m.main") && !helium_off {
        println!("cargo::rustc-cfg=helium");
    }
}
