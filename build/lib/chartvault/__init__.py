"""ChartVault: scan, OCR, classify, index and archive paper medical records."""

__version__ = "0.1.0"
