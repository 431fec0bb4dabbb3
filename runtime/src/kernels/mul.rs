//! mul kernels (in progress).
