"""Runnable samples, `python -m samples.NAME`: order_saga, media_pipeline, genomics, ops_deploy,
hourly_pipeline, polyglot (see samples/README.md)."""
