"""``jaxloss.torch``: PyTorch's names, arguments, defaults and numbers, in JAX.

``jaxloss.torch`` mirrors ``torch.nn.functional``, ``torch.norm``,
``torch.cdist`` and ``torch.linalg`` the way ``jax.numpy`` mirrors NumPy: ported
code changes its imports and gives PyTorch's numbers. Every function here is a
thin layer over the core ``jaxloss`` API (never a second implementation) and
this package never imports torch.

Differences from PyTorch, by design: gradients are finite where PyTorch gives
NaN (documented per function), and there is no ``out=`` argument (JAX arrays
are immutable).

This module only re-exports; the implementations live by family:
``_distances`` (norms and distances), ``_losses`` (``torch.nn.functional``'s
losses), ``_linear_cross_entropy`` (the fused linear + cross-entropy) and
``linalg`` (``torch.linalg``'s norms), over ``_common`` (reduction strings and
``dtype=`` arguments).
"""

from __future__ import annotations

from . import linalg as linalg
from ._distances import binary_hamming_distance as binary_hamming_distance
from ._distances import cdist as cdist
from ._distances import cosine_similarity as cosine_similarity
from ._distances import norm as norm
from ._distances import pairwise_distance as pairwise_distance
from ._distances import pdist as pdist
from ._linear_cross_entropy import linear_cross_entropy as linear_cross_entropy
from ._losses import binary_cross_entropy as binary_cross_entropy
from ._losses import binary_cross_entropy_with_logits as binary_cross_entropy_with_logits
from ._losses import cosine_embedding_loss as cosine_embedding_loss
from ._losses import cross_entropy as cross_entropy
from ._losses import hinge_embedding_loss as hinge_embedding_loss
from ._losses import huber_loss as huber_loss
from ._losses import kl_div as kl_div
from ._losses import l1_loss as l1_loss
from ._losses import margin_ranking_loss as margin_ranking_loss
from ._losses import mse_loss as mse_loss
from ._losses import nll_loss as nll_loss
from ._losses import smooth_l1_loss as smooth_l1_loss
from ._losses import triplet_margin_loss as triplet_margin_loss
from ._losses import triplet_margin_with_distance_loss as triplet_margin_with_distance_loss

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "binary_hamming_distance",
    "cdist",
    "cosine_embedding_loss",
    "cosine_similarity",
    "cross_entropy",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "linalg",
    "linear_cross_entropy",
    "margin_ranking_loss",
    "mse_loss",
    "nll_loss",
    "norm",
    "pairwise_distance",
    "pdist",
    "smooth_l1_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]
