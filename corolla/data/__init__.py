"""Data stage: sources → Beam `prepare` → TFRecord shards + manifest → tf.data `load`."""
