"""Old module paths (before the package was laid out by topic) keep working, with a DeprecationWarning
naming the new path. One table; minivivit/__init__.py installs the finder.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {  # old module -> new module
    "minivivit.sampling": "minivivit.video.sampling",
    "minivivit.multiview": "minivivit.video.classify",
    "minivivit.capture": "minivivit.explain.capturing",
    "minivivit.viz": "minivivit.explain.viz",
    "minivivit.debug_hf": "minivivit.debug.hf",
    "minivivit.debug_report": "minivivit.debug.compare",
    "minivivit.kernels.numba_backend": "minivivit.kernels.numba",
    "minivivit.kernels.numba_attention": "minivivit.kernels.numba.blocked_attention",
    "minivivit.kernels.numba_elementwise": "minivivit.kernels.numba.elementwise",
    "minivivit.kernels.numba_math": "minivivit.kernels.numba.scalar",
    "minivivit.kernels.cuda_backend": "minivivit.kernels.cuda",
    "minivivit.kernels.cuda_activations": "minivivit.kernels.cuda.activations",
    "minivivit.kernels.cuda_attention": "minivivit.kernels.cuda.flash_attention",
    "minivivit.kernels.cuda_embed": "minivivit.kernels.cuda.embed",
    "minivivit.kernels.cuda_gemm": "minivivit.kernels.cuda.gemm",
    "minivivit.kernels.cuda_layernorm": "minivivit.kernels.cuda.layernorm",
    "minivivit.kernels.cuda_memory": "minivivit.kernels.cuda.memory",
}
REMOVED = {  # old module -> what to use instead
    "minivivit.kernels.cuda_forward": "the cuda backend runs minivivit.model.vivit_forward op by op, activations "
                                      "kept on the device (minivivit.kernels.cuda); call model(x, backend='cuda')",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        return importlib.import_module(self.new)

    def exec_module(self, module):
        pass


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old names of moved modules and hands out the new module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in REMOVED:
            raise ImportError(f"{fullname} was removed: {REMOVED[fullname]}")
        if fullname not in MOVED:
            return None
        warnings.warn(f"{fullname} moved to {MOVED[fullname]}; import that instead", DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(fullname, _Alias(MOVED[fullname]))


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
