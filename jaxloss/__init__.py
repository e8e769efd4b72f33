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
from ._bits import pack_bits as pack_bits
from ._bits import unpack_bits as unpack_bits
from ._search import knn as knn
from ._search import mean_average_precision_at_r as mean_average_precision_at_r
from ._search import precision_at_k as precision_at_k
from ._search import r_precision as r_precision
from ._search import recall_at_k as recall_at_k
from ._search import sharded_knn as sharded_knn

# --------------------------------------------------------------------------- divergences (issue 4)

# --------------------------------------------------------------------------- classification (issue 4)

# --------------------------------------------------------------------------- metric learning (issue 5)

# --------------------------------------------------------------------------- testing and validation
from . import testing as testing  # noqa: E402
from . import torch as torch  # noqa: E402
