"""synthembed: synthetic training data, fine-tuning and evaluation of text-embedding models."""

__version__ = "0.1.0"
