"""Propose-then-verify review of step labels: a shared queue (``queue``) and its local web page (``app``)."""
