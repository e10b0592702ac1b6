"""The pure strategies of ``instructkit.mix``: invariants on entry arrays, no files."""

from __future__ import annotations

import numpy as np
import pytest

from instructkit.errors import UsageError
from instructkit.mix import strategies as st
from instructkit.mix.entries import is_image, pack, sources_of


def make(source: int, n: int, image: bool, start: int = 0) -> np.ndarray:
    return np.array([pack(start + i * 10, source, image, False) for i in range(n)], dtype=np.int64)


def mixed(source: int, n_text: int, n_image: int) -> np.ndarray:
    rows = [pack(i * 10, source, i >= n_text, False) for i in range(n_text + n_image)]
    return np.random.default_rng(source).permutation(np.array(rows, dtype=np.int64))


def collect(chunks) -> np.ndarray:
    parts = list(chunks)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def test_entry_packing_round_trips():
    e = np.array([pack(123456789, 7, True, True), pack(5, 1023, False, False)], dtype=np.int64)
    assert sources_of(e).tolist() == [7, 1023]
    assert is_image(e).tolist() == [True, False]


def test_largest_remainder_is_exact_and_proportional():
    assert st.largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(st.largest_remainder(100_001, [0.3, 0.7, 0.0])) == 100_001
    assert st.largest_remainder(100, [0.3, 0.7]) == [30, 70]


def test_temperature_weights_follow_the_formula():
    p = st.temperature_weights([100, 400], 2.0)
    assert p == pytest.approx([10 / 30, 20 / 30])
    assert st.temperature_weights([100, 400], 1.0) == pytest.approx([0.2, 0.8])
    assert st.temperature_weights([100, 400], 1.0, cap=100) == pytest.approx([0.5, 0.5])
    big_t = st.temperature_weights([1, 10_000], 1e6)
    assert big_t[0] == pytest.approx(0.5, abs=1e-3)


def test_stream_passes_count_unique_and_repeats():
    tally = st.Tally(1)
    s = st.Stream(make(0, 10, False), passes=1, rng=st.rng_for(1, 0), tally=tally)
    first = s.take(10)
    assert sorted(first.tolist()) == sorted(make(0, 10, False).tolist())
    assert s.remaining == 0
    again = s.take(15)
    assert sorted(again[:10].tolist()) == sorted(first.tolist())
    assert tally.emitted.tolist() == [25] and tally.unique.tolist() == [10]


def test_cap_is_an_ordered_random_subset():
    arr = make(0, 100, False)
    capped = st.apply_cap(arr, 30, st.rng_for(3, 0))
    assert len(capped) == 30 and len(set(capped.tolist())) == 30
    assert capped.tolist() == sorted(capped.tolist())
    assert set(capped.tolist()) <= set(arr.tolist())
    assert st.apply_cap(arr, 500, st.rng_for(3, 0)) is arr


def test_select_exact_counts_up_and_down():
    a, b = make(0, 50, False), make(1, 20, True)
    tally = st.Tally(2)
    sel = st.select([a, b], [30, 45], ordered=True, seed=1, tally=tally)
    assert [len(x) for x in sel] == [30, 45]
    assert sel[0].tolist() == sorted(sel[0].tolist())          # concat keeps file order
    assert tally.unique.tolist() == [30, 20] and tally.emitted.tolist() == [30, 45]


def test_sequential_puts_each_stage_whole_and_shuffled():
    sel = [mixed(0, 300, 0), mixed(1, 40, 200)]
    out = collect(st.sequential(sel, ["text", "image"], ["t", "m"], seed=5))
    img = is_image(out)
    n_text = 340
    assert not img[:n_text].any() and img[n_text:].all()
    assert sorted(out.tolist()) == sorted(np.concatenate(sel).tolist())
    by_input = collect(st.sequential(sel, ["m", "t"], ["t", "m"], seed=5))
    assert (sources_of(by_input[:240]) == 1).all() and (sources_of(by_input[240:]) == 0).all()
    assert by_input[:240].tolist() != sorted(by_input[:240].tolist())   # shuffled inside


def test_shuffle_is_a_permutation_and_depends_on_seed():
    sel = [make(0, 1000, False), make(1, 500, True)]
    a = collect(st.shuffle(sel, seed=1))
    b = collect(st.shuffle(sel, seed=1))
    c = collect(st.shuffle(sel, seed=2))
    assert sorted(a.tolist()) == sorted(np.concatenate(sel).tolist())
    assert a.tolist() == b.tolist() and a.tolist() != c.tolist()


@pytest.mark.parametrize("batch", [1, 4, 16])
def test_modality_blocks_are_pure(batch):
    sel = [mixed(0, 333, 17), mixed(1, 5, 150)]
    tally = st.Tally(2)
    out = collect(st.modality_batches(sel, batch, seed=3, tally=tally))
    n_img, n_txt = 167, 338
    assert len(out) == (n_img // batch + n_txt // batch) * batch
    blocks = is_image(out).reshape(-1, batch)
    assert (blocks.all(axis=1) | ~blocks.any(axis=1)).all()
    kinds = blocks[:, 0].astype(int).tolist()
    assert 0 < sum(kinds) < len(kinds) and kinds != sorted(kinds)       # both kinds, interleaved
    assert len(set(out.tolist())) == len(out)
    if n_img % batch or n_txt % batch:
        assert any("left over" in n for n in tally.notes)


@pytest.mark.parametrize(("batch", "fraction"), [(10, 0.3), (8, 0.5), (7, 0.2)])
def test_ratio_blocks_have_the_exact_share(batch, fraction):
    sel = [mixed(0, 900, 0), mixed(1, 30, 300)]
    tally = st.Tally(2)
    out = collect(st.ratio_batches(list(sel), batch, fraction, None, False, seed=4, tally=tally))
    k = round(fraction * batch)
    per_block = is_image(out).reshape(-1, batch).sum(axis=1)
    assert (per_block == k).all()
    assert len(out) == min(300 // k, 930 // (batch - k)) * batch
    assert len(set(out.tolist())) == len(out)
    firsts = is_image(out).reshape(-1, batch).argmax(axis=1)
    assert len(set(firsts.tolist())) > 1              # image rows at varying positions in the block


def test_ratio_size_needs_enough_rows_or_allow_repeat():
    sel = [mixed(0, 900, 0), mixed(1, 0, 50)]
    with pytest.raises(UsageError, match="needs 200 image rows.*have 50.*--allow-repeat"):
        collect(st.ratio_batches(list(sel), 10, 0.2, 1000, False, seed=0, tally=st.Tally(2)))
    out = collect(st.ratio_batches(list(sel), 10, 0.2, 1000, True, seed=0, tally=st.Tally(2)))
    assert len(out) == 1000
    assert (is_image(out).reshape(-1, 10).sum(axis=1) == 2).all()
    imgs = out[is_image(out)]
    assert len(set(imgs.tolist())) == 50                # every image used, each about 4 times
    with pytest.raises(UsageError, match="needs 200 image rows"):
        collect(st.ratio_batches([mixed(0, 900, 0)], 10, 0.2, 1000, True, seed=0, tally=st.Tally(1)))


def test_interleave_realised_proportions_within_tolerance():
    probs = [0.2, 0.3, 0.5]
    streams = [st.Stream(make(i, 100_000, i == 2), rng=st.rng_for(0, i)) for i in range(3)]
    tally = st.Tally(3)
    out = collect(st.interleave(streams, probs, seed=9, stopping="first-exhausted", size=30_000,
                                names=["a", "b", "c"], tally=tally))
    assert len(out) == 30_000
    shares = np.bincount(sources_of(out), minlength=3) / len(out)
    # 4 standard deviations of a binomial share at n=30000 is below 0.012.
    assert np.abs(shares - probs).max() < 0.012


def test_interleave_size_restarts_sources_and_counts_repeats():
    tally = st.Tally(2)
    streams = [st.Stream(make(i, 50, False), rng=st.rng_for(0, i), tally=tally) for i in range(2)]
    out = collect(st.interleave(streams, [0.5, 0.5], seed=1, stopping="without-replacement", size=400,
                                names=["a", "b"], tally=tally))
    assert len(out) == 400
    assert tally.unique.tolist() == [50, 50]
    assert (tally.emitted - tally.unique).sum() == 300


def test_interleave_does_not_depend_on_chunking_of_the_cut(monkeypatch):
    # Without-replacement ends with every row exactly once, whatever the chunk size.
    for chunk in (7, 1 << 16):
        monkeypatch.setattr(st, "CHUNK", chunk)
        streams = [st.Stream(make(i, n, False), rng=st.rng_for(0, i)) for i, n in enumerate((500, 40, 3))]
        out = collect(st.interleave(streams, [0.2, 0.5, 0.3], seed=2, stopping="without-replacement",
                                    size=None, names=["a", "b", "c"], tally=st.Tally(3)))
        assert sorted(out.tolist()) == sorted(np.concatenate([s.arr for s in streams]).tolist())
