"""A tiny RegionLM trained briefly on RegionWorld SOT generates box text that parses back into one box per frame."""

import itertools

import torch

from regionlm.model import RegionLMConfig, RegionLMForConditionalGeneration
from regionlm.model.processing import RegionLMProcessor
from regionlm.model.tokenizer import train_tokenizer, world_corpus
from regionlm.model.world_examples import WorldTaskStream
from regionlm.regions import parse_frame_boxes

VISION = {"model_type": "siglip_vision_model", "vision_use_head": False, "image_size": 32, "patch_size": 8,
          "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


def test_trained_tiny_model_generates_parseable_sot_boxes():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same float sums on every machine, so the same brief training and answers
    try:
        train_and_track()
    finally:
        torch.set_num_threads(threads)


def train_and_track():
    torch.manual_seed(0)
    tokenizer = train_tokenizer(world_corpus(2), vocab_size=512)
    text = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
            "tie_word_embeddings": True}
    cfg = RegionLMConfig(region_encoder="token_mark", vision_config=dict(VISION), text_config=text, num_frames=4)
    model = RegionLMForConditionalGeneration(cfg)
    processor = RegionLMProcessor(tokenizer, cfg)
    stream = WorldTaskStream(split="train", seed=0, task_weights={"sot": 1}, num_frames=4)
    examples = list(itertools.islice(iter(stream), 66))
    train, held_out = examples[:64], examples[64:]
    batches = [processor(train[i:i + 8], train=True) for i in range(0, 64, 8)]

    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for step in range(320):  # the prompt carries the first box too (Elysium): a little longer to settle
        loss = model(**batches[step % len(batches)]).loss
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first  # it learned something, not only sampled noise

    model.eval()
    for example in held_out:
        batch = processor([example], train=False)
        new = model.generate(**batch, max_new_tokens=80, do_sample=False)
        boxes, bad = parse_frame_boxes(processor.decode(new[0]))
        # a box line for every frame of the clip, numbered within the clip (a briefly trained model may run on
        # past the last frame without its end token; the tracker reads only the clip's frames)
        assert set(range(4)) <= set(boxes), (boxes, bad)
        assert all(0 <= v < 100 for box in boxes.values() for v in box)
