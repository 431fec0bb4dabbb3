//! softmax kernels (in progress).
