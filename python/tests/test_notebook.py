"""examples/activations.ipynb runs from top to bottom without an error cell."""

from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "activations.ipynb"


def test_the_example_notebook_runs_without_errors():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # allow_errors=False: the first error cell raises CellExecutionError with its traceback.
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("test accuracy" in o.get("text", "") for o in outputs)
