"""Freezing a module: its signature rewritten as a TF2 SavedModel of constants.

A model holding a TF1 module (`genre_fusion.encoders.signatures.is_tf1_module`) exports only with
the module frozen: the result has no variables and serves anywhere, inside exported Keras models
too. ``python -m genre_fusion.encoders freeze HANDLE OUT_DIR`` does it by hand; export does it
automatically.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from genre_fusion.compat import convert_variables_to_constants_v2
from genre_fusion.encoders.handles import load_module, quiet_reference_variable_warnings, resolve_handle
from genre_fusion.encoders.signatures import SIGNATURE_KEY, signature_function
from genre_fusion.encoders.text import text_signature


def freeze_module(handle: str, out_dir: str | Path, output_key: str | None = None) -> Path:
    """Rewrite a module's text signature as a TF2 SavedModel of constants at `out_dir`.

    The result has a ``default`` signature with the same input key and the same outputs (only
    `output_key` when given), no variables, and loads and serves anywhere, inside exported Keras
    models too. `out_dir` must not exist or be empty. Returns `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    resolved = resolve_handle(handle)
    module = load_module(resolved)
    _, function = signature_function(module, resolved)
    structure = function.structured_outputs
    keys = [output_key] if output_key else sorted(structure)
    signature = text_signature(module, keys[0], resolved)  # validates the signature and the key
    with quiet_reference_variable_warnings():
        frozen = convert_variables_to_constants_v2(function)
    input_spec = function.structured_input_signature[1][signature.input_name]

    def serve(**inputs):
        # The frozen function knows neither the signature's input key nor its output keys: its one
        # argument is named after the graph's placeholder (which need not be the key, or may be
        # unnamed), and it returns `function.outputs`, the flat list `function` itself packs into
        # `structure`.
        outputs = frozen(inputs[signature.input_name])
        outputs = tf.nest.pack_sequence_as(structure, outputs, expand_composites=True)
        return {key: outputs[key] for key in keys}

    holder = tf.Module()
    holder.serve = tf.function(serve)
    concrete = holder.serve.get_concrete_function(
        **{signature.input_name: tf.TensorSpec(input_spec.shape, tf.string, name=signature.input_name)}
    )
    tf.saved_model.save(holder, str(out_dir), signatures={SIGNATURE_KEY: concrete})
    return out_dir


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())

