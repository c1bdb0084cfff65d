"""The CPU peers of the benchmark: HF's VivitForVideoClassification exported to ONNX, run by ONNX Runtime and by
OpenVINO, which is what a CPU user exporting HF's model would pick. Needs the `bench` extra (onnx, onnxruntime,
openvino) and, for the export, torch + transformers.

export_onnx runs once in the harness's process on the same saved HF model every contender loads; each peer then
runs in its own worker process (worker.py) like the other backends, with `threads` intra-op threads.
"""

from __future__ import annotations

from pathlib import Path

PEERS = ("onnxruntime", "openvino")
ONNX_NAME = "model.onnx"
OPSET = 17


def export_onnx(hf_dir, out_dir, cfg: dict) -> Path:
    """torch.onnx.export of the saved HF model (eval, fp32, batch 1 of the config's clip shape) -> out_dir/model.onnx.

    The TorchScript exporter (dynamo=False) needs nothing beyond torch; ViViT-B's 356 MB of weights fit in one
    protobuf file (< 2 GB)."""
    import warnings

    import torch
    from transformers import VivitForVideoClassification

    model = VivitForVideoClassification.from_pretrained(hf_dir).eval()
    x = torch.zeros(1, cfg["num_frames"], 3, cfg["image_size"], cfg["image_size"])
    path = Path(out_dir) / ONNX_NAME
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about HF's shape checks, the exporter's deprecation note
        torch.onnx.export(model, (x,), str(path), input_names=["pixel_values"], output_names=["logits"],
                          opset_version=OPSET, dynamo=False)
    return path


def load_peer(name: str, onnx_path, threads: int):
    """A function pixel_values [1, T, C, H, W] float32 -> logits [1, num_labels] for peer `name`."""
    import numpy as np

    if name == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        return lambda x: session.run(["logits"], {"pixel_values": np.ascontiguousarray(x)})[0]
    if name == "openvino":
        import openvino as ov

        compiled = ov.Core().compile_model(str(onnx_path), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"})
        request = compiled.create_infer_request()

        def forward(x):
            request.infer({0: np.ascontiguousarray(x)})
            return np.array(request.get_output_tensor(0).data)

        return forward
    raise ValueError(f"unknown peer {name!r}; choose one of {PEERS}")


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref| (the logits check of the benchmark, limit LOGITS_LIMIT)."""
    import numpy as np

    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


LOGITS_LIMIT = 1e-5  # every contender's logits within this of HF eager's (relative to max |logit|)
