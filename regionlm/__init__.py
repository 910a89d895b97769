"""regionlm: object- and region-level video understanding with multimodal language models."""

__version__ = "0.1.0"
