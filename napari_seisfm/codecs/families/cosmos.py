"""NVIDIA Cosmos image tokenizers (CI8x8, CI16x16, DI8x8, DI16x16) from user-supplied TorchScript.

No weights ship with napari-seisfm and none are downloaded. The user names a directory holding one
sub-directory per tokenizer (``Cosmos-Tokenizer-CI8x8/``, ``CI8x8/``, ... any name ending in the
variant) with NVIDIA's ``encoder.jit`` and ``decoder.jit``. TorchScript files are programs: they are
loaded only from the directory the user passed explicitly (``--cosmos-dir`` / the widget's field).

The paper's recipe: one seismic channel repeated to three, scaled to [-1, 1] (divide by max |x|,
stored as one float32), sizes in multiples of 32 (the comparison trims; here, sections that are not
are edge-padded and cropped back). The encoder's output follows NVIDIA's ``ImageTokenizer``: a
tensor (continuous latent) or a tuple whose last item is dropped (discrete: ``(indices, codes)`` ->
indices); the decoder takes what was kept.

Stored size, honestly: continuous latents count ``elements x bytes of their dtype`` (bf16: 2);
discrete tokens count ``indices x ceil(log2(codebook size))`` bits (Cosmos' FSQ codebook has 64,000
entries: 16 bits). Both plus 4 bytes for the scale.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...errors import SeisfmError
from ..base import Codec, Encoded, register

VARIANTS = {  # name -> (discrete?, spatial factor)
    "CI8x8": (False, 8),
    "CI16x16": (False, 16),
    "DI8x8": (True, 8),
    "DI16x16": (True, 16),
}
FSQ_CODEBOOK = 8 * 8 * 8 * 5 * 5 * 5  # Cosmos DI tokenizers: FSQ levels (8, 8, 8, 5, 5, 5)
SIZE_MULTIPLE = 32


def find_checkpoint(cosmos_dir: str | Path | None, variant: str) -> Path:
    """The directory holding encoder.jit and decoder.jit for ``variant`` (clear error if none)."""
    hint = (
        f"cosmos-{variant} not installed: put encoder.jit and decoder.jit in "
        f"<DIR>/Cosmos-Tokenizer-{variant}/ and pass --cosmos-dir DIR"
    )
    if cosmos_dir is None:
        raise SeisfmError(hint + " (no directory given)")
    root = Path(cosmos_dir).expanduser()
    if not root.is_dir():
        raise SeisfmError(f"{root}: not a directory; " + hint)
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    for d in candidates:
        if d.name.lower().endswith(variant.lower()) and (d / "encoder.jit").is_file() and (d / "decoder.jit").is_file():
            return d
    raise SeisfmError(f"{root}: no sub-directory ending in {variant} with encoder.jit and decoder.jit; " + hint)


class CosmosCodec(Codec):
    kind = "neural"
    min_shape = (SIZE_MULTIPLE, SIZE_MULTIPLE)

    def __init__(
        self, variant: str, cosmos_dir: str | Path | None = None, device: str | None = None, codebook_size: int = FSQ_CODEBOOK
    ):
        canon = {k.lower(): k for k in VARIANTS}.get(variant.lower())
        if canon is None:
            raise SeisfmError(f"cosmos-{variant}: unknown tokenizer (known: {', '.join(VARIANTS)})")
        self.variant = canon
        self.name = f"cosmos-{canon}"
        self.discrete, self.factor = VARIANTS[canon]
        self.codebook_size = codebook_size
        self.path = find_checkpoint(cosmos_dir, canon)
        try:
            import torch
        except ImportError as exc:
            raise SeisfmError(f"{self.name}: needs torch ({exc})") from exc
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.backend = f"torch-{self.device}"
        try:
            self.encoder = torch.jit.load(str(self.path / "encoder.jit"), map_location=self.device).eval()
            self.decoder = torch.jit.load(str(self.path / "decoder.jit"), map_location=self.device).eval()
        except Exception as exc:  # a corrupt or foreign file: say which one
            raise SeisfmError(f"{self.path}: cannot load TorchScript tokenizer ({type(exc).__name__}: {exc})") from exc
        params = list(self.encoder.parameters())
        self.dtype = params[0].dtype if params else torch.float32

    def encode(self, x: np.ndarray) -> Encoded:
        import torch

        self.check_input(x)
        h, w = x.shape
        ph, pw = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
        xp = np.pad(x, ((0, ph), (0, pw)), mode="edge") if ph or pw else x
        scale = float(np.max(np.abs(xp))) or 1.0
        t = torch.from_numpy(np.ascontiguousarray(xp / scale, dtype=np.float32))
        t = t.to(self.device, self.dtype)[None, None].repeat(1, 3, 1, 1)
        with torch.inference_mode():
            out = self.encoder(t)
        if not isinstance(out, torch.Tensor):
            out = out[:-1]  # NVIDIA's ImageTokenizer.encode: drop the last item (codes)
            out = out[0] if len(out) == 1 else out
        tensors = [out] if isinstance(out, torch.Tensor) else list(out)
        if self.discrete:
            bits = max(1, math.ceil(math.log2(self.codebook_size)))
            nbytes = math.ceil(sum(o.numel() for o in tensors) * bits / 8)
        else:
            nbytes = sum(o.numel() * o.element_size() for o in tensors)
        return Encoded(out, nbytes + 4, x.shape, {"scale": scale, "padded": xp.shape})

    def decode(self, enc: Encoded) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = self.decoder(enc.payload)
        y = y.float().mean(dim=1)[0].cpu().numpy()  # three channels back to one
        h, w = enc.shape
        return np.ascontiguousarray(y[:h, :w] * enc.meta["scale"], dtype=np.float32)


@register(r"cosmos-((?:CI|DI)\d+x\d+)", "cosmos-CI8x8 (CI16x16, DI8x8, DI16x16; needs --cosmos-dir)")
def _cosmos(m, cosmos_dir=None, **_options) -> Codec:
    return CosmosCodec(m.group(1), cosmos_dir)
