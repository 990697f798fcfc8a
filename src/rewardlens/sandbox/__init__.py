"""Sandboxed execution of untrusted code, task formats with hidden tests, pass@k."""

from rewardlens.sandbox.core import BACKENDS, ExecResult, Limits, Probe, Sandbox, probe_backends, run_python

__all__ = ["BACKENDS", "ExecResult", "Limits", "Probe", "Sandbox", "probe_backends", "run_python"]
