"""Plain-PyTorch ViT encoder and MAE (masked autoencoder) for seismic windows.

Attention goes through ``torch.nn.functional.scaled_dot_product_attention``, which picks the
flash / memory-efficient kernels on GPU. ``fused=False`` swaps in the same math written out
(softmax(Q K^T / sqrt(d)) V); it is the reference the tests and the CPU benchmark compare with.

Parameter names follow Meta's MAE / timm ViT (``patch_embed.proj``, ``cls_token``,
``blocks.N.attn.qkv``, ``norm``, ``decoder_blocks.N...``), so MAE checkpoints map onto this
model with few renames (see ``checkpoint.py``). The MAE keeps its encoder under ``encoder.``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SeisfmError
from .base import ModelCard
from .tokenizers import Tokenizer, make_tokenizer


@dataclass(frozen=True)
class ViTConfig:
    """Architecture of one encoder (+ MAE decoder)."""

    tokenization: str = "2d"  # "2d" | "2.5d" | "3d"
    window: int = 224
    patch: int = 16
    dim: int = 768
    depth: int = 12
    heads: int = 12
    mlp_ratio: float = 4.0
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    mask_ratio: float = 0.85  # NCS-models pretraining

    def with_(self, **kw) -> ViTConfig:
        return replace(self, **kw)


# Named sizes. "base" is the NCS-models / MAE ViT-B; "tiny" is DeiT-Tiny wide; "test" is a
# micro model for fast tests and the bundled CPU-trained model (window 32, patch 8).
CONFIGS = {
    "base": ViTConfig(),
    "small": ViTConfig(dim=384, depth=12, heads=6, decoder_dim=256, decoder_depth=4, decoder_heads=8),
    "tiny": ViTConfig(dim=192, depth=12, heads=3, decoder_dim=128, decoder_depth=4, decoder_heads=4),
    "test": ViTConfig(window=32, patch=8, dim=64, depth=2, heads=4, decoder_dim=32, decoder_depth=1, decoder_heads=4),
    # CPU-trainable: the bundled model's size (window 32, patch 8, 4 layers of 96)
    "micro": ViTConfig(window=32, patch=8, dim=96, depth=4, heads=4, decoder_dim=64, decoder_depth=2, decoder_heads=4),
}


def config(name: str = "base", **overrides) -> ViTConfig:
    try:
        return CONFIGS[name].with_(**overrides)
    except KeyError:
        raise ValueError(f"unknown ViT size {name!r}; known: {', '.join(CONFIGS)}") from None


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, fused: bool = True):
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} not divisible by {heads} heads")
        self.heads, self.fused = heads, fused
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v)
        else:  # the same math, unfused: the reference implementation
            attn = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            y = attn.softmax(dim=-1) @ v
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm ``Block`` names)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, fused: bool = True):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, fused)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def set_fused(module: nn.Module, fused: bool) -> None:
    """Switch every attention layer between SDPA and the eager reference."""
    for m in module.modules():
        if isinstance(m, Attention):
            m.fused = fused


def _init_weights(m: nn.Module) -> None:
    # MAE initialisation: xavier-uniform linears, zero biases, unit LayerNorm
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class ViTEncoder(nn.Module):
    """Tokenizer + cls token + transformer blocks + final norm."""

    def __init__(self, cfg: ViTConfig, fused: bool = True):
        super().__init__()
        self.cfg = cfg
        self.patch_embed: Tokenizer = make_tokenizer(cfg.tokenization, cfg.dim, cfg.window, cfg.patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio, fused) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.apply(_init_weights)
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)

    @property
    def n_tokens(self) -> int:
        return self.patch_embed.n_tokens

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, *input_shape)`` -> ``(B, 1 + n_kept, dim)``; index 0 is the cls token.

        ``keep`` (``(B, n_kept)`` token indices) runs the encoder on a subset of tokens: the
        visible tokens of MAE pretraining.
        """
        t = self.patch_embed(x)
        if keep is not None:
            t = torch.gather(t, 1, keep.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1).to(t.dtype), t], dim=1)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Patch embeddings without the cls token: ``(B, n_tokens, dim)``."""
        return self.forward(x)[:, 1:]


class MaskedAutoencoder(nn.Module):
    """MAE: encoder on the visible tokens, lightweight decoder predicts the masked patches."""

    def __init__(self, cfg: ViTConfig, fused: bool = True, norm_pix_loss: bool = True):
        super().__init__()
        self.cfg, self.norm_pix_loss = cfg, norm_pix_loss
        self.encoder = ViTEncoder(cfg, fused)
        tok = self.encoder.patch_embed
        self.decoder_embed = nn.Linear(cfg.dim, cfg.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_dim))
        # the decoder gets its own fixed position code (and orientation projection for 2.5D)
        self.decoder_pos = make_tokenizer(cfg.tokenization, cfg.decoder_dim, cfg.window, cfg.patch)
        del self.decoder_pos.proj  # positions only
        self.decoder_blocks = nn.ModuleList(
            Block(cfg.decoder_dim, cfg.decoder_heads, cfg.mlp_ratio, fused) for _ in range(cfg.decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(cfg.decoder_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(cfg.decoder_dim, cfg.patch**tok.ndim_patch)
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            m.apply(_init_weights)
        nn.init.normal_(self.mask_token, std=0.02)

    def random_masking(self, batch: int, ratio: float, device, generator=None):
        """Per-sample random split of the token indices: (keep, restore, mask) as in MAE.

        ``mask`` is 1 for hidden tokens; ``restore`` undoes the shuffle."""
        n = self.encoder.n_tokens
        n_keep = max(1, int(round(n * (1 - ratio))))
        gen_device = generator.device if generator is not None else device
        noise = torch.rand(batch, n, device=gen_device, generator=generator).to(device)
        shuffle = noise.argsort(dim=1)
        restore = shuffle.argsort(dim=1)
        mask = torch.ones(batch, n, device=device)
        mask[:, :n_keep] = 0
        return shuffle[:, :n_keep], restore, torch.gather(mask, 1, restore)

    def forward(self, x: torch.Tensor, mask_ratio: float | None = None, generator=None):
        """Returns ``(loss, pred, mask)``: pred ``(B, n_tokens, patch**ndim)`` in patchify order."""
        ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
        keep, restore, mask = self.random_masking(x.shape[0], ratio, x.device, generator)
        latent = self.encoder(x, keep)
        pred = self.decode(latent, restore)
        target = self.encoder.patch_embed.patchify(x)
        if self.norm_pix_loss:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        loss = ((pred.float() - target) ** 2).mean(-1)
        loss = (loss * mask).sum() / mask.sum()
        return loss, pred, mask

    def decode(self, latent: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        y = self.decoder_embed(latent)
        b, n = restore.shape
        fill = self.mask_token.to(y.dtype).expand(b, n + 1 - y.shape[1], -1)
        tokens = torch.cat([y[:, 1:], fill], dim=1)
        tokens = torch.gather(tokens, 1, restore.unsqueeze(-1).expand(-1, -1, y.shape[2]))
        tokens = tokens + self.decoder_pos.position_code().to(tokens.dtype)
        y = torch.cat([y[:, :1], tokens], dim=1)
        for blk in self.decoder_blocks:
            y = blk(y)
        return self.decoder_pred(self.decoder_norm(y))[:, 1:]


def build_encoder(c: ModelCard) -> ViTEncoder:
    """The card's ViT encoder with fresh weights (architecture from ``[architecture]``)."""
    arch = dict(c.extra.get("architecture", {}))
    size = arch.pop("size", "base")
    kw = {"tokenization": c.tokenization}
    if c.window:
        kw["window"] = c.window[0]
    if c.patch:
        kw["patch"] = c.patch[0]
    kw.update(arch)
    try:
        return ViTEncoder(config(size, **kw))
    except (TypeError, ValueError) as exc:
        raise SeisfmError(f"model card {c.id}: bad architecture ({exc})") from None
