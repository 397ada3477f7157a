"""Per-file work at Kinetics scale: parallel, sharded, resumable, and accounted for.

A stage (02 extract audio, 03 audio images) turns each input id into one output file.
Its state lives next to the outputs, so a killed run, a rerun, or N machines sharing a
filesystem with ``--shard K/N`` all see the same truth:

- ``<out_root>/<id><suffix>``  the output, written atomically (temp name + rename);
- ``<out_root>/<id>.status``   only for the unusual: ``status<TAB>reason`` where status is
  ``no_audio``, ``no_video``, ``failed`` or ``dropped`` (no output) or a note on an output
  (``padded``, ``silent``, ``mono``).

A rerun skips ids whose output exists, and ids whose status is final (``no_audio``,
``no_video``, ``dropped``); ``failed`` ids are retried. Memory is bounded by the number of
workers: outcomes are counted as they arrive, only the unusual ones are kept.
"""
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from soundtrack import cli
from soundtrack import datafiles

STATUS_SUFFIX = ".status"
FINAL_WITHOUT_OUTPUT = ("no_audio", "no_video", "dropped")  # not retried
NOTES = ("padded", "silent", "mono")            # an output exists, with a remark


@dataclass
class Outcome:
    id: str
    status: str          # done | exists | no_audio | no_video | failed | dropped
    reason: str = ""     # one line; for done, an optional note ("padded: 0.50 s of audio")
    note: str = ""       # done with a remark: padded | silent | mono


def status_path(out_root, video_id):
    return Path(out_root) / (video_id + STATUS_SUFFIX)


def read_status(path):
    """(status, reason) from a status file, or (None, '') if there is none."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None, ""
    status, _, reason = text.partition("\t")
    return status, reason


def write_status(out_root, video_id, status, reason):
    datafiles.write_text(status_path(out_root, video_id), f"{status}\t{reason}\n")


def clear_status(out_root, video_id):
    try:
        os.unlink(status_path(out_root, video_id))
    except FileNotFoundError:
        pass


def previous_outcome(out_root, video_id, suffix):
    """The outcome recorded by an earlier run, or None if the id must be (re)done."""
    out = Path(out_root) / (video_id + suffix)
    status, reason = read_status(status_path(out_root, video_id))
    if out.exists():
        return Outcome(video_id, "exists", reason, status if status in NOTES else "")
    if status in FINAL_WITHOUT_OUTPUT:
        return Outcome(video_id, status, reason)
    return None


@dataclass
class Summary:
    """Counts of one run (one shard); unusual outcomes kept with their reasons."""
    stage: str
    split: str
    shard: tuple
    listed: int = 0
    counts: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    unusual: list = field(default_factory=list)   # Outcomes other than done/exists
    seconds: float = 0.0

    def add(self, o):
        self.counts[o.status] += 1
        if o.note:
            self.notes[o.note] += 1
        if o.status not in ("done", "exists"):
            self.unusual.append(o)

    def text(self):
        c = self.counts
        parts = " + ".join(f"{k.replace('_', ' ')} {c[k]}" for k in
                           ["done", "exists", "no_audio", "no_video", "dropped", "failed"]
                           if k in c or k in ("done", "exists", "failed"))
        k, n = self.shard
        lines = [f"[{self.stage}] {self.split} (shard {k}/{n}): listed {self.listed} = {parts}"
                 f"  ({self.seconds:.1f} s)"]
        if sum(c.values()) != self.listed:
            lines.append(f"  !! counts do not reconcile: {sum(c.values())} != {self.listed}")
        if self.notes:
            lines.append("  notes on done tracks: " + ", ".join(
                f"{v} {k}" for k, v in sorted(self.notes.items())))
        for o in self.unusual[:20]:
            lines.append(f"  {o.status:9s} {o.id}: {o.reason}")
        if len(self.unusual) > 20:
            lines.append(f"  ... {len(self.unusual) - 20} more (see the lists)")
        return "\n".join(lines)

    @property
    def failed(self):
        return self.counts["failed"]


def parallel(work, tasks, workers):
    """work(task) for every task, in `workers` forked processes (in this one when workers <= 1
    or there is a single task); results are yielded as they finish (any order). The one
    process-pool loop of the project: steps 00, 02, 03 and the frame decoding use it."""
    if workers > 1 and len(tasks) > 1:
        chunk = max(1, min(16, len(tasks) // (workers * 8)))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            yield from pool.imap_unordered(work, tasks, chunksize=chunk)
    else:
        for task in tasks:
            yield work(task)


def run(stage, split, shard, items, work, workers, out_root, suffix, batch=1):
    """Apply `work((id, payload)) -> Outcome` to this shard's ids that are not already done.

    With batch > 1, `work` takes a list of up to `batch` (id, payload) items and returns a
    list of Outcomes (e.g. one ffmpeg process for several files).

    Args:
      items: {id: payload} for all ids of the split (the shard is taken here,
        deterministically); payload is small and picklable (e.g. the input path).
      work: a picklable callable (module-level function or functools.partial).
      out_root, suffix: where outputs live (``<out_root>/<id><suffix>``), to skip done ids.
    Returns:
      Summary of this shard; `listed` == sum of its counts.
    """
    mine = datafiles.shard_of(items, shard)
    summary = Summary(stage, split, shard, listed=len(mine))
    start = time.perf_counter()
    todo = []
    for i in mine:
        prev = previous_outcome(out_root, i, suffix)
        if prev is None:
            todo.append((i, items[i]))
        else:
            summary.add(prev)
    bar = cli.progress(total=len(todo), desc=f"{stage} {split}", unit="file", disable=not todo)
    # small splits: smaller batches, so every worker gets several
    size = max(1, min(batch, len(todo) // (4 * max(1, workers))))
    tasks = [todo[i:i + size] for i in range(0, len(todo), size)] if batch > 1 else todo

    def record(result):
        for o in (result if batch > 1 else [result]):
            summary.add(o)
            bar.update()

    for result in parallel(work, tasks, workers):
        record(result)
    bar.close()
    summary.seconds = time.perf_counter() - start
    return summary


def split_state(ids, out_root, suffix):
    """State of every id of a split on disk (all shards): {id: (status, reason)}.

    status: done | no_audio | failed | dropped | pending; done may carry a note as reason.
    Lists each folder once instead of stat-ing every id.
    """
    out_root = Path(out_root)
    listing = {}
    state = {}
    for i in ids:
        folder = (out_root / i).parent
        if folder not in listing:
            try:
                listing[folder] = set(os.listdir(folder))
            except FileNotFoundError:
                listing[folder] = set()
        names = listing[folder]
        base = Path(i).name
        status, reason = (read_status(out_root / (i + STATUS_SUFFIX))
                          if base + STATUS_SUFFIX in names else (None, ""))
        if base + suffix in names:
            state[i] = ("done", f"{status}: {reason}" if status in NOTES else "")
        elif status in FINAL_WITHOUT_OUTPUT or status == "failed":
            state[i] = (status, reason)
        else:
            state[i] = ("pending", "")
    return state


def run_split(stage, split, ids, items, work, cfg, out_root, suffix, lists, where, batch=1):
    """run() over a split's shard, then its lists from what is on disk, each summed up.

    lists: {state: (path, words)}, "done" first: where write_lists puts each state's ids, and
    the words on_disk uses for it. where: the lists' folder and pattern, for the message.
    -> the Summary of this run."""
    summary = run(stage, split, cfg.shard, items, work, cfg.workers, out_root, suffix, batch)
    print(summary.text())
    n = write_lists(ids, out_root, suffix, {s: path for s, (path, _) in lists.items()})
    print(on_disk(split, len(ids), n, {s: words for s, (_, words) in lists.items()}, where))
    return summary


def write_lists(ids, out_root, suffix, lists):
    """A split's lists from what is on disk (all shards; split_state).

    lists: {state: path}: the ids of state "done" one per line, those of any other state
    (no_audio, no_video, failed) as `id<TAB>reason`. -> {state: count}, "pending" included.
    """
    state = split_state(ids, out_root, suffix)
    by = {s: [(i, r) for i, (st, r) in state.items() if st == s] for s in (*lists, "pending")}
    for s, path in lists.items():
        datafiles.write_lines(path, [i if s == "done" else f"{i}\t{r}" for i, r in by[s]],
                              shared=True)  # every shard writes them when it ends
    return {k: len(v) for k, v in by.items()}


def on_disk(split, total, n, names, where):
    """The line that sums up a split of `total` videos on disk: counts `n` (write_lists)
    under `names` ({state: words}, in order), pending ones on other shards, where the lists
    are."""
    return (f"  {split} on disk: {total} videos = "
            + " + ".join(f"{words} {n[k]}" for k, words in names.items())
            + (f" + pending {n['pending']} (other shards)" if n.get("pending") else "")
            + f"  -> {where}")
