"""`corolla demo` on the real Fashion-MNIST (all 70,000 images prepared, a quarter epoch trained): the showcase chain keeps working."""

import json

import pytest

from corolla.errors import CorollaError

pytestmark = pytest.mark.slow


def test_demo_chain_on_fashion_mnist(tmp_path, monkeypatch):
    from corolla.data.datasets import fetch_dataset
    from corolla.demo import demo

    monkeypatch.setenv("COROLLA_HOME", str(tmp_path / "home"))
    try:
        fetch_dataset("fashion-mnist", progress=False)
    except CorollaError as error:  # neither the Debian package nor the network: nothing to test on
        pytest.skip(f"Fashion-MNIST unavailable here: {error}")
    # 120 steps (a quarter epoch; the whole epoch took 84 s of this test's 141 s on 2 cores) already learn.
    summary = demo(tmp_path / "demo", train_steps=120)
    assert summary["accuracy"] > 0.70, summary["accuracy"]
    assert set(summary["timings"]) == {"fetch", "prepare", "train", "evaluate", "export"}
    manifest = json.loads((tmp_path / "demo" / "data" / "manifest.json").read_text())
    assert (manifest["splits"]["train"]["count"], manifest["splits"]["eval"]["count"]) == (60000, 10000)
    assert (tmp_path / "demo" / "fashion-mnist" / "export" / "1" / "saved_model.pb").is_file()
    # The whole chain again on the prepared data (train, evaluate, export), with a few steps of training:
    # only the reuse is checked here.
    again = demo(tmp_path / "demo", epochs=1, train_steps=5)
    assert "prepare" not in again["timings"]
    assert set(again["timings"]) == {"fetch", "train", "evaluate", "export"}
