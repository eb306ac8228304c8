"""Training losses: masked regression terms, learned weighting, 3D joint contrastive losses (J2J, J2N).

Import from the submodules (``jotr.losses.criterion.Criterion`` etc.); this package module stays light because
the config tree imports ``jotr.losses.config``.
"""
