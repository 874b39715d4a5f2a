"""The executed notebooks kept in the repository: outputs kept, progress noise and widget views dropped."""
import json

from aunet.executed import WIDGET_VIEW, clean, publish


def notebook(outputs: list[dict]) -> dict:
    return {"cells": [{"cell_type": "markdown", "source": ["# title"], "metadata": {}},
                      {"cell_type": "code", "source": ["x"], "metadata": {}, "outputs": outputs, "execution_count": 1}],
            "metadata": {"kernelspec": {"name": "aunet"}, "widgets": {"state": {"a": 1}}}, "nbformat": 4,
            "nbformat_minor": 5}


def test_progress_and_widgets_go_text_and_pictures_stay(tmp_path):
    outputs = [
        {"output_type": "stream", "name": "stdout", "text": ["unet: 40 epochs\n"]},
        {"output_type": "stream", "name": "stderr", "text": ["epoch 3:  40%|████      | 10/25\r", "epoch 3: 100%|\n"]},
        {"output_type": "stream", "name": "stderr", "text": ["UserWarning: something a reader should see\n"]},
        {"output_type": "display_data", "metadata": {},
         "data": {WIDGET_VIEW: {"model_id": "x"}, "text/plain": ["HBox"]}},
        {"output_type": "display_data", "metadata": {}, "data": {WIDGET_VIEW: {"model_id": "y"}, "image/png": "iVBO"}},
        {"output_type": "execute_result", "metadata": {}, "execution_count": 1, "data": {"text/plain": ["3"]}},
    ]
    cleaned = clean(notebook(outputs))
    kept = cleaned["cells"][1]["outputs"]
    assert [o["output_type"] for o in kept] == ["stream", "stream", "display_data", "execute_result"]
    assert kept[0]["text"] == ["unet: 40 epochs\n"] and "UserWarning" in "".join(kept[1]["text"])
    assert kept[2]["data"] == {"image/png": "iVBO"}  # the picture a headless run drew, without its widget view
    assert "widgets" not in cleaned["metadata"] and cleaned["metadata"]["kernelspec"] == {"name": "aunet"}
    assert cleaned["cells"][0] == notebook([])["cells"][0]
    source = tmp_path / "executed.ipynb"
    source.write_text(json.dumps(notebook(outputs)))
    assert json.loads(publish(source, tmp_path / "kept" / "nb.ipynb").read_text()) == cleaned
