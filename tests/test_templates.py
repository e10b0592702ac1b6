"""The template engine: families, search-path override, strict variables, sandbox, lint."""

from __future__ import annotations

import pytest

from instructkit.errors import TemplateError
from instructkit.templates import TemplateEngine, parse_family


def _write(d, name, text):
    p = d / f"{name}.jinja"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_family_entries_ids_and_lines(tmp_path):
    _write(tmp_path, "g/fam", "{# vars: question #}\n{# about: demo #}\n<image> {{ question }}\n{# --- #}\n"
                              "Q: {{ question }}\nA:\n{# --- #}\n\n<image> {{ question }} Short answer:\n")
    fam = TemplateEngine([tmp_path], include_shipped=False).family("g/fam")
    assert [e.id for e in fam.entries] == ["g/fam#1", "g/fam#2", "g/fam#3"]
    assert [e.text for e in fam.entries] == ["<image> {{ question }}", "Q: {{ question }}\nA:",
                                             "<image> {{ question }} Short answer:"]
    assert [e.line for e in fam.entries] == [3, 5, 9]
    assert fam.header == {"vars": "question", "about": "demo"}
    assert fam.entry(2).render(question="Why?") == "Q: Why?\nA:"


def test_jinja_entries_render_exactly_and_fast_path_matches_jinja(tmp_path):
    _write(tmp_path, "plain", "Hello {{ name }}, {{ n }}!")
    _write(tmp_path, "loop", "{% for o in options %}{{ loop.index }}. {{ o }}\n{% endfor %}Pick one.")
    eng = TemplateEngine([tmp_path], include_shipped=False)
    plain = eng.entry("plain")
    assert plain._fast is not None
    assert plain.render(name="Ann", n=3) == plain._compiled.render(name="Ann", n=3) == "Hello Ann, 3!"
    assert eng.render("loop", options=["cat", "dog"]) == "1. cat\n2. dog\nPick one."


def test_missing_variable_is_an_error_not_an_empty_string(tmp_path):
    _write(tmp_path, "plain", "Hello {{ name }}")
    _write(tmp_path, "loop", "{% if x %}{{ y }}{% endif %}")
    eng = TemplateEngine([tmp_path], include_shipped=False)
    with pytest.raises(TemplateError, match="name"):
        eng.render("plain")
    with pytest.raises(TemplateError, match="y"):
        eng.render("loop", x=True)
    with pytest.raises(TemplateError, match="unknown variable"):
        eng.entry("plain").check({"question"})


def test_sandbox_blocks_attribute_escape(tmp_path):
    _write(tmp_path, "evil", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError):
        TemplateEngine([tmp_path], include_shipped=False).render("evil")


def test_user_folder_overrides_shipped(tmp_path):
    shipped = TemplateEngine()
    names = shipped.names()
    if not names:  # shipped templates arrive with the commands; make one so the override is testable
        pytest.fail("no shipped templates found")
    name = names[0]
    _write(tmp_path, name, "overridden {{ x }}")
    eng = TemplateEngine([tmp_path])
    fam = eng.family(name)
    assert fam.origin == "user" and fam.entries[0].text == "overridden {{ x }}"
    assert shipped.family(name).origin == "shipped"


def test_syntax_error_names_file_and_line(tmp_path):
    _write(tmp_path, "bad", "line one\n{# --- #}\nok\nstill ok\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"bad\.jinja:5"):
        _ = TemplateEngine([tmp_path], include_shipped=False).entry("bad#2").variables


def test_lint_finds_duplicates_unused_missing_and_glued():
    fam = parse_family("t", "t.jinja", "{# vars: question #}\n<image> {{ question }}\n{# --- #}\n"
                       "<image>  {{ question }}\n{# --- #}\n<image> Q: {{ question }} A:\n{# --- #}\n"
                       "<image> Q: {{ question }} A: <image> Question: {{ question }}\n{# --- #}\n"
                       "Describe {{ image_name }}\n")
    problems = "\n".join(__import__("instructkit.templates", fromlist=["lint_family"]).lint_family(fam))
    assert "t#2 (line 4): duplicate of t#1" in problems
    assert "uses 'image_name'" in problems
    assert "t#5 (line 10): does not use declared variable 'question'" in problems
    assert "t#4 (line 8): question appears 2x" in problems
    assert "t#4 (line 8): <image> appears 2x" in problems


def test_clean_family_lints_clean():
    fam = parse_family("t", "t.jinja", "{# vars: question #}\n<image> {{ question }}\n{# --- #}\n"
                       "<image> Q: {{ question }} A:\n{# --- #}\n<image> Question: {{ question }}\n")
    from instructkit.templates import lint_family

    assert lint_family(fam) == []


def test_every_shipped_template_parses_and_lints_clean():
    eng = TemplateEngine()
    problems = {n: eng.lint(n) for n in eng.names()}
    assert {n: p for n, p in problems.items() if p} == {}


def test_cli_lint_reports_a_broken_template_and_goes_on(tmp_path):
    # One template that does not parse is a lint finding naming its file and line; the others are still
    # linted, and the command exits 1.
    from typer.testing import CliRunner

    from instructkit.cli import app

    _write(tmp_path, "a/broken", "{{ foo \n")
    _write(tmp_path, "a/dup", "{# vars: q #}\n{{ q }}\n{# --- #}\n{{  q }}\n")
    res = CliRunner().invoke(app, ["templates", "lint", "-t", str(tmp_path)])
    assert res.exit_code == 1
    assert "a/broken: " in res.stdout and "broken.jinja:1" in res.stdout
    assert "a/dup: a/dup#2 (line 4): duplicate of a/dup#1" in res.stdout
