"""The test-inference console: tensors in, a server-side Triton call, results out."""
