//! fully_connected kernels (in progress).
