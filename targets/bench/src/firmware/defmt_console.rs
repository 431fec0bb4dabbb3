//! The real boards' console: defmt over RTT, read by `probe-rs run`.

use core::fmt::{self, Write};

use cortex_m_semihosting::debug;

use super::Console;
use crate::Error;

/// Longest line sent as one defmt message; a longer line is split (no report line comes close).
const LINE_BYTES: usize = 128;

/// Sends every report line as one `defmt::println!("{=str}", line)`. [`Console::exit`] ends a
/// complete report with a semihosting exit (`probe-rs run` exits with status 0), and a failure
/// with `defmt::error!` and a HardFault (`udf`), which `probe-rs run` reports with a backtrace
/// and a non-zero status.
#[derive(Default)]
pub struct Defmt {
    line: heapless::String<LINE_BYTES>,
}

impl Defmt {
    /// A console with an empty line buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends the buffered (partial) line, if any.
    fn flush(&mut self) {
        if !self.line.is_empty() {
            defmt::println!("{=str}", self.line.as_str());
            self.line.clear();
        }
    }

    /// Appends `text` (holding no newline) to the line, sending the line first when it is full.
    fn push(&mut self, text: &str) {
        if self.line.push_str(text).is_err() {
            self.flush();
            if self.line.push_str(text).is_err() {
                defmt::println!("{=str}", text);
            }
        }
    }
}

impl Write for Defmt {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for piece in s.split_inclusive('\n') {
            match piece.strip_suffix('\n') {
                Some(end) => {
                    self.push(end);
                    if self.line.is_empty() {
                        defmt::println!(""); // An empty line is still a line.
                    } else {
                        self.flush();
                    }
                }
                None => self.push(piece),
            }
        }
        Ok(())
    }
}

impl Console for Defmt {
    fn exit(&mut self, result: Result<(), Error>) -> ! {
        self.flush();
        match result {
            Ok(()) => {
                debug::exit(debug::EXIT_SUCCESS);
                loop {
                    cortex_m::asm::wfi();
                }
            }
            Err(e) => {
                defmt::error!("benchmark failed: {}", defmt::Display2Format(&e));
                cortex_m::asm::udf()
            }
        }
    }
}
