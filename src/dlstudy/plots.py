"""Figures shared by the studies. Each function returns a matplotlib Figure for Report.figure."""

from __future__ import annotations

import re
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
# Names from data (classes, countries) are plain text: 'a $b$ c' must not be read as maths, or crash.
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def image_rows(
    rows: Sequence[np.ndarray],
    *,
    row_titles: Sequence[str] = (),
    captions: Sequence[Sequence[str]] = (),
    scale: float = 1.1,
    max_cols: int = 10,
):
    """Rows of (N, H, W, C) uint8 images, one row per array, optional caption under each image. Rows
    longer than max_cols wrap into blocks stacked below, so a figure stays readable at page width."""
    width = max(len(r) for r in rows)
    if width > max_cols:
        caps = [list(captions[i]) if i < len(captions) else [] for i in range(len(rows))]
        titles = [row_titles[i] if i < len(row_titles) else "" for i in range(len(rows))]
        cut = [(b, i) for b in range(0, width, max_cols) for i in range(len(rows))]
        rows = [rows[i][b : b + max_cols] for b, i in cut]
        captions = [caps[i][b : b + max_cols] for b, i in cut]
        row_titles = [titles[i] for _, i in cut]
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(scale * n_cols, scale * n_rows * 1.15), squeeze=False)
    for i, row in enumerate(rows):
        for j in range(n_cols):
            ax = axes[i, j]
            ax.axis("off")
            if j >= len(row):
                continue
            img = row[j]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            if i < len(captions) and j < len(captions[i]) and captions[i][j]:
                ax.set_title(captions[i][j], fontsize=7)
        if i < len(row_titles):
            axes[i, 0].text(
                -0.1, 0.5, row_titles[i], transform=axes[i, 0].transAxes, ha="right", va="center", fontsize=8
            )
    fig.tight_layout()
    return fig


def chunks(items, width: int) -> list:
    """Rows of at most `width` items, for image grids."""
    return [items[i : i + width] for i in range(0, len(items), width)]


def scatter_maps(maps: dict[str, np.ndarray], labels: np.ndarray | None, class_names: Sequence[str] | None = None):
    """Side-by-side 2-D maps coloured by label."""
    fig, axes = plt.subplots(1, len(maps), figsize=(5.2 * len(maps), 4.6), squeeze=False)
    for ax, (title, xy) in zip(axes[0], maps.items()):
        if labels is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=2, alpha=0.6, color="tab:blue")
        else:
            cmap = plt.get_cmap("tab10" if labels.max() < 10 else "tab20")
            unknown = labels < 0  # unlabelled images in grey, beneath the labelled ones
            if unknown.any():
                ax.scatter(xy[unknown, 0], xy[unknown, 1], s=2, alpha=0.3, color="0.7", label="unlabelled")
            for k in np.unique(labels[~unknown]):
                sel = labels == k
                name = class_names[k] if class_names is not None and 0 <= k < len(class_names) else str(k)
                ax.scatter(xy[sel, 0], xy[sel, 1], s=2, alpha=0.6, color=cmap(int(k) % cmap.N), label=name)
            ax.legend(markerscale=5, fontsize=7, loc="best", frameon=False)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def curves(histories: dict[str, Sequence[dict]], keys: Sequence[str], *, ylabel: str = "", share_y: bool = True):
    """Small multiples: one panel per history, the chosen keys against epoch."""
    n = len(histories)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False, sharey=share_y)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (title, history) in zip(axes.flat, histories.items()):
        epochs = [h["epoch"] for h in history]
        for key in keys:
            if history and key in history[0]:
                ax.plot(epochs, [h[key] for h in history], marker=".", label=key)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def bands(curves: dict[str, tuple[np.ndarray, np.ndarray]]):
    """Small multiples: one panel per curve, its mean per epoch with a band one sd either side."""
    n = len(curves)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.8 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, (title, (mean, sd)) in zip(axes.flat, curves.items()):
        epochs = np.arange(1, len(mean) + 1)
        ax.plot(epochs, mean, marker=".")
        ax.fill_between(epochs, mean - sd, mean + sd, alpha=0.3)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def curve_grid(histories: dict[str, Sequence[dict]], quantities: dict[str, str], *, ylabel: str = ""):
    """One column per history, one row per quantity (label -> history key), each panel on its own
    linear axis with the training value and, where recorded, the test_ value per epoch."""
    cols, rows = len(histories), len(quantities)
    fig, axes = plt.subplots(rows, cols, figsize=(2.9 * cols + 0.6, 2.3 * rows), squeeze=False)
    for j, (title, history) in enumerate(histories.items()):
        epochs = [h["epoch"] for h in history]
        for i, (label, key) in enumerate(quantities.items()):
            ax = axes[i, j]
            for prefix, name in (("", "train"), ("test_", "test")):
                if history and f"{prefix}{key}" in history[0]:
                    ax.plot(epochs, [h[f"{prefix}{key}"] for h in history], marker=".", label=name)
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(title, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"{label}\n{ylabel}", fontsize=8)
            if i == rows - 1:
                ax.set_xlabel("epoch", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def lines(
    x: Sequence[float], series: dict[str, Sequence[float]], *, xlabel: str = "", dashed: dict[str, str] | None = None
):
    """A few named series against one x axis (e.g. scores against the number of clusters). A series named
    as a key of `dashed` is drawn dashed, in the colour of the series that key maps to (drawn before it)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    colours: dict[str, str] = {}
    for name, values in series.items():
        pair = (dashed or {}).get(name)
        (line,) = ax.plot(
            x,
            values,
            marker=".",
            linestyle="--" if pair else "-",
            color=colours.get(pair),
            label=name.replace("_", " "),
        )
        colours[name] = line.get_color()
    ax.set_xlabel(xlabel)
    ax.set_xticks(list(x))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def history(history: Sequence[dict], metrics: Sequence[str] = ("loss", "accuracy"), sets: dict[str, str] | None = None):
    """One training history, one panel per metric, a line per data set (key prefix -> legend name)."""
    sets = sets or {"": "train", "val_": "validation"}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.4 * len(metrics), 3.2), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, metric in zip(axes[0], metrics):
        for prefix, name in sets.items():
            if history and f"{prefix}{metric}" in history[0]:
                ax.plot(epochs, [h[f"{prefix}{metric}"] for h in history], marker=".", label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def heat_images(maps: np.ndarray, cmap: str = "inferno") -> np.ndarray:
    """(N, H, W) non-negative maps -> (N, H, W, 3) uint8, each scaled to its own 99th percentile."""
    top = np.percentile(maps.reshape(len(maps), -1), 99, axis=1).reshape(-1, 1, 1)
    scaled = np.clip(maps / np.maximum(top, 1e-12), 0, 1)
    return (plt.get_cmap(cmap)(scaled)[..., :3] * 255).round().astype(np.uint8)


def to_display(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) floats of any range -> (N, H, W, C) uint8, each image stretched to 0..255."""
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    return ((x - lo) / np.maximum(hi - lo, 1e-12) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)


def bars(
    values: dict[str, float], *, baseline: float | None = None, baseline_label: str = "baseline", xlabel: str = ""
):
    """Horizontal bars, e.g. accuracy per variant, with a baseline line."""
    names = list(values)
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(names) + 1.2))
    ax.barh(range(len(names)), [values[k] for k in names], color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    if baseline is not None:
        ax.axvline(baseline, color="tab:red", ls="--", label=baseline_label)
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def heatmap(
    matrix: np.ndarray,
    labels: Sequence[str],
    *,
    title: str = "",
    vmin: float = -1,
    vmax: float = 1,
    cmap: str = "RdBu_r",
    size: float | None = None,
):
    """A labelled square matrix (correlations, confusion counts)."""
    n = len(labels)
    size = size or min(max(4.0, 0.2 * n + 2), 10)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    fig.colorbar(im, ax=ax, shrink=0.75)
    show = n <= 60  # beyond that the names are unreadable; the axes keep their order
    ax.set_xticks(range(n) if show else [], labels if show else [], rotation=90, fontsize=7)
    ax.set_yticks(range(n) if show else [], labels if show else [], fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def confusion_figure(
    counts: np.ndarray, class_names: Sequence[str], title: str = "", columns: Sequence[str] | None = None
):
    """Counts and row-normalised rates side by side; `columns` names the columns when they are not the
    classes (clusters against labels)."""
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    columns = list(columns) if columns is not None else list(class_names)
    width = max(len(columns), len(class_names))
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.1 * width, 2 + 0.5 * len(class_names)))
    for ax, m, fmt, name in ((axes[0], counts, "d", "counts"), (axes[1], rates, ".2f", "row-normalised")):
        ax.imshow(m, cmap="Blues")
        ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(class_names)), class_names, fontsize=8)
        ax.set_xlabel("predicted" if columns == list(class_names) else "cluster")
        ax.set_ylabel("true")
        ax.set_title(f"{title} ({name})", fontsize=9)
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(
                    j,
                    i,
                    format(m[i, j], fmt),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if m[i, j] > m.max() * 0.6 else "black",
                )
    fig.tight_layout()
    return fig


def world_map_svg(latest, trained: set[str], *, title: str, edges=(0.0, 0.25, 0.5, 0.75, 1.0)) -> bytes:
    """A pygal world map of each country's probability, rendered offline (no scripts). pygal draws one
    legend entry per series, so each (probability band, trained on or scored only) is a series: the
    legend is the colour scale, blues for countries the model trained on, oranges for scored only.
    `latest`: rows with country, map_code and probability."""
    from pygal.style import Style
    from pygal_maps_world.maps import World

    groups = {
        "trained on": ("#c6dbef", "#6baed6", "#2171b5", "#08306b"),
        "scored only": ("#fdd0a2", "#fd8d3c", "#d94801", "#7f2704"),
    }
    series = {(g, i): {} for g in groups for i in range(len(edges) - 1)}
    for country, code, p in zip(latest["country"], latest["map_code"], latest["probability"]):
        band = min(int(np.searchsorted(edges, p, side="right")) - 1, len(edges) - 2)
        series[("trained on" if country in trained else "scored only", band)][code] = float(p)
    shown = {key: values for key, values in series.items() if values}
    colours = tuple(groups[g][i] for g, i in shown)
    chart = World(
        js=[],
        style=Style(colors=colours or ("#2166ac",)),
        show_legend=True,
        legend_at_bottom=True,
        legend_at_bottom_columns=4,
        title=title,
        width=900,
        height=560,
    )
    for (g, i), values in shown.items():
        chart.add(f"P {edges[i]:.2f}-{edges[i + 1]:.2f}, {g}", values)
    # js=[] drops pygal's tooltip script; its inline config script is useless without it, so it goes too
    return re.sub(rb"<script.*?</script>", b"", chart.render(), flags=re.S)
