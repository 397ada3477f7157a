"""Step 07: fuse score sources matched by id (audio tracks + video model) and report honestly.

Reads
  --scores NAME=FILE ...  .npy float [n, n_classes] per source (probabilities or logits, see
                          --kind), each with its ids beside it (datafiles.ids_path_for:
                          x_scores.npy -> x_ids.txt, y.npy -> y_ids.txt). All sources must hold
                          the same SET of ids (else an error listing the differences); rows
                          are reordered by id to the first source's order. Names: letters,
                          digits, _ and -; names starting with "aud" (audio, aud_mel) form the
                          audio set A of the learned fusion layers, all others the visual set V.
                          default: audio=npy_files/<dataset>/<run>/<split>_scores.npy
                                   video=video_classification_results/<dataset>/
                                         <video_name>_<split>_matched.npy
  --labels FILE           id<TAB>label, looked up by id; every row needs a label in
                          0..n_classes-1 (default file_lists/<dataset>/<split>_videos.txt)
  --classes FILE          default file_lists/<dataset>/classes.txt (label = line number)
  <a source's record>     records.find: a record beside a source (train.py's record.json,
                          step 06's <name>_record.json) must list the split (EVAL_SPLIT) with
                          the source's rows and the classes of --classes, else an error
                          naming both files; a file without one is taken as given (a note)
Writes (--out-dir DIR, default npy_files/<dataset>/fusion/)
  fused_scores.npy        float32 [n, n_classes] weighted average of the sources' probabilities,
                          each row fused with the weights chosen on the OTHER folds
                          (cross-fitted, FUSION_FOLDS folds stratified by class, seed SEED)
  fused_ids.txt           the row order of every array written here (first source's order)
  learned_<layer>_scores.npy (+ _ids.txt)  cross-fitted learned fusion probabilities
                          (layer: sum, grouped, concat; see below)
  weights.json            "weights": chosen on all rows (an oracle for these rows; the choice
                          --apply uses on other splits), "folds": per-fold weights, "kinds"
  record.json             records.py: the classes, the split and its rows, the sources' records
  report.json, report.md  metrics of each source, the cross-fitted and oracle weighted average,
                          the learned fusion layers; gain over the best source with a paired
                          bootstrap 95 % interval; git commit and package versions
  whole_split_scores.npy, whole_split_ids.txt, whole_split_rows.tsv   when the video model's
                          scores of every video are there (step 06's <name>_<split>_all.npy):
                          float32 [n_videos, n_classes] for EVERY video it scored, the fused
                          row where the video has a sound track, its video score alone where
                          not (rows.tsv: id, fused | video_only, the reason from steps 02-03);
                          report.json's "whole_split": top-1 / top-5 of the video alone and
                          fused over the whole split, with the paired bootstrap: the number a
                          paper compares with its video model's accuracy
  accuracy_vs_weight.png  (two sources) top-1/top-5 on all rows against the weight, with the
                          oracle and per-fold choices; per_class_gain.png; confusion.png
The learned fusion is soundtrack/learned_fusion.py's Phase II (the two-phase paper's F1-F6 layers:
per-source weight vectors, then a dense layer FC(n_classes) + softmax, mixup + KL loss,
LEARNED_FUSION_* settings), cross-fitted on the same folds as the weighted average. Step 07
has score files only (no embeddings or logits), so it runs the three layers (sum, grouped,
concat) over the sources' score features (centred log-probabilities): the score-level
counterpart of F4-F6. Grouped and concat need an audio and a visual source (else skipped,
with the reason in the report). Phase II on embeddings and logits is step 12.
With --apply WEIGHTS.json (an unlabelled split; no labels read), in --out:
  <split>_fused_scores.npy, <split>_fused_ids.txt  float32 [n, n_classes], fused with
                          WEIGHTS.json's "weights" and its recorded normalisation kinds
  <split>_predictions.tsv header "id top1 ... top5", then id<TAB>5 class names, best first
"""
import json
import re
from pathlib import Path

import numpy as np

from soundtrack import audio
from soundtrack import cli
from soundtrack import datafiles
from soundtrack import join
import fusion
from soundtrack import learned_fusion
from soundtrack import metrics
from soundtrack import records
from soundtrack.report import markdown_table, provenance_line, pyplot, save_figure

RESERVED_NAMES = {"fused", "oracle", "gain", "learned", "n", "settings", "sources", "versions",
                  "git_commit", "git_dirty", "n_classes", "best_single"}
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+$")
MODALITIES = {"audio": "audio", "video": "visual"}   # --scores modality -> learned-fusion group
FULL_CONFUSION_MAX_CLASSES = 30  # above: the confusion plot shows the most-confused classes


# ---------------------------------------------------------------- inputs

def parse_sources(items):
    """['audio:aud=x.npy', 'video=y.npy'] -> ({name: Path} in order, {name: modality}).

    A source is MODALITY:NAME=FILE (modality audio or video), or NAME=FILE where the name is
    itself audio or video; a source's modality is never guessed from any other name."""
    files, modality = {}, {}
    for item in items:
        head, sep, value = item.partition("=")
        kind, colon, name = head.rpartition(":")
        if not colon:
            kind, name = head, head
        if kind not in MODALITIES:
            raise ValueError(f"--scores {item!r}: say the source's modality: audio:NAME=FILE "
                             f"or video:NAME=FILE (NAME=FILE only for the names audio and "
                             f"video)")
        named = parse_named([f"{name}{sep}{value}"], "--scores")
        if name in files:
            raise ValueError(f"--scores: {name!r} given twice")
        files[name], modality[name] = Path(named[name]), kind
    return files, modality


def parse_named(items, what):
    """['a=x', 'b=y'] -> {'a': 'x', 'b': 'y'} in order; names: letters, digits, _ and -, not
    a word the report uses for itself."""
    return cli.named_values(items, what, lambda name: None if (
        NAME_PATTERN.match(name) and name not in RESERVED_NAMES) else (
        f"bad source name {name!r} (letters, digits, _ and -; not one of "
        f"{sorted(RESERVED_NAMES)})"))


def load_sources(files, classes, classes_path, split):
    """{name: path} -> ({name: float32 [n, C]} all in the first source's id order, ids,
    {name: its record's path or None}). Every source must hold the same ids (step 06 matched
    them); a source's record (records.find) must list `split` with its rows and the classes
    of classes_path."""
    arrays, sources, found = {}, {}, {}
    for name, path in files.items():
        ids_path = datafiles.ids_path_for(path)
        if not ids_path.exists():
            raise ValueError(f"{path}: no ids file {ids_path} beside it (step 06 writes one; "
                             f"rows are matched by id, never by position)")
        arrays[name], these = datafiles.load_scores(path, ids_path, len(classes))
        sources[name] = (these, path)
        found[name] = records.find(path)
        if found[name] is None:
            print(f"07 note: {path} ({name}) has no record beside it (a file of your own?): "
                  f"its classes and split are taken as given")
        else:
            records.check(records.read(found[name]), found[name], classes=classes,
                          classes_where=str(classes_path), split=split, rows=len(these))
    joined = join.join(sources, policy="all",
                       hint="; match them first (06_match_video_to_audio.py)")
    return ({name: joined.take(name, a) for name, a in arrays.items()}, joined.ids, found)


def write_record(cfg, out_dir, classes, split, rows, found):
    """fusion's record.json: the classes, the split and its rows, the sources' records."""
    record = records.new("07_fuse.py", "fusion", classes)
    record["sources"] = {k: cfg.paths.relative(v) if v else None for k, v in found.items()}
    records.add_split(records.folder_record(out_dir), record, split, rows)


def labels_by_id(labels_path, ids, n_classes):
    """Labels of `ids` looked up in an id<TAB>label file; every id must have one in
    0..n_classes-1."""
    labels = datafiles.labels_for(labels_path, ids)
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        raise ValueError(f"{labels_path}: id {ids[bad[0]]!r} has label {labels[bad[0]]} "
                         f"({len(bad)} ids outside 0..{n_classes - 1}; -1 = unlabelled: "
                         f"fuse unlabelled splits with --apply)")
    return labels


def normalize_all(scores, kinds, files):
    """Each source to probabilities; kinds {name: auto|probs|logits} -> (probs, decided)."""
    probs, decided = {}, {}
    for name, array in scores.items():
        probs[name], decided[name] = fusion.normalize(array, kinds.get(name, "auto"),
                                                      f"{files[name]} ({name})")
    return probs, decided


# ---------------------------------------------------------------- tables and plots

def table(rows):
    """Markdown table of (method, metrics dict) rows."""
    return "\n".join(markdown_table(
        ["method", "top-1 %", "top-5 %", "mean class acc %", "n"],
        [[label, f"{m['top1']:.2f}", f"{m['top5']:.2f}", f"{m['mean_class_acc']:.2f}", m["n"]]
         for label, m in rows]))


def plot_weight_curve(path, cf, x_name, n_folds):
    """Top-1/top-5 on all rows against the weight of `x_name`; oracle and fold choices."""
    plt = pyplot()
    s = cf.names.index(x_name)
    x = cf.grid[:, s]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(x, cf.curve_top1, label="top-1, all rows")
    ax.plot(x, cf.curve_top5, label="top-5, all rows", alpha=0.6)
    ax.axvline(cf.oracle_weights[s], color="k", lw=1.2,
               label=f"oracle {x_name} weight {cf.oracle_weights[s]:.2f}")
    for f, w in enumerate(cf.fold_weights[:, s]):
        ax.axvline(w, color="tab:red", ls=":", lw=1.0,
                   label=f"weights chosen on other folds ({n_folds})" if f == 0 else None)
    ax.axhline(cf.metrics["top1"], color="tab:green", ls="--", lw=1.0,
               label=f"cross-fitted top-1 {cf.metrics['top1']:.2f}")
    ax.set_xlabel(f"weight of {x_name} (1 - weight on the other source)")
    ax.set_ylabel("accuracy %")
    ax.set_xlim(0, 1)
    ax.set_title(f"weighted average fusion, n = {cf.metrics['n']}")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_figure(fig, path)


def plot_class_gain(path, gain, classes, best_name):
    """Bar chart: per-class top-1 of the cross-fitted fusion minus the best single source."""
    plt = pyplot()
    present = np.flatnonzero(~np.isnan(gain))
    order = present[np.argsort(-gain[present], kind="stable")]
    fig, ax = plt.subplots(figsize=(max(6.4, min(16, 0.25 * len(order))), 4.2))
    values = 100 * gain[order]
    ax.bar(np.arange(len(order)), values, color=np.where(values >= 0, "tab:blue", "tab:red"),
           width=0.8)
    ax.axhline(0, color="k", lw=0.8)
    if len(order) <= FULL_CONFUSION_MAX_CLASSES:
        ax.set_xticks(np.arange(len(order)))
        ax.set_xticklabels([classes[c] for c in order], rotation=60, ha="right", fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(order)} classes, sorted by gain")
    ax.set_ylabel(f"top-1 gain over {best_name} (points)")
    ax.set_title("per-class gain of cross-fitted fusion")
    fig.tight_layout()
    save_figure(fig, path)


def plot_confusion(path, labels, predicted, classes):
    """Row-normalised confusion matrix; for many classes only the most-confused ones."""
    plt = pyplot()
    n_classes = len(classes)
    counts = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(counts, (labels, predicted), 1)
    if n_classes <= FULL_CONFUSION_MAX_CLASSES:
        shown = np.arange(n_classes)
        title = "confusion (rows: true class, row-normalised)"
    else:
        off = counts - np.diag(np.diag(counts))
        shown = np.sort(np.argsort(-(off.sum(0) + off.sum(1)),
                                   kind="stable")[:FULL_CONFUSION_MAX_CLASSES])
        title = (f"the {len(shown)} most-confused of {n_classes} classes "
                 f"(rows: true class, normalised over all predictions)")
    rows = counts[shown] / np.maximum(counts[shown].sum(1, keepdims=True), 1)
    sub = rows[:, shown]
    fig, ax = plt.subplots(figsize=(7, 6.2))
    im = ax.imshow(sub, cmap="viridis", vmin=0, vmax=1)
    names = [classes[c] for c in shown]
    ax.set_xticks(np.arange(len(shown)))
    ax.set_yticks(np.arange(len(shown)))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_yticklabels(names, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------- the two modes

def run_learned(cfg, probs, labels, layers, folds, n_classes, ids, out_dir, groups):
    """The learned fusion layers, cross-fitted on the weighted average's folds; each layer's
    probabilities written. -> ({layer: metrics or {"skipped": why}}, the settings)"""
    learned = {}
    fit = learned_fusion.FusionSettings.from_settings(cfg)
    for layer in cli.progress(layers, desc="07 learned fusion", unit="layer",
                              disable=not layers):
        try:
            r = learned_fusion.cross_fit_fusion(probs, labels, layer, folds, n_classes,
                                                kinds={k: "scores" for k in probs},
                                                groups=groups, settings=fit)
        except ValueError as e:  # e.g. grouped fusion without an audio and a visual source
            learned[layer] = {"skipped": str(e)}
            continue
        learned[layer] = {**r["metrics"], "dense": r["dense"], "inputs": "score features",
                          "fold_losses": r["fold_losses"]}
        datafiles.save_npy(out_dir / f"learned_{layer}_scores.npy", r["probs"])
        datafiles.write_lines(out_dir / f"learned_{layer}_ids.txt", ids)
    return learned, fit


def weighted_rows(cf, names, n_folds):
    """The cross-fitted and the oracle weighted average, as the report holds them."""
    mean_w = cf.fold_weights.mean(axis=0)
    fused = {**cf.metrics, "method": f"weighted average, cross-fitted ({n_folds} folds)",
             "weights": cf.weights_dict(mean_w),
             "fold_weights": [cf.weights_dict(w) for w in cf.fold_weights],
             "fold_metrics": cf.fold_metrics}
    oracle = {**cf.oracle_metrics, "method": "weighted average, weights tuned on these rows",
              "weights": cf.weights_dict(cf.oracle_weights)}
    if "audio" in names:
        fused["audio_weight"] = float(mean_w[names.index("audio")])
        oracle["audio_weight"] = float(cf.oracle_weights[names.index("audio")])
    return fused, oracle


def markdown(report, decided, best, info):
    """report.md's text, and its lines without the title (printed)."""
    names, learned, boot = list(report["sources"]), report["learned"], report["gain"]
    fused, oracle = report["fused"], report["oracle"]
    rows = [(f"{k} ({decided[k]})", report[k]) for k in names]
    rows.append((fused["method"], fused))
    rows.append((oracle["method"] + " (oracle)", oracle))
    for layer, r in learned.items():
        if "skipped" not in r:
            rows.append((f"learned {layer} layer on score features ({r['dense']} dense), "
                         f"cross-fitted", r))
    w_text = ", ".join(f"{k} {v:.3f}" for k, v in fused["weights"].items())
    o_text = ", ".join(f"{k} {v:.2f}" for k, v in oracle["weights"].items())
    lines = [table(rows), "",
             f"Gain of cross-fitted fusion over the best single source ({best}): "
             f"{boot['top1']:+.2f} top-1 points, 95 % CI [{boot['ci95'][0]:+.2f}, "
             f"{boot['ci95'][1]:+.2f}] (paired bootstrap, {boot['bootstrap_samples']} "
             f"samples).",
             f"Weights: mean over folds {w_text}; oracle {o_text}."]
    lines += [f"learned {v}: skipped ({r['skipped']})" for v, r in learned.items()
              if "skipped" in r]
    whole = report.get("whole_split")
    if whole:
        g = whole["gain"]
        missing = whole["n_split_videos_without_video_score"]
        lines += ["", f"The whole split: {whole['n']} videos, {whole['n_with_sound']} fused, "
                      f"{whole['n_video_only']} without a sound track scored by the video model "
                      f"alone (whole_split_rows.tsv says why)"
                      + (f"; {missing} more of the split have no video score" if missing
                         else "") + ":", "",
                  table([(f"video alone ({whole['video_scores']})", whole["video"]),
                         ("fused where there is sound, else video", whole["fused"])]), "",
                  f"Gain on the whole split: {g['top1']:+.2f} top-1 points, 95 % CI "
                  f"[{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}] (paired bootstrap, "
                  f"{g['bootstrap_samples']} samples)."]
    lines.append(provenance_line(info))
    md = "\n".join(["# Fusion report", "",
                    f"{report['n']} videos with every score source, {report['n_classes']} "
                    f"classes; labels from {report['labels']}.", ""] + lines) + "\n"
    return md, lines


def no_track_reasons(cfg, audio_record, split):
    """{id: why it has no audio score}: step 02's no_audio and failed lists and step 03's
    skipped list, for the front end the audio run's record names."""
    paths = cfg.paths
    reasons = {}
    if audio_record and audio_record.get("front_end"):
        fe = audio.FrontEnd.from_dict(audio_record["front_end"])
        for what in ("no_audio", "failed"):
            for i, r in datafiles.read_reasons(
                    paths.stage_list(split, f"{fe.audio_folder}_{what}")).items():
                reasons[i] = f"step 02 {what}: {r}"
        for i, r in datafiles.read_reasons(paths.stage_list(split, f"{fe.name}_skipped")).items():
            reasons[i] = f"step 03: {r.replace(chr(9), ': ')}"
    return reasons


def whole_split(cfg, files, decided, found, ids, fused_probs, labels_path, classes,
                out_dir):
    """Every video the video model scored: the fused row where it has a sound track, its
    video score alone where not (marked, with step 02's reason). -> the report's
    "whole_split" (top-1 / top-5 of the video alone and fused, the paired bootstrap), or
    None when there is no one video source or no scores of every video (step 06's
    <name>_<split>_all.npy beside its matched file)."""
    video = [k for k, m in cfg.modality.items() if m == "video"]
    audio_src = [k for k, m in cfg.modality.items() if m == "audio"]
    if len(video) != 1:
        return None
    name = video[0]
    stem = files[name].stem
    every = cfg.video_all or files[name].with_name(
        (stem[:-len("_matched")] if stem.endswith("_matched") else stem) + "_all.npy")
    if not Path(every).is_file():
        if cfg.video_all:
            raise ValueError(f"{every} not found: run scripts/06_match_video_to_audio.py first "
                             f"(it writes every video's scores beside its matched file)")
        print(f"07 note: no {every} (step 06 writes it): the whole split is not reported")
        return None
    scores_all, ids_all, _ = load_sources({name: Path(every)}, classes, cfg.classes_path,
                                          cfg.eval_split)
    split_ids = set(datafiles.read_video_list(labels_path)[0])
    inside = [r for r, i in enumerate(ids_all) if i in split_ids]
    n_outside = len(ids_all) - len(inside)
    ids_all = [ids_all[r] for r in inside]
    probs_all, _ = fusion.normalize(scores_all[name][inside], decided[name],
                                    f"{every} ({name})")
    joined = join.join({"every video": (ids_all, every), "with sound": (ids, "fused rows")},
                       policy="common")
    if len(joined.ids) != len(ids):
        raise ValueError(f"{every}: {len(ids) - len(joined.ids)} of the fused videos are not "
                         f"in it: step 06 wrote it from another score file")
    fused_all = probs_all.copy()
    fused_all[joined.rows["every video"]] = fused_probs[joined.rows["with sound"]]
    has_track = np.zeros(len(ids_all), bool)
    has_track[joined.rows["every video"]] = True
    reasons = no_track_reasons(cfg, records.read(found[audio_src[0]])
                               if len(audio_src) == 1 and found.get(audio_src[0]) else None,
                               cfg.eval_split)
    labels = labels_by_id(labels_path, ids_all, len(classes))
    video_correct = metrics.true_class_rank(probs_all, labels) < 1
    fused_correct = metrics.true_class_rank(fused_all, labels) < 1
    boot = metrics.paired_bootstrap(fused_correct, video_correct, cfg.bootstrap_samples,
                                    cfg.seed)
    datafiles.save_npy(out_dir / "whole_split_scores.npy", fused_all.astype(np.float32))
    datafiles.write_lines(out_dir / "whole_split_ids.txt", ids_all)
    rows = [f"{i}\tfused\t" if t else
            f"{i}\tvideo_only\t{reasons.get(i, 'no audio score in the audio run')}"
            for i, t in zip(ids_all, has_track)]
    datafiles.write_lines(out_dir / "whole_split_rows.tsv", ["id\tscore\treason"] + rows)
    return {"n": len(ids_all), "n_with_sound": int(has_track.sum()),
            "n_video_only": int((~has_track).sum()),
            "n_split_videos_without_video_score": len(split_ids) - len(ids_all),
            "n_video_scores_outside_the_split": n_outside,
            "video_scores": cfg.paths.relative(every),
            "video": fusion.metrics(probs_all, labels), "fused": fusion.metrics(fused_all, labels),
            "gain": {"top1": boot["diff"], "ci95": boot["ci95"], "over": f"{name} alone",
                     "bootstrap_samples": boot["n_samples"], "seed": boot["seed"]},
            "rows": "whole_split_rows.tsv: fused, or video_only with the reason"}


def evaluate(cfg, files, kinds, classes, labels_path, out_dir, layers):
    """Fuse labelled sources: each alone, the cross-fitted and oracle weighted average, the
    learned layers, the gain over the best source; write the files of the module docstring.
    -> the report (dict)."""
    n_classes = len(classes)
    scores, ids, found = load_sources(files, classes, cfg.classes_path, cfg.eval_split)
    labels = labels_by_id(labels_path, ids, n_classes)
    probs, decided = normalize_all(scores, kinds, files)
    names = list(probs)
    single = {k: fusion.metrics(p, labels) for k, p in probs.items()}
    cf = fusion.cross_fit(probs, labels, n_folds=cfg.fusion_folds,
                          steps=cfg.fusion_grid_steps, seed=cfg.seed)
    best = fusion.best_source(single)
    fused_correct = metrics.true_class_rank(cf.probs, labels) < 1
    best_correct = metrics.true_class_rank(probs[best], labels) < 1
    boot = metrics.paired_bootstrap(fused_correct, best_correct, cfg.bootstrap_samples, cfg.seed)
    groups = {k: MODALITIES[cfg.modality[k]] for k in names}
    learned, fit = run_learned(cfg, probs, labels, layers, cf.folds, n_classes, ids, out_dir,
                               groups)
    fused, oracle = weighted_rows(cf, names, cfg.fusion_folds)
    settings = {"fusion_folds": cfg.fusion_folds, "fusion_grid_steps": cfg.fusion_grid_steps,
                "grid_points": len(cf.grid), "seed": cfg.seed,
                "bootstrap_samples": cfg.bootstrap_samples,
                "learned_fusion": fit.to_dict(),
                "groups": groups}
    info = datafiles.provenance()
    report = {
        "n": int(len(ids)), "n_classes": n_classes,
        "classes": cfg.paths.relative(cfg.classes_path),
        "labels": cfg.paths.relative(labels_path),
        "sources": {k: {"file": cfg.paths.relative(files[k]), "kind": decided[k]}
                    for k in names},
        **single,
        "fused": fused, "oracle": oracle,
        "gain": {"top1": boot["diff"], "ci95": boot["ci95"], "over": best,
                 "bootstrap_samples": boot["n_samples"], "seed": boot["seed"]},
        "learned": learned, "settings": settings, **info,
    }
    whole = whole_split(cfg, files, decided, found, ids, cf.probs, labels_path, classes,
                        out_dir)
    if whole is not None:
        report["whole_split"] = whole
    weights = {"sources": names, "kinds": decided, "n_classes": n_classes,
               "weights": cf.weights_dict(cf.oracle_weights),
               "note": "'weights' were chosen on all labelled rows of "
                       + cfg.paths.relative(labels_path)
                       + ": an oracle for those rows, a fair choice for another split",
               "folds": [cf.weights_dict(w) for w in cf.fold_weights],
               "settings": settings, "git_commit": info["git_commit"]}
    md, lines = markdown(report, decided, best, info)

    datafiles.save_npy(out_dir / "fused_scores.npy", cf.probs)
    datafiles.write_lines(out_dir / "fused_ids.txt", ids)
    datafiles.write_text(out_dir / "weights.json", json.dumps(weights, indent=2) + "\n")
    datafiles.write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    datafiles.write_text(out_dir / "report.md", md)
    write_record(cfg, out_dir, classes, cfg.eval_split, len(ids), found)
    if len(names) == 2:
        x_name = "audio" if "audio" in names else names[0]
        plot_weight_curve(out_dir / "accuracy_vs_weight.png", cf, x_name, cfg.fusion_folds)
    gain = (fusion.per_class_accuracy(fused_correct, labels, n_classes)
            - fusion.per_class_accuracy(best_correct, labels, n_classes))
    plot_class_gain(out_dir / "per_class_gain.png", gain, classes, best)
    plot_confusion(out_dir / "confusion.png", labels, cf.probs.argmax(axis=1), classes)
    print("\n".join(lines))
    print(f"07 wrote {out_dir}: fused_scores.npy, weights.json, report.json, report.md, plots")
    return report


def apply(cfg, files, kinds, classes, weights_path, out_dir, split):
    with open(weights_path, encoding="utf-8") as f:
        chosen = json.load(f)
    names = chosen["sources"]
    if set(files) != set(names):
        raise ValueError(f"{weights_path} holds weights for {names}; --scores gave "
                         f"{list(files)}")
    if chosen["n_classes"] != len(classes):
        raise ValueError(f"{weights_path}: chosen for {chosen['n_classes']} classes, "
                         f"classes file has {len(classes)}")
    files = {k: files[k] for k in names}
    scores, ids, found = load_sources(files, classes, cfg.classes_path, split)
    recorded = {k: kinds.get(k, chosen["kinds"][k]) for k in names}
    probs, _ = normalize_all(scores, recorded, files)
    fused = fusion.fuse(probs, chosen["weights"])
    top = np.argsort(-fused, axis=1, kind="stable")[:, :fusion.TOP_K]
    datafiles.save_npy(out_dir / f"{split}_fused_scores.npy", fused)
    datafiles.write_lines(out_dir / f"{split}_fused_ids.txt", ids)
    header = "\t".join(["id"] + [f"top{k + 1}" for k in range(top.shape[1])])
    datafiles.write_lines(out_dir / f"{split}_predictions.tsv", [header] + [
        "\t".join([i] + [classes[c] for c in row]) for i, row in zip(ids, top)])
    write_record(cfg, out_dir, classes, split, len(ids), found)
    print(f"07 --apply {weights_path}: fused {len(ids)} videos with "
          f"{chosen['weights']} -> {out_dir}/{split}_fused_scores.npy, "
          f"{split}_predictions.tsv")
    return fused, ids


def main(argv=None):
    parser = cli.parser(__doc__, ["EVAL_SPLIT", "RUN", "VIDEO_NAME", "FUSION_FOLDS",
                                  "FUSION_GRID_STEPS", "BOOTSTRAP_SAMPLES",
                                  *learned_fusion.SETTINGS_KEYS])
    parser.add_argument("--scores", nargs="+", default=None, metavar="MODALITY:NAME=FILE",
                        help="the score sources: audio:NAME=FILE or video:NAME=FILE (a source "
                             "named audio or video may be given as audio=FILE / video=FILE); "
                             "default audio=npy_files/<dataset>/<run>/<split>_scores.npy "
                             "video=video_classification_results/<dataset>/<video_name>_"
                             "<split>_matched.npy")
    parser.add_argument("--kind", nargs="+", default=[], metavar="NAME=KIND",
                        help="auto (default) | probs | logits per source; see fusion.normalize")
    parser.add_argument("--video-all", type=Path, default=None, metavar="FILE",
                        help="the video model's scores of every video of the split (step 06's "
                             "<name>_<split>_all.npy; default: beside the video source's "
                             "matched file, if there): adds the whole-split report")
    parser.add_argument("--labels", type=Path, default=None, metavar="FILE")
    parser.add_argument("--classes", type=Path, default=None, metavar="FILE")
    parser.add_argument("--out-dir", type=Path, default=None, metavar="DIR",
                        help="the folder of the outputs (default npy_files/<dataset>/fusion/)")
    layers = learned_fusion.LAYERS
    parser.add_argument("--learned-layers", nargs="*", default=list(layers),
                        choices=layers, metavar="LAYER",
                        help=f"learned fusion layers to cross-fit, of {layers} "
                             f"(default all; the flag alone runs none)")
    parser.add_argument("--apply", type=Path, default=None, metavar="WEIGHTS.json",
                        help="fuse with weights chosen earlier; no labels needed")
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    split = cfg.eval_split                 # of the default paths and of --apply's outputs
    try:
        files, cfg.modality = (parse_sources(cfg.scores) if cfg.scores else (
            {"audio": paths.npy_dir() / f"{split}_scores.npy",
             "video": paths.video_results / f"{cfg.video_name}_{split}_matched.npy"},
            {"audio": "audio", "video": "video"}))
        kinds = parse_named(cfg.kind, "--kind")
    except ValueError as e:
        parser.error(str(e))
    for name, kind in kinds.items():
        if name not in files or kind not in fusion.KINDS:
            parser.error(f"--kind {name}={kind}: need a source of --scores and one of "
                         f"{fusion.KINDS}")
    cfg.classes_path = cfg.classes or paths.classes
    cfg.paths = paths
    classes = datafiles.read_classes(cfg.classes_path)
    out_dir = cfg.out_dir or paths.fusion_dir
    if cfg.apply is not None:
        return apply(cfg, files, kinds, classes, cfg.apply, out_dir, split)
    return evaluate(cfg, files, kinds, classes, cfg.labels or paths.video_list(split),
                    out_dir, cfg.learned_layers)


if __name__ == "__main__":
    cli.run_script(main)
