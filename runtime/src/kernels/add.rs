//! add kernels (in progress).
