"""Scoring and animating trained models: the evaluation protocol, the animators, the no-motion baseline and the
sample grids."""
