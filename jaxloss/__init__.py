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
from ._distances import cdist as cdist
from ._distances import cosine_distance as cosine_distance
from ._distances import cosine_similarity as cosine_similarity
from ._distances import pairwise_distance as pairwise_distance
from ._distances import pdist as pdist
from ._distances import squareform as squareform

# --------------------------------------------------------------------------- search (issue 6)

# --------------------------------------------------------------------------- divergences (issue 4)

# --------------------------------------------------------------------------- classification (issue 4)

# --------------------------------------------------------------------------- metric learning (issue 5)

# --------------------------------------------------------------------------- testing and validation
from . import testing as testing  # noqa: E402
from . import torch as torch  # noqa: E402
