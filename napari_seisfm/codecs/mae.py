"""The project's own masked autoencoder (a model written by ``seisfm pretrain``) as codec rows.

``load_mae(model)`` builds the whole MAE (encoder + decoder) from a model card (id, card file or
run folder) and its weights; an encoder-only file (such as the bundled ``seisfm-micro-2.5d``) is
refused with one line. ``MaeCodec`` is one row of the comparison:

* the section (traces, samples) is edge-padded to multiples of the model window ``W`` and cut into
  non-overlapping ``W x W`` tiles (cropped back after decoding, as the Cosmos rows pad to 32);
* a tile is what the model was trained on: for 2D models the tile transposed (rows = time); for
  2.5D models the four views of :func:`~napari_seisfm.encoders.vit_embedder.sample_views` through
  the tile's centre trace, the tile being treated as a cube with a single inline (edges clamped
  inside the tile, so each tile is encoded from itself alone). That is how ``seisfm pretrain``
  draws 2.5D windows from image sets: the crossline view is the centre trace repeated, the
  diagonals run along the section (the 135-degree one mirrored). A lone section has no real
  neighbourhood, so a 2.5D model sees no more than a 2D one here, and stores 4x the tokens;
* the encoder input is clipped at 3 (the models train on unit-variance data clipped at 3 std);
* ``mask_ratio`` 0 keeps every token; a ratio ``r`` keeps ``max(1, round(N (1 - r)))`` of the
  ``N`` tokens of a tile, chosen by MAE's own ``random_masking`` with a CPU generator seeded from
  a stored 8-byte seed, so the decoder regenerates the same split;
* the decoder predicts every patch of the inline view (visible ones too: a codec keeps no
  pixels). With ``norm_pix_loss`` (every ``seisfm pretrain`` model) it predicts per-patch
  normalised values; the true mean and std of each inline-view patch are side information
  (``patch_stats=True``, the default, as MAE's figures do), or left out (``patch_stats=False``:
  mean 0, std 1, the section's own standardisation) and the row is named ``...-nostats``.

Stored size, per tile: ``(1 + kept tokens) x dim x 2`` bytes (the cls token and the kept patch
tokens of the encoder output, rounded to float16 before decoding, as they would be stored) plus
``patches of the inline view x 2 x 2`` bytes (mean and std, float16) when stats are kept; plus 8
bytes per section for the mask seed when ``mask_ratio > 0``. Shapes and the model are not
counted (as for every codec).

``mae-stats-only`` (added with the MAE rows) decodes the side information alone: every patch set
to its stored mean, same bytes as the stats. With norm_pix_loss the stats carry the coarse picture
(the 8 x 8 block means), so an MAE row is worth its latent only by what it adds above this row.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SeisfmError
from .base import Codec, Encoded

LATENT_BYTES = 2  # float16 per latent value
STAT_BYTES = 2  # float16 per patch mean / std
SEED_BYTES = 8
CLIP = 3.0  # the models train on unit-variance windows clipped at 3 std
TOKENS_PER_PASS = {"cpu": 16_384, "cuda": 131_072}  # tiles per forward pass = this / tokens per tile
_DECODER_PREFIXES = ("decoder_embed.", "decoder_blocks.", "decoder_pred.", "decoder_norm.", "mask_token")


# ---------------------------------------------------------------------------- loading
def safetensors_keys(path: str | Path) -> list[str]:
    """Tensor names in a safetensors file, from its JSON header (no torch, no tensor read)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise SeisfmError(f"{path}: not a safetensors file (shorter than its header)")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise SeisfmError(f"{path}: not a safetensors file (header length {n})")
        try:
            header = json.loads(f.read(n))
        except ValueError:
            raise SeisfmError(f"{path}: not a safetensors file (unreadable header)") from None
    return [k for k in header if k != "__metadata__"]


def _strip(key: str) -> str:
    for p in ("module.", "_orig_mod.", "model."):
        while key.startswith(p):
            key = key[len(p) :]
    return key


def has_decoder(keys) -> bool:
    return any(_strip(k).startswith(_DECODER_PREFIXES) for k in keys)


def decoder_models() -> list[str]:
    """Ids of the listed 2D / 2.5D models whose weights (safetensors) hold an MAE decoder."""
    from ..encoders import registry

    out = []
    for c in registry.list_cards():
        if c.tokenization not in ("2d", "2.5d"):
            continue
        path = registry.checkpoint_path(c)
        if path is None or not path.is_file() or path.suffix != ".safetensors":
            continue
        try:
            if has_decoder(safetensors_keys(path)):
                out.append(c.id)
        except (OSError, SeisfmError):
            continue
    return out


def training_mask_ratio(card) -> float | None:
    """The mask ratio the model was trained with, as its card records it (None: not recorded)."""
    for table in (card.extra.get("training", {}), card.extra):
        if isinstance(table, dict) and "mask_ratio" in table:
            return float(table["mask_ratio"])
    return None


def load_mae(model, device: str | None = None):
    """The whole masked autoencoder of ``model`` (an id, a card file or a ``seisfm pretrain`` folder)."""
    import torch

    from ..encoders import registry
    from ..encoders.checkpoint import read_state_dict
    from ..encoders.vit import MaskedAutoencoder, config

    c = registry.card(str(model))
    if c.tokenization not in ("2d", "2.5d"):
        raise SeisfmError(f"model {c.id}: the MAE codec takes 2d or 2.5d models, not {c.tokenization}")
    path = registry.checkpoint_path(c)
    if path is None or not path.is_file():
        raise SeisfmError(f"model {c.id}: {registry.install_hint(c)}")
    sd = {_strip(k): v for k, v in read_state_dict(path).items()}
    if not has_decoder(sd):
        raise SeisfmError(
            f"model {c.id}: {path} holds an encoder only, no MAE decoder; train a model with one with seisfm pretrain"
        )
    arch = dict(c.extra.get("architecture", {}))
    size = arch.pop("size", "base")
    kw: dict[str, Any] = {"tokenization": c.tokenization}
    if c.window:
        kw["window"] = c.window[0]
    if c.patch:
        kw["patch"] = c.patch[0]
    kw.update(arch)
    ratio = training_mask_ratio(c)
    if ratio is not None:
        kw["mask_ratio"] = ratio
    training = c.extra.get("training", {})
    norm_pix = bool(training.get("norm_pix_loss", c.extra.get("norm_pix_loss", True)))
    try:
        mae = MaskedAutoencoder(config(size, **kw), norm_pix_loss=norm_pix)
    except (TypeError, ValueError) as exc:
        raise SeisfmError(f"model card {c.id}: bad architecture ({exc})") from None
    ours = mae.state_dict()
    missing = [k for k in ours if k not in sd]
    unexpected = [k for k in sd if k not in ours]
    bad = [k for k in ours if k in sd and sd[k].shape != ours[k].shape]
    if missing or unexpected or bad:
        parts = [
            f"{len(v)} {n} ({', '.join(v[:3])}{', ...' if len(v) > 3 else ''})"
            for n, v in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", bad))
            if v
        ]
        raise SeisfmError(f"{path}: does not match the MAE of model card {c.id}: " + "; ".join(parts))
    mae.load_state_dict({k: v.to(ours[k].dtype) for k, v in sd.items()}, strict=True)
    mae.model_id = c.id
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return mae.to(dev).eval()


# ---------------------------------------------------------------------------- tiles
def tile(x: np.ndarray, w: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``(n, w, w)`` tiles (trace, sample) of ``x`` edge-padded to multiples of ``w``, and the tile grid."""
    h, s = x.shape
    xp = np.pad(x, ((0, -h % w), (0, -s % w)), mode="edge")
    nb, nc = xp.shape[0] // w, xp.shape[1] // w
    tiles = xp.reshape(nb, w, nc, w).transpose(0, 2, 1, 3).reshape(nb * nc, w, w)
    return np.ascontiguousarray(tiles, dtype=np.float32), (nb, nc)


def untile(tiles: np.ndarray, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    nb, nc = grid
    w = tiles.shape[-1]
    y = tiles.reshape(nb, nc, w, w).transpose(0, 2, 1, 3).reshape(nb * w, nc * w)
    return np.ascontiguousarray(y[: shape[0], : shape[1]], dtype=np.float32)


def model_input(mae, tiles):
    """Tiles (n, trace, sample) -> the model's input: 2D ``(n, time, trace)``, 2.5D ``(n, 4, time, trace)``."""
    import torch

    from ..encoders.tokenizers import view_steps
    from ..encoders.vit_embedder import sample_views

    t = torch.as_tensor(tiles).clamp(-CLIP, CLIP)
    if mae.cfg.tokenization == "2d":
        return t.transpose(1, 2).contiguous()
    w = mae.cfg.window
    steps = torch.as_tensor(view_steps(), dtype=torch.float32)
    centre = torch.tensor([[0, w // 2, 0]])
    return torch.cat([sample_views(t[i : i + 1], centre, steps, w) for i in range(t.shape[0])])


def patch_stats(mae, tiles):
    """(mean, std) of every inline-view patch, ``(n, g*g, 1)`` each, as ``norm_pix_loss`` normalises."""
    import torch

    target = tokenizer_2d(mae).patchify(torch.as_tensor(tiles).transpose(1, 2))
    return target.mean(-1, keepdim=True), (target.var(-1, keepdim=True) + 1e-6) ** 0.5


def tokenizer_2d(mae):
    """A 2-D tokenizer of the model's window and patch, for (un)patchifying one view."""
    from ..encoders.tokenizers import Tokenizer2D

    tok = getattr(mae, "_seisfm_tok2d", None)
    if tok is None:
        tok = Tokenizer2D(4, mae.cfg.window, mae.cfg.patch)
        mae._seisfm_tok2d = tok
    return tok


def _batch(mae) -> int:
    """Tiles per forward pass: large passes, because many small ops stall torch's CPU threads when
    another job holds a core (measured: 828 tiles of the test model took 3.6 s in batches of 64 tiles
    on this loaded 2-core machine, 0.07 s single-threaded)."""
    dev = next(mae.parameters()).device.type
    return max(1, TOKENS_PER_PASS.get(dev, TOKENS_PER_PASS["cpu"]) // (mae.encoder.n_tokens + 1))


def encode_tiles(mae, inp, keep=None):
    """Encoder output ``(n, 1 + kept, dim)`` rounded to float16 (what would be stored), on the CPU."""
    import torch

    dev = next(mae.parameters()).device
    b = _batch(mae)
    out = []
    with torch.inference_mode():
        for i in range(0, inp.shape[0], b):
            k = None if keep is None else keep[i : i + b].to(dev)
            out.append(mae.encoder(inp[i : i + b].to(dev), k).to(torch.float16).cpu())
    return torch.cat(out)


def decode_tiles(mae, latent, restore, mean=None, std=None) -> np.ndarray:
    """Latent (+ restore order) -> tiles (n, trace, sample) of the inline view."""
    import torch

    dev = next(mae.parameters()).device
    g2 = (mae.cfg.window // mae.cfg.patch) ** 2
    b = _batch(mae)
    preds = []
    with torch.inference_mode():
        for i in range(0, latent.shape[0], b):
            p = mae.decode(latent[i : i + b].to(dev).float(), restore[i : i + b].to(dev))
            preds.append(p[:, :g2].float().cpu())
    pred = torch.cat(preds)
    if mae.norm_pix_loss and mean is not None:
        pred = pred * std.float() + mean.float()
    img = tokenizer_2d(mae).unpatchify(pred)  # (n, time, trace)
    return img.transpose(1, 2).contiguous().numpy()


def split_from_mask(mask):
    """A bool mask ``(n, N)`` (True = hidden, same count per row) -> (keep, restore) for ``mae.decode``."""
    import torch

    order = torch.argsort(mask.to(torch.int8), dim=1, stable=True)  # visible first, in index order
    n_keep = int((~mask[0]).sum())
    return order[:, :n_keep], torch.argsort(order, dim=1)


# ---------------------------------------------------------------------------- codec
class MaeCodec(Codec):
    """One MAE row: keep a fraction of the tokens of every tile, decode every patch."""

    kind = "neural"

    def __init__(self, mae, mask_ratio: float = 0.0, *, patch_stats: bool = True, seed: int = 0):
        check_fraction(mask_ratio, "MAE mask ratio")
        self.mae, self.mask_ratio, self.stats, self.seed = mae, float(mask_ratio), bool(patch_stats), int(seed)
        self.name = f"mae-r{self.mask_ratio:g}" + ("" if self.stats or not mae.norm_pix_loss else "-nostats")
        dev = next(mae.parameters()).device
        self.backend = f"torch-{dev.type}:{getattr(mae, 'model_id', 'mae')}"

    def _split(self, n: int):
        import torch

        n_tok = self.mae.encoder.n_tokens
        if self.mask_ratio == 0:
            idx = torch.arange(n_tok).expand(n, -1)
            return idx, idx
        gen = torch.Generator().manual_seed(self.seed)
        keep, restore, _ = self.mae.random_masking(n, self.mask_ratio, "cpu", gen)
        return keep, restore

    def nbytes_per_tile(self) -> int:
        cfg = self.mae.cfg
        n_tok = self.mae.encoder.n_tokens
        kept = n_tok if self.mask_ratio == 0 else max(1, int(round(n_tok * (1 - self.mask_ratio))))
        stats = (cfg.window // cfg.patch) ** 2 * 2 * STAT_BYTES if self.stats and self.mae.norm_pix_loss else 0
        return (1 + kept) * cfg.dim * LATENT_BYTES + stats

    def stored_bytes(self, shape: tuple[int, int]) -> int:
        """The formula: tiles x bytes per tile, plus the mask seed when tokens are dropped."""
        w = self.mae.cfg.window
        n = math.ceil(shape[0] / w) * math.ceil(shape[1] / w)
        return n * self.nbytes_per_tile() + (SEED_BYTES if self.mask_ratio > 0 else 0)

    def encode(self, x: np.ndarray) -> Encoded:
        self.check_input(x)
        tiles, grid = tile(x, self.mae.cfg.window)
        keep, _ = self._split(len(tiles))
        latent = encode_tiles(self.mae, model_input(self.mae, tiles), keep)
        payload = {"latent": latent}
        if self.stats and self.mae.norm_pix_loss:
            mean, std = patch_stats(self.mae, tiles)
            payload["mean"], payload["std"] = mean.half(), std.half()
        nbytes = sum(t.numel() * t.element_size() for t in payload.values())
        nbytes += SEED_BYTES if self.mask_ratio > 0 else 0
        return Encoded(payload, nbytes, x.shape, {"grid": grid, "seed": self.seed})

    def decode(self, enc: Encoded) -> np.ndarray:
        p = enc.payload
        _, restore = self._split(p["latent"].shape[0])
        # without stats a normalised prediction stays at mean 0, std 1: the section's own standardisation
        tiles = decode_tiles(self.mae, p["latent"], restore, p.get("mean"), p.get("std"))
        return untile(tiles, enc.meta["grid"], enc.shape)


class PatchStatsOnly(Codec):
    """The side information alone: every patch of the inline view set to its stored mean (the MAE
    rows' mean and std, same bytes). An MAE row adds something only where it beats this one."""

    kind = "lossy"

    def __init__(self, mae):
        self.mae = mae
        self.name = "mae-stats-only"
        self.backend = f"numpy:{getattr(mae, 'model_id', 'mae')}"

    def encode(self, x: np.ndarray) -> Encoded:
        self.check_input(x)
        tiles, grid = tile(x, self.mae.cfg.window)
        mean, std = patch_stats(self.mae, tiles)
        payload = {"mean": mean.half(), "std": std.half()}
        return Encoded(payload, sum(t.numel() * t.element_size() for t in payload.values()), x.shape, {"grid": grid})

    def decode(self, enc: Encoded) -> np.ndarray:
        mean = enc.payload["mean"].float()
        tiles = tokenizer_2d(self.mae).unpatchify(mean.expand(-1, -1, self.mae.cfg.patch**2))
        return untile(tiles.transpose(1, 2).contiguous().numpy(), enc.meta["grid"], enc.shape)


def check_fraction(value: float, what: str = "fraction") -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SeisfmError(f"{what} {value!r}: not a number") from None
    if not 0 <= v < 1:
        raise SeisfmError(f"{what} {value!r}: must be in [0, 1) (0 = nothing masked)")
    return v


def parse_fractions(text: str, what: str = "--masking") -> list[float]:
    """ "0,0.5,0.9" -> [0.0, 0.5, 0.9], each checked to lie in [0, 1)."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise SeisfmError(f"{what} {text!r}: give fractions in [0, 1) separated by commas")
    return [check_fraction(s, f"{what} fraction") for s in items]


def mae_codecs(mae, ratios=None, patch_stats: bool = True, seed: int = 0, baseline: bool = True) -> list[Codec]:
    """The MAE rows: ratio 0 and the model's training ratio (or ``ratios``), then (``baseline``, with
    patch stats) ``mae-stats-only``: what the side information gives without any latent."""
    if ratios is None:
        ratios = [0.0, mae.cfg.mask_ratio]
    ratios = list(dict.fromkeys(check_fraction(r, "MAE mask ratio") for r in ratios))
    rows: list[Codec] = [MaeCodec(mae, r, patch_stats=patch_stats, seed=seed) for r in ratios]
    if baseline and patch_stats and mae.norm_pix_loss:
        rows.append(PatchStatsOnly(mae))
    return rows


def compare_with_mae(
    section, codecs, sample_interval_ms=None, *, mae_model=None, mae_ratios=None, device: str | None = None, **kwargs
):
    """:func:`~napari_seisfm.codecs.compare` with the MAE rows of ``mae_model`` appended (the
    model is loaded here, so a caller's worker thread pays for ``import torch``)."""
    from .compare import compare

    todo = list(codecs)
    if mae_model:
        todo += mae_codecs(load_mae(mae_model, device), mae_ratios)
    return compare(section, todo, sample_interval_ms, **kwargs)
