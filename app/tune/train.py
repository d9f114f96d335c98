"""Stage 4 of `localrag tune`: fine-tune the embedder with sentence-transformers' MultipleNegativesRankingLoss on
(question, source chunk, hard negative) triples (the other chunks of a batch are negatives too), with a fixed seed,
on the GPU when there is one; and the held-out measure: recall@5 and MRR@10 of each held-out question's source
chunk among all of the collection's chunks."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from localrag.app.tune.mining import Example

__all__ = ["TrainSettings", "fine_tune", "held_out_scores", "split_held_out"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 3  # a few hundred questions: three passes (chosen before any measurement, not tuned on test)
    batch_size: int = 16
    lr: float = 2e-5
    warmup: float = 0.1  # share of the steps with a linearly rising learning rate
    seed: int = 13
    held_out: float = 0.1  # share of the kept questions kept out of training, to measure on
    max_seq_length: int = 256  # chunk tokens the model reads while training (the collection's chunks fit)


def split_held_out(examples: Sequence[Example], share: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, held out): a seeded shuffle; at least one held out when there are 2 or more examples."""
    ex = sorted(examples, key=lambda e: e.chunk_id)
    random.Random(seed).shuffle(ex)
    n = max(1, round(len(ex) * share)) if len(ex) >= 2 else 0
    return ex[n:], ex[:n]


def held_out_scores(q_vecs: np.ndarray, sources: Sequence[int], ids: np.ndarray, vecs: np.ndarray) -> dict[str, float]:
    """recall@5 and MRR@10 of each question's source chunk among all chunks (exact inner-product ranking)."""
    if len(sources) == 0:
        return {"recall@5": 0.0, "mrr@10": 0.0, "questions": 0}
    sims = q_vecs @ vecs.T
    pos = {int(c): n for n, c in enumerate(ids)}
    rec, rr = [], []
    for row, cid in enumerate(sources):
        own = sims[row, pos[int(cid)]]
        rank = int(np.sum(sims[row] > own)) + 1  # ties count for the source
        rec.append(rank <= 5)
        rr.append(1.0 / rank if rank <= 10 else 0.0)
    return {"recall@5": round(float(np.mean(rec)), 4), "mrr@10": round(float(np.mean(rr)), 4),
            "questions": len(sources)}


def fine_tune(model_path: str, train: Sequence[Example], texts: dict[int, str], out_dir: Path, ts: TrainSettings,
              device: str = "cpu", progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Train a copy of the sentence-transformers model at `model_path` and save it to `out_dir`; returns the
    training's facts (steps, triples, last loss, device)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    random.seed(ts.seed)
    np.random.seed(ts.seed)
    torch.manual_seed(ts.seed)
    model = SentenceTransformer(model_path, device=device)
    model.max_seq_length = min(int(model.max_seq_length or ts.max_seq_length), ts.max_seq_length)
    loss_fn = MultipleNegativesRankingLoss(model)
    # every batch needs the same columns: an example without a hard negative takes a random other chunk's text
    rng = random.Random(ts.seed)
    all_ids = sorted(texts)
    triples = []
    for e in train:
        neg = e.negative_id
        while neg is None or neg == e.chunk_id:
            neg = rng.choice(all_ids) if len(all_ids) > 1 else e.chunk_id
            if len(all_ids) <= 1:
                break
        triples.append((e.question, texts[e.chunk_id], texts[neg]))
    steps_per_epoch = max(1, -(-len(triples) // ts.batch_size))
    total = steps_per_epoch * ts.epochs
    opt = torch.optim.AdamW(model.parameters(), lr=ts.lr)
    warm = max(1, int(total * ts.warmup))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)) if s >= warm
        else (s + 1) / warm)
    model.train()
    step, last = 0, float("nan")
    for _ in range(ts.epochs):
        rng.shuffle(triples)
        for start in range(0, len(triples), ts.batch_size):
            batch = triples[start : start + ts.batch_size]
            if len(batch) < 2:  # in-batch negatives need two examples
                continue
            features = [_features(model, [t[i] for t in batch], device) for i in range(3)]
            loss = loss_fn(features, None)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            last = float(loss.detach())
            if progress:
                progress(step, total)
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    return {"triples": len(triples), "steps": step, "epochs": ts.epochs, "last_loss": round(last, 4),
            "device": device, "batch_size": ts.batch_size, "lr": ts.lr, "seed": ts.seed}


def _features(model: Any, texts: list[str], device: str) -> dict[str, Any]:
    feats = model.tokenize(texts)
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in feats.items()}
