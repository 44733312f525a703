"""The names of the interchangeable methods and their defaults, and nothing else: no imports.

`seisfm search --decision`, `seisfm segment --method` and `seisfm bench --readouts/--decisions` list their
choices from here, so building the CLI (``seisfm --help``) imports no numpy, scipy or search package. The
tables that map these names to classes are ``search.methods.DECISIONS`` and ``SEGMENTERS``, keyed in the same
order (tests/test_cli_light.py checks that they agree). Defaults are chosen on `seisfm bench`'s dev seeds
(docs/quality.md).
"""

# click decisions: the linear probe, the nonlinear read-outs once the clicks allow them, the cosine rule
DECISIONS = ("probe", "mlp", "forest", "boosting", "conv", "centroid")
# nonlinear read-outs (search/readouts.py), in the order of search.readouts.READOUTS
READOUTS = ("forest", "boosting", "mlp", "conv")
# read-outs of labelled points: linear (the default), the nonlinear ones, and kNN (the NCS paper's protocol)
SEGMENTERS = ("linear", *READOUTS, "knn")
DEFAULT_DECISION = "probe"
DEFAULT_SEGMENTER = "linear"
# the linear segmenter's defaults (search/linear_segmenter.py): Gaussian smoothing of the class
# probabilities and the context scales, in grid points
SMOOTH = 1.0
CONTEXT = (1.5, 3.0, 6.0, 12.0)
