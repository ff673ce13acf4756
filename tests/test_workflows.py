"""The GitHub Actions workflows validate against the GitHub workflow schema (offline: check-jsonschema ships it)
and build, check and publish the book as the README says."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def _check_jsonschema(*files: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", *map(str, files)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_workflows_validate_against_the_github_schema():
    assert WORKFLOWS, "no workflow in .github/workflows"
    result = _check_jsonschema(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path):
    broken = yaml.safe_load(WORKFLOWS[0].read_text())
    broken["jobs"]["build"]["runs-on"] = {"not": "a runner"}  # wrong type
    del broken["jobs"]["test"]["steps"]
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    result = _check_jsonschema(path)
    assert result.returncode != 0 and "Schema validation errors" in result.stdout, result.stdout + result.stderr


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


@pytest.fixture(scope="module")
def book_workflow() -> dict:
    return _load(ROOT / ".github" / "workflows" / "book.yml")


def _uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_book_workflow_builds_in_quick_mode_and_deploys_to_pages(book_workflow):
    wf = book_workflow
    assert wf["env"]["SDKIT_MODE"] == "quick"
    build, test, deploy = wf["jobs"]["build"], wf["jobs"]["test"], wf["jobs"]["deploy"]
    assert "dataset-fashion-mnist" in _runs(build) and "dataset-fashion-mnist" in _runs(test)
    assert "chromium chromium-driver" in _runs(build)
    assert "jupyter-book build . -W" in _runs(build)
    assert "pytest browser_tests" in _runs(build)
    assert {"actions/configure-pages", "actions/upload-pages-artifact", "actions/upload-artifact"} <= set(_uses(build))
    (pages,) = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact")]
    assert pages["with"]["path"] == "_build/html"
    (shots,) = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert shots["with"]["path"].rstrip("/") == "_build/screenshots" and shots["if"] == "always()"
    assert "ruff check ." in _runs(test) and "\npytest" in "\n" + _runs(test)
    assert _uses(deploy) == ["actions/deploy-pages"]
    assert set(deploy["needs"]) == {"build", "test"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert "main" in wf["on"]["push"]["branches"]
