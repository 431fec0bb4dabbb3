//! concat kernels (in progress).
