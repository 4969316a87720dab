"""Triton kernels. Imported lazily: the core package must work without triton installed."""
