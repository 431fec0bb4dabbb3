//! pad kernels (in progress).
