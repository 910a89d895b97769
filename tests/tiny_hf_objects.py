"""Tiny random checkpoints of the real transformers classes the hf object backend loads, built offline and saved with
``save_pretrained`` (weights, config and processor/tokenizer files), the way a downloaded checkpoint folder looks.

Tokenizers are built from tiny vocabularies written here: a byte-level BPE vocabulary for OWLv2's CLIP tokenizer and
a WordPiece vocabulary for Grounding DINO's BERT tokenizer. Sizes follow the constraints in ENVIRONMENT.md
(Grounding DINO decoder_layers >= 2; SAM 2 video hidden size 256 and memory channels 64; a Hiera global-attention
block is never the first of a stage).
"""

from __future__ import annotations

import json
from pathlib import Path

WORDS = ["a", "photo", "of", "the", "cat", "dog", "car", "person", "ball", "bag", "red", "blue", "object"]


def _seed():
    import torch

    torch.manual_seed(0)


def build_owlv2(folder: Path, image_size: int = 64) -> Path:
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil, Owlv2Processor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Byte-level BPE: every byte symbol (alone and word-final), then merges that build each word of WORDS.
    alphabet = sorted(ByteLevel.alphabet())
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({ch + "</w>": len(alphabet) + i for i, ch in enumerate(alphabet)})
    merges = []
    for word in WORDS:
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            merge = f"{parts[0]} {parts[1]}"
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(merged, len(vocab))
            parts = [merged] + parts[2:]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                              model_max_length=16)

    _seed()
    config = Owlv2Config(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=image_size, patch_size=16),
        projection_dim=32)
    Owlv2ForObjectDetection(config).save_pretrained(folder)
    image_processor = Owlv2ImageProcessorPil(size={"height": image_size, "width": image_size})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_grounding_dino(folder: Path) -> Path:
    from transformers import (BertTokenizer, GroundingDinoConfig, GroundingDinoForObjectDetection,
                              GroundingDinoImageProcessorPil, GroundingDinoProcessor)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","] + WORDS + ["##s"]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(folder / "vocab.txt"))

    _seed()
    config = GroundingDinoConfig(
        backbone_config=dict(model_type="swin", image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                             num_heads=[1, 1, 1, 1], window_size=4, out_indices=[2, 3, 4]),
        text_config=dict(model_type="bert", vocab_size=len(tokens), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=64),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=12, num_feature_levels=4,
        encoder_n_points=2, decoder_n_points=2, max_text_len=32)
    GroundingDinoForObjectDetection(config).save_pretrained(folder)
    image_processor = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_sam(folder: Path) -> Path:
    from transformers import SamConfig, SamModel

    _seed()
    config = SamConfig(
        vision_config=dict(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=64, patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=16,
                           mlp_dim=64),
        prompt_encoder_config=dict(hidden_size=32, image_size=64, patch_size=8, mask_input_channels=4),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32))
    SamModel(config).save_pretrained(folder)
    return Path(folder)


def _sam2_parts(side: int = 64) -> dict:
    backbone = dict(model_type="sam2_hiera_det_model", hidden_size=16, num_attention_heads=1, image_size=[side, side],
                    blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[16, 32, 64, 128],
                    num_attention_heads_per_stage=[1, 1, 2, 2], window_size_per_stage=[4, 4, 4, 2],
                    global_attention_blocks=[3], window_positional_embedding_background_size=[2, 2])
    vision = dict(model_type="sam2_vision_model", backbone_config=backbone, backbone_channel_list=[128, 64, 32, 16],
                  backbone_feature_sizes=[[side // 4] * 2, [side // 8] * 2, [side // 16] * 2], fpn_hidden_size=256)
    return dict(vision_config=vision,
                prompt_encoder_config=dict(hidden_size=256, image_size=side, patch_size=16, mask_input_channels=4),
                mask_decoder_config=dict(hidden_size=256, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32))


def build_sam2(folder: Path) -> Path:
    from transformers import Sam2Config, Sam2Model

    _seed()
    Sam2Model(Sam2Config(**_sam2_parts())).save_pretrained(folder)
    return Path(folder)


def build_sam2_video(folder: Path, num_maskmem: int = 3, max_object_pointers: int = 4) -> Path:
    from transformers import Sam2VideoConfig, Sam2VideoModel

    _seed()
    side = 64
    config = Sam2VideoConfig(
        **_sam2_parts(side), image_size=side, num_maskmem=num_maskmem,
        max_object_pointers_in_encoder=max_object_pointers, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[side // 16, side // 16],
        mask_downsampler_embed_dim=256, memory_fuser_num_layers=1, memory_fuser_intermediate_dim=64)
    Sam2VideoModel(config).save_pretrained(folder)
    return Path(folder)


def _sam3_parts(side: int = 56) -> dict:
    vit = dict(model_type="sam3_vit_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, image_size=side, patch_size=14, window_size=2, global_attn_indexes=[1],
               pretrain_image_size=28)
    grid = side // 14
    vision = dict(model_type="sam3_vision_model", backbone_config=vit, fpn_hidden_size=256,
                  backbone_feature_sizes=[[4 * grid] * 2, [2 * grid] * 2, [grid] * 2])
    return dict(vision_config=vision,
                prompt_encoder_config=dict(hidden_size=256, image_size=side, patch_size=14, mask_input_channels=4),
                mask_decoder_config=dict(hidden_size=256, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32))


def build_sam3_tracker(folder: Path) -> Path:
    """SAM 3's tracker for images (a ViT backbone, patch 14)."""
    from transformers import Sam3TrackerConfig, Sam3TrackerModel

    _seed()
    Sam3TrackerModel(Sam3TrackerConfig(**_sam3_parts())).save_pretrained(folder)
    return Path(folder)


def build_sam3_tracker_video(folder: Path, num_maskmem: int = 3, max_object_pointers: int = 4) -> Path:
    """SAM 3's video tracker: the same video API as SAM 2's."""
    from transformers import Sam3TrackerVideoConfig, Sam3TrackerVideoModel

    _seed()
    side = 56
    config = Sam3TrackerVideoConfig(
        **_sam3_parts(side), image_size=side, num_maskmem=num_maskmem,
        max_object_pointers_in_encoder=max_object_pointers, memory_attention_num_layers=1,
        memory_attention_feed_forward_hidden_size=64, memory_attention_rope_feat_sizes=[side // 14, side // 14],
        mask_downsampler_embed_dim=256, memory_fuser_num_layers=1, memory_fuser_intermediate_dim=64)
    Sam3TrackerVideoModel(config).save_pretrained(folder)
    return Path(folder)
