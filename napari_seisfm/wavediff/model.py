"""The WaveDiffusion model as one object: setup, Stage 1 VQ autoencoder, Stage 2 DDPM, latent scale;
saved as NAME.safetensors + NAME.toml (the card says what configuration the weights belong to)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import SeisfmError
from ..io.output import atomic_output
from .data import Setup
from .diffusion import DDPM, DiffusionConfig
from .vqae import VQAE, VQConfig

BUNDLED = Path(__file__).parent / "bundled" / "wavediff-tiny.safetensors"


class WaveDiffusion(torch.nn.Module):
    def __init__(self, setup: Setup, vq: VQConfig, diffusion: DiffusionConfig):
        super().__init__()
        self.setup, self.vq_cfg, self.diff_cfg = setup, vq, diffusion
        self.vqae = VQAE(setup.shots, setup.seis_size, setup.vel_size, vq)
        self.ddpm = DDPM(vq.zdim, diffusion)
        self.register_buffer("z_mean", torch.zeros(1))
        self.register_buffer("z_std", torch.ones(1))

    def config(self) -> dict:
        return {"setup": self.setup.to_dict(), "vq": self.vq_cfg.to_dict(), "diffusion": self.diff_cfg.to_dict()}

    @classmethod
    def from_config(cls, cfg: dict) -> WaveDiffusion:
        return cls(Setup.from_dict(cfg["setup"]), VQConfig.from_dict(cfg["vq"]), DiffusionConfig.from_dict(cfg["diffusion"]))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.vq_cfg.zdim, self.vq_cfg.latent, self.vq_cfg.latent)

    def encode(self, s) -> torch.Tensor:
        """Preprocessed gathers -> standardised latents (the diffusion space)."""
        return (self.vqae.encode(s) - self.z_mean) / self.z_std

    def decode(self, z) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised latents -> (seismic, velocity) in the networks' [-1, 1] space."""
        s, v, _ = self.vqae.decode(z * self.z_std + self.z_mean)
        return s, v


def save(model: WaveDiffusion, path, extra: dict | None = None) -> Path:
    """Weights to PATH.safetensors (the configuration in its metadata too), the card to PATH.toml."""
    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # the one-VQ model shares its codebook between the decoders: store it once
    if not model.vq_cfg.two_vq:
        state = {k: v for k, v in state.items() if not k.startswith("vqae.vq_v.")}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata={"config": json.dumps(model.config())})
    with atomic_output(path.with_suffix(".toml")) as tmp:  # the card too: a half-written card is never read
        tmp.write_text(card_text(model.config(), extra or {}))
    return path


def load(path=None, device="cpu", expect: dict | None = None) -> tuple[WaveDiffusion, dict]:
    """Model and card from PATH.safetensors (+ .toml); the bundled tiny model when PATH is None.

    `expect` (a configuration) refuses weights of another configuration in one line."""
    path = Path(path) if path else BUNDLED
    if path.is_dir():
        found = sorted(path.glob("*.safetensors"))
        if not found:
            raise SeisfmError(f"{path}: no .safetensors model in this folder")
        path = found[0]
    if not path.exists():
        raise SeisfmError(f"{path}: no such model file")
    card_path = path.with_suffix(".toml")
    try:
        card = tomllib.loads(card_path.read_text()) if card_path.exists() else {}
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            cfg = json.loads((f.metadata() or {})["config"])
    except Exception as e:  # safetensors raises its own error type for a damaged header  # noqa: BLE001
        raise SeisfmError(f"{path}: not a seisfm wavediff model ({type(e).__name__}: {e})") from None
    if expect is not None and expect != cfg:
        diff = sorted(k for k in cfg if cfg.get(k) != expect.get(k))
        raise SeisfmError(
            f"{path}: a model of another configuration (differs in {', '.join(diff)}); "
            "start a new run folder or use the same --setup/--size"
        )
    model = WaveDiffusion.from_config(cfg)
    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001
        raise SeisfmError(f"{path}: damaged weights ({type(e).__name__}: {e})") from None
    if not model.vq_cfg.two_vq:
        state.update({k.replace("vqae.vq_s.", "vqae.vq_v."): v for k, v in state.items() if k.startswith("vqae.vq_s.")})
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise SeisfmError(f"{path}: weights do not fit their configuration ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), card


def card_text(cfg: dict, extra: dict) -> str:
    """The card: ``kind``, the scalars of ``extra``, then its tables and the configuration's (tomli-w writes it)."""
    import tomli_w

    plain = {k: v for k, v in extra.items() if not isinstance(v, dict)}
    tables = {**{k: v for k, v in extra.items() if isinstance(v, dict)}, **cfg}
    return tomli_w.dumps({"kind": "wavediffusion", **plain, **tables})
