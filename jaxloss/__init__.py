"""jaxloss: norms, distances, divergences and metric-learning losses for JAX.

The core API follows optax's conventions (per-example values, never reduced;
``axis`` and ``where`` options); :mod:`jaxloss.torch` mirrors PyTorch's names
and numbers. Every function jit-compiles, vmaps and differentiates (the
tiled custom-VJP paths in forward mode only when ``jax.jvp``/``jax.jacfwd``
is applied around them), with a finite value at every finite input where the
mathematical value is finite and representable, and a finite gradient where
the gradient is; cosines and normalised losses are scale-free.
"""

# ruff: noqa: I001  (sections follow the layout of docs/design.md, not the alphabet)

__version__ = "0.4.0.dev0"

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

# --------------------------------------------------------------------------- binary codes
from ._bits import pack_bits as pack_bits
from ._bits import unpack_bits as unpack_bits

# --------------------------------------------------------------------------- distances
from ._distances import cdist as cdist
from ._distances import cosine_distance as cosine_distance
from ._distances import cosine_similarity as cosine_similarity
from ._distances import pairwise_distance as pairwise_distance
from ._distances import pdist as pdist
from ._distances import squareform as squareform

# --------------------------------------------------------------------------- search
from ._search import knn as knn
from ._search import range_search as range_search
from ._search import sharded_knn as sharded_knn

# --------------------------------------------------------------------------- retrieval metrics
from ._retrieval import average_precision as average_precision
from ._retrieval import hit_rate as hit_rate
from ._retrieval import mean_average_precision_at_r as mean_average_precision_at_r
from ._retrieval import normalized_dcg as normalized_dcg
from ._retrieval import precision_at_k as precision_at_k
from ._retrieval import r_precision as r_precision
from ._retrieval import recall_at_k as recall_at_k
from ._retrieval import reciprocal_rank as reciprocal_rank
from ._retrieval import relevant_counts as relevant_counts

# --------------------------------------------------------------------------- divergences
from ._divergences import bhattacharyya_distance as bhattacharyya_distance
from ._divergences import convex_kl_divergence as convex_kl_divergence
from ._divergences import cross_entropy as cross_entropy
from ._divergences import entropy as entropy
from ._divergences import generalized_kl_divergence as generalized_kl_divergence
from ._divergences import hellinger_distance as hellinger_distance
from ._divergences import jensen_shannon_distance as jensen_shannon_distance
from ._divergences import js_divergence as js_divergence
from ._divergences import kl_divergence as kl_divergence
from ._divergences import kl_divergence_with_log_targets as kl_divergence_with_log_targets
from ._divergences import renyi_divergence as renyi_divergence
from ._divergences import symmetric_kl_divergence as symmetric_kl_divergence
from ._divergences import total_variation_distance as total_variation_distance

# --------------------------------------------------------------------------- classification (cross-entropy)
from ._classification import binary_cross_entropy as binary_cross_entropy
from ._classification import safe_softmax_cross_entropy as safe_softmax_cross_entropy
from ._classification import sigmoid_binary_cross_entropy as sigmoid_binary_cross_entropy
from ._classification import sigmoid_focal_loss as sigmoid_focal_loss
from ._classification import smooth_labels as smooth_labels
from ._classification import softmax_cross_entropy as softmax_cross_entropy
from ._classification import (
    softmax_cross_entropy_with_integer_labels as softmax_cross_entropy_with_integer_labels,
)
from ._linear_cross_entropy import linear_softmax_cross_entropy as linear_softmax_cross_entropy

# --------------------------------------------------------------------------- LM head beyond cross-entropy
from ._distillation import linear_distillation_loss as linear_distillation_loss
from ._softmax_statistics import LinearSoftmaxStatistics as LinearSoftmaxStatistics
from ._softmax_statistics import linear_softmax_statistics as linear_softmax_statistics

# --------------------------------------------------------------------------- LLM post-training
from ._preference import cpo_loss as cpo_loss
from ._preference import dpo_loss as dpo_loss
from ._preference import kto_loss as kto_loss
from ._preference import orpo_loss as orpo_loss
from ._preference import simpo_loss as simpo_loss
from ._policy import grpo_loss as grpo_loss
from ._linear_post_training import linear_grpo_loss as linear_grpo_loss
from ._linear_post_training import linear_preference_loss as linear_preference_loss

# --------------------------------------------------------------------------- labelled batches (mining masks)
from ._batch import negative_mask as negative_mask
from ._batch import positive_mask as positive_mask
from ._batch import triplet_mask as triplet_mask

# --------------------------------------------------------------------------- metric learning (triplet family)
from ._metric_learning import batch_all_triplet_loss as batch_all_triplet_loss
from ._metric_learning import batch_hard_triplet_loss as batch_hard_triplet_loss
from ._metric_learning import semi_hard_triplet_loss as semi_hard_triplet_loss
from ._metric_learning import triplet_margin_loss as triplet_margin_loss

# --------------------------------------------------------------------------- PyTorch's pair losses
from ._pair_losses import cosine_embedding_loss as cosine_embedding_loss
from ._pair_losses import hinge_embedding_loss as hinge_embedding_loss
from ._pair_losses import margin_ranking_loss as margin_ranking_loss

# --------------------------------------------------------------------------- contrastive (dense, tiled, ring)
from ._contrastive import clip_loss as clip_loss
from ._contrastive import contrastive_loss as contrastive_loss
from ._contrastive import info_nce as info_nce
from ._contrastive import lifted_structured_loss as lifted_structured_loss
from ._contrastive import npair_loss as npair_loss
from ._contrastive import ntxent as ntxent
from ._contrastive import sigmoid_contrastive_loss as sigmoid_contrastive_loss
from ._contrastive import soft_nearest_neighbor_loss as soft_nearest_neighbor_loss
from ._contrastive import supervised_contrastive_loss as supervised_contrastive_loss

# --------------------------------------------------------------------------- embedding-model training
from ._embedding import angle_loss as angle_loss
from ._embedding import cosent_loss as cosent_loss
from ._embedding import gist_loss as gist_loss
from ._embedding import matryoshka_loss as matryoshka_loss
from ._embedding import multiple_negatives_ranking_loss as multiple_negatives_ranking_loss
from ._gradient_cache import cached_embeddings as cached_embeddings

# --------------------------------------------------------------------------- pair-mining losses
from ._pair_mining import circle_loss as circle_loss
from ._pair_mining import multi_similarity_loss as multi_similarity_loss

# --------------------------------------------------------------------------- margin and proxy losses
from ._margin import arcface_loss as arcface_loss
from ._margin import cosface_loss as cosface_loss
from ._margin import proxy_anchor_loss as proxy_anchor_loss
from ._margin import proxy_nca_loss as proxy_nca_loss

# --------------------------------------------------------------------------- cross-batch memory
from ._queue import EmbeddingQueue as EmbeddingQueue
from ._queue import queue_init as queue_init
from ._queue import queue_push as queue_push

# --------------------------------------------------------------------------- run-time input validation
from ._validation import check_inputs as check_inputs

# --------------------------------------------------------------------------- submodules
from . import testing as testing
from . import torch as torch

__all__ = [
    "EmbeddingQueue",
    "LinearSoftmaxStatistics",
    "absolute_error",
    "angle_loss",
    "arcface_loss",
    "average_precision",
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "bhattacharyya_distance",
    "binary_cross_entropy",
    "cached_embeddings",
    "cdist",
    "check_inputs",
    "circle_loss",
    "clip_loss",
    "contrastive_loss",
    "convex_kl_divergence",
    "cosent_loss",
    "cosface_loss",
    "cosine_distance",
    "cosine_embedding_loss",
    "cosine_similarity",
    "cpo_loss",
    "cross_entropy",
    "dpo_loss",
    "entropy",
    "frobenius_norm",
    "generalized_kl_divergence",
    "gist_loss",
    "grpo_loss",
    "hellinger_distance",
    "hinge_embedding_loss",
    "hit_rate",
    "huber_loss",
    "info_nce",
    "jensen_shannon_distance",
    "js_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "knn",
    "kto_loss",
    "l2_loss",
    "lifted_structured_loss",
    "linear_distillation_loss",
    "linear_grpo_loss",
    "linear_preference_loss",
    "linear_softmax_cross_entropy",
    "linear_softmax_statistics",
    "margin_ranking_loss",
    "matrix_norm",
    "matryoshka_loss",
    "mean_average_precision_at_r",
    "multi_similarity_loss",
    "multiple_negatives_ranking_loss",
    "negative_mask",
    "norm",
    "normalized_dcg",
    "npair_loss",
    "ntxent",
    "nuclear_norm",
    "orpo_loss",
    "pack_bits",
    "pairwise_distance",
    "pdist",
    "positive_mask",
    "precision_at_k",
    "proxy_anchor_loss",
    "proxy_nca_loss",
    "queue_init",
    "queue_push",
    "r_precision",
    "range_search",
    "recall_at_k",
    "reciprocal_rank",
    "reduce",
    "relevant_counts",
    "renyi_divergence",
    "safe_softmax_cross_entropy",
    "semi_hard_triplet_loss",
    "sharded_knn",
    "sigmoid_binary_cross_entropy",
    "sigmoid_contrastive_loss",
    "sigmoid_focal_loss",
    "simpo_loss",
    "smooth_l1_loss",
    "smooth_labels",
    "soft_nearest_neighbor_loss",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
    "spectral_norm",
    "squared_error",
    "squareform",
    "supervised_contrastive_loss",
    "symmetric_kl_divergence",
    "testing",
    "total_variation_distance",
    "triplet_margin_loss",
    "triplet_mask",
    "unpack_bits",
    "vector_norm",
]
