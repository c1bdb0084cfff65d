"""The `minivivit` command line (also `python -m minivivit`).

Each subcommand lives in minivivit/commands/<name>.py with `add_parser(subparsers)` and `run(args)`;
this list names them in the order `--help` shows them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ["demo", "classify", "attention", "explain-eval", "explore", "convert", "export", "finetune", "debug", "bench",
            "bench_train"]


def _command_modules():
    for name in COMMANDS:
        yield name, importlib.import_module(f"minivivit.commands.{name.replace('-', '_')}")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="minivivit",
        description="ViViT video transformer in NumPy/Numba: classify clips, convert HF checkpoints, "
        "draw attention, debug a port layer by layer. Run `minivivit COMMAND --help` for details.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    modules = {}
    for name, module in _command_modules():
        module.add_parser(sub)
        modules[name.replace("-", "_")] = module
    return parser, modules


def main(argv=None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    try:
        return modules[args.command.replace("-", "_")].run(args) or 0
    except (OSError, ValueError, TypeError, NotImplementedError, RuntimeError) as e:  # OSError: files, permissions
        print(f"minivivit {args.command}: error: {e}", file=sys.stderr)
        return 2
    except MemoryError as e:  # an allocation no guard foresaw (the guards raise MemoryBudgetError, a ValueError)
        print(f"minivivit {args.command}: error: out of memory ({e or 'MemoryError'}); try a smaller input",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minivivit {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
