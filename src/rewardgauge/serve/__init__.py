"""The HTTP reward server: ``rewardgauge serve --rm SPEC``. See ``app.py`` for the endpoints, ``batching.py``
for dynamic batching, ``server.py`` for binding and tokens. The client is ``rewardgauge.rewards.remote``."""
