//! Installing what the emulated boards need: the rustup target and QEMU.

use std::process::Command;

use anyhow::{bail, Result};

use crate::run_checked;

/// Adds a rustup target (a no-op when present).
pub fn rustup_target(target: &str) -> Result<()> {
    run_checked(Command::new("rustup").args(["target", "add", target]))?;
    Ok(())
}

/// Makes sure `qemu-system-arm` runs; installs it with apt-get when running as root on
/// Debian/Ubuntu, otherwise says how.
pub fn qemu_system_arm() -> Result<()> {
    if Command::new("qemu-system-arm").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return Ok(());
    }
    let is_root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
    let has_apt = Command::new("apt-get").arg("--version").output().is_ok();
    if !(is_root && has_apt) {
        bail!(
            "qemu-system-arm is not installed. On Debian/Ubuntu: sudo apt-get install -y qemu-system-arm; \
             on macOS: brew install qemu; then run this again"
        );
    }
    eprintln!("installing qemu-system-arm with apt-get ...");
    run_checked(Command::new("apt-get").arg("update").arg("-qq"))?;
    run_checked(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "qemu-system-arm"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    Ok(())
}
