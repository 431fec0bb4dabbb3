//! mean kernels (in progress).
