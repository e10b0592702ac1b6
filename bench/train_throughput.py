"""Training throughput: padded vs padding-free packed micro-batches on variable-length mixed
(image + text) rows, with a random-initialised LLaVA; prints tokens/s of both, their ratio and an MFU
estimate.

    python bench/train_throughput.py                      # CPU-sized shape (default: --shape small)
    python bench/train_throughput.py --shape 0.5b --bf16  # LLaVA 0.94B (CLIP ViT-L/14-336 + 0.5B LM), GPU

Both modes train on the same rows in the same order through instructkit's own collate / loss code
(``instructkit.train.batches``); only real (non-pad) tokens are counted. Padded batches hold
--batch-size rows; packed batches fill a budget of batch-size × max-length tokens.

MFU = model FLOPs / time / peak, with model FLOPs = 6 × (parameters touched per token) + the attention
term 12 × layers × hidden × row length per token (PaLM appendix B), for the language model over all
tokens and the vision tower over its patches. Peak: --peak-tflops, else 989 (H100/H200 bf16 dense) on
CUDA, else the fp32 matmul rate measured here on this CPU (so CPU MFU is relative to what this CPU
reaches on a large matmul, not a datasheet figure).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHAPES = {
    # name: (lm hidden, layers, heads, kv heads, ffn, vocab, vision hidden, v layers, v heads, v ffn, image, patch)
    "tiny": (64, 2, 2, 2, 128, 1024, 32, 1, 2, 64, 32, 16),
    "small": (256, 4, 4, 4, 768, 8192, 128, 2, 4, 256, 64, 16),
    # LLaVA-OneVision-0.5B-like LM (Qwen2-0.5B dims) behind CLIP ViT-L/14-336: 0.94B parameters
    "0.5b": (896, 24, 14, 2, 4864, 151936, 1024, 24, 16, 4096, 336, 14),
    # TinyLlama-1.1B dims behind CLIP ViT-L/14-336: 1.41B parameters
    "1b": (2048, 22, 32, 4, 5632, 32000, 1024, 24, 16, 4096, 336, 14),
}


def build(shape: str, attn: str):
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    h, L, nh, kv, ffn, vocab, vh, vL, vnh, vffn, img, patch = SHAPES[shape]
    text = LlamaConfig(vocab_size=vocab, hidden_size=h, intermediate_size=ffn, num_hidden_layers=L,
                       num_attention_heads=nh, num_key_value_heads=kv, max_position_embeddings=8192,
                       tie_word_embeddings=False, pad_token_id=0)
    vision = CLIPVisionConfig(hidden_size=vh, intermediate_size=vffn, num_hidden_layers=vL,
                              num_attention_heads=vnh, image_size=img, patch_size=patch)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=vocab - 1,
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    config._attn_implementation = attn
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    model.config.use_cache = False
    return model, (img // patch) ** 2


def make_rows(n: int, image_tokens: int, max_length: int, image_size: int, vocab: int, seed: int):
    """Half image rows, half text rows; text lengths log-uniform, so padding wastes a lot."""
    import torch

    from instructkit.train.chat import IGNORE, Encoded

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        image = i % 2 == 0
        room = max_length - (image_tokens if image else 0)
        n_text = int(math.exp(rng.uniform(math.log(16), math.log(max(17, room)))))
        prompt = max(2, n_text // 4)
        ids = [rng.randrange(1, vocab - 1) for _ in range(n_text)]
        labels = [IGNORE] * prompt + ids[prompt:]
        extras = {}
        if image:
            ids = [vocab - 1] * image_tokens + ids
            labels = [IGNORE] * image_tokens + labels
            extras = {"pixel_values": torch.randn(1, 3, image_size, image_size)}
        rows.append(Encoded(i, "bench", "image" if image else "text", ids, labels, extras))
    return rows


def flops_per_row(model, row, image_tokens: int) -> float:
    tc, vc = model.config.text_config, model.config.vision_config
    lm = model.model.language_model
    n_lm = sum(p.numel() for p in lm.parameters()) - lm.embed_tokens.weight.numel() \
        + model.lm_head.weight.numel()
    n_vis = sum(p.numel() for p in model.model.vision_tower.parameters()) + \
        sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    n = row.length
    f = 6 * n_lm * n + 12 * tc.num_hidden_layers * tc.hidden_size * n * n
    if row.modality == "image":
        patches = image_tokens + 1
        f += 6 * n_vis * patches + 12 * vc.num_hidden_layers * vc.hidden_size * patches * patches
    return float(f)


def make_runner(model, rows, *, packing: bool, batch_size: int, max_length: int, bf16: bool, device):
    """A function that trains one pass over ``rows`` and returns (seconds, computed tokens)."""
    import torch

    from instructkit.train.batches import collate, plan_batches, token_losses

    lengths = {r.index: r.length for r in rows}
    by_index = {r.index: r for r in rows}
    plan = plan_batches([r.index for r in rows], lengths, batch_size=batch_size, packing=packing,
                        max_length=max_length)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    dtype = torch.bfloat16 if bf16 else torch.float32

    def step(b):
        batch = collate([[by_index[i] for i in seq] for seq in b], packing=packing, pad_id=0)
        inputs = {k: v.to(device) for k, v in batch["inputs"].items()}
        with torch.autocast(device.type, dtype=dtype, enabled=bf16):
            logits = model(**inputs, use_cache=False).logits
        losses, _ = token_losses(logits, batch["targets"].to(device))
        (losses.sum() / max(1, losses.numel())).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return int(batch["inputs"]["input_ids"].numel())

    def one_pass():
        sync(device)
        t0 = time.perf_counter()
        computed = sum(step(b) for b in plan)
        sync(device)
        return time.perf_counter() - t0, computed

    step(plan[0])                                  # warm-up (allocator, kernels)
    return one_pass, len(plan)


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def cpu_peak_flops() -> float:
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = float("inf")
    for _ in range(12):           # best of 12: other load on the box only lowers the figure
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * 2048 ** 3 / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--peak-tflops", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, image_tokens = build(args.shape, args.attn)
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    vc = model.config.vision_config
    rows = make_rows(args.rows, image_tokens, args.max_length, vc.image_size, model.config.text_config.vocab_size,
                     args.seed)
    if args.peak_tflops:
        peak, peak_note = args.peak_tflops * 1e12, "given"
    elif device.type == "cuda":
        peak, peak_note = 989e12, "H100/H200 bf16 dense datasheet"
    else:
        peak, peak_note = cpu_peak_flops(), "fp32 matmul measured on this CPU"
    useful = sum(flops_per_row(model, r, image_tokens) for r in rows)
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'CPU'}), "
          f"threads {torch.get_num_threads()}, shape {args.shape}: {n_params / 1e6:.1f}M parameters, "
          f"{image_tokens} tokens/image, {args.rows} rows (half with an image), "
          f"{sum(r.length for r in rows)} real tokens, lengths {min(r.length for r in rows)}-"
          f"{max(r.length for r in rows)}, batch {args.batch_size}, max-length {args.max_length}, "
          f"{'bf16' if args.bf16 else 'fp32'}, attn {args.attn}")
    runners = {name: make_runner(model, rows, packing=name == "packed", batch_size=args.batch_size,
                                 max_length=args.max_length, bf16=args.bf16, device=device)
               for name in ("padded", "packed")}
    best: dict[str, tuple[float, int]] = {}
    for _ in range(args.repeats):             # interleaved, best of N: other load on the box only slows
        for name, (one_pass, _) in runners.items():
            dt, computed = one_pass()
            if name not in best or dt < best[name][0]:
                best[name] = (dt, computed)
    real = sum(r.length for r in rows)
    results = {}
    for name, (dt, computed) in best.items():
        results[name] = {"tokens_per_s": real / dt, "mfu": useful / dt / peak}
        print(f"{name:7s} {real / dt:10.1f} tokens/s  {runners[name][1]:3d} micro-batches  "
              f"computed {computed} tokens for {real} real  MFU {100 * useful / dt / peak:.1f}%  "
              f"(best of {args.repeats} passes)")
    if device.type == "cpu" and not args.peak_tflops:
        again = cpu_peak_flops()
        if again > peak:
            print(f"(peak re-measured after the runs: {again / 1e12:.3f} TFLOP/s; MFU with it: padded "
                  f"{100 * results['padded']['mfu'] * peak / again:.1f}%, packed "
                  f"{100 * results['packed']['mfu'] * peak / again:.1f}%)")
    ratio = results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
    print(f"packed / padded tokens/s: {ratio:.2f}x   (peak {peak / 1e12:.2f} TFLOP/s: {peak_note})")


if __name__ == "__main__":
    main()
