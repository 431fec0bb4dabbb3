//! The QEMU boards' console: semihosting.

use core::fmt::{self, Write};

use cortex_m_semihosting::{debug, hio};

use super::Console;
use crate::Error;

/// Semihosting stdout; [`Console::exit`] ends QEMU with status 0, or 1 after printing the error
/// to semihosting stderr.
pub struct Semihosting(hio::HostStream);

impl Semihosting {
    /// Opens semihosting stdout; ends the program with a failure if the host refuses.
    pub fn stdout() -> Self {
        match hio::hstdout() {
            Ok(stream) => Self(stream),
            Err(()) => exit(debug::EXIT_FAILURE),
        }
    }
}

impl Write for Semihosting {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_str(s)
    }
}

impl Console for Semihosting {
    fn exit(&mut self, result: Result<(), Error>) -> ! {
        match result {
            Ok(()) => exit(debug::EXIT_SUCCESS),
            Err(e) => {
                if let Ok(mut stderr) = hio::hstderr() {
                    // Nothing more can be done if this fails: the exit status still tells.
                    let _ = writeln!(stderr, "benchmark failed: {e}");
                }
                exit(debug::EXIT_FAILURE)
            }
        }
    }
}

/// Ends the semihosting session (QEMU exits with `status`); waits if the host carries on.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}
