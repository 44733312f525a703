"""Codec families, one module each (zfp, quant, lossless, cosmos), found by folder by ``codecs.registry``:
a new module here that registers its factory with ``codecs.base.register`` is a new family; nothing else
needs an edit. Modules stay light at import time (codec libraries are imported when a codec is built)."""
