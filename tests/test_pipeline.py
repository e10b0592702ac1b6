"""`instructkit run` framework: recipe checks, dependency order, skipping, resuming, the manifest.

These recipes use the light step kinds (convert, mix) on the bundled language-only sample, so they run in
well under a second each; the end-to-end build with adapt and training is in test_recipes.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from instructkit.cli import app
from instructkit.errors import UsageError
from instructkit.pipeline import StepFailed, run_recipe
from instructkit.resources import seeds_dir

TEXT = seeds_dir() / "text" / "sharegpt.json"


def recipe(tmp_path: Path, body: str, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


BASIC = """
name: basic
vars:
  seed: 0
steps:
  - name: mix
    kind: mix
    inputs:
      - a.jsonl
      - {path: b.jsonl, name: second}
    output: mixed.jsonl
    options:
      strategy: shuffle
      seed: ${seed}
  - name: a
    kind: convert
    inputs:
      - ${seeds}/text/sharegpt.json
    output: a.jsonl
  - name: b
    kind: convert
    inputs:
      - ${recipe_dir}/extra.json
    output: b.jsonl
    options:
      on_error: fail
"""


def extra(tmp_path: Path, n: int = 3) -> Path:
    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(n)]
    path = tmp_path / "extra.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def statuses(result: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in result["steps"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_runs_in_dependency_order_and_writes_a_manifest(tmp_path):
    extra(tmp_path)
    logs: list[str] = []
    res = run_recipe(recipe(tmp_path, BASIC), workdir=tmp_path / "w", log=logs.append)
    assert [s["name"] for s in res["steps"]] == ["a", "b", "mix"]      # mix is listed first but needs both
    assert set(statuses(res).values()) == {"ran"}
    out = tmp_path / "w" / "mixed.jsonl"
    assert len(out.read_text().splitlines()) == 18 + 3
    man = json.loads((tmp_path / "w" / "instructkit.lock.json").read_text())
    assert man["inputs"] == {"${seeds}/text/sharegpt.json": sha256(TEXT),
                             "${recipe_dir}/extra.json": sha256(tmp_path / "extra.json")}
    steps = {s["name"]: s for s in man["steps"]}
    assert steps["mix"]["output_sha256"] == sha256(out)
    assert steps["mix"]["inputs"] == {"a.jsonl": sha256(tmp_path / "w" / "a.jsonl"),
                                      "b.jsonl": sha256(tmp_path / "w" / "b.jsonl")}
    assert steps["mix"]["input_options"] == [{}, {"name": "second"}]
    assert steps["a"]["funnel"]["read"] == 18 and steps["a"]["funnel"]["written"] == 18
    assert man["seeds"] == {"mix": {"seed": 0}}
    assert man["python"].count(".") == 2 and man["instructkit"]
    assert "torch" in man["libraries"]
    assert str(tmp_path) not in (tmp_path / "w" / "instructkit.lock.json").read_text()
    assert any("[3/3] mix (mix): running" in line for line in logs)


def test_rerun_with_nothing_changed_does_no_work(tmp_path):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC)
    run_recipe(r, workdir=tmp_path / "w")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "w").glob("*.jsonl")}
    manifest = (tmp_path / "w" / "instructkit.lock.json").read_bytes()
    res = run_recipe(r, workdir=tmp_path / "w")
    assert statuses(res) == {"a": "skipped", "b": "skipped", "mix": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "w").glob("*.jsonl")} == before
    assert (tmp_path / "w" / "instructkit.lock.json").read_bytes() == manifest


def test_changing_one_option_reruns_that_step_and_what_it_feeds(tmp_path):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC)
    run_recipe(r, workdir=tmp_path / "w")
    first = (tmp_path / "w" / "mixed.jsonl").read_bytes()
    res = run_recipe(r, workdir=tmp_path / "w", sets=["mix.seed=7"])
    assert statuses(res) == {"a": "skipped", "b": "skipped", "mix": "ran"}
    assert (tmp_path / "w" / "mixed.jsonl").read_bytes() != first
    # Upstream change: b's input file changes, so b and mix rerun, a does not.
    extra(tmp_path, n=4)
    res = run_recipe(r, workdir=tmp_path / "w", sets=["mix.seed=7"])
    assert statuses(res) == {"a": "skipped", "b": "ran", "mix": "ran"}
    assert len((tmp_path / "w" / "mixed.jsonl").read_text().splitlines()) == 18 + 4


def test_option_spellings_dash_and_underscore_are_one_option(tmp_path):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC)
    run_recipe(r, workdir=tmp_path / "w")
    r.write_text(BASIC.replace("on_error: fail", "on-error: fail"), encoding="utf-8")
    assert set(statuses(run_recipe(r, workdir=tmp_path / "w")).values()) == {"skipped"}


def test_two_builds_give_identical_manifests_and_outputs(tmp_path):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC)
    run_recipe(r, workdir=tmp_path / "one")
    run_recipe(r, workdir=tmp_path / "two")
    for name in ("instructkit.lock.json", "a.jsonl", "b.jsonl", "mixed.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name


def test_a_failing_step_stops_the_run_and_keeps_finished_steps(tmp_path):
    (tmp_path / "extra.json").write_text('[{"messages": "not a list"}]', encoding="utf-8")
    r = recipe(tmp_path, BASIC)
    with pytest.raises(StepFailed) as err:
        run_recipe(r, workdir=tmp_path / "w")
    msg = str(err.value)
    assert "step 'b' (convert) failed" in msg and "extra.json" in msg and "finished steps kept: a" in msg
    assert (tmp_path / "w" / "a.jsonl").is_file() and not (tmp_path / "w" / "mixed.jsonl").exists()
    assert not (tmp_path / "w" / "instructkit.lock.json").exists()
    extra(tmp_path)                       # fix the input: the rerun resumes at b
    res = run_recipe(r, workdir=tmp_path / "w")
    assert statuses(res) == {"a": "skipped", "b": "ran", "mix": "ran"}


def test_a_deleted_or_edited_output_is_rebuilt(tmp_path):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC)
    run_recipe(r, workdir=tmp_path / "w")
    (tmp_path / "w" / "mixed.jsonl").unlink()
    assert statuses(run_recipe(r, workdir=tmp_path / "w"))["mix"] == "ran"
    with open(tmp_path / "w" / "a.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n")
    res = run_recipe(r, workdir=tmp_path / "w")
    assert statuses(res)["a"] == "ran"


def test_force_until_and_plan(tmp_path):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC)
    res = run_recipe(r, workdir=tmp_path / "w", until="b")
    assert statuses(res) == {"b": "ran"}
    res = run_recipe(r, workdir=tmp_path / "w", plan_only=True)
    assert statuses(res) == {"a": "would-run", "b": "would-skip", "mix": "would-run"}
    assert not (tmp_path / "w" / "a.jsonl").exists() and res["manifest"] is None
    run_recipe(r, workdir=tmp_path / "w")
    res = run_recipe(r, workdir=tmp_path / "w", force=["a"])
    assert statuses(res) == {"a": "ran", "b": "skipped", "mix": "skipped"}   # same output: mix stays
    assert set(statuses(run_recipe(r, workdir=tmp_path / "w", force=["all"])).values()) == {"ran"}


@pytest.mark.parametrize(("edit", "expected"), [
    (("on_error: fail", "on_eror: fail"), "unknown option 'on_eror'; did you mean 'on-error'?"),
    (("kind: mix", "kind: mixx"), "unknown step kind 'mixx'; did you mean 'mix'?"),
    (("- a.jsonl", "- a.jsonll"), "input 'a.jsonll' is not the output of any step and no such file exists"),
    (("- a.jsonl", "- a.jsonll"), "did you mean the output 'a.jsonl'?"),
    (("output: b.jsonl", "output: a.jsonl"), "steps 'a' and 'b' both write 'a.jsonl'"),
    (("seed: ${seed}", "seed: ${sed}"), "unknown variable 'sed'; did you mean 'seed'?"),
    (("    options:\n      strategy", "    option:\n      strategy"), "unknown key 'option'; did you mean 'options'?"),
    (("output: mixed.jsonl", "output: ../mixed.jsonl"), "must be a relative path inside the work folder"),
    (("      - ${seeds}/text/sharegpt.json", "      [${seeds}/text/sharegpt.json]"),
     "r.yaml:18: not valid YAML: expected ',' or ']', but got '{' (inside [ ] or { }, quote a value"),
])
def test_bad_recipes_are_errors_naming_the_problem(tmp_path, edit, expected):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC.replace(*edit))
    with pytest.raises(UsageError) as err:
        run_recipe(r, workdir=tmp_path / "w")
    assert expected in str(err.value)
    assert not (tmp_path / "w").exists()          # recipe errors are found before any step runs


CYCLE = """
steps:
  - name: a
    kind: convert
    inputs: [c.jsonl]
    output: a.jsonl
  - name: b
    kind: convert
    inputs: [a.jsonl]
    output: b.jsonl
  - name: c
    kind: mix
    inputs: [b.jsonl]
    output: c.jsonl
  - name: d
    kind: convert
    inputs: [d.jsonl]
    output: d.jsonl
"""


def test_a_cycle_is_an_error_naming_it(tmp_path):
    with pytest.raises(UsageError, match=r"cycle: a -> c -> b -> a"):
        run_recipe(recipe(tmp_path, CYCLE.split("  - name: d")[0]), workdir=tmp_path / "w")
    with pytest.raises(UsageError, match=r"cycle: d -> d \(it reads its own output 'd.jsonl'\)"):
        run_recipe(recipe(tmp_path, CYCLE.replace("inputs: [c.jsonl]", f"inputs: [{TEXT}]")),
                   workdir=tmp_path / "w")


def test_variables_env_and_set(tmp_path, monkeypatch):
    extra(tmp_path)
    body = BASIC.replace("  seed: 0", "  seed: ${env:PIPE_TEST_SEED:-3}")
    r = recipe(tmp_path, body)
    monkeypatch.delenv("PIPE_TEST_SEED", raising=False)
    run_recipe(r, workdir=tmp_path / "w")
    man = json.loads((tmp_path / "w" / "instructkit.lock.json").read_text())
    assert man["seeds"]["mix"] == {"seed": 3} and man["vars"] == {"seed": 3}
    run_recipe(r, workdir=tmp_path / "w", sets=["seed=5"])
    man = json.loads((tmp_path / "w" / "instructkit.lock.json").read_text())
    assert man["seeds"]["mix"] == {"seed": 5}
    with pytest.raises(UsageError, match="unknown recipe variable 'sed'; did you mean 'seed'"):
        run_recipe(r, workdir=tmp_path / "w", sets=["sed=5"])
    with pytest.raises(UsageError, match="unknown step 'mixx'; did you mean 'mix'"):
        run_recipe(r, workdir=tmp_path / "w", sets=["mixx.seed=5"])
    no_default = recipe(tmp_path, BASIC.replace("  seed: 0", "  seed: ${env:PIPE_TEST_SEED}"), "n.yaml")
    with pytest.raises(UsageError, match="environment variable PIPE_TEST_SEED is not set"):
        run_recipe(no_default, workdir=tmp_path / "w")


def test_cli_runs_a_recipe_and_maps_errors_to_exit_1(tmp_path):
    extra(tmp_path)
    r = recipe(tmp_path, BASIC)
    runner = CliRunner()
    ok = runner.invoke(app, ["run", str(r), "--workdir", str(tmp_path / "w"), "--set", "mix.seed=2"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "w" / "instructkit.lock.json").is_file()
    planned = runner.invoke(app, ["run", str(r), "-w", str(tmp_path / "w"), "--set", "mix.seed=2", "--plan"])
    assert planned.exit_code == 0 and "mix (mix): unchanged, skipped" in planned.output
    bad = runner.invoke(app, ["run", str(r), "-w", str(tmp_path / "w"), "--set", "mix.sead=2"])
    assert bad.exit_code == 1
    assert "unknown option 'sead'; did you mean 'seed'?" in bad.output
    missing = runner.invoke(app, ["run", "quickstrt"])
    assert missing.exit_code == 1 and "did you mean the shipped recipe 'quickstart'" in missing.output


# Command options a step does not take as options: its output is `output:`, file inputs are `inputs:`,
# mix's own --recipe is what a pipeline step replaces, and --dry-run is `instructkit run --plan`.
NOT_OPTIONS = {
    "adapt": {"output", "annotations", "dry-run"},
    "self-instruct": {"output", "captions", "instances", "input", "seed-tasks", "dry-run"},
    "mix": {"output", "recipe"},
    "filter": {"output"},
    "convert": {"output"},
    "train": {"output", "dry-run"},
}


def test_step_options_are_exactly_the_commands_options():
    import click
    import typer.main

    from instructkit.pipeline.kinds import KINDS
    from instructkit.pipeline.options import canonical

    root = typer.main.get_command(app)
    ctx = click.Context(root)
    for kind, skip in NOT_OPTIONS.items():
        cmd = root.get_command(ctx, kind)
        cli = {canonical(o) for p in cmd.params for o in getattr(p, "opts", []) if o.startswith("--")}
        recipe_opts = set(KINDS[kind].options())
        assert cli - skip == recipe_opts, (kind, sorted(cli - skip - recipe_opts), sorted(recipe_opts - cli))


def test_inputs_given_as_options_and_dry_run_are_refused_with_advice(tmp_path):
    body = """
steps:
  - name: vqa
    kind: adapt
    inputs: ["${seeds}/vqa/questions.json"]
    output: vqa.jsonl
    options:
      annotations: ${seeds}/vqa/annotations.json
"""
    with pytest.raises(UsageError, match="'annotations' is an input of the adapt step: give it under 'inputs:'"):
        run_recipe(recipe(tmp_path, body), workdir=tmp_path / "w")
    body = body.replace("annotations: ${seeds}/vqa/annotations.json", "dry-run: true")
    with pytest.raises(UsageError, match="use `instructkit run --plan`"):
        run_recipe(recipe(tmp_path, body), workdir=tmp_path / "w")


def test_side_files_land_in_the_workdir_and_option_files_are_tracked(tmp_path):
    (tmp_path / "short.jinja").write_text("{{ question }} Reply in one word.\n", encoding="utf-8")
    body = """
steps:
  - name: vqa
    kind: adapt
    inputs:
      input: ${seeds}/vqa/questions.json
      annotations: ${seeds}/vqa/annotations.json
    output: data/vqa.jsonl
    options:
      templates: short.jinja            # a file beside the recipe: its content is an input
      image-root: ${seeds}/images
      rejects: data/vqa.rejects.jsonl   # a side file: in the work folder
      on-error: skip
"""
    r = recipe(tmp_path, body)
    run_recipe(r, workdir=tmp_path / "w")
    rows = [json.loads(x) for x in (tmp_path / "w" / "data" / "vqa.jsonl").read_text().splitlines()]
    assert len(rows) == 29 and rows[0]["messages"][0]["content"].endswith("Reply in one word.")
    assert (tmp_path / "w" / "data" / "vqa.rejects.jsonl").is_file()
    man = json.loads((tmp_path / "w" / "instructkit.lock.json").read_text())
    assert "${recipe_dir}/short.jinja" in man["inputs"]
    assert man["steps"][0]["options"]["rejects"] == "${workdir}/data/vqa.rejects.jsonl"
    assert statuses(run_recipe(r, workdir=tmp_path / "w")) == {"vqa": "skipped"}
    (tmp_path / "short.jinja").write_text("{{ question }} One word, please.\n", encoding="utf-8")
    assert statuses(run_recipe(r, workdir=tmp_path / "w")) == {"vqa": "ran"}
    rows = [json.loads(x) for x in (tmp_path / "w" / "data" / "vqa.jsonl").read_text().splitlines()]
    assert rows[0]["messages"][0]["content"].endswith("One word, please.")


def test_one_run_per_workdir_at_a_time(tmp_path):
    import fcntl

    extra(tmp_path)
    state = tmp_path / "w" / ".instructkit"
    state.mkdir(parents=True)
    with open(state / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(UsageError, match="another `instructkit run` is using"):
            run_recipe(recipe(tmp_path, BASIC), workdir=tmp_path / "w")
    assert set(statuses(run_recipe(recipe(tmp_path, BASIC), workdir=tmp_path / "w")).values()) == {"ran"}


def test_outputs_can_be_named_with_dot_slash_or_workdir(tmp_path):
    extra(tmp_path)
    body = BASIC.replace("      - a.jsonl\n", "      - ./a.jsonl\n").replace(
        "      - {path: b.jsonl, name: second}", "      - {path: \"${workdir}/b.jsonl\", name: second}")
    res = run_recipe(recipe(tmp_path, body), workdir=tmp_path / "w")
    assert [s["name"] for s in res["steps"]] == ["a", "b", "mix"]
    man = json.loads((tmp_path / "w" / "instructkit.lock.json").read_text())
    assert set(man["steps"][2]["inputs"]) == {"a.jsonl", "b.jsonl"}


def test_a_train_step_without_a_model_fails_before_any_step_runs(tmp_path):
    extra(tmp_path)
    body = BASIC + """
  - name: train
    kind: train
    inputs: [mixed.jsonl]
    output: model
    options:
      max-steps: 2
"""
    with pytest.raises(UsageError, match="step 'train': option 'model' is required for a train step"):
        run_recipe(recipe(tmp_path, body), workdir=tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_a_filter_step_takes_the_filter_commands_options(tmp_path):
    body = """
steps:
  - name: text
    kind: convert
    inputs:
      - ${seeds}/text/sharegpt.json
    output: text.jsonl
  - name: clean
    kind: filter
    inputs: [text.jsonl]
    output: clean.jsonl
    options:
      min-response-words: 40
      no-dedup: true
      rouge-threshold: 0
      refusal-pattern: "as an ai, i"
"""
    run_recipe(recipe(tmp_path, body), workdir=tmp_path / "w")
    kept = (tmp_path / "w" / "clean.jsonl").read_text().splitlines()
    rejected = (tmp_path / "w" / "clean.rejects.jsonl").read_text().splitlines()
    assert 0 < len(kept) < 18 and len(kept) + len(rejected) == 18       # nothing lost
    man = json.loads((tmp_path / "w" / "instructkit.lock.json").read_text())
    clean = man["steps"][1]
    assert clean["options"] == {"min-response-words": 40, "no-dedup": True, "rouge-threshold": 0,
                                "refusal-pattern": "as an ai, i"}
    assert clean["output_sha256"] == sha256(tmp_path / "w" / "clean.jsonl")
