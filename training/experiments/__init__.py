"""Experiments of the papers beyond the main reconstruction tables (MRAA's toy experiment, co-part segmentation), and
the ablation / region-count variants of the models (``variants.yaml``, ``variants.py``)."""
