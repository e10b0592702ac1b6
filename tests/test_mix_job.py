"""``run_mix`` end to end: real files in, output + manifest out."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from mix_samples import text_row, write_llava, write_text

from instructkit.errors import FormatError, RowError, UsageError
from instructkit.formats import RecordReader
from instructkit.mix import InputSpec, MixOptions, run_mix
from instructkit.mix.scan import fast_check
from instructkit.records import Record, content_id


@pytest.fixture
def pair(tmp_path):
    return write_text(tmp_path / "text.jsonl", 1000), write_llava(tmp_path / "llava.json", 100)


def spec(path: Path, **kw) -> InputSpec:
    return InputSpec(path, kw.pop("name", path.stem), **kw)


def read_out(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def mix(tmp_path, inputs, seed=0, name="out.jsonl", **kw):
    out = tmp_path / name
    manifest = run_mix(MixOptions(inputs=inputs, **kw), out, seed=seed, log=None)
    return out, manifest


def by_name(manifest: dict) -> dict:
    return {i["name"]: i for i in manifest["inputs"]}


# --- FIELD-NOTES: 1000 text + 100 image rows interleaved at 50/50 -------------------------------------

def test_field_notes_first_exhausted_drops_text_and_says_so(tmp_path, pair):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text, weight=0.5), spec(llava, weight=0.5)], strategy="interleave",
                 stopping="first-exhausted")
    rows = read_out(out)
    n_img = sum(1 for r in rows if r["images"])
    n_txt = len(rows) - n_img
    assert n_img == 100 and rows[-1]["images"]            # stops on the row that exhausts the images
    assert 140 <= len(rows) <= 270                         # ~200 at 50/50 (datasets gave 181)
    t = by_name(m)["text"]
    assert t["emitted"] == n_txt and t["dropped"] == 1000 - n_txt and t["dropped"] > 700
    assert t["repeated"] == 0 and by_name(m)["llava"]["dropped"] == 0
    assert any("first-exhausted" in n and "llava" in n for n in m["notes"])


def test_field_notes_all_exhausted_repeats_images_and_says_so(tmp_path, pair):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text, weight=0.5), spec(llava, weight=0.5)], strategy="interleave",
                 stopping="all-exhausted")
    rows = read_out(out)
    imgs = [r["id"] for r in rows if r["images"]]
    assert len(rows) - len(imgs) == 1000 and not rows[-1]["images"]  # ends on the last new text row
    assert len(set(imgs)) == 100
    img = by_name(m)["llava"]
    assert img["emitted"] == len(imgs) and img["repeated"] == len(imgs) - 100
    assert 700 <= img["repeated"] <= 1150                   # images seen ~10x (datasets: 1987 rows)
    assert by_name(m)["text"]["dropped"] == 0 and by_name(m)["text"]["repeated"] == 0


def test_field_notes_without_replacement_keeps_everything_once(tmp_path, pair):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text, weight=0.5), spec(llava, weight=0.5)], strategy="interleave",
                 stopping="without-replacement")
    rows = read_out(out)
    assert len(rows) == 1100 and len({r["id"] for r in rows}) == 1100
    last_img = max(i for i, r in enumerate(rows) if r["images"])
    assert last_img < 400 and all(not r["images"] for r in rows[last_img + 1:])   # text-only tail
    for inp in m["inputs"]:
        assert inp["dropped"] == 0 and inp["repeated"] == 0
    assert any(f"llava ran out at row {last_img + 1}" in n for n in m["notes"])


# --- determinism -------------------------------------------------------------------------------------

STRATEGY_KW = [
    {"strategy": "concat"}, {"strategy": "shuffle"}, {"strategy": "sequential"},
    {"strategy": "interleave", "stopping": "all-exhausted"},
    {"strategy": "shuffle", "shuffle_memory_mb": 1},
    {"batches": "modality", "batch_size": 8},
    {"batches": "ratio", "batch_size": 10, "image_fraction": 0.3},
]


@pytest.mark.parametrize("kw", STRATEGY_KW, ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_same_inputs_and_seed_give_byte_identical_output_and_manifest(tmp_path, pair, kw):
    text, llava = pair
    inputs = [spec(text, cap=600), spec(llava, mult=2)]
    out, _ = mix(tmp_path, inputs, seed=7, **kw)
    first = (out.read_bytes(), (tmp_path / "out.manifest.json").read_bytes())
    out, m = mix(tmp_path, inputs, seed=7, **kw)
    assert (out.read_bytes(), (tmp_path / "out.manifest.json").read_bytes()) == first
    assert json.loads(first[1]) == m
    assert m["output"]["sha256"] and m["output"]["rows"] == len(read_out(out))
    if kw != {"strategy": "concat"}:
        other, _ = mix(tmp_path, inputs, seed=8, name="other.jsonl", **kw)
        assert other.read_bytes() != first[0]


# --- counts: caps, --size, weights --------------------------------------------------------------------

def test_caps_and_mult_give_exact_counts(tmp_path, pair):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text, cap=250), spec(llava, cap=5000, mult=3)], strategy="shuffle")
    rows = read_out(out)
    assert len(rows) == 250 + 300
    t, i = by_name(m)["text"], by_name(m)["llava"]
    assert (t["available"], t["capped_out"], t["emitted"]) == (250, 750, 250)
    assert (i["available"], i["emitted"], i["unique"], i["repeated"]) == (100, 300, 100, 200)
    assert any("llava: cap 5000 >= its 100 valid rows" in n for n in m["notes"])   # reported, no error
    assert len({r["id"] for r in rows if not r["images"]}) == 250


@pytest.mark.parametrize("strategy", ["concat", "shuffle", "sequential"])
def test_size_with_weights_gives_exact_per_input_counts(tmp_path, pair, strategy):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text, weight=0.3), spec(llava, weight=0.7)], strategy=strategy, size=1001)
    rows = read_out(out)
    assert len(rows) == 1001
    n_img = sum(1 for r in rows if r["images"])
    assert (n_img, len(rows) - n_img) == (701, 300)       # largest remainder: 700.7 -> 701, 300.3 -> 300
    assert by_name(m)["llava"]["repeated"] == 601 and by_name(m)["text"]["dropped"] == 700
    assert m["totals"]["modality_share"]["image"] == round(701 / 1001, 6)


def test_size_without_weights_keeps_proportions(tmp_path, pair):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text), spec(llava)], strategy="concat", size=550)
    rows = read_out(out)
    assert [r["images"] != [] for r in rows] == [False] * 500 + [True] * 50
    ids = [int(r["id"][1:]) for r in rows[:500]]
    assert ids == sorted(ids)                              # concat keeps file order


def test_interleave_size_draws_exactly_n(tmp_path, pair):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text, weight=1), spec(llava, weight=3)], strategy="interleave", size=4000)
    rows = read_out(out)
    assert len(rows) == 4000
    share = sum(1 for r in rows if r["images"]) / 4000
    assert abs(share - 0.75) < 0.03
    assert m["parameters"]["stopping"] == "size"


def test_temperature_two_is_square_root_of_sizes(tmp_path, pair):
    text, llava = pair
    _, m = mix(tmp_path, [spec(text), spec(llava)], strategy="interleave", temperature=2.0)
    p = by_name(m)
    s = 1000 ** 0.5 + 100 ** 0.5
    assert p["text"]["probability"] == round(1000 ** 0.5 / s, 6)
    assert p["llava"]["probability"] == round(100 ** 0.5 / s, 6)


def test_temperature_by_tokens_counts_words_of_every_turn(tmp_path, pair):
    text, llava = pair
    _, m = mix(tmp_path, [spec(text, cap=500), spec(llava)], strategy="interleave", temperature=1.0,
               weigh_by="tokens")
    # text rows: "Question i?" + "Answer i." = 4 words; image rows: "<image>\nWhat is i?" + "It is i." = 7.
    p = by_name(m)
    assert p["text"]["probability"] == round(2000 / 2700, 6)
    assert p["llava"]["probability"] == round(700 / 2700, 6)


# --- rows: normalisation, validation, dedup, formats ---------------------------------------------------

def test_canonical_rows_are_copied_or_normalised(tmp_path):
    src = tmp_path / "a.jsonl"
    good = orjson.dumps(text_row(0, source="orig")) + b"\n"
    blank_source = orjson.dumps(text_row(1)) + b"\n"
    no_id = orjson.dumps(text_row(2, source="s", rid="")) + b"\n"
    crlf = orjson.dumps(text_row(3, source="s")) + b"\r\n"
    src.write_bytes(good + blank_source + no_id + crlf + orjson.dumps(text_row(4, source="s")))
    out, m = mix(tmp_path, [spec(src, name="mine")], strategy="concat")
    lines = out.read_bytes().splitlines(keepends=True)
    assert lines[0] == good
    recs = [Record.model_validate_json(line) for line in lines]
    assert [r.source for r in recs] == ["orig", "mine", "s", "s", "s"]
    assert recs[2].id == content_id(recs[2].images, recs[2].messages)
    assert all(line.endswith(b"}\n") for line in lines)
    assert by_name(m)["mine"]["valid"] == 5


def test_rows_longer_than_one_read_come_back_whole(tmp_path):
    src = tmp_path / "long.jsonl"
    rows = []
    for i, n in enumerate([10, 300, 5000, 70_000, 200_000, 3]):
        r = text_row(i, source="s")
        r["messages"][1]["content"] = "x" * n + "\u00e9"
        rows.append(orjson.dumps(r) + b"\n")
    src.write_bytes(b"".join(rows))
    out, _ = mix(tmp_path, [spec(src)], strategy="shuffle")
    assert sorted(out.read_bytes().splitlines(keepends=True)) == sorted(rows)


def test_other_formats_are_normalised_with_the_input_name(tmp_path, pair):
    _, llava = pair
    out, _ = mix(tmp_path, [spec(llava, name="coco")], strategy="concat")
    recs = list(RecordReader(out))
    assert len(recs) == 100 and {r.source for r in recs} == {"coco"}
    assert recs[0].images == ["img/0.jpg"] and recs[0].messages[0].content.startswith("<image>")


def test_bad_row_fails_with_file_and_line_or_is_rejected(tmp_path):
    src = tmp_path / "a.jsonl"
    bad = dict(text_row(1, source="s"), images=["x.jpg"])           # image without placeholder
    src.write_bytes(b"\n".join([orjson.dumps(text_row(0, source="s")), orjson.dumps(bad), b"{oops",
                                orjson.dumps(text_row(3, source="s"))]) + b"\n")
    with pytest.raises(RowError, match=r"a.jsonl:2: .*image.*\[image-count\]"):
        mix(tmp_path, [spec(src)], strategy="concat")
    assert not (tmp_path / "out.jsonl").exists()
    out, m = mix(tmp_path, [spec(src)], strategy="concat", on_error="skip")
    assert len(read_out(out)) == 2
    assert by_name(m)["a"]["rejected"] == {"bad-json": 1, "image-count": 1}
    rejects = [json.loads(x) for x in (tmp_path / "out.rejects.jsonl").read_text().splitlines()]
    assert [(r["reason"], r["line"]) for r in rejects] == [("image-count", 2), ("bad-json", 3)]


MUTATIONS = [
    lambda d: d.pop("meta"), lambda d: d.update(extra=1), lambda d: d.update(id=5),
    lambda d: d.update(images="x"), lambda d: d.update(images=[1]), lambda d: d.update(messages=[]),
    lambda d: d["messages"].reverse(), lambda d: d["messages"][0].update(role="bot"),
    lambda d: d["messages"][1].update(content="  "), lambda d: d["messages"][0].update(extra=1),
    lambda d: d["messages"].insert(0, {"role": "system", "content": "s"}),
    lambda d: d["messages"].append({"role": "system", "content": "s"}),
    lambda d: d["messages"].pop(), lambda d: d.update(images=["../up.jpg"]),
    lambda d: d["messages"][0].update(content="<image> hi"), lambda d: d.update(meta=[]),
    lambda d: d["messages"][0].update(content=3), lambda d: d.update(source=None),
]


@pytest.mark.parametrize("mutate", range(len(MUTATIONS)))
def test_fast_check_never_accepts_what_the_model_rejects(mutate):
    d = text_row(0, source="s")
    MUTATIONS[mutate](d)
    raw = orjson.dumps(d)
    try:
        Record.model_validate_json(raw)
        valid = True
    except Exception:
        valid = False
    if fast_check(orjson.loads(raw)):
        assert valid
    assert fast_check(text_row(0, source="s"))


def test_dedup_across_inputs_keeps_the_first(tmp_path):
    a = write_text(tmp_path / "a.jsonl", 50, source="a")
    b = tmp_path / "b.jsonl"
    rows = [dict(text_row(i, source="b"), id=f"b{i}") for i in range(40, 70)]
    rows[0]["messages"][0]["content"] = "  QUESTION   40? "          # same after normalisation
    b.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out, m = mix(tmp_path, [spec(a), spec(b)], strategy="concat", dedup=True)
    assert len(read_out(out)) == 70
    assert by_name(m)["b"]["duplicates"] == 10 and by_name(m)["a"]["duplicates"] == 0


def test_llava_output_format(tmp_path, pair):
    text, llava = pair
    out, m = mix(tmp_path, [spec(text, cap=20), spec(llava, cap=10)], name="out.json", strategy="shuffle")
    recs = list(RecordReader(out))
    assert len(recs) == 30 and m["output"]["format"] == "llava"
    assert sum(1 for r in recs if r.images) == 10


def test_external_shuffle_is_a_balanced_permutation(tmp_path):
    a = write_text(tmp_path / "a.jsonl", 6000, source="a")
    b = tmp_path / "b.jsonl"
    b.write_bytes(b"".join(orjson.dumps(dict(text_row(i, source="b"), id=f"b{i}")) + b"\n"
                           for i in range(6000)))
    cat, _ = mix(tmp_path, [spec(a), spec(b)], strategy="concat", name="cat.jsonl")
    out, m = mix(tmp_path, [spec(a), spec(b)], strategy="shuffle", shuffle_memory_mb=1)
    note = next(n for n in m["notes"] if "external shuffle" in n)
    assert int(note.split("through ")[1].split()[0]) > 1                # several buckets really used
    lines = out.read_bytes().splitlines()
    assert sorted(lines) == sorted(cat.read_bytes().splitlines())
    first_half_a = sum(1 for x in lines[:6000] if b'"id":"t' in x)
    assert abs(first_half_a - 3000) < 250                              # sd ~ 39
    ids = [orjson.loads(x)["id"] for x in lines[:2000] if b'"id":"t' in x]
    assert ids != sorted(ids, key=lambda s: int(s[1:]))


# --- bad input ----------------------------------------------------------------------------------------

def test_unknown_input_format_is_an_error(tmp_path):
    bad = tmp_path / "odd.jsonl"
    bad.write_text('{"question": "q", "label": 1}\n')
    with pytest.raises(FormatError, match="unknown format") as exc:
        mix(tmp_path, [spec(bad)])
    # mix forces a format per input with fmt=, not --from (which it does not have).
    assert "odd.jsonl:fmt=FORMAT" in str(exc.value) and "--from" not in str(exc.value)
    with pytest.raises(FormatError, match=r"odd.jsonl: unknown format 'yaml'"):
        mix(tmp_path, [spec(bad, fmt="yaml")])


def test_impossible_image_fraction_is_a_clear_error(tmp_path, pair):
    text, llava = pair
    with pytest.raises(UsageError, match="needs 500 image rows.*have 100.*--allow-repeat"):
        mix(tmp_path, [spec(text), spec(llava)], batches="ratio", batch_size=10, image_fraction=0.5, size=1000)
    out, m = mix(tmp_path, [spec(text), spec(llava)], batches="ratio", batch_size=10, image_fraction=0.5,
                 size=1000, allow_repeat=True)
    assert len(read_out(out)) == 1000 and by_name(m)["llava"]["repeated"] == 400


@pytest.mark.parametrize(("kw", "message"), [
    ({"strategy": "shuffle", "inputs_w": [0.0, 0.0], "size": 10}, "sum to zero"),
    ({"strategy": "shuffle", "inputs_w": [0.3, 0.7]}, "with --size"),
    ({"strategy": "interleave", "inputs_w": [0.3, None]}, "every input or to none"),
    ({"strategy": "blend"}, "unknown strategy"),
    ({"strategy": "concat", "stopping": "first-exhausted"}, "interleave only"),
    ({"batches": "ratio", "batch_size": 10}, "--image-fraction"),
    ({"batches": "ratio", "batch_size": 10, "image_fraction": 0.5, "size": 15}, "not a multiple"),
    ({"batches": "modality", "batch_size": 10, "allow_repeat": True}, "--allow-repeat applies"),
    ({"strategy": "interleave", "weigh_by": "tokens"}, "apply to --temperature only"),
    ({"strategy": "interleave", "temperature": 0}, "must be positive"),
])
def test_bad_options_are_usage_errors(tmp_path, pair, kw, message):
    text, llava = pair
    weights = kw.pop("inputs_w", [None, None])
    inputs = [spec(text, weight=weights[0]), spec(llava, weight=weights[1])]
    with pytest.raises(UsageError, match=message):
        mix(tmp_path, inputs, **kw)
