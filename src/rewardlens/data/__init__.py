"""Preference data: plain records (no torch), JSONL / datasets IO, adapters, validation, splits."""

from rewardlens.data.records import Demonstration, PreferencePair, Prompt, prompt_text

__all__ = ["Demonstration", "PreferencePair", "Prompt", "prompt_text"]
