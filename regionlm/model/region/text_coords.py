"""text_coords (Shikra / Elysium): the region is written into the prompt as ``[x1,y1,x2,y2]`` at its frame; the
processor does the writing (config.tokens_per_region is 0), so the encoder adds nothing."""

from .base import RegionEncoder, RegionEncoding, register_region_encoder


@register_region_encoder("text_coords")
class TextCoordsEncoder(RegionEncoder):
    def forward(self, features, regions, context):
        return RegionEncoding()
