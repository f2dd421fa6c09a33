"""Loopback HF-compatible hub for ticketzoo's tests: olah (downloads) + a test upload server."""
