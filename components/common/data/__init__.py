"""The data: listing inputs, reading images, manifests and their diffs, the TFRecord schema."""
