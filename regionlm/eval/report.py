"""The outputs of an evaluation: ``results.json``, ``report.md``, plots (PNG) and the printed table.

Plots: tracking writes ``success_plot.png`` (success rate vs IoU threshold, AUC in the legend) and
``precision_plot.png`` (precision vs centre-error threshold, P@20 in the legend); multiple choice writes
``per_type.png`` (accuracy per question type). matplotlib is imported only here, with the Agg backend; without
it the plots are skipped and the report says so. Every file is written atomically (temporary file + rename).
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

from ..data.io import atomic_write_json, atomic_write_text

RESULTS_NAME = "results.json"
REPORT_NAME = "report.md"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def fmt(value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def ordered_metrics(results: dict) -> list:
    """(name, value) pairs, headline metrics first."""
    metrics = results["metrics"]
    head = [k for k in results.get("headline", []) if k in metrics]
    return [(k, metrics[k]) for k in head] + [(k, v) for k, v in metrics.items() if k not in head]


def format_table(results: dict) -> str:
    """The short table printed at the end of a run."""
    rows = ordered_metrics(results)
    width = max([len(k) for k, _ in rows] + [6])
    lines = [f"{results['benchmark']}: {results['num_samples']} samples, {results['system']}"]
    lines += [f"  {k:<{width}}  {fmt(v):>8}" for k, v in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    atomic_write_bytes(path, buf.getvalue())


def tracking_plots(results: dict, out: Path) -> list:
    plt = _pyplot()
    c, m, name = results["curves"], results["metrics"], results["benchmark"]
    written = []
    for fname, x, y, xlabel, label, title in (
        ("success_plot.png", c["success_thresholds"], c["success_curve"], "overlap threshold (IoU)",
         f"AUC {m['auc']:.2f}", "Success plot"),
        ("precision_plot.png", c["precision_thresholds"], c["precision_curve"], "location error threshold (px)",
         f"P@20 {m['precision']:.2f}", "Precision plot"),
    ):
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(x, [100 * v for v in y], linewidth=2, label=f"{results['system']} [{label}]")
        ax.set(xlabel=xlabel, ylabel="rate (%)", title=f"{title}: {name}", ylim=(0, 100.5), xlim=(min(x), max(x)))
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right" if fname.startswith("success") else "lower right", fontsize=7)
        fig.tight_layout()
        _save(fig, out / fname)
        plt.close(fig)
        written.append(fname)
    return written


def choice_plot(results: dict, out: Path) -> list:
    plt = _pyplot()
    metrics = results["metrics"]
    types = [k for k in (results.get("details", {}).get("counts") or {}) if metrics.get(k) is not None]
    names = types + ["overall"]
    values = [metrics[k] for k in names]
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(names)), 4))
    bars = ax.bar(range(len(names)), values, color=["#4878d0"] * len(types) + ["#ee854a"])
    for b, v in zip(bars, values):
        ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace(" ", "\n", 1) for n in names], fontsize=8)
    ax.set(ylabel="accuracy (%)", ylim=(0, 105), title=f"{results['benchmark']}: {results['system']}")
    fig.tight_layout()
    _save(fig, out / "per_type.png")
    plt.close(fig)
    return ["per_type.png"]


def write_plots(results: dict, out: Path) -> tuple[list, list]:
    """(files written, notes)."""
    wanted = {"track": tracking_plots, "choice": choice_plot}.get(results["task"])
    if wanted is None:
        return [], []
    try:
        return wanted(results, out), []
    except ImportError:
        return [], ["plots skipped: matplotlib is not installed (pip install matplotlib)"]


# ----------------------------------------------------------------------------------------------- report.md
def render_report(results: dict, plots: list, notes: list) -> str:
    lines = [f"# regionlm eval: {results['benchmark']}", "",
             f"- system: {results['system']}",
             f"- samples: {results['num_samples']}",
             f"- data: {results['config'].get('data')}", "",
             "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {fmt(v)} |" for k, v in ordered_metrics(results)]
    details = results.get("details") or {}
    counts = details.get("counts")
    if counts:
        lines += ["", "| type | right | total |", "|---|---:|---:|"]
        lines += [f"| {t} | {c['right']} | {c['total']} |" for t, c in counts.items()]
    other = {k: v for k, v in details.items() if k != "counts"}
    if other:
        lines += ["", "## Details", ""] + [f"- {k}: {json.dumps(v, ensure_ascii=False)}" for k, v in other.items()]
    all_notes = list(results.get("notes") or []) + notes
    if all_notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in all_notes]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in plots]
    lines += ["", "## Configuration", "", "```json", json.dumps(results["config"], indent=2, ensure_ascii=False), "```",
              "", "## Versions", "", "```json", json.dumps(results["versions"], indent=2), "```", "",
              f"Per-sample predictions and scores: `{RESULTS_NAME}` (`per_sample`).", ""]
    return "\n".join(lines)


def write_outputs(out: Path, results: dict) -> list:
    """Write results.json, the plots and report.md into ``out``; returns the file names written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots, notes = write_plots(results, out)
    if notes:
        results["notes"] = list(results.get("notes") or []) + notes
    atomic_write_json(out / RESULTS_NAME, results)
    atomic_write_text(out / REPORT_NAME, render_report(results, plots, []))
    return [RESULTS_NAME, REPORT_NAME] + plots
