"""Exact renders of each recipe's prompt on the sample image (seeds/coco, image 5: the man with a camera)."""

import json
from collections import Counter

import pytest

from instructkit.resources import seeds_dir
from instructkit.self_instruct.context import render_context
from instructkit.self_instruct.inputs import coco_contexts
from instructkit.self_instruct.recipes import build_messages, detail_prompt, load_demos, parse_plan
from instructkit.templates import TemplateEngine

CAPTIONS = (
    "A black and white photo of a man looking through a camera on a tripod.\n"
    "A man in a dark coat and gloves films with a video camera in a field.\n"
    "A photographer bends over a camera mounted on a tripod on a grassy field.\n"
    "A man operates a camera on a tripod with buildings in the background.\n"
    "Grayscale picture of a man using a camcorder outdoors on a clear day."
)
BOXES = (
    "person: [0.000, 0.125, 0.650, 1.000]\n"
    "camera: [0.492, 0.270, 0.635, 0.371]\n"
    "tripod: [0.447, 0.361, 0.799, 1.000]"
)

CONVERSATION_SYSTEM = (
    'You are a visual AI assistant looking at one photo. What you know about the photo comes as a few sentences, each describing the same photo; treat them as what you see with your own eyes.\n'
    '\n'
    'Write a conversation about the photo between a curious person and you. Ask varied questions and answer each in the voice of an assistant that is looking at the photo: what the objects are, how many there are, what they are doing, where they are and how they sit relative to each other. Only ask questions with a definite answer: either the photo clearly shows the thing asked about, or it clearly shows that it is not there. Skip anything you could only guess.\n'
    '\n'
    'Add one or two harder questions too, about background knowledge of the objects or about what is happening and why; answer those in more depth, with the reasoning that leads to the answer.\n'
    '\n'
    'Never mention sentences, captions, descriptions, annotations, bounding boxes or coordinates: talk about the photo itself.\n'
    '\n'
    'Write every turn as a block, with a line of === after each part:\n'
    'Question:\n'
    '<the question>\n'
    '===\n'
    'Answer:\n'
    '<the answer>\n'
    '===\n'
)

DETAIL_SYSTEM = (
    'You are a visual AI assistant looking at one photo. What you know about it comes as a few sentences, each describing the same photo, followed by the objects in it, one per line as a label and a box [x1, y1, x2, y2] with values from 0 to 1: x grows to the right, y grows downwards, (x1, y1) is the top-left corner and (x2, y2) the bottom-right one. Treat all of it as what you see with your own eyes.\n'
    '\n'
    'Describe the photo in rich detail: the objects and how many of each there are, their colours, shapes and positions relative to each other, the setting, the light and what is going on. Use the positions to describe the layout ("on the left", "in the foreground", "behind the cup"), never as numbers.\n'
    '\n'
    'Never mention sentences, captions, descriptions, annotations, bounding boxes or coordinates: describe the photo as you see it. Write only the description, in a few paragraphs of plain prose.\n'
)

REASONING_SYSTEM = (
    'You are a visual AI assistant looking at one photo. What you know about it comes as a few sentences, each describing the same photo, followed by the objects in it, one per line as a label and a box [x1, y1, x2, y2] with values from 0 to 1: x grows to the right, y grows downwards, (x1, y1) is the top-left corner and (x2, y2) the bottom-right one. Treat all of it as what you see with your own eyes.\n'
    '\n'
    'Ask one question about the photo that takes real reasoning to answer, not just naming what is visible: why something is the way it is, what is likely to happen next, what a person should do, what the scene says about time, place or purpose. Then answer it step by step, grounded in what the photo shows and in common knowledge, so that the answer explains itself.\n'
    '\n'
    'Never mention sentences, captions, descriptions, annotations, bounding boxes or coordinates: talk about the photo itself.\n'
    '\n'
    'Write the question and the answer as blocks:\n'
    'Question:\n'
    '<the question>\n'
    '===\n'
    'Answer:\n'
    '<the answer>\n'
    '===\n'
)

SYSTEMS = {"conversation": CONVERSATION_SYSTEM, "detail": DETAIL_SYSTEM, "reasoning": REASONING_SYSTEM}


@pytest.fixture(scope="module")
def sample():
    seeds = seeds_dir()
    caps = json.loads((seeds / "coco" / "captions.json").read_text())
    inst = json.loads((seeds / "coco" / "instances.json").read_text())
    return {c.image_id: c for c in coco_contexts(caps, inst, Counter())}


def demos(recipe):
    path = seeds_dir() / "self_instruct" / f"{recipe}.jsonl"
    return load_demos([json.loads(line) for line in path.read_text().splitlines()], str(path))


def test_context_matches_llava_layout(sample):
    assert render_context(sample["5"], with_boxes=False) == CAPTIONS
    assert render_context(sample["5"]) == CAPTIONS + "\n\n" + BOXES
    # No boxes: no blank line either.
    assert render_context(sample["6"]).count("\n") == 4


@pytest.mark.parametrize("recipe,context", [("conversation", CAPTIONS), ("detail", CAPTIONS + "\n\n" + BOXES),
                                            ("reasoning", CAPTIONS + "\n\n" + BOXES)])
def test_recipe_prompt_exact(sample, recipe, context):
    ds = demos(recipe)
    msgs = build_messages(recipe, sample["5"], ds, TemplateEngine())
    assert msgs[0] == {"role": "system", "content": SYSTEMS[recipe].rstrip("\n")}
    assert msgs[-1] == {"role": "user", "content": context}
    turns = msgs[1:-1]
    assert [m["role"] for m in turns] == ["user", "assistant"] * len(ds)
    assert [m["content"] for m in turns[0::2]] == [d.context for d in ds]
    assert [m["content"] for m in turns[1::2]] == [d.response for d in ds]


def test_demo_of_the_same_image_is_left_out(sample):
    ds = demos("conversation")
    msgs = build_messages("conversation", sample["3"], ds, TemplateEngine())
    assert len(msgs) == 1 + 2 * (len(ds) - 1) + 1
    assert all("espresso" not in m["content"] for m in msgs[1:-1] if m["role"] == "user")


def test_demo_contexts_are_the_sample_rendered(sample):
    # The shipped demonstrations are true of the shipped sample images.
    for recipe, boxes in (("conversation", False), ("detail", True), ("reasoning", True)):
        for d in demos(recipe):
            image_id = str(int(d.image.split(".")[0]))
            assert d.context == render_context(sample[image_id], boxes)


def test_vision_parts(sample):
    msgs = build_messages("reasoning", sample["5"], demos("reasoning"), TemplateEngine(), vision=True,
                          image_path="imgs/000000000005.jpg", demo_image_dir="seeds/images")
    assert msgs[-1]["content"] == [
        {"type": "image", "path": "imgs/000000000005.jpg"},
        {"type": "text", "text": "Here is the photo, with a few notes about it:\n\n" + CAPTIONS + "\n\n" + BOXES}]
    assert msgs[1]["content"][0] == {"type": "image", "path": "seeds/images/000000000004.jpg"}
    alone = build_messages("detail", sample["5"], demos("detail"), TemplateEngine(), vision=True,
                           with_context=False, image_path="x.jpg")
    assert alone[-1]["content"] == [{"type": "image", "path": "x.jpg"},
                                    {"type": "text", "text": "Here is the photo."}]


def test_detail_prompt_is_seeded():
    eng = TemplateEngine()
    a = [detail_prompt(eng, str(i), 0) for i in range(30)]
    assert a == [detail_prompt(eng, str(i), 0) for i in range(30)]
    assert len({t for _, t in a}) > 3
    assert a[0][0].startswith("self_instruct/detail_prompts#")
    assert eng.lint("self_instruct/detail_prompts") == []


def test_all_shipped_prompts_lint_clean():
    eng = TemplateEngine()
    names = [n for n in eng.names() if n.startswith("self_instruct/")]
    assert len(names) >= 9
    for n in names:
        assert eng.lint(n) == [], n


def test_text_prompts_exact():
    eng = TemplateEngine()
    boot = eng.render("self_instruct/text_bootstrap", instructions=["Name a colour.", "Sort the list."])
    assert boot.endswith("\n\nTask 1: Name a colour.\nTask 2: Sort the list.\nTask 3:")
    assert boot.startswith("Come up with a series of new tasks.")
    inst = eng.render("self_instruct/text_instance", instruction="Name a colour.")
    assert "\n\nTask: Name a colour.\n\nReply in exactly this form:\nInput: <the input, or <noinput>>\n" \
           "Output: <the output>" in inst
    for k in range(1, 5):
        text = eng.render(f"self_instruct/evol_depth#{k}", instruction="Name a colour.")
        assert text.endswith("Original instruction:\nName a colour.\n\nRewritten instruction:")
    assert eng.render("self_instruct/evol_breadth", instruction="X y z.").endswith(
        "Original instruction:\nX y z.\n\nNew instruction:")
    for k in range(1, 6):
        text = eng.render(f"self_instruct/evol_image#{k}", instruction="Why?", context="cap\n\ncat: [0.1]")
        assert text.startswith("A photo shows the following (sentences describing it, then its objects with "
                               "boxes [x1, y1, x2, y2] from 0 to 1):\n\ncap\n\ncat: [0.1]\n\n")
        assert "\n\nOriginal instruction:\nWhy?\n\n" in text
    assert eng.render("self_instruct/answer_user", context="cap", question="Why?") == "cap\n\nQuestion: Why?"
    assert eng.render("self_instruct/answer").startswith("You are a visual AI assistant looking at one photo.")


def test_recipe_plans():
    assert parse_plan("all").counts == {"conversation": 1, "detail": 1, "reasoning": 1}
    assert parse_plan("detail").counts == {"detail": 1}
    assert parse_plan("conversation=2,detail=0").assign("7", 0) == [("conversation", 0), ("conversation", 1)]
    plan = parse_plan("conversation=0.37,detail=0.15,reasoning=0.48")
    picks = Counter(plan.assign(str(i), 1)[0][0] for i in range(2000))
    assert 0.30 < picks["conversation"] / 2000 < 0.44 and 0.10 < picks["detail"] / 2000 < 0.20
    assert plan.assign("5", 1) == plan.assign("5", 1)
    from instructkit.errors import UsageError
    for bad in ("chat", "detail=x", "detail=0", "detail=1,detail=2", "detail=-0.5,reasoning=0.1"):
        with pytest.raises(UsageError):
            parse_plan(bad)
