"""Fine-tune a model on a folder-per-class video dataset: what `minivivit finetune DATA_DIR --weights W --out OUT` runs.

    from minivivit.train.finetune import finetune
    summary = finetune("clips/", "vivit-demo.safetensors", "mine.safetensors",
                       FitOptions(epochs=5, head_only=True), val_fraction=0.2)

Steps: scan DATA_DIR (folder.py), split it (seeded, stratified), give the model a head for the folder's
classes (kept when the class count is the model's, otherwise new: N(0, initializer_range^2) weights, zero
bias; id2label = the folder names either way), decode and preprocess every clip as `classify` does, fit(),
and save OUT atomically (with the preprocessing config that came with W, so classify uses it again).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np

from ..fileio import check_output
from ..model import Model
from ..weights import save
from .folder import UnreadableClipWarning, load_clips, scan_folder, split
from .loop import ArrayClips, FitOptions, fit


def with_head(model: Model, classes, seed: int = 0, new_head: bool = False) -> tuple[Model, bool]:
    """A Model (sharing model's encoder arrays) whose head has len(classes) outputs and id2label = classes.
    Returns (model, whether the head is new). The head is new when the count differs, the model has none, or
    new_head=True; otherwise the trained head is kept (its rows are taken to mean the folder's classes, in order)."""
    n = len(classes)
    fresh = new_head or not model.has_head or model.config.num_labels != n
    params = dict(model.params)
    if fresh:
        rng = np.random.default_rng([seed, 3])
        D = model.config.hidden_size
        w = rng.standard_normal((D, n)) * model.config.initializer_range  # [D, C], HF's Linear init
        params["head"] = {"w": w.astype(model.dtype), "b": np.zeros(n, model.dtype)}
    config = dataclasses.replace(model.config, num_labels=n, id2label=dict(enumerate(classes)),
                                 label2id={c: i for i, c in enumerate(classes)})
    return Model(params, config), fresh


def finetune(data_dir, weights, out, options: FitOptions | None = None, *, val_fraction: float = 0.2,
             strict: bool = False, new_head: bool = False, processor_config=None, preset: str | None = None,
             checkpoint=None, resume: bool = False, overwrite: bool = False, log=print) -> dict:
    """Fine-tune `weights` on DATA_DIR/<class>/<video> and write the result to `out`; returns a summary dict."""
    import minivivit
    from minivivit.video.options import processor_config_for_weights

    options = options or FitOptions()
    log = log or (lambda msg: None)
    out = check_output(out, overwrite)  # before any work: never clobber, never fail at the end
    data = scan_folder(data_dir)
    train_files, val_files = split(data.files, val_fraction, options.seed)
    base = minivivit.load(weights)
    if processor_config is None and weights is not None:
        processor_config = processor_config_for_weights(weights)
    model, fresh = with_head(base, data.classes, options.seed, new_head)
    log(f"{data.root}: {len(data.files)} videos in {len(data.classes)} classes {data.counts()}; "
        f"{len(train_files)} for training, {len(val_files)} for validation (seed {options.seed})")
    log(f"model: {model}; head: {'new, ' + str(len(data.classes)) + ' outputs' if fresh else 'kept from ' + str(weights)}")

    t0 = time.perf_counter()
    skipped = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UnreadableClipWarning)
        x_tr, y_tr, kept_tr = load_clips(train_files, model.config, processor_config, preset, strict, options.progress)
        x_va, y_va, _ = load_clips(val_files, model.config, processor_config, preset, strict, options.progress)
    for w in caught:  # collected for the summary, then shown as usual (stderr)
        if issubclass(w.category, UnreadableClipWarning):
            skipped.append(str(w.message))
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    missing = [c for i, c in enumerate(data.classes) if i not in set(y_tr.tolist())]
    if missing:
        raise ValueError(f"class(es) {missing} have no readable training clip left ({len(skipped)} clip(s) skipped); "
                         f"add readable videos to those folders")
    log(f"decoded {len(y_tr) + len(y_va)} clips in {time.perf_counter() - t0:.1f} s"
        + (f" ({len(skipped)} unreadable, skipped)" if skipped else ""))

    val = ArrayClips(x_va, y_va) if len(y_va) else None
    result = fit(model, ArrayClips(x_tr, y_tr), val, options, checkpoint=checkpoint, resume=resume, log=log)
    save(out, model.params, model.config, overwrite=overwrite, preprocessor_config=processor_config)
    last = result.history[-1] if result.history else {}
    log(f"wrote {out}: {model}")
    return {"out": str(out), "classes": data.classes, "new_head": fresh, "train_clips": len(y_tr),
            "val_clips": len(y_va), "skipped": skipped, "steps": result.step, "history": result.history,
            "val_accuracy": last.get("val_accuracy"), "stopped_early": result.stopped_early,
            "train_files": [str(p) for p, _ in kept_tr]}
