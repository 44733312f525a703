"""Embedder families, one module each, found by folder: ``encoders.registry.families()`` imports every
module here whose name does not start with ``_``, which runs its ``@family`` registration
(``encoders.base.family``). Modules stay light at import time (heavy imports inside the builder), so
finding the families costs no torch. ``_template.py`` shows how to add one.
"""
