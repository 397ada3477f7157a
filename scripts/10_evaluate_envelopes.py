"""Step 10: automatic evaluation of predicted envelopes, beside baselines scored the same way.

Reads  npy_files/<dataset>/<run>/<eval_split>_envelope.npz (train.py with MODEL =
       envelope_lstm: ids, offsets, pred, times), step 09's envelopes of TRAIN_SPLIT and
       EVAL_SPLIT (envelopes.json, lists), file_lists/<dataset>/<split>_videos.txt and
       classes.txt; --manifest (default <video_root>/impacts_manifest.json, if there) for the
       per-event-kind breakdown; --classifier-runs / --aux-classifier-runs (optional) for the
       auxiliary-task comparison: their <eval_split>_scores.npy, _ids.txt, _labels.npy
Writes npy_files/<dataset>/envelope/report.json   everything below, per clip and in total
       npy_files/<dataset>/envelope/report.md     the tables
       npy_files/<dataset>/envelope/plots/rating_{good,not_so_good,bad}.png   predicted vs
                                              true envelope of up to 12 clips of each rating,
                                              with their ids, peaks and the manifest's events

Per clip (rows = the prediction file's ids, joined to the truth by id): Pearson r, mean
squared error, BCE; onsets: peaks of both envelopes by one picker (soundtrack/envelope/evaluation.py:
PEAK_HEIGHT, PEAK_PROMINENCE), matched one to one within +-ONSET_TOLERANCE_FRAMES: precision,
recall, F1 (micro over clips), onset-count accuracy; the seed's rating (good = onset F1 1 and
r >= 0.5, bad = F1 0 or r < 0.2) in its per-class table, score (good - bad) / n in [-1, 1].
Per event kind of the manifest (hit, click, silent_hit): the share of events with a
predicted peak, and with a true peak, within the tolerance of the event's frame.
Baselines, scored the same way: constant (the training frames' mean), class mean (the mean
training envelope of the clip's class at each frame index: it knows the label), and the
sound of another clip (the true envelope of another clip of the same class in EVAL_SPLIT,
a seeded derangement, cut or padded with its last value to this clip's length: pictures of
one clip paired with the sound of another). The model minus the best baseline on onset F1
and on mean r: paired bootstrap 95 % intervals (BOOTSTRAP_SAMPLES, resampling clips).
"""
import json
from pathlib import Path

import numpy as np

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import metrics
from soundtrack.report import markdown_table, pyplot, save_figure
from soundtrack.envelope import evaluation, target

KEYS = ["RUN", "FRAME_ROOT", "FRAMES_PER_SECOND", "FRAME_SIZE_PIXELS", "FRAME_JPEG_QSCALE",
        "ENVELOPE_ROOT", "ENVELOPE_SIGMA_SECONDS", "ENVELOPE_SILENT_FLOOR",
        "ONSET_TOLERANCE_FRAMES", "PEAK_HEIGHT", "PEAK_PROMINENCE", "BOOTSTRAP_SAMPLES", "SEED"]
MANIFEST = "impacts_manifest.json"
PLOT_CLIPS = 12


# ---------------------------------------------------------------- inputs

def read_predictions(path):
    """<split>_envelope.npz -> (ids, {id: float [T]}, {id: times [T]})."""
    if not Path(path).is_file():
        raise FileNotFoundError(2, "not found", str(path))
    try:
        with np.load(path, allow_pickle=False) as z:
            ids, offsets, pred, times = ([str(i) for i in z["ids"]], z["offsets"], z["pred"],
                                         z["times"])
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{path}: not an envelope prediction file of train.py ({e})") from None
    if len(offsets) != len(ids) + 1 or offsets[-1] != len(pred) or len(times) != len(pred):
        raise ValueError(f"{path}: offsets, pred and times do not fit {len(ids)} ids")
    part = lambda a: {i: a[offsets[k]:offsets[k + 1]] for k, i in enumerate(ids)}  # noqa: E731
    return ids, part(pred), part(times)


def class_mean_envelopes(train_env, train_labels, n_classes):
    """{class: float [T_max]}: the mean training envelope at each frame index (over the clips
    that long), and each class's overall frame mean beyond its longest clip (`tail`)."""
    out = {}
    for c in range(n_classes):
        clips = [e for e, y in zip(train_env, train_labels) if y == c]
        if not clips:
            continue
        t_max = max(map(len, clips))
        total, count = np.zeros(t_max), np.zeros(t_max)
        for e in clips:
            total[:len(e)] += e
            count[:len(e)] += 1
        out[c] = (total / np.maximum(count, 1), float(np.mean(np.concatenate(clips))))
    return out


def fit_length(x, n, fill):
    x = np.asarray(x, np.float64)[:n]
    return np.concatenate([x, np.full(n - len(x), fill)]) if len(x) < n else x


def baselines(ids, labels, truth, train_env, train_labels, n_classes, seed):
    """{name: {id: predicted envelope}} for the three baselines (module docstring)."""
    const = float(np.mean(np.concatenate(train_env)))
    means = class_mean_envelopes(train_env, train_labels, n_classes)
    rng = np.random.default_rng([seed, 10])
    other = {}
    for c in np.unique(labels):
        members = [i for i, y in zip(ids, labels) if y == c]
        if len(members) < 2:
            other.update({i: i for i in members})
            continue
        while True:                      # a derangement: no clip keeps its own sound
            perm = rng.permutation(len(members))
            if np.all(perm != np.arange(len(members))):
                break
        other.update({members[k]: members[p] for k, p in enumerate(perm)})
    out = {"constant (training mean)": {}, "class-mean envelope": {},
           "sound of another clip (same class)": {}}
    for i, y in zip(ids, labels):
        n = len(truth[i])
        out["constant (training mean)"][i] = np.full(n, const)
        curve, tail = means.get(int(y), (np.zeros(0), const))
        out["class-mean envelope"][i] = fit_length(curve, n, tail)
        src = truth[other[i]]
        out["sound of another clip (same class)"][i] = fit_length(src, n, src[-1])
    return out


# ---------------------------------------------------------------- scoring

def score_all(ids, preds, truth, cfg):
    return [evaluation.clip_metrics(preds[i], truth[i], cfg.peak_height, cfg.peak_prominence,
                            cfg.onset_tolerance_frames) for i in ids]


def event_breakdown(ids, rows, times, manifest, tolerance):
    """{kind: {events, with_predicted_peak, with_true_peak}} over the manifest's events."""
    by_id = {v["id"]: v for v in manifest.get("videos", [])}
    out = {}
    for i, row in zip(ids, rows):
        for e in by_id.get(i, {}).get("events", []):
            f = evaluation.event_frame(e["time"], times[i])
            d = out.setdefault(e["kind"], {"events": 0, "with_predicted_peak": 0,
                                           "with_true_peak": 0})
            d["events"] += 1
            d["with_predicted_peak"] += evaluation.near(row["pred_peaks"], f, tolerance)
            d["with_true_peak"] += evaluation.near(row["true_peaks"], f, tolerance)
    for d in out.values():
        d["share_predicted"] = d["with_predicted_peak"] / d["events"]
        d["share_true"] = d["with_true_peak"] / d["events"]
    return out


def rating_table(ids, rows, labels, classes):
    """The seed's per-class table: [(class, n, "g(1) + n(0) + b(-1) = s", s)] + total."""
    table = []
    for c, name in enumerate(classes):
        rs = [r["rating"] for r, y in zip(rows, labels) if y == c]
        if not rs:
            continue
        g, n, b = (rs.count(k) for k in evaluation.RATINGS)
        table.append((name, len(rs), f"{g}(1) + {n}(0) + {b}(-1) = {g - b}", g - b))
    rs = [r["rating"] for r in rows]
    g, n, b = (rs.count(k) for k in evaluation.RATINGS)
    table.append(("TOTAL", len(rs), f"{g}(1) + {n}(0) + {b}(-1) = {g - b}", g - b))
    return table


def auxiliary(npy, split, base_runs, aux_runs, samples, seed):
    """Top-1 of classifier runs without and with the envelope loss (paired by position =
    seed), per-clip correctness averaged over the runs, paired bootstrap of the difference."""
    def correct(run):
        d = npy / run
        ids = datafiles.read_ids(d / f"{split}_ids.txt")
        scores, labels = np.load(d / f"{split}_scores.npy"), np.load(d / f"{split}_labels.npy")
        return dict(zip(ids, (scores.argmax(1) == labels).astype(float)))
    base, aux = [correct(r) for r in base_runs], [correct(r) for r in aux_runs]
    ids = sorted(base[0])
    for d, r in zip(base + aux, list(base_runs) + list(aux_runs)):
        if sorted(d) != ids:
            raise ValueError(f"run {r}: its {split} ids differ from run {base_runs[0]}'s")
    a = np.array([[d[i] for i in ids] for d in base]).mean(0)
    b = np.array([[d[i] for i in ids] for d in aux]).mean(0)
    rng = np.random.default_rng([seed, 11])
    diffs = [np.mean(b[idx] - a[idx]) for idx in (rng.integers(0, len(ids), len(ids))
                                                  for _ in range(samples))]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return dict(clips=len(ids), without_runs=list(base_runs), with_runs=list(aux_runs),
                top1_without=100 * float(a.mean()), top1_with=100 * float(b.mean()),
                per_run_top1_without=[100 * float(np.mean(list(d.values()))) for d in base],
                per_run_top1_with=[100 * float(np.mean(list(d.values()))) for d in aux],
                difference=100 * float(b.mean() - a.mean()), low=100 * float(lo),
                high=100 * float(hi))


# ---------------------------------------------------------------- outputs

def plot_ratings(out_dir, ids, rows, preds, truth, times, manifest):
    plt = pyplot()
    by_id = {v["id"]: v for v in (manifest or {}).get("videos", [])}
    colours = {"hit": "tab:green", "click": "tab:red", "silent_hit": "tab:purple"}
    written = []
    for kind in evaluation.RATINGS:
        chosen = [(i, r) for i, r in zip(ids, rows) if r["rating"] == kind][:PLOT_CLIPS]
        if not chosen:
            continue
        fig, axes = plt.subplots(4, 3, figsize=(15, 11), squeeze=False)
        for ax, (i, r) in zip(axes.flat, chosen):
            t = times[i]
            ax.plot(t, truth[i], color="black", lw=1.2, label="true")
            ax.plot(t, preds[i], color="tab:blue", lw=1.2, label="predicted")
            ax.plot(t[r["true_peaks"]], np.asarray(truth[i])[r["true_peaks"]], "kv", ms=5)
            ax.plot(t[r["pred_peaks"]], np.asarray(preds[i])[r["pred_peaks"]], "b^", ms=5)
            for e in by_id.get(i, {}).get("events", []):
                ax.axvline(e["time"], color=colours.get(e["kind"], "grey"), ls="--", lw=0.8)
            ax.set_title(f"{i}\nF1 {r['f1']:.2f}, r {r['r']:.2f}", fontsize=7)
            ax.set_ylim(-0.05, 1.05)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(chosen):]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=6)
        fig.suptitle(f"rating {kind}: predicted (blue) vs true (black) envelope; events: "
                     "hit green, click red, silent hit purple (dashed)", fontsize=9)
        fig.tight_layout()
        path = out_dir / "plots" / f"rating_{kind}.png"
        save_figure(fig, path, dpi=80)
        written.append(path)
    return written


def fmt(x, digits=3):
    return "nan" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def write_markdown(path, report):
    m = report["methods"]
    lines = [f"# Envelope evaluation: {report['run']} on {report['split']} "
             f"({report['clips']} clips)", "",
             *markdown_table(
                 ["method", "onset F1", "P", "R", "count acc", "mean r", "MSE", "BCE",
                  "rating score"],
                 [[name, fmt(s["onset_f1"]), fmt(s["onset_precision"]), fmt(s["onset_recall"]),
                   fmt(s["onset_count_accuracy"]), fmt(s["mean_r"]), fmt(s["mse"], 4),
                   fmt(s["bce"]), fmt(s["score"], 2)] for name, s in m.items()])]
    lines += ["", "Model minus the best baseline (paired bootstrap 95 %, "
              f"{report['bootstrap_samples']} resamples of the clips):", ""]
    for k, d in report["model_minus_best_baseline"].items():
        lines.append(f"- {k}: {d['difference']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] "
                     f"vs {d['baseline']}")
    lines += ["", "The seed's rating, automatic (good = onset F1 1 and r >= 0.5; bad = F1 0 "
              "or r < 0.2):", "", "Class label | Total samples | Total score |", "---|---|---|"]
    lines += [f"{c} | {n} | {text} |" for c, n, text, _ in report["rating_table"]]
    lines.append(f"\nScore: {report['methods']['model']['score']:+.2f} (in [-1, 1])")
    if report.get("events"):
        lines += ["", "| event kind | events | with a predicted peak | with a true peak |",
                  "|---|---:|---:|---:|"]
        for k, d in sorted(report["events"].items()):
            lines.append(f"| {k} | {d['events']} | {d['share_predicted']:.1%} | "
                         f"{d['share_true']:.1%} |")
    a = report.get("auxiliary")
    if a:
        lines += ["", f"Auxiliary task ({a['clips']} clips, {len(a['with_runs'])} seeds): "
                  f"classifier top-1 without the envelope loss {a['top1_without']:.2f} %, with "
                  f"it {a['top1_with']:.2f} %; difference {a['difference']:+.2f} points "
                  f"[{a['low']:+.2f}, {a['high']:+.2f}] (paired bootstrap 95 %); per run "
                  f"without {', '.join(f'{x:.1f}' for x in a['per_run_top1_without'])}, with "
                  f"{', '.join(f'{x:.1f}' for x in a['per_run_top1_with'])}"]
    datafiles.write_text(path, "\n".join(lines) + "\n")


def main(argv=None):
    """Parse, read the predictions and true envelopes by id, score model and baselines,
    write report.json / report.md and plots.

    Longer than ~60 lines on purpose: it reads top to bottom as the step's report is made;
    each metric and table is a function above."""
    parser = cli.parser(__doc__, KEYS)
    parser.add_argument("--manifest", default=None, metavar="FILE",
                        help=f"events manifest (default <video_root>/{MANIFEST} if it exists)")
    parser.add_argument("--classifier-runs", nargs="*", default=[], metavar="RUN",
                        help="auxiliary comparison: classifier runs without the envelope loss")
    parser.add_argument("--aux-classifier-runs", nargs="*", default=[], metavar="RUN",
                        help="the same seeds with the envelope loss, in the same order")
    cfg = cli.parse(parser, argv)
    if len(cfg.classifier_runs) != len(cfg.aux_classifier_runs):
        parser.error("--classifier-runs and --aux-classifier-runs pair up: give as many of each")
    paths = datafiles.Paths(cfg)
    split = cfg.eval_split
    try:
        env_dir = target.envelope_dir(paths, cfg)
        pred_path = paths.npy_dir() / f"{split}_envelope.npz"
        ids, preds, times = read_predictions(pred_path)
        truth = target.load_envelopes(env_dir, ids)
        classes = datafiles.read_classes(paths.classes)
        labels = datafiles.labels_for(paths.video_list(split), ids)
        train_ids = datafiles.read_ids(target.envelope_list(paths, cfg, cfg.train_split,
                                                              "envelopes"))
        train_env = list(target.load_envelopes(env_dir, train_ids).values())
        train_labels = datafiles.labels_for(paths.video_list(cfg.train_split), train_ids)
        for i in ids:
            if len(preds[i]) != len(truth[i]):
                raise ValueError(f"{pred_path}: {i} has {len(preds[i])} predicted frames, "
                                 f"step 09 {len(truth[i])}")
    except (OSError, ValueError) as e:
        cli.fail(cli.explain(e))
    manifest_path = Path(cfg.manifest) if cfg.manifest else paths.video_root / MANIFEST
    manifest = (json.loads(manifest_path.read_text(encoding="utf-8"))
                if manifest_path.exists() else None)

    rows = {"model": score_all(ids, preds, truth, cfg)}
    for name, b in baselines(ids, labels, truth, train_env, train_labels, len(classes),
                             cfg.seed).items():
        rows[name] = score_all(ids, b, truth, cfg)
    methods = {k: evaluation.summary(v) for k, v in rows.items()}
    versus = {}
    for key, stat in (("onset_f1", evaluation.stat_f1), ("mean_r", evaluation.stat_r)):
        best = max((k for k in methods if k != "model"), key=lambda k: methods[k][key])
        boot = metrics.paired_bootstrap(rows["model"], rows[best], cfg.bootstrap_samples,
                                        cfg.seed, stat=stat)
        versus[key] = dict(baseline=best, difference=boot["diff"], low=boot["ci95"][0],
                           high=boot["ci95"][1])
    out_dir = paths.npy / "envelope"
    report = dict(run=cfg.run, split=split, clips=len(ids), predictions=paths.relative(
        pred_path), envelopes=paths.relative(env_dir), peak_height=cfg.peak_height,
        peak_prominence=cfg.peak_prominence, tolerance_frames=cfg.onset_tolerance_frames,
        bootstrap_samples=cfg.bootstrap_samples, methods=methods,
        model_minus_best_baseline=versus,
        rating_table=rating_table(ids, rows["model"], labels, classes),
        events=(event_breakdown(ids, rows["model"], times, manifest,
                                cfg.onset_tolerance_frames) if manifest else None),
        clips_detail=[dict(id=i, label=classes[y], **{k: v for k, v in r.items()})
                      for i, y, r in zip(ids, labels, rows["model"])])
    if cfg.classifier_runs:
        try:
            report["auxiliary"] = auxiliary(paths.npy, split, cfg.classifier_runs,
                                            cfg.aux_classifier_runs, cfg.bootstrap_samples,
                                            cfg.seed)
        except (OSError, ValueError) as e:
            cli.fail(cli.explain(e))
    plots = plot_ratings(out_dir, ids, rows["model"], preds, truth, times, manifest)
    report["plots"] = [paths.relative(p) for p in plots]
    datafiles.write_text(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
    write_markdown(out_dir / "report.md", report)
    print((out_dir / "report.md").read_text(encoding="utf-8"))
    print(f"[10] -> {out_dir}/report.json, report.md, plots/")


if __name__ == "__main__":
    cli.run_script(main)
