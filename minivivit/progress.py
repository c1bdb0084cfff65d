"""Progress bars: tqdm.auto's widget in a Jupyter kernel that has ipywidgets, tqdm's text bar everywhere else.

tqdm.auto alone, in a kernel without ipywidgets, warns "TqdmWarning: IProgress not found" into the notebook's
output before falling back to the text bar; this picks the text bar without the warning.
"""

from __future__ import annotations

import sys


def _in_kernel() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in shell.config


def tqdm(*args, **kwargs):
    """tqdm(iterable, desc=..., ...) with the bar that suits where the code runs (same arguments as tqdm's)."""
    bar = None
    if _in_kernel():
        try:
            import ipywidgets  # noqa: F401  (what tqdm.auto draws its widget with)

            from tqdm.auto import tqdm as bar
        except ImportError:
            bar = None
    if bar is None:
        from tqdm.std import tqdm as bar
    return bar(*args, **kwargs)
