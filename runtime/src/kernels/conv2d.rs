//! conv2d kernels (in progress).
