"""A fit as chunked map/reduce steps: survey, sparse-point passes and weighted R factors per
chunk, the design rows they come from, the noise model, parallel backends and memory."""
