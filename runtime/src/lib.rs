//! Ember: a `no_std` neural-network runtime for microcontrollers.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(missing_docs)]

pub mod kernels;
pub mod quant;
