"""Sizes of the tiny Llama policies (plain data, so the CLI can offer the names without importing torch)."""

from __future__ import annotations

from typing import Literal, get_args

Preset = Literal["tiny", "small"]

# hidden size, layers, attention heads, MLP width: about 0.9M and 3.1M parameters with a 200-word vocabulary.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 384},
    "small": {"hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 640},
}
if tuple(PRESETS) != get_args(Preset):  # the names are declared once: the Literal is what flags and YAML accept
    raise AssertionError(f"PRESETS {tuple(PRESETS)} differ from Preset {get_args(Preset)}")
