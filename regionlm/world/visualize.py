"""Pictures of a video's ground truth: masks tinted and outlined, boxes and ids drawn, frames enlarged."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import cv2
import numpy as np

from ..data.io import atomic_write_text
from ..regions import rle_to_mask

# One distinct outline colour per object id (RGB).
PALETTE = [(255, 80, 80), (80, 255, 120), (90, 140, 255), (255, 230, 60), (230, 90, 255), (255, 160, 40),
           (60, 240, 240), (250, 250, 250)]


def draw_ground_truth(frames: np.ndarray, gt: dict, scale: int = 4) -> np.ndarray:
    """(T, H, W, 3) frames -> (T, H*scale, W*scale, 3) with every object's visible mask outlined and its amodal box
    drawn (outlines only: a tint would change the colours the questions are about)."""
    T, H, W, _ = frames.shape
    out = np.repeat(np.repeat(frames, scale, 1), scale, 2).copy()
    for o in gt["objects"]:
        colour = PALETTE[(o["id"] - 1) % len(PALETTE)]
        for t in range(T):
            fr = o["frames"][t]
            img = out[t]
            if fr["segmentation"] is not None:
                m = rle_to_mask(fr["segmentation"]).astype(np.uint8)
                big = cv2.resize(m, (W * scale, H * scale), interpolation=cv2.INTER_NEAREST)
                contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
                cv2.drawContours(img, contours, -1, colour, 2)
            if fr["box"] is not None:
                x1, y1, x2, y2 = (v * scale for v in fr["box"])
                cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), colour, 1, cv2.LINE_4)
                label = str(o["id"]) + ("" if fr["visibility"] > 0 else " hidden")
                cv2.putText(img, label, (x1 + 2, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, colour, 1,
                            cv2.LINE_AA)
    for t in range(T):
        cv2.putText(out[t], f"frame {t}", (4, H * scale - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out


def html_report(path, title: str, gif_path, gt: dict, questions: list[dict], captions: list[dict]) -> Path:
    """A self-contained page: the rendered ground truth (GIF inlined), objects, events, sample annotations."""
    gif = base64.b64encode(Path(gif_path).read_bytes()).decode()
    rows = "".join(
        f"<tr><td style='color:rgb{PALETTE[(o['id'] - 1) % len(PALETTE)]}'>{o['id']}</td><td>{o['size']} "
        f"{o['colour']} {o['shape']}</td><td>{'static' if o['static'] else 'moving'}"
        f"{', spins' if o['spin'] else ''}</td><td>{html.escape(o['expression'] or '-')}</td></tr>"
        for o in gt["objects"])
    events = "".join(f"<li>frame {e['frame']}: object {e['obj']} {e['kind']}"
                     f"{' ' + str(e.get('wall') or e.get('colour') or '') if e.get('wall') or e.get('colour') else ''}"
                     f"{' with/behind ' + str(e['other']) if 'other' in e else ''}</li>" for e in gt["events"])
    qs = "".join(f"<li><b>{html.escape(q['type'])}</b> (object {q['object_ids']}): {html.escape(q['Question'])}"
                 f"<br>{html.escape(' '.join(q['options']))}<br>answer: <b>{html.escape(q['Answer'])}</b>"
                 f"{' (look-alike ' + str(q['lookalike']['object_id']) + ': ' + html.escape(q['lookalike']['Answer']) + ')' if 'lookalike' in q else ''}"
                 f"</li>" for q in questions)
    caps = "".join(f"<li>object {c['object_ids'][0]}: {html.escape(c['caption'])}</li>" for c in captions)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto;background:#111;color:#ddd}}
td,th{{padding:2px 10px;text-align:left}} img{{image-rendering:pixelated;border:1px solid #444}}</style></head>
<body><h1>{html.escape(title)}</h1><img src="data:image/gif;base64,{gif}" width="512">
<h2>Objects</h2><table><tr><th>id</th><th>what</th><th>motion</th><th>referring expression</th></tr>{rows}</table>
<h2>Events</h2><ul>{events}</ul><h2>Region questions</h2><ol>{qs}</ol><h2>Descriptions</h2><ul>{caps}</ul>
</body></html>"""
    return atomic_write_text(path, page)
