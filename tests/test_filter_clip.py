"""`instructkit filter --clip PATH`: a tiny random-initialised CLIP saved to a folder, loaded like real
weights; batched scores equal one-at-a-time scores and an independent reference through the model's own
forward pass; the filter keeps exactly the rows at or above the threshold; a wrong folder is a clear error."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import UsageError
from instructkit.quality.clip import ClipScorer
from instructkit.quality.filters import FilterConfig, filter_job

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    import torch
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPVisionConfig,
    )

    from instructkit.testing.tiny import build_tokenizer

    tok = build_tokenizer()
    text = CLIPTextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, max_position_embeddings=64, projection_dim=16,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=8, projection_dim=16)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16))
    processor = CLIPProcessor(image_processor=CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}), tokenizer=tok)
    path = tmp_path_factory.mktemp("clip")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("clipdata")
    rng = random.Random(3)
    out = []
    for i in range(10):
        Image.new("RGB", (64, 48), tuple(rng.randrange(256) for _ in range(3))).save(root / f"i{i}.png")
        out.append({"id": f"r{i}", "images": [f"i{i}.png"], "messages": [
            {"role": "user", "content": f"<image>\nWhat is shown in picture {i}?"},
            {"role": "assistant", "content": rng.choice(["A cat on a mat.", "Two dogs in the park.",
                                                         "The sky is blue.", "A red bus."])}]})
    out.append({"id": "t", "images": [], "messages": [{"role": "user", "content": "Say hi."},
                                                      {"role": "assistant", "content": "Hi there."}]})
    data = root / "data.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in out) + "\n")
    return data, out


def _reference(path: Path, root: Path, rows: list[dict]) -> dict[str, float]:
    """Cosine similarity from CLIPModel's forward pass (logits / logit scale), one row at a time."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    model = CLIPModel.from_pretrained(path).eval()
    proc = CLIPProcessor.from_pretrained(path)
    out = {}
    for r in rows:
        if not r["images"]:
            continue
        text = r["messages"][0]["content"].replace("<image>", "").strip() + " " + r["messages"][1]["content"]
        inputs = proc(text=[text], images=[Image.open(root / r["images"][0]).convert("RGB")], return_tensors="pt")
        with torch.inference_mode():
            o = model(**inputs)
            out[r["id"]] = float(o.logits_per_image[0, 0] / model.logit_scale.exp())
    return out


def test_batched_scores_match_reference_and_the_filter_keeps_exactly_those_above(tiny_clip, rows, tmp_path):
    data, items = rows
    ref = _reference(tiny_clip, data.parent, items)
    scorer = ClipScorer(tiny_clip, batch_size=4, device="cpu")
    images = [scorer.load_image(data.parent / r["images"][0]) for r in items if r["images"]]
    texts = [r["messages"][0]["content"].replace("<image>", "").strip() + " " + r["messages"][1]["content"]
             for r in items if r["images"]]
    batched = scorer.score(images, texts)
    single = [scorer.score([im], [t])[0] for im, t in zip(images, texts)]
    assert batched == pytest.approx(single, abs=1e-5)
    assert batched == pytest.approx(list(ref.values()), abs=1e-4)
    assert len({round(s, 4) for s in batched}) > 3      # the random model really separates the rows

    threshold = statistics.median(ref.values())
    cfg = FilterConfig(clip=str(tiny_clip), clip_min=threshold, clip_batch=3, phash_distance=None,
                       rouge_threshold=None, min_side=1)
    funnel = filter_job(data, tmp_path / "o.jsonl", config=cfg)
    kept = [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert kept == [rid for rid, s in ref.items() if s >= threshold] + ["t"]     # input order, text row kept
    assert funnel["dropped"]["clip-low-similarity"] == sum(s < threshold for s in ref.values()) > 0
    assert funnel["read"] == funnel["kept"] + sum(funnel["dropped"].values())


def test_clip_path_that_is_not_a_clip_model(tmp_path, rows):
    data, _ = rows
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8}))
    with pytest.raises(UsageError, match="not a CLIP model.*model_type='llama'"):
        ClipScorer(llama)
    with pytest.raises(UsageError, match="no config.json"):
        ClipScorer(tmp_path)
    with pytest.raises(UsageError, match="not a folder"):
        ClipScorer(tmp_path / "missing")
    result = runner.invoke(app, ["filter", str(data), "-o", str(tmp_path / "o.jsonl"), "--clip", str(llama)])
    assert result.exit_code == 1 and "not a CLIP model" in result.stderr
    assert not (tmp_path / "o.jsonl").exists()
