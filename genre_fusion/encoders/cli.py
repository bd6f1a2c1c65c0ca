"""``python -m genre_fusion.encoders``: tools for TF Hub encoder modules.

    python -m genre_fusion.encoders freeze HANDLE OUT_DIR [--output-key KEY]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from genre_fusion.encoders.freezing import folder_bytes, freeze_module
from genre_fusion.encoders.handles import ELMO_NAME, ModuleUnavailable, load_module, resolve_handle
from genre_fusion.encoders.signatures import SIGNATURE_KEY, is_tf1_module


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.encoders", description="TF Hub encoder module tools.", allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)
    freeze = commands.add_parser(
        "freeze",
        help="write a module's text signature as a TF2 SavedModel of constants (needed to export a "
        "model with a TF1 module such as ELMo)",
    )
    freeze.add_argument("handle", help=f"'{ELMO_NAME}', a TF Hub / Kaggle URL or a module folder")
    freeze.add_argument("out_dir", type=Path, help="folder to write (must not exist or be empty)")
    freeze.add_argument("--output-key", default=None, help="keep only this output (default: all)")
    args = parser.parse_args(argv)
    try:
        tf1 = is_tf1_module(args.handle)
        out_dir = freeze_module(args.handle, args.out_dir, args.output_key)
    except (ModuleUnavailable, ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Read back through the same path as any module, which also proves the result loads.
    frozen = load_module(str(out_dir))
    function = frozen.signatures[SIGNATURE_KEY]
    input_name = next(iter(function.structured_input_signature[1]))
    outputs = function.structured_outputs
    print(
        f"froze {resolve_handle(args.handle)} ({'TF1' if tf1 else 'TF2'} format) -> {out_dir} "
        f"({folder_bytes(out_dir):,} bytes)\n"
        f"  signature {SIGNATURE_KEY!r}: input {input_name!r} string [batch]; outputs "
        + ", ".join(f"{key} {spec.shape}" for key, spec in sorted(outputs.items()))
    )
    return 0

