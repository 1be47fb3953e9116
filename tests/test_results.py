"""docs/RESULTS.md is written by docs/results.py from the runs kept in docs/runs/, never by hand."""
import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def load_results_module():
    spec = importlib.util.spec_from_file_location("results", DOCS / "results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_results_md_is_what_the_kept_runs_say():
    # fails when RESULTS.md was edited by hand, or a run was kept without regenerating it
    assert load_results_module().render() == (DOCS / "RESULTS.md").read_text(), \
        "docs/RESULTS.md is out of date: run python docs/results.py"


def test_every_kept_run_names_its_command():
    text = load_results_module().render()
    kept = sorted(DOCS.glob("runs/**/metrics.json"))
    assert kept
    for path in kept:
        name = path.parent.relative_to(DOCS / "runs").as_posix()
        # its command, or for the oldest runs, which did not record one, its configuration
        assert (f"**{name}**: `python " in text or f"**{name}**: configuration " in text), name
