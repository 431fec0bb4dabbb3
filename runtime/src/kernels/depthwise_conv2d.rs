//! depthwise_conv2d kernels (in progress).
