//! Chooses the hand-written kernels for the target at compile time (no run-time detection on
//! `no_std`; Arm's target features are not visible to `cfg` on stable Rust, so this reads the
//! target and the flags): `ember_arm_dsp` on Cortex-M cores with the DSP extension:
//!
//! - Armv7E-M (`thumbv7em-*`: M4, M7) always has it;
//! - on Armv8-M Mainline (`thumbv8m.main-*`: M33, M55, M85) it is optional, so it is used when
//!   the flags say the core has it: `-C target-feature=+dsp`, or `-C target-cpu=` one of
//!   cortex-m33, cortex-m35p, cortex-m55, cortex-m85.
//!
//! `EMBER_NO_DSP=1` turns it off (to measure the reference kernels on a board).
//!
//! `ember_helium` (with `ember_arm_dsp`) on Armv8-M Mainline cores with Helium (MVE), optional
//! there too: `-C target-feature=+mve` (or `+mve.fp`), or `-C target-cpu=` cortex-m55 or
//! cortex-m85, unless `-C target-feature=-mve` takes it away. `EMBER_NO_HELIUM=1` turns it off
//! (to measure the DSP kernels on the M55).
//!
//! `ember_neon` on aarch64 targets with Advanced SIMD (all of Rust's aarch64 targets but the
//! soft-float ones); `EMBER_NO_NEON=1` turns it off.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ember_arm_dsp)");
    println!("cargo::rerun-if-env-changed=EMBER_NO_DSP");
    let target = std::env::var("TARGET").unwrap_or_default();
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split('\x1f').collect();
    let flag_says = |prefix: &str, accept: &dyn Fn(&str) -> bool| {
        flags.iter().enumerate().any(|(i, f)| {
            let value = if *f == "-C" {
                flags.get(i + 1).copied().unwrap_or("")
            } else {
                f.strip_prefix("-C").unwrap_or(f)
            };
            value.strip_prefix(prefix).is_some_and(accept)
        })
    };
    let dsp_feature = flag_says("target-feature=", &|v| v.split(',').any(|f| f == "+dsp"));
    let dsp_cpu = flag_says("target-cpu=", &|v| {
        matches!(v, "cortex-m33" | "cortex-m35p" | "cortex-m55" | "cortex-m85")
    });
    let has_dsp =
        target.starts_with("thumbv7em") || (target.starts_with("thumbv8m.main") && (dsp_feature || dsp_cpu));
    let dsp = has_dsp && std::env::var_os("EMBER_NO_DSP").is_none();
    if dsp {
        println!("cargo::rustc-cfg=ember_arm_dsp");
    }

    println!("cargo::rustc-check-cfg=cfg(ember_helium)");
    println!("cargo::rerun-if-env-changed=EMBER_NO_HELIUM");
    let mve_feature = flag_says("target-feature=", &|v| v.split(',').any(|f| f == "+mve" || f == "+mve.fp"));
    let mve_cpu = flag_says("target-cpu=", &|v| matches!(v, "cortex-m55" | "cortex-m85"));
    let no_mve = flag_says("target-feature=", &|v| v.split(',').any(|f| f == "-mve"));
    let has_mve = target.starts_with("thumbv8m.main") && (mve_feature || mve_cpu) && !no_mve;
    if dsp && has_mve && std::env::var_os("EMBER_NO_HELIUM").is_none() {
        println!("cargo::rustc-cfg=ember_helium");
    }

    println!("cargo::rustc-check-cfg=cfg(ember_neon)");
    println!("cargo::rerun-if-env-changed=EMBER_NO_NEON");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has_neon = arch == "aarch64" && features.split(',').any(|f| f == "neon");
    if has_neon && std::env::var_os("EMBER_NO_NEON").is_none() {
        println!("cargo::rustc-cfg=ember_neon");
    }
}
