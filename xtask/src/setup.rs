//! Installing what the board crates need: rustup targets, QEMU (system mode for the Cortex-M
//! boards, user mode for aarch64 Linux), defmt-print (decodes the QEMU boards' output) and the
//! aarch64 cross linker.

use std::process::Command;

use anyhow::{bail, Result};

use crate::run_checked;

/// Every target a crate under `targets/` builds for.
const TARGETS: &[&str] = &["thumbv7em-none-eabihf", "thumbv8m.main-none-eabihf", "aarch64-unknown-linux-gnu"];

/// A command that must run, and the Debian/Ubuntu package that installs it.
struct Tool {
    command: &'static str,
    package: &'static str,
    /// How to get it elsewhere, if there is a way.
    elsewhere: Option<&'static str>,
}

const QEMU_SYSTEM_ARM: Tool = Tool {
    command: "qemu-system-arm",
    package: "qemu-system-arm",
    elsewhere: Some("on macOS: brew install qemu"),
};
const QEMU_AARCH64: Tool =
    Tool { command: "qemu-aarch64-static", package: "qemu-user-static", elsewhere: None };
const AARCH64_GCC: Tool =
    Tool { command: "aarch64-linux-gnu-gcc", package: "gcc-aarch64-linux-gnu", elsewhere: None };

/// `cargo xtask setup`: every rustup target and tool the board crates need, so that each of them
/// builds and the emulated ones run.
pub fn all() -> Result<()> {
    for target in TARGETS {
        rustup_target(target)?;
    }
    apt_tools(&[QEMU_SYSTEM_ARM, QEMU_AARCH64, AARCH64_GCC])?;
    defmt_print()
}

/// The defmt-print the QEMU boards' runner (`targets/qemu-run`) decodes their output with.
const DEFMT_PRINT_VERSION: &str = "1.2.0";

/// Adds a rustup target (a no-op when present).
pub fn rustup_target(target: &str) -> Result<()> {
    run_checked(Command::new("rustup").args(["target", "add", target]))?;
    Ok(())
}

/// Makes sure the QEMU boards run: `qemu-system-arm` (installed with apt-get when running as
/// root on Debian/Ubuntu, otherwise says how) and defmt-print.
pub fn qemu_boards() -> Result<()> {
    apt_tools(&[QEMU_SYSTEM_ARM])?;
    defmt_print()
}

/// Installs defmt-print with `cargo install` unless this version of it runs.
fn defmt_print() -> Result<()> {
    let runs = Command::new("defmt-print").arg("--version").output().is_ok_and(|o| {
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains(DEFMT_PRINT_VERSION)
    });
    if !runs {
        eprintln!("installing defmt-print {DEFMT_PRINT_VERSION} with cargo install ...");
        run_checked(Command::new("cargo").args([
            "install",
            "--locked",
            "--quiet",
            "defmt-print",
            "--version",
            DEFMT_PRINT_VERSION,
        ]))?;
    }
    Ok(())
}

/// Makes sure every tool's command runs: installs the missing ones' packages with apt-get when
/// running as root on Debian/Ubuntu, otherwise says how.
fn apt_tools(tools: &[Tool]) -> Result<()> {
    let missing: Vec<&Tool> = tools
        .iter()
        .filter(|t| !Command::new(t.command).arg("--version").output().is_ok_and(|o| o.status.success()))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|t| t.package).collect();
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !(is_root && has_apt) {
        let commands: Vec<&str> = missing.iter().map(|t| t.command).collect();
        let elsewhere: String =
            missing.iter().filter_map(|t| t.elsewhere).map(|e| format!("; {e}")).collect();
        bail!(
            "not installed: {}. On Debian/Ubuntu: sudo apt-get install -y {}{elsewhere}; then run this again",
            commands.join(", "),
            packages.join(" ")
        );
    }
    eprintln!("installing {} with apt-get ...", packages.join(" "));
    run_checked(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq"])
            .args(&packages)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}
