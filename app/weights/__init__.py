"""Uploaded `.weights.h5` files that jobs start from."""
