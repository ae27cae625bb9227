"""audit: noisy-label auditing and dataset cleaning for image classification."""

__version__ = "0.1.0"
