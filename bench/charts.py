"""Charts of how cost grows with the catalog, from bench/growth.sh's summary.

    python3 bench/charts.py SUMMARY.tsv OUT_DIR

SUMMARY.tsv holds "backend count metric value" lines (bench/search.sh's summary.tsv of
each size, concatenated). Prints the figures as a Markdown table (a row per metric, a column per backend and
size) and writes four SVG charts into OUT_DIR, each against the number
of plugins, both axes on a log scale, one line per backend (solid SQLite, dashed
PostgreSQL) and per shape where there are several:

    growth-search-p99.svg   p99 of every search shape through the API
    growth-pages-p99.svg    p99 of the home, plugin and search pages
    growth-rss.svg          server peak RSS after the run
    growth-start.svg        time from the server's start to its first ready answer
"""

import collections
import sys

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend is chosen first)

SEARCHES = {
    "narrow": "narrow text + 2 filters",
    "word": "one word",
    "word_filters": "one word + 2 filters",
    "filters_only": "2 filters, no text",
    "filter_downloads": "1 filter by downloads",
}
PAGES = {"home": "home page", "plugin_page": "plugin page", "search_page": "search page"}
STYLE = {"sqlite": "-", "postgres": "--"}


def read(path):
    """{(backend, metric): {count: value}} from the summary."""
    figures = collections.defaultdict(dict)
    with open(path, encoding="utf-8") as f:
        for line in f:
            backend, count, metric, value = line.rstrip("\n").split("\t")
            if value:
                figures[(backend, metric)][int(count)] = float(value)
    return figures


def chart(figures, out, title, ylabel, series, target=None):
    """One chart: a line per (backend, metric, label) of `series` that has figures."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    # One colour per metric, one line style per backend; both axes logarithmic, so a
    # slope of one is cost growing as fast as the catalog.
    colours = {}
    for backend, metric, label in series:
        points = sorted(figures.get((backend, metric), {}).items())
        if not points:
            continue
        xs, ys = zip(*points)
        colour = colours.setdefault(metric, f"C{len(colours)}")
        ax.plot(xs, ys, STYLE.get(backend, "-"), color=colour, marker="o",
                label=f"{backend}: {label}")
    if target is not None:
        ax.axhline(target[0], color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(target[1], (0.99, target[0]), xycoords=("axes fraction", "data"),
                    fontsize=8, color="grey", va="bottom", ha="right")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("plugins in the catalog")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, metadata={"Date": None})
    plt.close(fig)


def table(figures, backends):
    """The figures as Markdown: a row per metric, a column per backend and size."""
    counts = sorted({c for points in figures.values() for c in points})
    columns = [(b, c) for b in backends for c in counts]
    names = {f"{s}_p99_ms": f"{label} p99 ms" for s, label in {**SEARCHES, **PAGES}.items()}
    names.update({"facet_first_max_ms": "first facet count, max of 20, ms",
                  "rss_mib": "server peak RSS MiB", "start_ms": "start to ready ms",
                  "seed_s": "bulk seed s"})
    print("| figure | " + " | ".join(f"{b} {c:,}" for b, c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for metric, name in names.items():
        cells = [figures.get((b, metric), {}).get(c) for b, c in columns]
        print(f"| {name} | " + " | ".join("" if v is None else f"{v:g}" for v in cells) + " |")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    figures = read(sys.argv[1])
    out = sys.argv[2]
    backends = sorted({backend for backend, _ in figures})
    if not backends:
        sys.exit(f"{sys.argv[1]}: no figures")
    table(figures, backends)
    print()
    chart(figures, f"{out}/growth-search-p99.svg", "Search p99 through the API", "p99 (ms)",
          [(b, f"{s}_p99_ms", label) for b in backends for s, label in SEARCHES.items()],
          target=(5, "narrow target 5 ms"))
    chart(figures, f"{out}/growth-pages-p99.svg", "Page p99", "p99 (ms)",
          [(b, f"{p}_p99_ms", label) for b in backends for p, label in PAGES.items()],
          target=(10, "page target 10 ms"))
    chart(figures, f"{out}/growth-rss.svg", "Server peak RSS after the run", "MiB",
          [(b, "rss_mib", "peak RSS") for b in backends], target=(100, "target 100 MiB"))
    chart(figures, f"{out}/growth-start.svg", "Server start to first ready answer", "ms",
          [(b, "start_ms", "start") for b in backends], target=(2000, "target 2 s"))


if __name__ == "__main__":
    main()
