"""Response-only labels: the template path (processor / tokenizer assistant masks) against an independent
per-turn reference built by tokenising each turn on its own."""

from __future__ import annotations

import pytest

from instructkit.errors import RowError, UsageError
from instructkit.records import IMAGE_TOKEN, make_record
from instructkit.testing.tiny import (
    ASSISTANT,
    EOS,
    SYSTEM,
    USER,
    build_tiny_llava,
    build_tiny_text_lm,
    write_tiny_images,
)
from instructkit.train.chat import IGNORE, Encoder, builtin_template, choose_template, render_marked


@pytest.fixture(scope="module")
def llava():
    return build_tiny_llava()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    write_tiny_images(root, ["a.png", "b.png", "c.png"])
    return root


def rows():
    return [
        # multi-turn, system turn, two images in two different user turns
        make_record({"images": ["a.png", "b.png"], "source": "coco", "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "<image>\nWhat is in the picture?"},
            {"role": "assistant", "content": "A cat on a mat."},
            {"role": "user", "content": "And here? <image>"},
            {"role": "assistant", "content": "Two dogs."},
            {"role": "user", "content": "Which is bigger?"},
            {"role": "assistant", "content": "The dogs."}]}),
        # one image, one turn
        make_record({"images": ["c.png"], "messages": [
            {"role": "user", "content": "Describe <image> in detail."},
            {"role": "assistant", "content": "Red leaves drift and fall."}]}),
        # text-only, multi-turn
        make_record({"source": "sharegpt", "messages": [
            {"role": "user", "content": "Explain why the sky is blue."},
            {"role": "assistant", "content": "Sunlight scatters off air."},
            {"role": "user", "content": "Short answer?"},
            {"role": "assistant", "content": "Scattering."}]}),
    ]


def reference(record, tokenizer, image_tokens):
    """The tiny template spelled out by hand: <s> then per turn <|role|> content <|end|>; loss on the
    assistant content and its <|end|>; each <image> becomes ``image_tokens`` copies of the image id."""
    tid = tokenizer.convert_tokens_to_ids
    ids, labels = [tokenizer.bos_token_id], [IGNORE]
    for m in record.messages:
        role = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}[m.role]
        body = []
        for k, piece in enumerate(m.content.split(IMAGE_TOKEN)):
            if k:
                body += [tid(IMAGE_TOKEN)] * image_tokens
            body += tokenizer(piece, add_special_tokens=False)["input_ids"] if piece else []
        body.append(tid(EOS))
        ids += [tid(role)] + body
        labels += [IGNORE] + (body if m.role == "assistant" else [IGNORE] * len(body))
    return ids, labels


def test_labels_equal_per_turn_reference_on_image_and_text_rows(llava, images):
    model, processor = llava
    vc = model.config.vision_config
    per_image = (vc.image_size // vc.patch_size) ** 2
    enc = Encoder(processor, is_vlm=True, template=processor.chat_template, image_root=images)
    for i, rec in enumerate(rows()):
        got = enc.encode(rec, i)
        ids, labels = reference(rec, processor.tokenizer, per_image)
        assert got.input_ids == ids
        assert got.labels == labels
        # the model accepts the row: image features and image tokens line up
        import torch
        out = model(input_ids=torch.tensor([got.input_ids]), use_cache=False, **got.extras)
        assert out.logits.shape[1] == len(ids)


def test_text_lm_labels_equal_reference():
    _, tokenizer = build_tiny_text_lm()
    enc = Encoder(tokenizer, is_vlm=False, template=tokenizer.chat_template)
    rec = rows()[2]
    got = enc.encode(rec, 0)
    assert (got.input_ids, got.labels) == reference(rec, tokenizer, 0)
    assert got.targets == got.labels[1:] + [IGNORE]


def test_builtin_template_supervises_exactly_each_answer_and_eos():
    _, tokenizer = build_tiny_text_lm()
    enc = Encoder(tokenizer, is_vlm=False, template=builtin_template())
    rec = rows()[2]
    got = enc.encode(rec, 0)
    spans, cur = [], []
    for t, lab in zip(got.input_ids, got.labels):
        if lab != IGNORE:
            cur.append(t)
        elif cur:
            spans.append(cur)
            cur = []
    spans += [cur] if cur else []
    answers = [m.content + EOS for m in rec.messages if m.role == "assistant"]
    # byte-level BPE glues the space after "ASSISTANT:" to the first answer token; nothing else may differ
    assert [tokenizer.decode(s).lstrip(" ") for s in spans] == answers
    assert "USER: Explain why the sky is blue." in tokenizer.decode(got.input_ids)


def test_render_marks_loss_bearing_spans_and_collapses_images(llava, images):
    _, processor = llava
    enc = Encoder(processor, is_vlm=True, template=processor.chat_template, image_root=images)
    text = render_marked(enc.encode(rows()[0], 0), processor.tokenizer, enc.image_token_id)
    assert text.count("<image×4>") == 2
    assert "«A cat on a mat.<|end|>»" in text and "«Two dogs.<|end|>»" in text
    assert "«" not in text.split("<|assistant|>")[0]


def test_template_choice_falls_back_or_fails_loudly(tmp_path):
    no_markers = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    text, note = choose_template("auto", no_markers, "<image>")
    assert "generation" in text and "built-in" in note
    text, note = choose_template("auto", None, "<image>")
    assert "no chat template" in note
    with pytest.raises(UsageError, match="no \\{% generation %\\} markers"):
        choose_template("model", no_markers, "<image>")
    path = tmp_path / "t.jinja"
    path.write_text(no_markers)
    with pytest.raises(UsageError, match="t.jinja: chat template has no"):
        choose_template(str(path), None, "<image>")


def test_template_that_masks_everything_is_a_row_error():
    _, tokenizer = build_tiny_text_lm()
    planted = tokenizer.chat_template.replace("{% generation %}{{ text }}{{ eos_token }}{% endgeneration %}",
                                              "{{ text }}{{ eos_token }}{% generation %}{% endgeneration %}")
    assert planted != tokenizer.chat_template
    enc = Encoder(tokenizer, is_vlm=False, template=planted)
    with pytest.raises(RowError) as err:
        enc.encode(rows()[2], 7)
    assert err.value.reason == "zero-labels" and err.value.row == 7


def test_missing_image_names_the_path(llava, tmp_path):
    _, processor = llava
    enc = Encoder(processor, is_vlm=True, template=processor.chat_template, image_root=tmp_path)
    with pytest.raises(RowError) as err:
        enc.encode(rows()[1], 3)
    assert err.value.reason == "image-missing" and "c.png" in str(err.value) and "row 3" in str(err.value)
