//! Ember: a `no_std` neural-network runtime.
#![cfg_attr(not(any(test, feature = "std")), no_std)]
