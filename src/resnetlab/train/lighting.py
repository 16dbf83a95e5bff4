"""The paper's colour augmentation (Sec. 3.4, after Krizhevsky et al.) as a hook: PCA lighting added to the
normalized batch on the training device, drawn for the global batch from a generator keyed on (seed, 3,
epoch, step), each process taking its rows of it (as pad-crop-flip's draws)."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.augment import generator, pca_lighting
from .hooks import Hook, SessionView


class Lighting(Hook):
    def __init__(self, sigma: float):
        self.sigma = sigma

    def on_start(self, session: SessionView) -> None:
        self.session = session  # its state is read at each step: a resume replaces it
        world, batch = session.world, session.config.batch_size
        self.rows = slice(world.rank * batch // world.size, (world.rank + 1) * batch // world.size)
        self.std = torch.tensor(session.std)

    def transform_inputs(self, x: Tensor) -> Tensor:
        config, state = self.session.config, self.session.state
        gen = generator(config.seed, 3, state.epoch, state.step)
        return pca_lighting(x, self.std, gen, self.sigma, batch=config.batch_size, rows=self.rows)
