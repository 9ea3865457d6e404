"""The sizes valuescope accepts (docs/reliability.md): every input that decides how much memory or time a
study takes is bounded, and a study over a bound is refused with one line before anything is planned.

The bounds are far above the studies of the papers (Lee et al.: 600 personas x 132 items; Kovac et al.:
110 personas x 5 topics x 40 items), and low enough that planning never exhausts a laptop's memory.
A larger study is split into several (they share one store and reuse each other's answers).
"""

from __future__ import annotations

MAX_PERSONAS_PER_SOURCE = 100_000  # wvs n, named/file limit
MAX_PERSONAS = 200_000  # the whole population (every source and seed)
MAX_SEEDS = 1_000  # persona-set seeds of one source
MAX_PERSONA_CHARS = 50_000  # one persona's description (about 12k tokens)
MAX_ITEMS = 10_000  # items of one instrument
MAX_OPTIONS = 26  # options of one scale (letters A..Z)
MAX_MESSAGES = 200  # turns of one simulated conversation
MAX_TOPICS = 1_000  # conversation topics (built-in and custom)
MAX_REPEATS = 100  # repeats of each query
MAX_QUERIES = 1_000_000  # queries of one model's plan
MAX_EFFECT = 20.0  # a planted effect (power --effect), in Cohen's d or latent units
MAX_YAML_ALIAS_NODES = 100_000  # nodes that YAML aliases (*name) may add to a file when expanded
