"""Runnable demonstrations: ``python -m diffcheck.demos.digits`` trains a small DDPM on the digits."""
