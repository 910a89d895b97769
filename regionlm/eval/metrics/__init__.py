"""Metrics that match their official toolkits (see METRICS.md); one small module per family.

* :mod:`.tracking` - SOT success AUC / precision / normalised precision (pytracking, LaSOT protocol)
* :mod:`.boxes` - xyxy box IoU and REC Acc@0.5
* :mod:`.captions` - BLEU, METEOR, ROUGE-L, CIDEr-D via pycocoevalcap (+ :mod:`.ptb_tokenize`)
* :mod:`.multiple_choice` - VideoRefer-Bench-Q prompt and accuracy
* :mod:`.judge` - VideoRefer-Bench-D judge protocol, prompt, parsing and aggregation
* :mod:`.vos` - DAVIS J, F, J&F (davis2017-evaluation)
"""

from .boxes import box_iou_xyxy, rec_accuracy
from .captions import evaluate_captions, spice_available, tokenize_captions
from .judge import (
    DIMENSIONS,
    HFCausalLMJudge,
    Judge,
    OpenAICompatibleJudge,
    aggregate_judge_scores,
    build_judge_messages,
    evaluate_descriptions,
    parse_judge_reply,
)
from .multiple_choice import (
    QUESTION_TYPES,
    build_mc_prompt,
    count_multiple_choice,
    extract_choice,
    extract_choice_lenient,
    gt_letter,
    score_multiple_choice,
)
from .ptb_tokenize import ptb_tokenize_text
from .tracking import evaluate_sequences, iou_xywh, sequence_curves, sequence_errors
from .vos import (
    boundary_f,
    db_statistics,
    evaluate_semisupervised,
    evaluate_vos_sequences,
    jaccard,
    masks_from_label_maps,
)

__all__ = [
    "box_iou_xyxy",
    "rec_accuracy",
    "evaluate_captions",
    "tokenize_captions",
    "spice_available",
    "ptb_tokenize_text",
    "DIMENSIONS",
    "Judge",
    "OpenAICompatibleJudge",
    "HFCausalLMJudge",
    "build_judge_messages",
    "parse_judge_reply",
    "aggregate_judge_scores",
    "evaluate_descriptions",
    "QUESTION_TYPES",
    "build_mc_prompt",
    "gt_letter",
    "extract_choice",
    "extract_choice_lenient",
    "count_multiple_choice",
    "score_multiple_choice",
    "evaluate_sequences",
    "sequence_curves",
    "sequence_errors",
    "iou_xywh",
    "jaccard",
    "boundary_f",
    "db_statistics",
    "masks_from_label_maps",
    "evaluate_semisupervised",
    "evaluate_vos_sequences",
]
