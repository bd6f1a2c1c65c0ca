"""Freezing a module: its signature rewritten as a TF2 SavedModel of constants.

Text and audio modules alike: `freeze_module` validates the signature with the check it is given
(`genre_fusion.encoders.text.text_signature` by default, `genre_fusion.encoders.audio`'s for audio
modules) and keeps every input, whatever its key and kind.

A model holding a TF1 module (`genre_fusion.encoders.signatures.is_tf1_module`) exports only with
the module frozen: the result has no variables and serves anywhere, inside exported Keras models
too. ``python -m genre_fusion.encoders freeze HANDLE OUT_DIR`` does it by hand; export does it
automatically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from genre_fusion.compat import convert_variables_to_constants_v2
from genre_fusion.encoders.handles import load_module, quiet_reference_variable_warnings, resolve_handle
from genre_fusion.encoders.signatures import SIGNATURE_KEY, signature_function
from genre_fusion.encoders.text import text_signature

# (module, output_key, handle) -> anything; raises ValueError when the module's signature is not
# what its user needs.
SignatureCheck = Callable[[object, str, str], object]


def freeze_module(
    handle: str, out_dir: str | Path, output_key: str | None = None, check: SignatureCheck = text_signature
) -> Path:
    """Rewrite a module's signature as a TF2 SavedModel of constants at `out_dir`.

    `check` validates the signature and the output key first (default: a text signature). The
    result has a ``default`` signature with the same inputs (keys, dtypes, shapes) and the same
    outputs (only `output_key` when given), no variables, and loads and serves anywhere, inside
    exported Keras models too. `out_dir` must not exist or be empty. Returns `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    resolved = resolve_handle(handle)
    module = load_module(resolved)
    _, function = signature_function(module, resolved)
    structure = function.structured_outputs
    keys = [output_key] if output_key else sorted(structure)
    check(module, keys[0], resolved)
    with quiet_reference_variable_warnings():
        frozen = convert_variables_to_constants_v2(function)
    input_specs = function.structured_input_signature[1]

    def serve(**inputs):
        # The frozen function knows neither the signature's input keys nor its output keys: it takes
        # its arguments by position, in the order of `function.inputs` (the keys sorted, as
        # `tf.nest.flatten` orders a dict; each named after its graph placeholder, which need not be
        # the key, or may be unnamed), and it returns `function.outputs`, the flat list `function`
        # itself packs into `structure`.
        outputs = frozen(*tf.nest.flatten(inputs))
        outputs = tf.nest.pack_sequence_as(structure, outputs, expand_composites=True)
        return {key: outputs[key] for key in keys}

    holder = tf.Module()
    holder.serve = tf.function(serve)
    concrete = holder.serve.get_concrete_function(
        **{name: tf.TensorSpec(spec.shape, spec.dtype, name=name) for name, spec in input_specs.items()}
    )
    tf.saved_model.save(holder, str(out_dir), signatures={SIGNATURE_KEY: concrete})
    return out_dir


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())

