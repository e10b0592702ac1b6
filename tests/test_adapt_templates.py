"""Exact renders of every adapt template (the prompts are part of the product)."""

from __future__ import annotations

import pytest

from instructkit.templates import TemplateEngine

# The 10 InstructBLIP templates as FIELD-NOTES lists them; the shipped file must be these, verbatim, with
# <Image> -> <image> and {Question} -> the question.
INSTRUCTBLIP = [
    "<Image> {Question}",
    "<Image> Question: {Question}",
    "<Image> {Question} A short answer to the question is",
    "<Image> Q: {Question} A:",
    "<Image> Question: {Question} Short answer:",
    "<Image> Given the image, answer the following question with no more than three words. {Question}",
    "<Image> Based on the image, respond to this question with a short answer: {Question}. Answer:",
    "<Image> Use the provided image to answer the question: {Question} Provide your answer as short as possible:",
    '<Image> What is the answer to the following question? "{Question}"',
    '<Image> The question "{Question}" can be answered using the image. A short answer is',
]


@pytest.fixture(scope="module")
def eng():
    return TemplateEngine()


def test_vqa_is_the_ten_instructblip_templates_verbatim(eng):
    fam = eng.family("adapt/vqa")
    assert len(fam.entries) == 10
    for k, (entry, original) in enumerate(zip(fam.entries, INSTRUCTBLIP), 1):
        assert entry.id == f"adapt/vqa#{k}"
        q = "What is on the table?"
        assert entry.render(question=q) == original.replace("<Image>", "<image>").replace("{Question}", q)
    assert eng.lint("adapt/vqa") == []


def test_vqa_short_and_mc(eng):
    assert eng.render("adapt/vqa-short", question="What color?") == (
        "<image>\nWhat color?\nAnswer the question using a single word or phrase.")
    assert eng.render("adapt/vqa-mc", question="Which fruit?", options=[("A", "apple"), ("B", "pear")]) == (
        "<image>\nWhich fruit?\nA. apple\nB. pear\nAnswer with the option's letter from the given choices directly.")


def test_caption_family(eng):
    fam = eng.family("adapt/caption")
    assert len(fam.entries) >= 10
    texts = [e.render() for e in fam.entries]
    assert texts[0] == "<image>\nDescribe the image concisely."
    assert all(t.startswith("<image>\n") and t.count("<image>") == 1 for t in texts)
    assert len(set(texts)) == len(texts)
    assert eng.lint("adapt/caption") == []


def test_ocr_family(eng):
    assert eng.render("adapt/ocr#1", question="What brand?", ocr_tokens=["nike", "run"]) == (
        "<image>\nReference OCR tokens: nike, run\nWhat brand?\nAnswer the question using a single word or phrase.")
    assert eng.render("adapt/ocr#2", question="What brand?", ocr_tokens=[]) == (
        "<image>\nThe image contains this text (OCR): (no text detected)\nQuestion: What brand?\nAnswer briefly.")


def test_rewrite_prompts(eng):
    system = eng.render("adapt/rewrite_system")
    assert system.startswith("You rewrite visual question answering pairs")
    assert system.rstrip().endswith('{"instruction": "...", "response": "..."}')
    assert eng.render("adapt/rewrite_user", question="How many?", answer="2", options=[]) == (
        "Question: How many?\nShort answer: 2")
    assert eng.render("adapt/rewrite_user", question="Which?", answer="B", options=[("A", "x"), ("B", "y")]) == (
        "Question: Which?\nOptions:\n(A) x\n(B) y\nShort answer: B")
    for name in ("adapt/rewrite_user", "adapt/vqa-mc", "adapt/ocr", "adapt/vqa-short"):
        assert eng.lint(name) == []
