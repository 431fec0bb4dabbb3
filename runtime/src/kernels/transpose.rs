//! transpose kernels (in progress).
