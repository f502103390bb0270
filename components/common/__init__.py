"""What several steps share: config, the TFRecord schema, storage and tracking helpers."""
