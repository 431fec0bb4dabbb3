//! The device part of the vector table for boards that use no device interrupt: one entry (the
//! linker script needs at least one), cortex-m-rt's `DefaultHandler`.

extern "C" {
    /// cortex-m-rt's handler of unexpected exceptions and interrupts (`link.x` provides it).
    fn DefaultHandler();
}

/// IRQ 0 only; placed right after the core exceptions by cortex-m-rt's `link.x`.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];
