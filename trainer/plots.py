"""Pictures people would rather look at than JSON: loss curves and evaluation bars."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(history: list[dict], val_history: list[dict], path: Path, title: str,
               points: str = "validation total") -> Path:
    """Training loss and each term per optimizer step, ``val_history``'s totals as points
    labelled ``points``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [r["step"] for r in history]
    for key, style in (("total", "-"), ("code", "--"), ("plan", ":"), ("ast", "-.")):
        ys = [r.get(key) for r in history]
        if any(y is not None for y in ys):
            ax.plot(steps, [y if y is not None else float("nan") for y in ys], style,
                    label=f"train {key}")
    if val_history:
        ax.plot([r["step"] for r in val_history], [r.get("total") for r in val_history], "o-",
                label=points)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _value(v: float | None) -> float:
    return float("nan") if v is None else v


def eval_bars(summary: dict[str, dict[str, dict]], metrics: tuple[str, ...], path: Path,
              title: str) -> Path:
    """One panel per metric; in each, one group of bars per mode that has a value for it and
    one bar per model (none where the model has no value for that mode or metric)."""
    plt = _pyplot()
    models = list(summary)
    modes = list(dict.fromkeys(m for per_model in summary.values() for m in per_model))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 4.2), sharey=True)
    width = 0.8 / max(1, len(models))
    for ax, metric in zip(axes if len(metrics) > 1 else [axes], metrics, strict=True):
        shown = [m for m in modes
                 if any(summary[model].get(m, {}).get(metric) is not None for model in models)]
        for i, model in enumerate(models):
            xs = [j + i * width for j in range(len(shown))]
            # a mode or metric a model lacks is a gap, not a zero
            ax.bar(xs, [_value(summary[model].get(m, {}).get(metric)) for m in shown], width,
                   label=model)
        ax.set_xticks([j + width * (len(models) - 1) / 2 for j in range(len(shown))], shown,
                      rotation=30, ha="right")
        ax.set_title(metric)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower center",
               ncol=len(models), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
