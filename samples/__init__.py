"""Runnable samples: `python -m samples.order_saga`, `python -m samples.media_pipeline`."""
