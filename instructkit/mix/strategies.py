"""The strategies: pure functions from arrays of entries (see ``entries``) and a seed to a stream of
entry chunks in output order. No files here; ``job`` turns entries back into rows.

Every random choice comes from ``rng_for(seed, ...)``, a PCG64 generator keyed by the seed and a purpose,
so one strategy's draws do not shift another's and the same seed gives the same output.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..errors import UsageError
from .entries import count_by_source, is_image

CHUNK = 1 << 16
# Purposes for rng_for, so streams drawn for different reasons are independent.
CAP, SELECT, SHUFFLE, PASS, CHOICE, POOL, BLOCKS = range(7)


def rng_for(seed: int, *keys: int):
    import numpy as np

    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed & 0xFFFFFFFF, seed >> 32, *keys])))


@dataclass
class Tally:
    """Per input: rows emitted and distinct rows emitted (the rest of ``emitted`` are repeats)."""

    n: int
    emitted: object = None
    unique: object = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self):
        import numpy as np

        self.emitted = np.zeros(self.n, dtype=np.int64)
        self.unique = np.zeros(self.n, dtype=np.int64)

    def add(self, entries, unique: bool) -> None:
        counts = count_by_source(entries, self.n)
        self.emitted += counts
        if unique:
            self.unique += counts


class Stream:
    """One array of entries read pass after pass; each pass is a fresh shuffle when ``shuffle``.
    It is *exhausted* after ``passes`` passes, but ``take`` goes on (repeating) when asked."""

    def __init__(self, entries, *, passes: int = 1, shuffle: bool = True, rng=None, tally: Tally | None = None,
                 copy: bool = True):
        # ``copy=False`` hands the array over: it is shuffled in place (saves 8 bytes a row).
        self.arr = entries.copy() if shuffle and copy else entries
        self.size = len(entries)
        self.passes = passes
        self.shuffle = shuffle
        self.rng = rng
        self.tally = tally
        self.consumed = 0
        self.pos = 0
        self.pass_no = 0
        if shuffle and self.size:
            rng.shuffle(self.arr)

    @property
    def remaining(self) -> int:
        """Rows left before the stream counts as exhausted."""
        return max(0, self.size * self.passes - self.consumed)

    def _next_pass(self) -> None:
        self.pass_no += 1
        self.pos = 0
        if self.shuffle:
            self.rng.shuffle(self.arr)

    def take(self, k: int):
        import numpy as np

        if k and not self.size:
            raise UsageError("internal: take from an empty stream")
        parts = []
        while k > 0:
            if self.pos == self.size:
                self._next_pass()
            n = min(k, self.size - self.pos)
            # A copy: the next pass shuffles ``arr`` in place.
            part = self.arr[self.pos:self.pos + n].copy()
            if self.tally is not None:
                self.tally.add(part, self.pass_no == 0)
            parts.append(part)
            self.pos += n
            self.consumed += n
            k -= n
        if len(parts) == 1:
            return parts[0]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def take_ordered(self, k: int, rng):
        """``k`` rows in file order: whole passes, then a uniformly random subset of one pass, kept in
        order (no shuffle; used by ``concat`` and caps)."""
        import numpy as np

        full, part = divmod(k, self.size) if self.size else (0, 0)
        if full == 1 and not part and self.pos == 0 and not self.shuffle:
            # The whole array once: no copy.
            if self.tally is not None:
                self.tally.add(self.arr, self.pass_no == 0)
            self.consumed += self.size
            self.pass_no += 1
            return self.arr
        out = [self.take(self.size) for _ in range(full)]
        if part:
            idx = np.sort(rng.choice(self.size, part, replace=False))
            sub = self.arr[idx]
            if self.tally is not None:
                self.tally.add(sub, full == 0)
            self.consumed += part
            out.append(sub)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def apply_cap(entries, cap: int | None, rng):
    """A uniformly random subset of ``cap`` rows, kept in file order; all rows when cap >= size."""
    import numpy as np

    if cap is None or cap >= len(entries):
        return entries
    return entries[np.sort(rng.choice(len(entries), cap, replace=False))]


def largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Integers proportional to ``weights`` that sum to exactly ``total`` (ties to the earlier input)."""
    s = float(sum(weights))
    if total == 0 or s <= 0:
        return [0] * len(weights)
    raw = [total * w / s for w in weights]
    base = [int(r) for r in raw]
    short = total - sum(base)
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i] - base[i]), i))
    for i in order[:short]:
        base[i] += 1
    return base


def temperature_weights(sizes: Sequence[float], temperature: float, cap: float | None = None) -> list[float]:
    """T5 / seqio examples-proportional mixing with temperature: p ∝ min(n, K)^(1/T), normalised.
    T=1 is proportional to size, T=2 is InstructBLIP's √n, T→∞ is uniform."""
    capped = [min(float(n), cap) if cap is not None else float(n) for n in sizes]
    raw = [c ** (1.0 / temperature) if c > 0 else 0.0 for c in capped]
    s = sum(raw)
    if s <= 0:
        raise UsageError("every input is empty; nothing to weigh")
    return [r / s for r in raw]


def _chunks(arr) -> Iterator:
    for i in range(0, len(arr), CHUNK):
        yield arr[i:i + CHUNK]


# --- concat / shuffle / sequential: pick each input's rows first, then order them ---------------------

def select(sources: Sequence, targets: Sequence[int], *, ordered: bool, seed: int, tally: Tally,
           copy: bool = True) -> list:
    """Each input's rows for the non-interleaving strategies: ``targets[i]`` rows of ``sources[i]``
    (whole passes plus a random part; a fresh shuffle per pass unless ``ordered``). ``copy=False``
    lets it shuffle or return the given arrays themselves."""
    out = []
    for i, (arr, t) in enumerate(zip(sources, targets)):
        if t and not len(arr):
            raise UsageError(f"input {i + 1} has no rows to select {t} from")
        stream = Stream(arr, shuffle=not ordered, rng=rng_for(seed, SELECT, i), tally=tally, copy=copy)
        out.append(stream.take_ordered(t, rng_for(seed, SELECT, i, 1)) if ordered else stream.take(t))
    return out


def concat(selected: Sequence) -> Iterator:
    for arr in selected:
        yield from _chunks(arr)


def shuffle(selected: Sequence, seed: int) -> Iterator:
    """A uniformly random permutation of every selected row (8 bytes a row, in memory)."""
    import numpy as np

    allrows = np.concatenate(list(selected)) if selected else np.zeros(0, dtype=np.int64)
    rng_for(seed, SHUFFLE).shuffle(allrows)
    yield from _chunks(allrows)


def sequential(selected: Sequence, stages: Sequence[str], names: Sequence[str], seed: int) -> Iterator:
    """Stages one after another, each shuffled inside: by modality ('text', 'image') or by input name."""
    import numpy as np

    for k, stage in enumerate(stages):
        if stage in ("text", "image"):
            parts = [a[is_image(a) == (stage == "image")] for a in selected]
        else:
            parts = [selected[list(names).index(stage)]]
        rows = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        rng_for(seed, SHUFFLE, k).shuffle(rows)
        yield from _chunks(rows)


# --- interleave -------------------------------------------------------------------------------------

def interleave(streams: Sequence[Stream], probs: Sequence[float], *, seed: int, stopping: str,
               size: int | None, names: Sequence[str], tally: Tally) -> Iterator:
    """Draw an input with probability ``probs`` for each output row, take its next row.

    Stopping: ``first-exhausted`` stops right after the row that exhausts any input (the rest of the
    others is dropped); ``all-exhausted`` goes on, restarting exhausted inputs (repeats), until every input
    has been exhausted once; ``without-replacement`` drops an exhausted input and renormalises the others,
    so every row appears exactly once and the tail comes from the last inputs left; ``size`` draws exactly
    ``size`` rows, restarting inputs that run out. Draws are made a chunk at a time; where an input runs
    out inside a chunk the chunk is cut at that row, so the result does not depend on the chunk size
    except through the random numbers drawn.
    """
    import numpy as np

    rng = rng_for(seed, CHOICE)
    active = [i for i, s in enumerate(streams) if probs[i] > 0 and s.size > 0]
    for i, s in enumerate(streams):
        if s.size and probs[i] <= 0:
            tally.notes.append(f"{names[i]}: weight 0, never drawn")
    once: set[int] = set()
    emitted = 0
    while active:
        m = CHUNK if size is None else min(CHUNK, size - emitted)
        if m <= 0:
            return
        p = np.array([probs[i] for i in active], dtype=np.float64)
        choice = rng.choice(len(active), size=m, p=p / p.sum())
        cut, finished, remove = m, False, []
        if size is None:
            cuts = {}
            for j, i in enumerate(active):
                if stopping == "all-exhausted" and i in once:
                    continue
                rem = streams[i].remaining
                pos = np.flatnonzero(choice == j)
                if len(pos) >= rem:
                    cuts[i] = int(pos[rem - 1]) + 1
            if stopping == "first-exhausted" and cuts:
                cut = min(cuts.values())
                finished = True
                tally.notes.append("first-exhausted: stopped when " + ", ".join(
                    names[i] for i, c in cuts.items() if c == cut) + " ran out")
            elif stopping == "without-replacement" and cuts:
                cut = min(cuts.values())
                remove = [i for i, c in cuts.items() if c == cut]
            elif stopping == "all-exhausted" and cuts:
                pending = [i for i in active if i not in once]
                if all(i in cuts for i in pending):
                    cut = max(cuts.values())
                    finished = True
                else:
                    once.update(cuts)
        choice = choice[:cut]
        out = np.empty(cut, dtype=np.int64)
        for j, i in enumerate(active):
            pos = np.flatnonzero(choice == j)
            if len(pos):
                out[pos] = streams[i].take(len(pos))
        yield out
        emitted += cut
        if finished:
            return
        for i in remove:
            active.remove(i)
            if active:
                tally.notes.append(f"without-replacement: {names[i]} ran out at row {emitted}; "
                                   "renormalised over the rest")


# --- batches --------------------------------------------------------------------------------------

def _pool(selected: Sequence, image: bool):
    import numpy as np

    parts = [a[is_image(a) == image] for a in selected]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def modality_batches(selected: Sequence, batch_size: int, seed: int, tally: Tally) -> Iterator:
    """LLaVA's grouping: every aligned block of ``batch_size`` rows holds one modality; block order is
    random, rows inside each pool shuffled. A last partial block of each modality is dropped (reported)."""
    import numpy as np

    pools = {m: _pool(selected, m) for m in (True, False)}
    nblocks = {}
    for m, pool in pools.items():
        rng_for(seed, POOL, int(m)).shuffle(pool)
        nblocks[m] = len(pool) // batch_size
        left = len(pool) - nblocks[m] * batch_size
        if left:
            tally.notes.append(f"{left} {'image' if m else 'text'} row(s) left over after whole blocks "
                               f"of {batch_size}: dropped")
    order = np.array([1] * nblocks[True] + [0] * nblocks[False], dtype=np.int8)
    rng_for(seed, BLOCKS).shuffle(order)
    pos = {True: 0, False: 0}
    buf: list = []
    filled = 0
    for kind in order.tolist():
        m = bool(kind)
        buf.append(pools[m][pos[m]:pos[m] + batch_size])
        pos[m] += batch_size
        filled += batch_size
        if filled >= CHUNK:
            yield np.concatenate(buf)
            buf, filled = [], 0
    if buf:
        yield np.concatenate(buf)


def ratio_plan(n_image: int, n_text: int, batch_size: int, fraction: float, size: int | None,
               allow_repeat: bool) -> tuple[int, int]:
    """(blocks, image rows per block) for fixed-ratio batches, or ``UsageError`` when the data cannot
    give them without repeating rows (unless ``allow_repeat``)."""
    k = round(fraction * batch_size)
    t = batch_size - k
    if size is not None:
        blocks = size // batch_size
        need_i, need_t = blocks * k, blocks * t
        for what, need, have in (("image", need_i, n_image), ("text", need_t, n_text)):
            if need > have and (not allow_repeat or have == 0):
                hint = "" if have == 0 else "; pass --allow-repeat to repeat rows, or lower --size"
                raise UsageError(f"--size {size} at --image-fraction {fraction} needs {need} {what} rows "
                                 f"({blocks} blocks × {k if what == 'image' else t}), the inputs have {have}{hint}")
        return blocks, k
    limits = []
    if k:
        limits.append(n_image // k)
    if t:
        limits.append(n_text // t)
    blocks = min(limits)
    if blocks == 0:
        raise UsageError(f"not enough rows for one block of {batch_size} with {k} image and {t} text rows "
                         f"(the inputs have {n_image} image and {n_text} text rows)")
    return blocks, k


def ratio_batches(selected: list, batch_size: int, fraction: float, size: int | None, allow_repeat: bool,
                  seed: int, tally: Tally) -> Iterator:
    """LaVIN-like mixed batches with a fixed share: every aligned block of ``batch_size`` rows has exactly
    round(fraction·B) image rows, at random positions inside the block. Pools are read pass after pass
    (a fresh shuffle each) when ``--allow-repeat`` lets them run out; ``tally`` counts a row as unique on
    the pools' first pass (exact when ``selected`` holds no row twice). ``selected`` is emptied: the
    pools replace it."""
    import numpy as np

    pools = {m: _pool(selected, m) for m in (True, False)}
    selected.clear()
    blocks, k = ratio_plan(len(pools[True]), len(pools[False]), batch_size, fraction, size, allow_repeat)
    streams = {m: Stream(pools[m], rng=rng_for(seed, POOL, int(m)), tally=tally, copy=False)
               for m in (True, False)}
    for m, what in ((True, "image"), (False, "text")):
        need = blocks * (k if m else batch_size - k)
        left = len(pools[m]) - need
        if left > 0:
            tally.notes.append(f"{left} {what} row(s) not needed for {blocks} blocks: dropped")
        elif left < 0:
            tally.notes.append(f"{-left} {what} row(s) repeated to fill {blocks} blocks")
    rng = rng_for(seed, BLOCKS)
    per_chunk = max(1, CHUNK // batch_size)
    done = 0
    while done < blocks:
        nb = min(per_chunk, blocks - done)
        imgs = streams[True].take(nb * k).reshape(nb, k)
        txts = streams[False].take(nb * (batch_size - k)).reshape(nb, batch_size - k)
        yield rng.permuted(np.concatenate([imgs, txts], axis=1), axis=1).ravel()
        done += nb
