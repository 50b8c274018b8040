"""The public Python API: `corolla.<stage>(...)` stays a callable even after its submodules are imported."""


def test_stage_names_stay_callable_after_submodule_imports(exported, tmp_path):
    import corolla.demo
    import corolla.evaluate.metrics
    import corolla.export.saved_model
    import corolla.predict
    import corolla.serve.app
    import corolla.train.trainer  # noqa: F401  (these imports set corolla.<name> to the module)

    for name in ("train", "evaluate", "export", "serve", "predict", "demo", "prepare", "load", "fetch_dataset"):
        assert callable(getattr(corolla, name)), name
    image = tmp_path / "red.png"
    image.write_bytes(_png())
    results = corolla.predict([image], model=exported.parent, top_k=1)
    assert results[0]["top"][0]["label"] in ("blue", "green", "red")


def _png() -> bytes:
    import numpy as np

    from tests.conftest import encode

    return encode(np.full((20, 20, 3), (220, 30, 30), np.uint8))
