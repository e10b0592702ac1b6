"""Training runs on a real tiny LLaVA (CPU): overfitting, packing = padding, LoRA and full fine-tune
save / reload / generate, resume, eval split, per-source and per-modality loss logging."""

from __future__ import annotations

import json
import re

import pytest

from instructkit.records import conversation, make_record
from instructkit.testing.tiny import build_tiny_llava, save_tiny_llava, save_tiny_text_lm, write_tiny_images
from instructkit.train import TrainConfig, train
from instructkit.train.batches import collate, token_losses
from instructkit.train.chat import Encoder

OVERFIT_STEPS = 60
OVERFIT_LOSS = 0.5     # from ~6.0 (log of the 384-token vocabulary) at step 0


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    save_tiny_llava(root / "llava")
    save_tiny_text_lm(root / "textlm")
    write_tiny_images(root / "img", [f"{i}.png" for i in range(8)])
    return root


def eight_rows():
    """4 image rows (distinct images) and 4 text rows (two of them multi-turn with a system turn)."""
    out = []
    for i in range(8):
        if i % 2 == 0:
            out.append(conversation("What is it?", f"A cat number {i}.", images=[f"{i}.png"], source="coco"))
        else:
            out.append(make_record({"source": "sharegpt", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": f"Say {i}."},
                {"role": "assistant", "content": f"Hello {i}."},
                {"role": "user", "content": "Why?"},
                {"role": "assistant", "content": "Because."}]}))
    return out


def cfg(env, out, **kw):
    base = dict(model=str(env / "llava"), output=str(out), image_root=str(env / "img"), batch_size=4,
                lr=1e-2, warmup_ratio=0.0, log_steps=10, max_length=128)
    return TrainConfig(**{**base, **kw})


def log_rows(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]


def test_overfits_eight_samples_and_logs_per_source_and_modality(env, tmp_path):
    out = tmp_path / "run"
    summary = train(eight_rows(), cfg(env, out, max_steps=OVERFIT_STEPS))
    rows = log_rows(out)
    assert rows[0]["loss"] > 4.0
    assert summary["final_loss"] < OVERFIT_LOSS, summary
    last = rows[-1]
    assert last["step"] == OVERFIT_STEPS and last["loss"] == summary["final_loss"]
    assert set(last["by_source"]) == {"coco", "sharegpt"}
    assert set(last["by_modality"]) == {"image", "text"}
    assert all(v < 1.0 for v in last["by_modality"].values())
    lo, hi = sorted(last["by_modality"].values())
    assert lo <= last["loss"] <= hi          # the overall loss is a token-weighted mean of the parts
    assert (out / "config.json").is_file() and (out / "processor_config.json").is_file()


def test_packing_loss_equals_padding_loss(env):
    import torch

    model, processor = build_tiny_llava(seed=3)
    model.eval()
    enc = Encoder(processor, is_vlm=True, template=processor.chat_template, image_root=env / "img")
    rows = [enc.encode(r, i) for i, r in enumerate(eight_rows())]
    assert len({r.length for r in rows}) > 1          # variable lengths, so padding really pads
    pad = processor.tokenizer.pad_token_id
    with torch.no_grad():
        losses = {}
        plans = {False: [[r] for r in rows],                   # one row per padded sequence
                 True: [rows[:3], rows[3:4], rows[4:]]}          # three packed sequences of unequal length
        for packing in (False, True):
            batch = collate(plans[packing], packing=packing, pad_id=pad)
            assert ("attention_mask" in batch["inputs"]) != packing
            logits = model(**batch["inputs"], use_cache=False).logits
            tok, _ = token_losses(logits, batch["targets"])
            losses[packing] = tok.sum().item() / tok.numel()
    assert abs(losses[True] - losses[False]) < 1e-4, losses


def test_packing_plan_keeps_order_and_capacity():
    from instructkit.train.batches import plan_batches

    lengths = dict(enumerate([300, 250, 200, 100, 500, 60, 40, 480, 30]))
    order = [4, 0, 1, 2, 3, 5, 6, 7, 8]
    plan = plan_batches(order, lengths, batch_size=2, packing=True, max_length=512)
    # first fit into at most 2 open sequences of <= 512 tokens; a row that fits none closes the batch
    assert plan == [[[4], [0]], [[1, 2, 5], [3, 6]], [[7, 8]]]
    for mb in plan:
        assert all(sum(lengths[i] for i in seq) <= 512 for seq in mb)
    runs, at = [], 0
    for mb in plan:
        n = sum(len(seq) for seq in mb)
        runs.append(sorted(order[at:at + n]))
        at += n
    assert runs == [sorted(i for seq in mb for i in seq) for mb in plan]   # contiguous runs of the order
    padded = plan_batches(order, lengths, batch_size=4, packing=False, max_length=512)
    assert padded == [[[4], [0], [1], [2]], [[3], [5], [6], [7]], [[8]]]


def test_full_finetune_saves_reloads_and_generates(env, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = tmp_path / "full"
    train(eight_rows(), cfg(env, out, max_steps=3, packing=True, freeze=["vision"], gradient_checkpointing=True,
                            bf16=True))
    model = AutoModelForImageTextToText.from_pretrained(out)
    base = AutoModelForImageTextToText.from_pretrained(env / "llava")
    changed = {n for n, p in model.state_dict().items() if not torch.equal(p, base.state_dict()[n])}
    assert any("language_model" in n for n in changed) and any("projector" in n for n in changed)
    assert not any("vision_tower" in n for n in changed)          # --freeze vision
    _generate(model, AutoProcessor.from_pretrained(out), env)


def test_lora_saves_adapter_reloads_through_auto_class_and_generates(env, tmp_path):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = tmp_path / "lora"
    summary = train(eight_rows(), cfg(env, out, max_steps=3, lora=True, lora_r=4))
    assert summary["saved"] == "adapter"
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert all("vision_tower" not in t and "projector" not in t for t in adapter["target_modules"])
    assert not (out / "model.safetensors").exists()
    model = AutoModelForImageTextToText.from_pretrained(out)        # base path read from the adapter
    assert any("lora_A" in n for n, _ in model.named_parameters())
    base = AutoModelForImageTextToText.from_pretrained(env / "llava")
    ids = torch.tensor([[1, 5, 50, 60, 2, 6]])
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, base(input_ids=ids).logits)
    _generate(model, AutoProcessor.from_pretrained(out), env)


def test_lora_merged_weights_reload_without_peft_layers(env, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = tmp_path / "merged"
    summary = train(eight_rows(), cfg(env, out, max_steps=2, lora=True, lora_r=4, merge_lora=True))
    assert summary["saved"] == "merged" and not (out / "adapter_config.json").exists()
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert not any("lora" in n for n, _ in model.named_parameters())
    _generate(model, AutoProcessor.from_pretrained(out), env)


def _generate(model, processor, env):
    from PIL import Image

    msgs = [{"role": "user", "content": [{"type": "image", "image": Image.open(env / "img" / "0.png")},
                                         {"type": "text", "text": "What is it?"}]}]
    inputs = processor.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


def test_resume_from_checkpoint_matches_uninterrupted_run(env, tmp_path):
    import torch
    from safetensors.torch import load_file

    straight, split = tmp_path / "straight", tmp_path / "split"
    train(eight_rows(), cfg(env, straight, max_steps=4, batch_size=2))
    train(eight_rows(), cfg(env, split, max_steps=4, batch_size=2, save_steps=2))
    assert (split / "checkpoint-2").is_dir()
    # a third run resumes from step 2 of the checkpointed run and replays the same data order
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    import shutil
    shutil.copytree(split / "checkpoint-2", resumed / "checkpoint-2")
    summary = train(eight_rows(), cfg(env, resumed, max_steps=4, batch_size=2, resume="latest"))
    assert summary["steps"] == 4
    a = load_file(straight / "model.safetensors")
    b = load_file(resumed / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    seen = [json.loads(x)["step"] for x in (resumed / "seen.rank0.jsonl").read_text().splitlines()]
    assert seen == [3, 4]


def test_eval_split_and_text_only_model(env, tmp_path):
    text_rows = [r for r in eight_rows() if not r.images] * 3
    out = tmp_path / "text"
    summary = train(text_rows, cfg(env, out, model=str(env / "textlm"), max_steps=4, eval_split=0.25,
                                   eval_steps=2, shuffle=False, batch_size=2))
    assert summary["eval_rows"] == 3 and summary["train_rows"] == 9
    # --no-shuffle: the training rows are taken in file order (minus the held-out ones)
    held = set(json.loads((out / "instructkit_train.json").read_text())["eval_rows"])
    expected = [r.id for i, r in enumerate(text_rows) if i not in held][:8]
    seen = [i for x in (out / "seen.rank0.jsonl").read_text().splitlines() for i in json.loads(x)["rows"]]
    assert seen == expected
    evals = [r for r in log_rows(out) if r.get("eval")]
    assert [r["step"] for r in evals] == [2, 4]
    assert evals[-1]["by_modality"].keys() == {"text"}


def test_summary_keeps_paths_as_given(env, tmp_path, monkeypatch):
    import os

    monkeypatch.chdir(tmp_path)
    model = os.path.relpath(env / "llava", tmp_path)
    images = os.path.relpath(env / "img", tmp_path)
    said: list[str] = []
    rows = eight_rows()
    for r in rows:
        if not r.images:
            r.source = "text"             # a source named like a modality: the log line must tell them apart
    train(rows, cfg(env, "out", model=model, image_root=images, max_steps=1, batch_size=8), said.append)
    saved = json.loads((tmp_path / "out" / "instructkit_train.json").read_text())["config"]
    assert (saved["model"], saved["output"], saved["image_root"]) == (model, "out", images)
    step = next(line for line in said if line.startswith("step 1/1 "))
    assert re.fullmatch(r"step 1/1 loss \d\.\d{4} \| modality: image \d\.\d{3} text \d\.\d{3} "
                        r"\| source: coco \d\.\d{3} text \d\.\d{3}", step), step


def test_a_failed_save_leaves_no_half_written_weights(env, tmp_path, monkeypatch):
    from instructkit.train.model import save_final

    model, processor = build_tiny_llava()

    def disk_full(self, *args, **kwargs):
        raise OSError("No space left on device")

    # The weights are written first; the processor's save then fails as a full disk would.
    monkeypatch.setattr(type(processor), "save_pretrained", disk_full)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left"):
        save_final(model, processor, out, lora=False, merge=False)
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    assert save_final(model, processor, out, lora=False, merge=False) == "full"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(("model", "processor"))) == [
        "model.safetensors", "processor_config.json"]
    assert not any(p.name.startswith(".saving") for p in out.iterdir())


def test_resume_logs_each_step_once(env, tmp_path):
    # 6 training rows in batches of 2: 3 steps per epoch, an eval at each epoch's end; the checkpoint at
    # step 3 sits on an epoch boundary, so the resumed run replays all of epoch 0 without training.
    out = tmp_path / "run"
    opts = dict(max_steps=5, batch_size=2, eval_split=0.25, save_steps=3, log_steps=1)
    train(eight_rows(), cfg(env, out, **opts))
    first = log_rows(out)
    assert [(r["step"], bool(r.get("eval"))) for r in first] == [
        (1, False), (2, False), (3, False), (3, True), (4, False), (5, False), (5, True)]
    train(eight_rows(), cfg(env, out, resume="latest", **opts))
    again = log_rows(out)
    assert [(r["step"], bool(r.get("eval"))) for r in again] == [(r["step"], bool(r.get("eval"))) for r in first]
    assert again[:4] == first[:4]            # the lines up to the checkpoint are the first run's own
    seen = [json.loads(x)["step"] for x in (out / "seen.rank0.jsonl").read_text().splitlines()]
    assert seen == [1, 2, 3, 4, 5]


def test_saving_over_an_earlier_run_of_another_kind_leaves_only_the_new_weights(env, tmp_path):
    from transformers import AutoModelForImageTextToText

    out = tmp_path / "out"
    train(eight_rows(), cfg(env, out, max_steps=1, lora=True, lora_r=4))
    assert (out / "adapter_config.json").is_file()
    train(eight_rows(), cfg(env, out, max_steps=1))
    assert not (out / "adapter_config.json").exists() and not (out / "adapter_model.safetensors").exists()
    model = AutoModelForImageTextToText.from_pretrained(out)
    assert not any("lora" in n for n, _ in model.named_parameters())
    train(eight_rows(), cfg(env, out, max_steps=1, lora=True, lora_r=4))
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()


def test_a_fresh_run_clears_an_earlier_runs_checkpoints_and_rank_files(env, tmp_path):
    out = tmp_path / "out"
    train(eight_rows(), cfg(env, out, max_steps=3, batch_size=2, save_steps=1))
    assert (out / "checkpoint-2").is_dir()
    (out / "seen.rank1.jsonl").write_text('{"step": 1, "rows": []}\n')     # as a 2-process run leaves it
    (out / "notes.txt").write_text("mine")
    train(eight_rows(), cfg(env, out, max_steps=1, batch_size=2))
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(("checkpoint", "seen"))) == ["seen.rank0.jsonl"]
    assert (out / "notes.txt").read_text() == "mine"              # only what a training run writes goes
