#!/usr/bin/env python3
"""Check a composite action's metadata (action.yml) beyond what YAML says.

actionlint checks workflows, and the inputs a workflow passes to a local
action, but not the action's own metadata. This checks: the required keys;
a composite `runs` whose every `run` step names its shell; every
`${{ inputs.x }}` used is declared and every declared input is used; every
output comes from a step id that exists; every script the steps run from
$GITHUB_ACTION_PATH exists and is executable. Exit 1 with one line per
problem.
"""

import os
import re
import sys

import yaml


def check(path):
    root = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        text = f.read()
    meta = yaml.safe_load(text)
    problems = []
    for key in ("name", "description", "runs"):
        if key not in meta:
            problems.append(f"missing top-level '{key}'")
    inputs = meta.get("inputs") or {}
    outputs = meta.get("outputs") or {}
    runs = meta.get("runs") or {}
    if runs.get("using") != "composite":
        problems.append(f"runs.using is {runs.get('using')!r}, expected 'composite'")
    steps = runs.get("steps") or []
    ids = {s.get("id") for s in steps if s.get("id")}
    for i, step in enumerate(steps):
        label = step.get("name") or step.get("id") or f"step {i + 1}"
        if "run" in step and "shell" not in step:
            problems.append(f"{label}: a composite run step must name its shell")
        if "run" not in step and "uses" not in step:
            problems.append(f"{label}: neither run nor uses")
        for script in re.findall(r"\$GITHUB_ACTION_PATH/([\w./-]+)", str(step.get("run", ""))):
            target = os.path.join(root, script)
            if not os.path.isfile(target):
                problems.append(f"{label}: runs {script}, which does not exist")
            elif not os.access(target, os.X_OK):
                problems.append(f"{label}: runs {script}, which is not executable")
    used = set(re.findall(r"inputs\.([A-Za-z0-9_-]+)", text))
    for name in sorted(used - set(inputs)):
        problems.append(f"inputs.{name} is used but not declared")
    for name in sorted(set(inputs) - used):
        problems.append(f"input '{name}' is declared but never used")
    for name, spec in inputs.items():
        if not (spec or {}).get("description"):
            problems.append(f"input '{name}' has no description")
    for name, spec in outputs.items():
        value = str((spec or {}).get("value", ""))
        m = re.search(r"steps\.([A-Za-z0-9_-]+)\.outputs\.", value)
        if not m:
            problems.append(f"output '{name}' does not come from a step's outputs")
        elif m.group(1) not in ids:
            problems.append(f"output '{name}' reads step '{m.group(1)}', which has no such id")
    return problems


def main():
    paths = sys.argv[1:] or ["action.yml"]
    failed = False
    for path in paths:
        for p in check(path):
            print(f"{path}: {p}")
            failed = True
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
