//! Panics as errors. tract asserts on some malformed models (a zero stride divides by zero, an
//! out-of-range Flatten axis slices out of bounds); [`catch`] turns such a panic into an error
//! that names the failing step, and [`install_hook`] makes any other panic one error paragraph
//! instead of a backtrace.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};

use anyhow::{anyhow, Result};

thread_local! {
    /// How many [`catch`] calls are active on this thread: their panics become errors.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
    /// The message and place of the last panic [`catch`] caught on this thread.
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn describe(info: &PanicHookInfo<'_>) -> String {
    let message = info.payload_as_str().unwrap_or("no message");
    match info.location() {
        Some(at) => format!("{message} (at {}:{})", at.file(), at.line()),
        None => message.to_string(),
    }
}

/// Installs the process's panic hook: inside [`catch`] a panic is only recorded for the error;
/// elsewhere it prints one `error: internal error: …` paragraph (and the backtrace if
/// `RUST_BACKTRACE` asks for it).
pub fn install_hook() {
    panic::set_hook(Box::new(|info| {
        if CATCHING.get() > 0 {
            CAUGHT.set(Some(describe(info)));
            return;
        }
        eprintln!(
            "error: internal error: {}. This is a bug in ember-quantize: please report it with the \
             command line and the input files",
            describe(info)
        );
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            eprintln!("{backtrace}");
        }
    }));
}

/// Runs `f`, returning a panic inside it as an error that carries the panic's message.
pub fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    CATCHING.set(CATCHING.get() + 1);
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    CATCHING.set(CATCHING.get() - 1);
    result.unwrap_or_else(|payload| {
        // The hook's record has the place too; without the hook, the payload has the message.
        let what = CAUGHT.take().unwrap_or_else(|| {
            let message = payload.downcast_ref::<&str>().copied();
            message
                .or(payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("no message")
                .to_string()
        });
        Err(anyhow!("it crashed: {what}"))
    })
}

#[cfg(test)]
mod tests {
    use super::catch;

    #[test]
    fn a_panic_becomes_an_error_with_its_message() {
        // Without the hook (installed by the binary only, see tests/hostile.rs), so the message
        // comes from the payload; the default hook prints it into the test's captured output.
        let error = catch::<()>(|| panic!("attempt to divide by zero")).unwrap_err();
        assert_eq!(error.to_string(), "it crashed: attempt to divide by zero");
        let error = catch::<()>(|| panic!("index {} out of range", 9)).unwrap_err();
        assert_eq!(error.to_string(), "it crashed: index 9 out of range");
        assert_eq!(catch(|| Ok(7)).unwrap(), 7);
    }
}
