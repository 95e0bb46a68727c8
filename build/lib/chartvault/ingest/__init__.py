"""Batch intake (CLI, API, hot folder), file sniffing and limits, and the pipeline."""
