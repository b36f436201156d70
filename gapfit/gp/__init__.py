"""The Gaussian-process layer: covariance functions between environments and sparse points, the
choice of sparse points, and the linear algebra (R factors, prior, solve) of the sparse GP."""
