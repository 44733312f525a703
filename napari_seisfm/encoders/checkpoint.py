"""Loading encoder weights from the checkpoint layouts people actually have.

Accepted files:

- MAE-style ``{"model": state_dict}`` (Meta's MAE, NCS-models), also ``{"state_dict": ...}``,
  ``{"model_state": ...}``, ``{"encoder": ...}`` wrappers, saved with ``torch.save``;
- plain state dicts (``.pth`` / ``.pt`` / ``.bin``);
- safetensors (``.safetensors``).

``torch.load`` always runs with ``weights_only=True``: a checkpoint is data, and a file that
needs Python objects other than tensors and containers (code) is refused, never executed.

Key mapping onto :class:`~napari_seisfm.encoders.vit.ViTEncoder` (names are Meta MAE / timm):

1. prefixes ``module.`` (DataParallel/DDP), ``_orig_mod.`` (torch.compile), ``model.``,
   ``backbone.`` and ``encoder.`` are stripped (repeatedly);
2. Hugging Face ``ViTMAEModel`` names are renamed (``vit.embeddings.patch_embeddings.projection``
   -> ``patch_embed.proj``, ``vit.encoder.layer.N.attention.attention.{query,key,value}`` ->
   ``blocks.N.attn.qkv`` (concatenated), ``attention.output.dense`` -> ``attn.proj``,
   ``layernorm_before/after`` -> ``norm1/2``, ``intermediate.dense`` -> ``mlp.fc1``,
   ``output.dense`` -> ``mlp.fc2``, ``vit.layernorm`` -> ``norm``);
3. the MAE decoder (``decoder_*``, ``mask_token``) and classifier heads (``head``, ``fc_norm``)
   are not part of the encoder and are ignored;
4. ``pos_embed`` (position encodings): ours are fixed sin-cos buffers; a checkpoint's code is
   copied when it has exactly our token count (with or without the cls row) and dropped
   otherwise;
5. an RGB patch projection ``(D, 3, P, P)`` is averaged over the colour channels into our
   single-channel ``(D, 1, P, P)`` (``weight.mean(1, keepdim=True)``).

Anything else that does not fit raises one :class:`SeisfmError` naming the file and listing the
first missing, unexpected and shape-mismatched keys with their counts.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import SeisfmError

PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "encoder.")
WRAPPERS = ("model", "state_dict", "model_state", "model_state_dict", "encoder")
IGNORED = re.compile(r"^(decoder_|decoder\.|mask_token|head\.|head$|fc_norm\.|pre_logits)")
SHOW = 5  # keys listed per category in error messages

_HF_RENAMES = [
    (r"^vit\.embeddings\.cls_token$", "cls_token"),
    (r"^vit\.embeddings\.position_embeddings$", "pos_embed"),
    (r"^vit\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^vit\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^vit\.encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
    (r"^vit\.encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
    (r"^vit\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
    (r"^vit\.encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
    (r"^vit\.layernorm\.", "norm."),
]
_HF_QKV = re.compile(r"^vit\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")


@dataclass
class LoadReport:
    """What happened while loading: recorded so users can see what was adapted."""

    path: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped from MAE-style containers; never runs code."""
    path = Path(path)
    if not path.is_file():
        raise SeisfmError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise SeisfmError(f"{path}: not a readable safetensors file ({exc})") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        code, detail = unpickling_refusal(exc)
        if code:
            raise SeisfmError(
                f"{path}: refused: the checkpoint holds Python objects other than tensors ({detail}); "
                "napari-seisfm never unpickles code (weights_only=True)"
            ) from None
        raise SeisfmError(f"{path}: not a PyTorch checkpoint ({detail})") from None
    except Exception as exc:  # noqa: BLE001 - any other bytes (a text file, garbage) make the unpickler fail its own way
        raise SeisfmError(f"{path}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    for _ in range(3):  # {"model": {...}} and similar, possibly nested
        if isinstance(obj, dict):
            inner = next((obj[k] for k in WRAPPERS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SeisfmError(f"{path}: holds no state dict of tensors (found {type(obj).__name__})")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def unpickling_refusal(exc: BaseException) -> tuple[bool, str]:
    """``(holds code, short detail)`` of torch's ``weights_only`` UnpicklingError: a global it refused (a
    function or class: code that plain unpickling would have run), or bytes it could not read."""
    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)|unsupported GLOBAL ([\w.]+)", text)
    if found:
        return True, f"Unsupported global: GLOBAL {found.group(1) or found.group(2)}"
    detail = re.search(r"WeightsUnpickler error:\s*(.+?)(?: was not an allowed|\n|$)", text)
    detail = detail.group(1).strip() if detail and detail.group(1).strip() else None
    if detail is None:
        detail = next((ln.strip() for ln in text.splitlines()[1:] if ln.strip().startswith(("Unsupported", "Trying"))), None)
    return False, (detail or text.strip().splitlines()[0])[:160]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0][:160]}" if text else exc.__class__.__name__


def map_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys to ViTEncoder names (prefixes, Hugging Face layout)."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        k = key
        changed = True
        while changed:
            changed = False
            for p in PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p) :], True
        m = _HF_QKV.match(k)
        if m:
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
            continue
        for pattern, repl in _HF_RENAMES:
            k = re.sub(pattern, repl, k)
        out[k] = value
    for (layer, kind), parts in qkv.items():
        if set(parts) == {"query", "key", "value"}:
            out[f"blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
        else:
            for name, v in parts.items():
                out[f"blocks.{layer}.attn.{name}.{kind}"] = v  # reported as unexpected
    return out


def adapt(encoder: nn.Module, sd: dict[str, torch.Tensor], report: LoadReport) -> dict[str, torch.Tensor]:
    """Apply the single-channel and position-code rules; move ignored keys to the report."""
    ours = encoder.state_dict()
    out = {}
    for k, v in sd.items():
        if IGNORED.match(k):
            report.ignored.append(k)
            continue
        if k == "pos_embed" or k == "patch_embed.pos_embed":
            _take_pos_embed(encoder, v, report)
            continue
        if k == "patch_embed.proj.weight" and k in ours and v.ndim == ours[k].ndim:  # noqa: SIM102
            if v.shape[1] != 1 and ours[k].shape[1] == 1 and v.shape[2:] == ours[k].shape[2:]:
                report.notes.append(f"patch projection: {v.shape[1]} input channels averaged into 1")
                v = v.mean(dim=1, keepdim=True)
        out[k] = v
    return out


def _take_pos_embed(encoder: nn.Module, v: torch.Tensor, report: LoadReport) -> None:
    buf = encoder.patch_embed.pos_embed
    code = v.reshape(-1, v.shape[-1])
    if code.shape[0] == buf.shape[0] + 1:
        code = code[1:]  # the cls row
    if code.shape == buf.shape:
        buf.copy_(code.to(buf.dtype))
        report.notes.append("position code: taken from the checkpoint")
    else:
        report.notes.append(
            f"position code: checkpoint's {tuple(v.shape)} does not fit {tuple(buf.shape)}; dropped (fixed sin-cos code used)"
        )


def _listing(name: str, keys: list[str]) -> str:
    shown = ", ".join(keys[:SHOW]) + (", ..." if len(keys) > SHOW else "")
    return f"{len(keys)} {name} ({shown})"


@torch.no_grad()
def load_encoder(encoder: nn.Module, path: str | Path, what: str = "the encoder") -> LoadReport:
    """Load a checkpoint file into ``encoder`` (strictly, after mapping); returns a report."""
    path = Path(path)
    sd = read_state_dict(path)
    report = LoadReport(str(path), sha256_file(path))
    sd = adapt(encoder, map_keys(sd), report)
    ours = encoder.state_dict()
    missing = [k for k in ours if k not in sd]
    unexpected = [k for k in sd if k not in ours]
    mismatched = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(ours[k].shape)}"
        for k in ours
        if k in sd and sd[k].shape != ours[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = [
            _listing(n, ks)
            for n, ks in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched))
            if ks
        ]
        raise SeisfmError(f"{path}: checkpoint does not match {what}: " + "; ".join(parts))
    encoder.load_state_dict({k: v.to(ours[k].dtype) for k, v in sd.items()}, strict=True)
    if report.ignored:
        report.notes.append(f"ignored {len(report.ignored)} decoder/head tensors")
    return report
