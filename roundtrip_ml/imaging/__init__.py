"""Images as tensors: file I/O, resampling kernels, handoff codecs, schedules, perturbations,
the test chart."""
