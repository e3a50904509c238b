"""Errors, typed specs, files, weights, machine info and determinism: the torch-free base."""
