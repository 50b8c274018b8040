"""The loaded export: the floor that `export` (parity), `predict` and `serve` all stand on.

    versions   which folders are complete versions (model_card.json), and their numbers
    exported   find_version, read_info, ExportedModel (serving_default on encoded inputs), Decoder
    runners    TensorFlowRuntime, OnnxRunner/OnnxRuntime, load_runtime (runtime and batch size)

Imports point downwards only: data ← models ← train ← evaluate ← runtime ← export ← predict/serve ← cli.
"""
