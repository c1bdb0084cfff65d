"""Arguments and steps that several subcommands share (so each is written once)."""

from __future__ import annotations


def add_backend_argument(parser, default: str = "numpy", help_prefix: str = "") -> None:
    """--backend, with the choices of minivivit.kernels.BACKENDS."""
    from minivivit.kernels import BACKENDS

    parser.add_argument("--backend", default=default, choices=list(BACKENDS),
                        help=f"{help_prefix}default: {default}")


def weights_path(weights):
    """The --weights path, or the default weights (bundled demo model, or $MINIVIVIT_WEIGHTS) when not given."""
    from pathlib import Path

    from minivivit.checkpoint import default_weights

    if weights is not None:
        return Path(weights)
    try:
        return default_weights()
    except FileNotFoundError as e:
        raise FileNotFoundError(f"no --weights given and {e} Pass --weights model.safetensors (or an HF model "
                                f"directory).") from None
