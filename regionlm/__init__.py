"""regionlm: object- and region-level video understanding with multimodal language models.

    from regionlm import RegionLM
    m = RegionLM.load()                      # the shipped default model (or RegionLM.load("path/to/model"))
    m.ask("video.mp4", "What is <region> doing?", regions=["box:10,10,40,40@0"])
"""

__version__ = "0.1.0"


def __getattr__(name):
    # imported on first use, so `import regionlm` (and every CLI command) stays fast
    if name == "RegionLM":
        from .api import RegionLM

        return RegionLM
    raise AttributeError(f"module 'regionlm' has no attribute {name!r}")


__all__ = ["RegionLM", "__version__"]
