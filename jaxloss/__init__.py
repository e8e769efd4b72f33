"""jaxloss: norms, distances, divergences and metric-learning losses for JAX.

The core API follows optax's conventions (per-example values, never reduced;
``axis`` and ``where`` options); :mod:`jaxloss.torch` mirrors PyTorch's names
and numbers. Every function jit-compiles, vmaps and differentiates, with
finite gradients at every finite input.
"""

__version__ = "0.1.0"

# --------------------------------------------------------------------------- reductions
from ._reductions import reduce as reduce

# --------------------------------------------------------------------------- norms
from ._norms import frobenius_norm as frobenius_norm
from ._norms import matrix_norm as matrix_norm
from ._norms import norm as norm
from ._norms import nuclear_norm as nuclear_norm
from ._norms import spectral_norm as spectral_norm
from ._norms import vector_norm as vector_norm

# --------------------------------------------------------------------------- residual losses
from ._regression import absolute_error as absolute_error
from ._regression import huber_loss as huber_loss
from ._regression import l2_loss as l2_loss
from ._regression import smooth_l1_loss as smooth_l1_loss
from ._regression import squared_error as squared_error

# --------------------------------------------------------------------------- distances (issue 3)

# --------------------------------------------------------------------------- search (issue 6)

# --------------------------------------------------------------------------- divergences (issue 4)

# --------------------------------------------------------------------------- classification (issue 4)

# --------------------------------------------------------------------------- metric learning (issue 5)
from ._metric_learning import batch_all_triplet_loss as batch_all_triplet_loss
from ._metric_learning import batch_hard_triplet_loss as batch_hard_triplet_loss
from ._metric_learning import contrastive_loss as contrastive_loss
from ._metric_learning import cosine_embedding_loss as cosine_embedding_loss
from ._metric_learning import hinge_embedding_loss as hinge_embedding_loss
from ._metric_learning import info_nce as info_nce
from ._metric_learning import lifted_structured_loss as lifted_structured_loss
from ._metric_learning import margin_ranking_loss as margin_ranking_loss
from ._metric_learning import negative_mask as negative_mask
from ._metric_learning import npair_loss as npair_loss
from ._metric_learning import ntxent as ntxent
from ._metric_learning import positive_mask as positive_mask
from ._metric_learning import semi_hard_triplet_loss as semi_hard_triplet_loss
from ._metric_learning import (
    soft_nearest_neighbor_loss as soft_nearest_neighbor_loss,
)
from ._metric_learning import (
    supervised_contrastive_loss as supervised_contrastive_loss,
)
from ._metric_learning import triplet_margin_loss as triplet_margin_loss
from ._metric_learning import triplet_mask as triplet_mask

# --------------------------------------------------------------------------- testing and validation
from . import testing as testing  # noqa: E402
from . import torch as torch  # noqa: E402
