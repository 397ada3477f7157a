"""Step 12: Phase II of the two-phase audio-visual system (Pham et al., DCASE 2021) over the
frozen Phase I backbones, with its Table I / Table II report and Figure 4.

Reads
  --sources NAME=RUN ...  the Phase I backbones (five in the paper: aud_mel aud_gam aud_cqt
                          vis_inc vis_conv). NAME starts with "aud_" (audio set A) or "vis_"
                          (visual set V); RUN is a run name under npy_files/<dataset>/ or a
                          run's npy folder (<root>/npy_files/<dataset>/<run>: its checkpoint
                          is looked for in <root>/runs/<dataset>/<run>). Each holds train.py's output contract for
                          TRAIN_SPLIT and EVAL_SPLIT (train.py --eval-splits train val):
                          <split>_{scores,logits,embedding}.npy float32 [n, C] / [n, C] /
                          [n, d], <split>_labels.npy int64 [n], <split>_ids.txt. Rows are
                          aligned BY ID to the first source's order; every source must hold
                          the same set of ids with the same labels, C = the classes file's
                          count, and one embedding width d (else an error naming the source,
                          the file and the first differing id).
                          With TWO_PHASE_ROWS common, the ids every source holds are kept
                          (videos without sound or frames dropped; the report counts and
                          lists them per source and split).
                          <run>/record.json (records.py): the backbone's model name, its
                          classes (which must be classes.txt's), each split's rows, and the
                          checkpoint that scored EVAL_SPLIT (recorded for predict.py; under
                          the record's output root). A visual slot whose
                          model is not tv_inception_v3 / tv_convnext_tiny is labelled
                          "stand-in" in every output.
  --classes FILE          default file_lists/<dataset>/classes.txt
Writes (--out-dir DIR, default npy_files/<dataset>/two_phase/)
  record.json             records.py: classes, EVAL_SPLIT and its rows, the sources' records
  report.json, report.md  each backbone alone on EVAL_SPLIT (top-1, n, one-sided exact binomial p
                          against chance = the most frequent class, metrics.above_chance); Table I: rows = classes (+ "overall"), columns
                          F1-F6 (learned_fusion.PHASE2_LAYERS: F1-F3 on the FC(1024)
                          embeddings, F4-F6 on the FC(n_classes) logits), once per protocol;
                          Table II: audio only (the A backbones), visual only (V),
                          audio-visual (all), each with F4 under both protocols and the
                          weighted average of the sources' scores (fusion.cross_fit, the
                          simplex search of step 07, cross-fitted); F4 under protocol (b)
                          against the best single backbone with a paired bootstrap 95 %
                          interval; settings and provenance. Every accuracy has its n and
                          protocol beside it.
  per_class_accuracy.png  Figure 4: per-class accuracy of audio only / visual only /
                          audio-visual F4 and of the best backbone (protocol (b))
  phase2_F1.pt .. phase2_F6.pt  the protocol (a) models (trained on all of TRAIN_SPLIT) with
                          their sources' runs and checkpoints: what scripts/predict.py loads
                          to score new videos end to end
  <eval>_F<k>_<a|b>_scores.npy float32 [n, C] (+ <eval>_two_phase_ids.txt, their row order)

Protocols (both reported, always labelled):
  (a) the paper's: Phase II trained on TRAIN_SPLIT's embeddings, evaluated on EVAL_SPLIT.
      Those training embeddings come from backbones that fitted those very rows, so they are
      more separable than any unseen row's: (a) tends to trust the backbone that overfits
      most. Out-of-fold backbones on the training split would fix this; they are not run
      (five backbones x k folds of Phase I training).
  (b) the honest one: Phase II cross-fitted on EVAL_SPLIT with step 07's folds
      (fusion.make_folds: FUSION_FOLDS folds stratified by class, seed SEED); each row is
      scored by a model trained on the other folds.
Phase II never touches the backbones: it reads their saved outputs only.
"""
import json
import re
from pathlib import Path

import numpy as np

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import join
import fusion
from soundtrack import learned_fusion
from soundtrack import metrics
from soundtrack import records
from soundtrack.report import markdown_table, provenance_line, pyplot, save_figure

ARRAYS = ("scores", "logits", "embedding")
GROUP_PREFIXES = {"aud_": "audio", "vis_": "visual"}
PAPER_VISUAL_MODELS = ("tv_inception_v3", "tv_convnext_tiny")
NAME_PATTERN = re.compile(r"(aud|vis)_[A-Za-z0-9_-]+$")
PROTOCOLS = {"a": "(a) trained on the training split's embeddings (the paper's)",
             "b": "(b) cross-fitted on the evaluated split (honest)"}
SHOW_IDS = 5
SUBSETS = {"audio only": "audio", "visual only": "visual", "audio-visual": None}


# ---------------------------------------------------------------- inputs

def parse_sources(items):
    """['aud_mel=tp_aud_mel', ...] -> {name: value}; names must be aud_* or vis_*."""
    return cli.named_values(items, "--sources", lambda name: None if NAME_PATTERN.match(name)
                            else f"source name {name!r} must start with aud_ (audio set A) "
                                 f"or vis_ (visual set V), then letters, digits, _ or -",
                            value="RUN")


def group_of(name):
    return next(g for p, g in GROUP_PREFIXES.items() if name.startswith(p))


def recorded_path(paths, npy_dir, recorded):
    """A path as a record keeps it (relative to the output root it was written under) ->
    the file: tried under the npy folder's own output root (<root>/npy_files/<dataset>/<run>),
    then this run's output root and the repository."""
    p = Path(recorded)
    if p.is_absolute():
        return p
    roots = [Path(npy_dir).resolve().parents[2], cli.repo_path(paths.cfg.output_root or "."),
             cli.REPO_ROOT]
    return next((root / p for root in roots if (root / p).exists()), roots[0] / p)


def resolve(paths, name, value, eval_split):
    """A source's npy folder, its record (records.py), and the checkpoint that scored
    `eval_split` as the record names it."""
    given = Path(value)
    npy_dir, run = (given, given.name) if given.is_dir() else (paths.npy_dir(value), value)
    record = records.read_folder(npy_dir)
    where = records.folder_record(npy_dir)
    entry = record["splits"].get(eval_split, {}).get("checkpoint")
    ckpt_path = recorded_path(paths, npy_dir, entry["path"]) if entry else None
    model, classes = record["model"], record["classes"]
    group = group_of(name)
    stand_in = group == "visual" and model not in PAPER_VISUAL_MODELS
    label = f"{name} ({model or 'model unknown'}" + (", stand-in" if stand_in else "") + ")"
    return {"name": name, "group": group, "run": run, "npy_dir": npy_dir, "record": record,
            "record_path": where, "checkpoint": ckpt_path, "model": model, "classes": classes,
            "stand_in": stand_in, "label": label}


def load_split(sources, split, n_classes, rows="same"):
    """Every source's contract of one split, rows aligned by id to the first source.

    rows: "same" (every source must hold the same ids) or "common" (keep the ids all hold,
    in the first source's order; the others are counted per source).
    Returns:
      (ids, labels int64 [n], {name: {"scores", "logits", "embedding"}}, dropped: {name:
       {"n", "examples"}} of ids that source held and the result lacks).
    Raises ValueError naming the source, file and first offending id on a different id set
    (rows "same"), a different label for an id, or a wrong class count."""
    own = {}
    for name, src in sources.items():
        d = src["npy_dir"]
        ids_path = d / f"{split}_ids.txt"
        if not ids_path.exists() or split not in src["record"]["splits"]:
            raise ValueError(f"{name}: no {split} split in {d} (run train.py --run "
                             f"{src['run']} --eval-splits {split} ...)")
        these = datafiles.read_ids(ids_path)
        records.check(src["record"], src["record_path"], split=split, rows=len(these))
        arrays = {}
        for what in ARRAYS:
            arrays[what], _ = datafiles.load_scores(d / f"{split}_{what}.npy", ids_path,
                                                    n_classes if what != "embedding" else None)
        y = np.load(d / f"{split}_labels.npy", allow_pickle=False)
        if y.shape != (len(these),):
            raise ValueError(f"{d / f'{split}_labels.npy'}: {y.shape} labels, {ids_path} has "
                             f"{len(these)} ids")
        own[name] = (these, y.astype(np.int64), arrays, ids_path)
    first = next(iter(own))
    joined = join.join({name: (o[0], f"{split}: {o[3]}") for name, o in own.items()},
                       policy="common" if rows == "common" else "all",
                       hint="; the backbones must be scored on the same datalists, or set "
                            "TWO_PHASE_ROWS common")
    ids = joined.ids
    out, dropped, labels = {}, {}, None
    for name, (these, y, arrays, _) in own.items():
        gone = joined.dropped[name]
        dropped[name] = {"n": len(gone), "examples": sorted(gone)[:SHOW_IDS]}
        y = joined.take(name, y)
        if labels is None:
            labels = y
        differ = np.flatnonzero(y != labels)
        if len(differ):
            r = int(differ[0])
            raise ValueError(f"{split}: id {ids[r]!r} has label {y[r]} in {name} but "
                             f"{labels[r]} in {first} ({len(differ)} such ids)")
        out[name] = {k: joined.take(name, v) for k, v in arrays.items()}
    labels = metrics.check_labels(labels, len(ids), n_classes)
    return ids, labels, out, dropped


# ---------------------------------------------------------------- Phase II

def inputs_of(data, names, what):
    return {k: data[k][what] for k in names}


def protocol_a(train, evaluate, names, layer_of, n_classes, fit):
    """Phase II fitted on all training rows, scored on the evaluated rows. -> (probs, model,
    record)."""
    what, layer = layer_of
    kinds = {k: what for k in names}
    model, record = learned_fusion.fit_fusion(inputs_of(train[2], names, what), train[1],
                                              layer, n_classes, kinds, settings=fit)
    probs = learned_fusion.predict_saved(model, record, inputs_of(evaluate[2], names, what))
    return probs, model, record


def protocol_b(evaluate, names, layer_of, folds, n_classes, fit):
    what, layer = layer_of
    r = learned_fusion.cross_fit_fusion(inputs_of(evaluate[2], names, what), evaluate[1],
                                        layer, folds, n_classes, {k: what for k in names},
                                        settings=fit)
    return r["probs"]


def cell(correct, protocol):
    """An accuracy with its n and protocol."""
    n = int(len(correct))
    return {"top1": 100.0 * float(np.mean(correct)) if n else float("nan"), "n": n,
            "protocol": protocol}


def per_class_cells(correct, labels, n_classes, protocol):
    return [cell(correct[labels == c], protocol) for c in range(n_classes)]


# ---------------------------------------------------------------- report

def fmt(c):
    return f"{c['top1']:.2f}" if c["n"] else "-"


def table_one(table, classes, protocol):
    head = "| class | n | " + " | ".join(table) + " |"
    lines = [f"Table I, protocol {PROTOCOLS[protocol]}: top-1 % per class (n = that class's "
             f"rows of the evaluated split)", "", head,
             "|---|---:|" + "---:|" * len(table)]
    done = [t for t in table.values() if "skipped" not in t]
    if not done:
        return lines[:1] + ["", "all layers skipped"]
    first = done[0]

    def value(t, get):
        return "skipped" if "skipped" in t else get(t)
    for c, name in enumerate(classes):
        lines.append(f"| {name} | {first['per_class'][c]['n']} | "
                     + " | ".join(value(t, lambda t: fmt(t["per_class"][c]))
                                  for t in table.values()) + " |")
    lines.append(f"| **overall** | {first['overall']['n']} | "
                 + " | ".join(value(t, lambda t: f"**{fmt(t['overall'])}**")
                              for t in table.values()) + " |")
    reasons = {}
    for f, t in table.items():
        if "skipped" in t:
            reasons.setdefault(t["skipped"], []).append(f)
    lines += [f"\n{', '.join(fs)}: {why}" for why, fs in reasons.items()]
    return lines


def table_two(rows):
    return ["Table II: top-1 % on the evaluated split (n rows; protocol in the column)", ""] + \
        markdown_table(["system", "backbones", "F4 (a)", "F4 (b)",
                        "weighted average, cross-fitted", "n"],
                       [[name, ", ".join(r["sources"]), fmt(r["F4_a"]), fmt(r["F4_b"]),
                         fmt(r["weighted_average"]), r["F4_b"]["n"]] for name, r in rows.items()],
                       ["l", "l", "r", "r", "r", "r"])


def markdown(report, classes):
    lines = ["# Two-phase system (Pham et al., DCASE 2021): Phase II report", "",
             f"Dataset {report['dataset']}: Phase II reads the frozen backbones' outputs on "
             f"{report['train_split']} (n = {report['n_train']}) and {report['eval_split']} "
             f"(n = {report['n_eval']}), {len(classes)} classes. Protocol "
             f"{PROTOCOLS['a']}; protocol {PROTOCOLS['b']}, {report['settings']['fusion_folds']}"
             f" folds. Stand-in = a visual slot not holding the paper's model "
             f"({', '.join(PAPER_VISUAL_MODELS)}).", "",
             f"Rows: TWO_PHASE_ROWS {report['rows']['policy']}; ids a backbone held that not "
             f"all held (dropped): " + "; ".join(
                 f"{split} " + ", ".join(f"{k} {v['n']}" for k, v in d.items())
                 for split, d in report["rows"]["dropped"].items()) + ".", "",
             "Phase I backbones alone (evaluated split):", ""]
    lines += markdown_table(
        ["source", "run", "top-1 %", "n", "chance %", "one-sided binomial p"],
        [[s["label"], s["run"], f"{s['top1']:.2f}", s["n"], f"{s['chance_top1']:.1f}",
          f"{s['binomial_p']:.2g}"] for s in report["backbones"].values()],
        ["l", "l", "r", "r", "r", "r"])
    lines += [""]
    for p in PROTOCOLS:
        lines += table_one(report["table1"][p], classes, p) + [""]
    lines += table_two(report["table2"]) + [""]
    g = report["F4_b_vs_best_backbone"]
    lines += [f"F4 under protocol (b) on all backbones vs the best single backbone "
              f"({g['best_backbone']}): {g['diff']:+.2f} top-1 points, paired bootstrap 95 % "
              f"interval [{g['ci95'][0]:+.2f}, {g['ci95'][1]:+.2f}] ({g['n_samples']} samples, "
              f"n = {g['n']}). F4 was named in advance; the other rows are reported, not "
              f"selected.", ""]
    lines.append(provenance_line(report))
    return "\n".join(lines) + "\n"


def plot_per_class(path, series, classes, title):
    """Figure 4: grouped bars, per class, of each series' top-1 (percent)."""
    plt = pyplot()
    n_series, n_classes = len(series), len(classes)
    width = 0.8 / n_series
    fig, ax = plt.subplots(figsize=(max(6.4, min(18, 0.6 * n_classes * n_series / 2)), 4.4))
    for k, (label, cells) in enumerate(series.items()):
        values = [c["top1"] if c["n"] else 0.0 for c in cells]
        ax.bar(np.arange(n_classes) + (k - (n_series - 1) / 2) * width, values, width,
               label=label)
    ax.set_xticks(np.arange(n_classes))
    ax.set_xticklabels(classes, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("top-1 % (per class)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, path)


# ---------------------------------------------------------------- main

def hits(probs, labels):
    """bool [n]: the rows whose top-1 is their label (the project's tie rule)."""
    return metrics.true_class_rank(probs, labels) < 1


def backbone_rows(sources, data, labels, correct):
    """Each Phase I backbone alone on the evaluated split (fills correct[(name, "single")])."""
    backbones = {}
    for k in sources:
        probs, _ = fusion.normalize(data[k]["scores"], "probs", k)
        correct[(k, "single")] = hits(probs, labels)
        backbones[k] = {**cell(correct[(k, "single")], "backbone alone"),
                        "label": sources[k]["label"], "run": sources[k]["run"],
                        "model": sources[k]["model"], "stand_in": sources[k]["stand_in"],
                        **{k2: v for k2, v in metrics.above_chance(probs, labels).items()
                           if k2 in ("chance_top1", "binomial_p")}}
    return backbones


def table_one_rows(cfg, train, evaluate, names, n_classes, folds, fit, correct, out_dir):
    """Table I: F1-F6 under both protocols (fills correct[(F, protocol)], writes each
    layer's scores). -> (table1, {F: (protocol (a) model, its record)})"""
    _, labels, data, _ = evaluate
    table1, models = {"a": {}, "b": {}}, {}
    widths = {k: data[k]["embedding"].shape[1] for k in names}
    for f, layer_of in cli.progress(list(learned_fusion.PHASE2_LAYERS.items()),
                                    desc="12 phase II", unit="layer"):
        if layer_of[0] == "embedding" and len(set(widths.values())) != 1:
            why = (f"skipped: the embeddings differ in width {widths} and {f} adds them "
                   f"element-wise (the paper's backbones all end in FC(1024))")
            for p in PROTOCOLS:
                table1[p][f] = {"skipped": why, "inputs": layer_of[0], "layer": layer_of[1]}
            continue
        probs_a, model, record = protocol_a(train, evaluate, names, layer_of, n_classes, fit)
        probs_b = protocol_b(evaluate, names, layer_of, folds, n_classes, fit)
        models[f] = (model, record)
        for p, probs in (("a", probs_a), ("b", probs_b)):
            c = correct[(f, p)] = hits(probs, labels)
            table1[p][f] = {"overall": cell(c, PROTOCOLS[p]),
                            "per_class": per_class_cells(c, labels, n_classes, PROTOCOLS[p]),
                            "inputs": layer_of[0], "layer": layer_of[1]}
            datafiles.save_npy(out_dir / f"{cfg.eval_split}_{f}_{p}_scores.npy", probs)
    return table1, models


def table_two_rows(cfg, sources, train, evaluate, n_classes, folds, fit, correct):
    """Table II: audio only, visual only, audio-visual; F4 under both protocols and the
    cross-fitted weighted average (fills correct[(system, "b")])."""
    _, labels, data, _ = evaluate
    names = list(sources)
    table2 = {}
    f4 = learned_fusion.PHASE2_LAYERS["F4"]
    for system, group in SUBSETS.items():
        members = [k for k in names if group is None or sources[k]["group"] == group]
        if not members:
            continue
        if group is None:
            c_a, c_b = correct[("F4", "a")], correct[("F4", "b")]
        else:
            c_a = hits(protocol_a(train, evaluate, members, f4, n_classes, fit)[0], labels)
            c_b = hits(protocol_b(evaluate, members, f4, folds, n_classes, fit), labels)
        correct[(system, "b")] = c_b
        probs = {k: fusion.normalize(data[k]["scores"], "probs", k)[0] for k in members}
        cf = fusion.cross_fit(probs, labels, steps=cfg.fusion_grid_steps, folds=folds)
        table2[system] = {
            "sources": [sources[k]["label"] for k in members],
            "stand_in": any(sources[k]["stand_in"] for k in members),
            "F4_a": cell(c_a, PROTOCOLS["a"]), "F4_b": cell(c_b, PROTOCOLS["b"]),
            "weighted_average": {**cell(hits(cf.probs, labels), "cross-fitted on the "
                                        "evaluated split (simplex search of step 07)"),
                                 "fold_weights": [cf.weights_dict(w) for w in cf.fold_weights]},
            "per_class_F4_b": per_class_cells(c_b, labels, n_classes, PROTOCOLS["b"])}
    return table2


def write_outputs(cfg, sources, classes, out_dir, report, models, evaluate, table2, correct,
                  best):
    """phase2_F<k>.pt, the ids, Figure 4, report.json / .md and record.json. -> report.md"""
    ids, labels, _, _ = evaluate
    for f, (model, record) in models.items():
        learned_fusion.save_model(out_dir / f"phase2_{f}.pt", model, {
            **record, "phase2_layer": f, "protocol": PROTOCOLS["a"], "classes": classes,
            "sources": report["sources"], "dataset": cfg.dataset,
            "train_split": cfg.train_split, "git_commit": report["git_commit"]})
    datafiles.write_lines(out_dir / f"{cfg.eval_split}_two_phase_ids.txt", ids)
    series = {f"{s} F4 (b)" + (" (stand-in)" if table2[s]["stand_in"] else ""):
              table2[s]["per_class_F4_b"] for s in table2}
    series[f"best backbone {best}"] = per_class_cells(correct[(best, "single")], labels,
                                                      len(classes), "backbone alone")
    stand_ins = [k for k, s in sources.items() if s["stand_in"]]
    plot_per_class(out_dir / "per_class_accuracy.png", series, classes,
                   f"per-class top-1, {cfg.eval_split} (n = {len(ids)}), protocol (b)"
                   + (f"; stand-in visual backbones: {', '.join(stand_ins)}" if stand_ins
                      else ""))
    md = markdown(report, classes)
    datafiles.write_text(out_dir / "report.json", json.dumps(report, indent=2) + "\n")
    datafiles.write_text(out_dir / "report.md", md)
    record = records.new("12_two_phase.py", "two_phase", classes)
    record["sources"] = {k: cfg.paths.relative(s["record_path"]) for k, s in sources.items()}
    records.add_split(records.folder_record(out_dir), record, cfg.eval_split, len(ids))
    return md


def run(cfg, sources, classes, out_dir):
    """Phase II over the backbones' contracts: Table I, Table II, the F4 (b) gain, the
    outputs of the module docstring. -> the report (dict)."""
    n_classes = len(classes)
    for s in sources.values():
        records.check(s["record"], s["record_path"], classes=classes,
                      classes_where=str(cfg.classes_path))
    train = load_split(sources, cfg.train_split, n_classes, cfg.two_phase_rows)
    evaluate = load_split(sources, cfg.eval_split, n_classes, cfg.two_phase_rows)
    ids, labels, data, _ = evaluate
    names = list(sources)
    fit = learned_fusion.FusionSettings.from_settings(cfg)
    folds = fusion.make_folds(labels, cfg.fusion_folds, cfg.seed)
    correct = {}                      # (system, protocol) -> bool [n]
    backbones = backbone_rows(sources, data, labels, correct)
    table1, models = table_one_rows(cfg, train, evaluate, names, n_classes, folds, fit,
                                    correct, out_dir)
    table2 = table_two_rows(cfg, sources, train, evaluate, n_classes, folds, fit, correct)
    best = fusion.best_source({k: {"top1": backbones[k]["top1"], "top5": 0.0} for k in names})
    boot = metrics.paired_bootstrap(correct[("F4", "b")], correct[(best, "single")],
                                    cfg.bootstrap_samples, cfg.seed)
    run_sources = {k: {"run": s["run"], "group": s["group"], "model": s["model"],
                       "stand_in": s["stand_in"], "label": s["label"],
                       "npy_dir": cfg.paths.relative(s["npy_dir"]),
                       "checkpoint": (cfg.paths.relative(s["checkpoint"])
                                      if s["checkpoint"] else None)}
                   for k, s in sources.items()}
    settings = {"fusion_folds": cfg.fusion_folds, "fusion_grid_steps": cfg.fusion_grid_steps,
                "bootstrap_samples": cfg.bootstrap_samples, "seed": cfg.seed,
                "learned_fusion": fit.to_dict()}
    report = {"dataset": cfg.dataset, "train_split": cfg.train_split,
              "eval_split": cfg.eval_split, "n_train": len(train[0]), "n_eval": len(ids),
              "rows": {"policy": cfg.two_phase_rows,
                       "dropped": {cfg.train_split: train[3], cfg.eval_split: evaluate[3]}},
              "n_classes": n_classes, "classes": classes, "sources": run_sources,
              "protocols": PROTOCOLS, "backbones": backbones, "table1": table1,
              "table2": table2,
              "F4_b_vs_best_backbone": {"best_backbone": sources[best]["label"],
                                        "diff": boot["diff"], "ci95": boot["ci95"],
                                        "n": len(ids), "n_samples": boot["n_samples"],
                                        "seed": boot["seed"], "protocol": PROTOCOLS["b"]},
              "settings": settings, **datafiles.provenance()}
    md = write_outputs(cfg, sources, classes, out_dir, report, models, evaluate, table2,
                       correct, best)
    print(md)
    print(f"12 wrote {out_dir}: report.md, report.json, per_class_accuracy.png, "
          f"phase2_F1-F6.pt")
    return report


def main(argv=None):
    parser = cli.parser(__doc__, ["FUSION_FOLDS", "FUSION_GRID_STEPS", "BOOTSTRAP_SAMPLES",
                                  "TWO_PHASE_ROWS",
                                  *learned_fusion.SETTINGS_KEYS])
    parser.add_argument("--sources", nargs="+", required=True, metavar="NAME=RUN")
    parser.add_argument("--classes", type=Path, default=None, metavar="FILE")
    parser.add_argument("--out-dir", type=Path, default=None, metavar="DIR",
                        help="the folder of the outputs (default npy_files/<dataset>/two_phase/)")
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    try:
        given = parse_sources(cfg.sources)
    except ValueError as e:
        parser.error(str(e))
    cfg.paths, cfg.classes_path = paths, cfg.classes or paths.classes
    classes = datafiles.read_classes(cfg.classes_path)
    sources = {k: resolve(paths, k, v, cfg.eval_split) for k, v in given.items()}
    return run(cfg, sources, classes, cfg.out_dir or paths.npy / "two_phase")


if __name__ == "__main__":
    cli.run_script(main)
