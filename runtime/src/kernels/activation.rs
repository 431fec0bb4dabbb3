//! activation kernels (in progress).
