"""Arguments and steps that several subcommands share (so each is written once)."""

from __future__ import annotations


FAST_BACKEND = "numba"  # what a command runs when --backend is not given, if it imports; else "numpy"


def add_backend_argument(parser, auto: bool = True, help_prefix: str = "") -> None:
    """--backend, with the choices of minivivit.kernels.BACKENDS. Not given, resolve_backend picks: with auto,
    numba if it imports, else numpy; without, numpy (the reference). It says which on stderr."""
    from minivivit.kernels import BACKENDS

    shown = (f"{FAST_BACKEND} (the fast CPU backend; equal to numpy within float32 rounding) when it imports, "
             f"else numpy" if auto else "numpy, the reference")
    parser.add_argument("--backend", default=None, choices=list(BACKENDS), help=f"{help_prefix}default: {shown}")


def resolve_backend(args, auto: bool = True, stream=None) -> str:
    """Set args.backend when --backend was not given (auto: numba if minivivit.kernels.get_backend('numba') works,
    else numpy; not auto: numpy) and print one line on stderr saying which backend runs and why. Returns it."""
    import sys

    from minivivit.kernels import get_backend

    stream = sys.stderr if stream is None else stream
    if args.backend is not None:
        why = "--backend"
    elif not auto:
        args.backend, why = "numpy", "default: the reference"
    else:
        try:
            get_backend(FAST_BACKEND)
            args.backend, why = FAST_BACKEND, "default; --backend numpy for the reference"
        except Exception as e:  # noqa: BLE001 (an ImportError, or numba failing to initialise: fall back, say why)
            args.backend = "numpy"
            why = f"default; {FAST_BACKEND} is not usable here: {type(e).__name__}: {str(e).splitlines()[0][:120]}"
    print(f"backend: {args.backend} ({why})", file=stream, flush=True)
    return args.backend


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
