"""token_mark (Omni-RGPT): learnable Token Marks tie a region in the video to its `<region>` token in the text.

* N_F marks r_1..r_N (vectors in vision-feature space). Region i of a sample is assigned a mark: a random draw
  without replacement from the N_F in training (so no mark becomes "the first region"), mark i at inference.
* Per frame, a spatial mark map from the GIVEN masks at grid resolution (area-averaged coverage m):
  S_hw = sum_i m_i,hw r_i / (eps + sum_i m_i,hw). It goes through the connector's reduction and projector
  (``project_residual``: exactly zero on tokens that no mask touches) and is added to the context tokens.
* The `<region>` placeholder is replaced by the projected mark itself (``connector.project(r_i)``): one token per
  region whatever the number of frames, so the text length never depends on T.
* Temporal Region Guide Head (training only, ``config.guide_head``): a linear classifier over the LM's last hidden
  states at the context-token positions, N_F + 1 classes (marks + background). Its targets come from the masks of
  ALL frames, so a region marked on the first frame only is still followed through the clip (marks.guide_targets).

The arithmetic lives in marks.py, shared with mask_pool's ``config.region_marks``.
"""

from __future__ import annotations

from .base import RegionEncoder, RegionEncoding, register_region_encoder
from .common import check_resolution, empty_embeds, region_slots
from .marks import assign_marks, guide_loss, mark_regions, new_marks


@register_region_encoder("token_mark")
class TokenMarkEncoder(RegionEncoder):
    def __init__(self, config, connector):
        super().__init__(config, connector)
        self.marks, self.guide_head = new_marks(config)

    def assign_marks(self, batch: int, slots: int, device):
        """(B, R) mark index per region slot (marks.assign_marks)."""
        return assign_marks(self.config.num_marks, batch, slots, device, self.training)

    def forward(self, features, regions, context):
        if regions.masks is None:
            return RegionEncoding(region_embeds=empty_embeds(features.shape[0], context.tokens.shape[-1],
                                                             context.tokens))
        check_resolution(regions, self.config.image_size)
        projected, residual, aux = mark_regions(self, features, regions, context)  # projected: (B, R, D)
        embeds = [projected[i, slots] for i, slots in enumerate(region_slots(regions))]
        return RegionEncoding(residual=residual, region_embeds=embeds, aux=aux)

    def aux_loss(self, encoding, context_hidden):
        return guide_loss(self.guide_head, encoding, context_hidden)
