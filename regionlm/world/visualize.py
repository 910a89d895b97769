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


# ---------------------------------------------------------------------------------------------------- demo

TRUTH_COLOUR = (80, 255, 120)  # ground-truth box of the tracked object (RGB)
MODEL_COLOUR = (255, 70, 220)  # the model's box


def enlarge(frames: np.ndarray, scale: int = 4) -> np.ndarray:
    """Nearest-neighbour enlargement of (T, H, W, 3) frames (64x64 frames are too small to draw text on)."""
    return np.repeat(np.repeat(frames, scale, 1), scale, 2).copy()


def draw_found_objects(frames: np.ndarray, objects: list, scale: int = 4) -> np.ndarray:
    """The objects a pipeline found (regionlm.objects ObjectTrack list: tinted masks, outlines, ``id label``),
    drawn with regionlm.objects.io.draw_objects on enlarged frames."""
    from ..objects.base import ObjectTrack
    from ..objects.io import draw_objects

    T, H, W, _ = frames.shape
    big = enlarge(frames, scale)
    for t in range(T):
        seen = [ObjectTrack(o.id, o.label, o.score,
                            {t: cv2.resize(np.asarray(o.masks[t], np.uint8), (W * scale, H * scale),
                                           interpolation=cv2.INTER_NEAREST).astype(bool)})
                for o in objects if t in o.masks]
        big[t] = draw_objects(big[t], t, seen)
    return big


def _scaled_box(box, scale: int):
    return tuple(int(round(v * scale)) for v in box)


def draw_track(frames: np.ndarray, truth: list, predicted: list, ious: list, scale: int = 4) -> np.ndarray:
    """A tracked object: per frame its ground-truth box and the model's box (xyxy pixels or None each) and their
    IoU (or None where it is not scored)."""
    T, H, W, _ = frames.shape
    out = enlarge(frames, scale)
    for t in range(T):
        img = out[t]
        for box, colour in ((truth[t], TRUTH_COLOUR), (predicted[t], MODEL_COLOUR)):
            if box is not None:
                x1, y1, x2, y2 = _scaled_box(box, scale)
                cv2.rectangle(img, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 2, cv2.LINE_4)
        note = "" if ious[t] is None else ("no box: IoU 0" if predicted[t] is None else f"IoU {ious[t]:.2f}")
        cv2.putText(img, note, (4, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4, MODEL_COLOUR, 1, cv2.LINE_AA)
        cv2.putText(img, "truth", (4, H * scale - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.35, TRUTH_COLOUR, 1, cv2.LINE_AA)
        cv2.putText(img, "model", (48, H * scale - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.35, MODEL_COLOUR, 1, cv2.LINE_AA)
    return out


def side_by_side(panels: list[tuple[str, np.ndarray]], gap: int = 6, header: int = 18) -> np.ndarray:
    """Panels (title, (T, H, W, 3) frames of one size) next to each other, each under its title."""
    T, H, W, _ = panels[0][1].shape
    out = np.full((T, header + H, len(panels) * (W + gap) - gap, 3), 24, np.uint8)
    for i, (title, frames) in enumerate(panels):
        x = i * (W + gap)
        out[:, header:, x:x + W] = frames
        for t in range(T):
            cv2.putText(out[t], title, (x + 4, header - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (230, 230, 230), 1,
                        cv2.LINE_AA)
    return out


def _mark(ok) -> str:
    return "" if ok is None else ("&#10003;" if ok else "&#10007;")


def _num(v, fmt: str = ".2f") -> str:
    return "-" if v is None else format(v, fmt)


def _said(text: str) -> str:
    return html.escape(text) if text.strip() else "<i>(empty answer)</i>"


def _qa_rows(questions: list[dict]) -> str:
    e = html.escape
    return "".join(
        f"<tr><td>{e(q['type'])}</td><td>{e(q['question'])}<br><small>{e(' '.join(q['options']))}</small></td>"
        f"<td>{_said(q['model_answer'])}</td><td>{e(q['gt_answer'])}</td><td>{_mark(q['correct'])}</td></tr>"
        for q in questions)


def _object_rows(objects: dict) -> str:
    rows = []
    for o in objects["truth"]:
        found = "missed" if o["found_as"] is None else f"found as object {o['found_as']} (IoU {_num(o['iou'])})"
        colour = PALETTE[(o["id"] - 1) % len(PALETTE)]
        rows.append(f"<tr><td style='color:rgb{colour}'>{o['id']}</td><td>{html.escape(o['what'])}</td>"
                    f"<td>{found}</td></tr>")
    for o in objects["extra"]:
        rows.append(f"<tr><td></td><td>(no true object)</td><td>found object {o['id']} "
                    f"({html.escape(o['label'])}, {o['frames']} frames)</td></tr>")
    return "".join(rows)


def _finding(fd) -> str:
    if not fd:
        return ""
    return (f"<h2>Finding object {fd['object_id']} by its expression {_mark(fd['correct'])}</h2><p>"
            f"&ldquo;{html.escape(fd['expression'])}&rdquo;: among the {fd['candidates']} objects the pipeline found, "
            f"the model picked {fd['picked']}; the object was found as {fd['found_as']}. The picked track's boxes "
            f"score mean IoU {'-' if fd.get('mean_iou') is None else format(fd['mean_iou'], '.3f')} on the "
            f"frames the tracking above is scored on (the words instead of the first box).</p>")


def demo_html(path, gif_path, result: dict, width: int = 768) -> Path:
    """The demo's self-contained page from its result (the ``regionlm demo --json`` object): the rendered video
    (GIF inlined), the model's answers next to the ground truth, the description, the tracking score, the objects
    found and the timings. ``width``: the GIF's width in pixels (shown unscaled: the frames are enlarged already)."""
    e = html.escape
    gif = base64.b64encode(Path(gif_path).read_bytes()).decode()
    d, tr, obj = result["description"], result["tracking"], result["objects"]
    attrs = ", ".join(f"{name} {_mark(ok)}" for name, ok in d["attributes"].items())
    right = sum(q["correct"] for q in result["questions"])
    timings = "".join(f"<tr><td>{e(k)}</td><td>{v:.2f} s</td></tr>" for k, v in result["timings"].items())
    title = f"RegionLM demo: RegionWorld video, seed {result['seed']}"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;background:#111;color:#ddd}}
td,th{{padding:3px 10px;text-align:left;vertical-align:top}} img{{image-rendering:pixelated;border:1px solid #444}}
small{{color:#999}} tr:nth-child(even){{background:#1b1b1b}}</style></head>
<body><h1>{e(title)}</h1><p>model: <code>{e(str(result['model']))}</code></p>
<img src="data:image/gif;base64,{gif}" width="{int(width)}">
<p><small>left: ground truth (masks outlined, amodal boxes); middle: the objects the detect-segment-track pipeline
found; right: the model tracking object {tr['object_id']} from its box on frame {tr['init_frame']}
(<span style="color:rgb{MODEL_COLOUR}">model</span> vs <span style="color:rgb{TRUTH_COLOUR}">truth</span>).
Also as <code>{e(Path(result['rendered'][0]).name)}</code>.</small></p>
<h2>Region questions: {right} of {len(result['questions'])} right</h2>
<table><tr><th>type</th><th>question</th><th>model</th><th>truth</th><th></th></tr>{_qa_rows(result['questions'])}
</table>
<h2>Description of object {d['object_id']}</h2><table><tr><td>model</td><td>{_said(d['model'])}</td></tr>
<tr><td>truth</td><td>{e(d['gt'])}</td></tr><tr><td>attributes</td><td>{attrs}</td></tr></table>
<h2>Tracking object {tr['object_id']}: mean IoU {_num(tr['mean_iou'], '.3f')}</h2>
<p>over {tr['frames_scored']} frames after frame {tr['init_frame']} where the object is in view; a frame
without a model box counts 0.</p>{_finding(result.get('finding'))}
<h2>Objects: {obj['found']} found, {obj['true']} true, {obj['matched']} matched</h2>
<table><tr><th>id</th><th>true object</th><th>pipeline</th></tr>{_object_rows(obj)}</table>
<h2>Timings</h2><table>{timings}</table></body></html>"""
    return atomic_write_text(path, page)
