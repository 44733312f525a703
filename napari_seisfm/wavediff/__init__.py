"""WaveDiffusion: joint seismic-velocity latent diffusion checked against a finite-difference solver."""
