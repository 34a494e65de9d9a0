"""Datasets: .npy/.npz/CSV uploads streamed into SQL blobs, with their arrays' names, shapes and dtypes."""
