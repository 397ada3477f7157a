"""What the reporting steps (07, 10, 12) share: markdown tables, the provenance line under a
report, and headless plots written atomically (a killed run leaves no half PNG)."""
from pathlib import Path

from soundtrack import atomic


def markdown_table(header, rows, align=None):
    """Lines of a markdown table.

    Args:
      header: the column titles.
      rows: one list of cell texts per row (already formatted).
      align: one of "l" / "r" per column (default: the first left, the others right).
    Returns: list of str, the header, the rule and one line per row.
    """
    align = align or ["l"] + ["r"] * (len(header) - 1)
    if len(align) != len(header):
        raise ValueError(f"{len(header)} columns but {len(align)} alignments")
    rule = "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|"
    return (["| " + " | ".join(header) + " |", rule]
            + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def provenance_line(info):
    """The last line of a report: the commit (and whether the work tree differed from it) and
    the package versions, from datafiles.provenance()."""
    commit = info["git_commit"] or "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items())
    return (f"Commit {commit}{' (uncommitted changes)' if info['git_dirty'] else ''}; "
            f"{versions}.")


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=120):
    """Write `fig` as a PNG at `path` atomically, then close it. -> path"""
    path = Path(path)
    atomic.atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    pyplot().close(fig)
    return path
