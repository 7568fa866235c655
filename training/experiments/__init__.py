"""Experiments of the papers beyond the main reconstruction tables (MRAA's toy experiment, co-part segmentation)."""
