"""Micro-batch planning and collation: right-padded batches, or padding-free packing.

Packing concatenates rows into sequences with ``position_ids`` restarting at 0 for every row and *no*
attention mask; with ``use_cache=False`` transformers then keeps the rows isolated (with a mask, or with
the cache on, the rows attend across each other — FIELD-NOTES). Targets are shifted inside each row
before concatenation, so no label crosses a row boundary and the loss equals the padded loss.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .chat import IGNORE, Encoded


def epoch_order(indices: Sequence[int], *, epoch: int, seed: int, shuffle: bool) -> list[int]:
    order = list(indices)
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def plan_batches(order: Sequence[int], lengths: dict[int, int], *, batch_size: int, packing: bool,
                 max_length: int) -> list[list[list[int]]]:
    """Micro-batches of sequences ("bins") of row indices, in data order.

    Padded: every row is its own sequence, ``batch_size`` per micro-batch. Packed: a micro-batch holds
    ``batch_size`` sequences of at most ``max_length`` tokens; rows go, in order, into the first open
    sequence with room, and a row that fits none closes the micro-batch. So each micro-batch is a
    contiguous run of the data order (``--no-shuffle`` batches from ``mix`` survive) and attention stays
    ``batch_size × max_length²`` at most, as in the padded case.
    """
    batches: list[list[list[int]]] = []
    if not packing:
        for i in range(0, len(order), batch_size):
            batches.append([[idx] for idx in order[i:i + batch_size]])
        return batches
    bins: list[list[int]] = []
    room: list[int] = []
    for idx in order:
        n = lengths[idx]
        k = next((j for j, free in enumerate(room) if free >= n), None)
        if k is None:
            if len(bins) == batch_size:
                batches.append(bins)
                bins, room = [], []
            bins.append([])
            room.append(max_length)
            k = len(bins) - 1
        bins[k].append(idx)
        room[k] -= n
    if bins:
        batches.append(bins)
    return batches


def collate(bins: list[list[Encoded]], *, packing: bool, pad_id: int) -> dict[str, Any]:
    """Model inputs plus ``targets`` (shifted labels) and ``row_of`` (index, in ``flat(bins)``, of the row
    each position holds). Padded: one row per sequence, right-padded, with an attention mask. Packed:
    the rows of a sequence are concatenated with ``position_ids`` restarting at 0 per row and no mask;
    the padding at a sequence's end forms its own segment (positions from 0, no labels)."""
    import torch

    rows = [r for b in bins for r in b]
    extras = _merge_extras(rows)
    width = max(sum(r.length for r in b) for b in bins)
    ids = torch.full((len(bins), width), pad_id, dtype=torch.long)
    targets = torch.full((len(bins), width), IGNORE, dtype=torch.long)
    row_of = torch.zeros((len(bins), width), dtype=torch.long)
    pos = torch.zeros((len(bins), width), dtype=torch.long)
    mask = torch.zeros((len(bins), width), dtype=torch.long)
    side = {key: torch.zeros((len(bins), width), dtype=torch.long) for key in _per_token_keys(rows)}
    k = 0
    for b, seq in enumerate(bins):
        at = 0
        for r in seq:
            end = at + r.length
            ids[b, at:end] = torch.tensor(r.input_ids)
            targets[b, at:end] = torch.tensor(r.targets)
            pos[b, at:end] = torch.arange(r.length)
            row_of[b, at:end] = k
            mask[b, at:end] = 1
            for key, t in side.items():
                if key in r.per_token:
                    t[b, at:end] = torch.tensor(r.per_token[key])
            at, k = end, k + 1
        pos[b, at:] = torch.arange(width - at)
    if packing:
        batch = {"input_ids": ids, "position_ids": pos, **side, **extras}
    else:
        batch = {"input_ids": ids, "attention_mask": mask, **side, **extras}
    return {"inputs": batch, "targets": targets, "row_of": row_of}


def _per_token_keys(rows: list[Encoded]) -> list[str]:
    return sorted({k for r in rows for k in r.per_token})


def _merge_extras(rows: list[Encoded]) -> dict[str, Any]:
    """Image tensors of all rows, concatenated along the image axis; where rows differ in a later
    dimension (LLaVA-NeXT's tiles per image) they are zero-padded to the largest, as its processor does
    within one call."""
    import torch
    import torch.nn.functional as F

    keys = sorted({k for r in rows for k in r.extras})
    out = {}
    for k in keys:
        parts = [r.extras[k] for r in rows if k in r.extras]
        if len(parts) > 1 and len({p.shape[1:] for p in parts}) > 1:
            top = [max(p.shape[d] for p in parts) for d in range(1, parts[0].ndim)]
            padded = []
            for p in parts:
                pad: list[int] = []
                for d in reversed(range(1, p.ndim)):
                    pad += [0, top[d - 1] - p.shape[d]]
                padded.append(F.pad(p, pad))
            parts = padded
        out[k] = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
    return out


def token_losses(logits: Any, targets: Any) -> tuple[Any, Any]:
    """(per-token loss, flat positions) for supervised positions, in float32."""
    import torch.nn.functional as F

    flat_t = targets.reshape(-1)
    keep = (flat_t != IGNORE).nonzero(as_tuple=True)[0]
    sel = logits.reshape(-1, logits.shape[-1]).index_select(0, keep).float()
    return F.cross_entropy(sel, flat_t.index_select(0, keep), reduction="none"), keep
