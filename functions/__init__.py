"""Cutor function entry points: each takes an HTTP request or an S3 event record."""
