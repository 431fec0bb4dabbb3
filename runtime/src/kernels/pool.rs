//! pool kernels (in progress).
