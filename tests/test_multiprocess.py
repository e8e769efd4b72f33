"""jaxloss's sharded functions across real processes (``jax.distributed``, gloo on the CPU).

Each test starts 2 processes with 2 forced CPU devices each (``tests/multiprocess.py``),
runs one worker function of this module on the 4-device global mesh, and compares what the
processes computed with the single-process result computed here, in the test process. Inputs
that are sharded are built with ``jax.make_array_from_callback`` from the rows each process
holds (the callback refuses to read another process's rows); replicated inputs are host
NumPy arrays. Every check of a family runs in one launch; failures are collected and
reported together.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests.multiprocess import ROOT, MultiprocessError, run_multiprocess

pytestmark = pytest.mark.slow

AXIS = "d"
NUM_DEVICES = 4


# --------------------------------------------------------------------------- worker helpers


def _mesh():
    from jax.sharding import Mesh

    return Mesh(np.array(jax.devices()), (AXIS,))


def _held_by_this_process(x, mesh, spec):
    """A global array of ``x`` (sharded as ``spec``) built from this process's slice only.

    Returns the array and the ``(start, stop)`` range of the sharded axis that this process
    holds; the callback raises if a local device asks for anything outside that range.
    """
    from jax.sharding import NamedSharding

    sharding = NamedSharding(mesh, spec)
    axis = next(i for i, s in enumerate(spec) if s is not None)
    indices = sharding.addressable_devices_indices_map(x.shape).values()
    lo = min(ix[axis].start or 0 for ix in indices)
    hi = max(x.shape[axis] if ix[axis].stop is None else ix[axis].stop for ix in indices)
    own = np.array(np.take(x, np.arange(lo, hi), axis=axis))  # a copy: the rest of x is never read

    def callback(index):
        index = list(index)
        sl = index[axis]
        start, stop = sl.start or 0, x.shape[axis] if sl.stop is None else sl.stop
        if start < lo or stop > hi:
            raise AssertionError(f"process {jax.process_index()} asked for rows {start}:{stop}")
        index[axis] = slice(start - lo, stop - lo)
        return own[tuple(index)]

    return jax.make_array_from_callback(x.shape, sharding, callback), np.array([lo, hi])


def _compare(failures, name, got, want, **tol):
    try:
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), **tol)
    except AssertionError as err:
        failures.append(f"{name}: {err}")


def _check_processes(results, keys=None):
    """Every process read the same replicated result."""
    first = results[0]
    for pid, other in enumerate(results[1:], start=1):
        for key in keys or [k for k in first if not k.endswith("/held")]:
            np.testing.assert_array_equal(other[key], first[key], err_msg=f"process {pid} vs 0: {key}")


# --------------------------------------------------------------------------- harness


def _report_topology():
    return {
        "process_index": np.array(jax.process_index()),
        "process_count": np.array(jax.process_count()),
        "global_devices": np.array([d.id for d in jax.devices()]),
        "local_devices": np.array([d.id for d in jax.local_devices()]),
        "collectives": np.array(jax.config.jax_cpu_collectives_implementation == "gloo"),
        "psum": jax.jit(
            jax.shard_map(
                lambda x: jax.lax.psum(x, AXIS),
                mesh=_mesh(),
                in_specs=jax.P(AXIS),
                out_specs=jax.P(),
            )
        )(_held_by_this_process(np.arange(8.0), _mesh(), jax.P(AXIS))[0]),
    }


def _fail_in_process_1():
    import time

    if jax.process_index() == 1:
        raise ValueError("deliberate failure in process 1")
    time.sleep(600)  # process 0 would wait for ever: the harness must kill it
    return {}


def _sleep_forever():
    import time

    time.sleep(600)
    return {}


def test_harness_runs_two_processes_on_a_global_mesh():
    results = run_multiprocess(_report_topology, all_processes=True, timeout=90)
    assert len(results) == 2
    for pid, r in enumerate(results):
        assert int(r["process_index"]) == pid and int(r["process_count"]) == 2
        assert len(r["global_devices"]) == 4 and len(r["local_devices"]) == 2
        assert set(r["local_devices"]) < set(r["global_devices"])
        assert bool(r["collectives"])
        np.testing.assert_array_equal(r["psum"], [12.0, 16.0])  # 0+2+4+6, 1+3+5+7
    assert not set(results[0]["local_devices"]) & set(results[1]["local_devices"])


def test_harness_reports_the_failing_process_and_stops_the_other():
    import time

    start = time.monotonic()
    with pytest.raises(MultiprocessError) as err:
        run_multiprocess(_fail_in_process_1, timeout=90)
    message = str(err.value)
    assert "process 1 exited with status 1" in message
    assert "deliberate failure in process 1" in message
    assert "process 0 (killed)" in message
    assert time.monotonic() - start < 60  # not the timeout, nor process 0's sleep


def test_harness_times_out_and_kills_both():
    with pytest.raises(MultiprocessError, match="timed out after 3 s"):
        run_multiprocess(_sleep_forever, timeout=3)


# --------------------------------------------------------------------------- sharded_knn


def _knn_data():
    r = np.random.default_rng(0)
    db = r.normal(size=(64, 6)).astype(np.float32)
    db[40] = db[3]  # duplicates held by the other process: ties go to the lowest global index
    db[51] = db[3]
    db[50] = db[10]
    q = r.normal(size=(9, 6)).astype(np.float32)
    q[0] = db[3]
    q[1] = db[50]
    ragged = r.normal(size=(37, 6))
    q64 = r.normal(size=(8, 6))
    codes = r.integers(0, 2**32, size=(48, 3), dtype=np.uint32)
    codes[30] = codes[7]
    qcodes = r.integers(0, 2**32, size=(5, 3), dtype=np.uint32)
    qcodes[0] = codes[7]
    return {"db": db, "q": q, "ragged": ragged, "q64": q64, "codes": codes, "qcodes": qcodes}


# (name, database key, how the database is given, queries key, queries sharded, k, metric):
# "global": a jax.Array built with make_array_from_callback from each process's rows;
# "process_local": each process's NumPy rows through make_array_from_process_local_data;
# "numpy": the same host NumPy array on every process.
_KNN_CASES = [
    ("euclidean_global_k20", "db", "global", "q", False, 20, "euclidean"),
    ("euclidean_process_local_k20", "db", "process_local", "q", False, 20, "euclidean"),
    ("cosine_global_sharded_queries", "db", "global", "q64", True, 7, "cosine"),
    ("dot_numpy_ragged", "ragged", "numpy", "q64", False, 11, "dot"),
    ("hamming_packed_global", "codes", "global", "qcodes", False, 6, "hamming"),
]


def _knn_worker():
    mesh = _mesh()
    data = _knn_data()
    out = {}
    for name, dbkey, kind, qkey, shard_queries, k, metric in _KNN_CASES:
        db, q = data[dbkey], data[qkey]
        if kind == "global":
            db, held = _held_by_this_process(db, mesh, jax.P(AXIS))
            out[f"{name}/held"] = held
            assert not db.is_fully_addressable
        elif kind == "process_local":
            half = db.shape[0] // jax.process_count()
            held = np.array([jax.process_index() * half, (jax.process_index() + 1) * half])
            local = np.array(db[held[0] : held[1]])
            db = jax.make_array_from_process_local_data(jax.NamedSharding(mesh, jax.P(AXIS)), local)
            out[f"{name}/held"] = held
        if shard_queries:
            q, _ = _held_by_this_process(q, mesh, jax.P(AXIS))
        d, i = jaxloss.sharded_knn(q, db, k, mesh=mesh, metric=metric)
        out[f"{name}/d"], out[f"{name}/i"] = np.asarray(d), np.asarray(i)  # replicated: readable here
    return out


def test_sharded_knn_across_processes_equals_knn():
    results = run_multiprocess(_knn_worker, all_processes=True, timeout=150, x64=True)
    _check_processes(results)
    data, got, failures = _knn_data(), results[0], []
    for name, dbkey, kind, qkey, _, k, metric in _KNN_CASES:
        db, q = data[dbkey], data[qkey]
        d, i = jaxloss.knn(q, db, k, metric=metric)
        _compare(failures, f"{name} indices", got[f"{name}/i"], i, rtol=0, atol=0)
        _compare(failures, f"{name} distances", got[f"{name}/d"], d, rtol=1e-6, atol=1e-6)
        assert got[f"{name}/d"].dtype == d.dtype, name
        if kind != "numpy":
            half = db.shape[0] // 2
            assert [list(r[f"{name}/held"]) for r in results] == [[0, half], [half, db.shape[0]]]
    assert not failures, "\n".join(failures)
    # the ties: the lowest global index first, then its duplicate in the other process's rows
    assert list(got["euclidean_global_k20/i"][0, :3]) == [3, 40, 51]
    assert list(got["euclidean_global_k20/i"][1, :2]) == [10, 50]
    assert list(got["hamming_packed_global/i"][0, :2]) == [7, 30]


# --------------------------------------------------------------------------- contrastive losses


RING_BLOCK = 4  # 6 rows per device: a full and a ragged tile per device, 6 tiles around the ring


def _contrastive_data(dtype, batch=24, dim=5):
    r = np.random.default_rng(1)
    x = r.normal(size=(batch, dim)).astype(dtype)
    k = (x + 0.5 * r.normal(size=(batch, dim))).astype(dtype)
    labels = r.integers(0, 4, size=batch).astype(np.int32)
    return x, labels, k


def _gathered_only(loss):
    """A batch-level loss without a ring (the mining-set losses): ``block_size`` is not its option."""

    def call(e, lab, k, p, block_size=None, **kw):
        assert block_size is None
        return loss(e, lab, k, p, **kw)

    return call


# the mining-set losses (all-gathered candidates, no tiled path): in the all-gather test only
_GATHERED_ONLY = ("lifted", "snn")


def _contrastive_losses():
    """name -> (loss(x, labels, k, params, **kw), params): the parameters are traced (learnable)
    and differentiated; the worker adds ``axis_name`` (and ``block_size`` for the ring)."""
    return {
        "npair": (
            lambda e, lab, k, p, **kw: jaxloss.npair_loss(p["s"] * e, k, **kw),
            {"s": 0.7},
        ),
        "lifted": (
            _gathered_only(
                lambda e, lab, k, p, **kw: jaxloss.lifted_structured_loss(e, lab, margin=p["m"], **kw)
            ),
            {"m": 1.5},
        ),
        "snn": (
            _gathered_only(
                lambda e, lab, k, p, **kw: jaxloss.soft_nearest_neighbor_loss(
                    e, lab, temperature=p["t"], **kw
                )
            ),
            {"t": 2.0},
        ),
        "info_nce": (
            lambda e, lab, k, p, **kw: jaxloss.info_nce(e, k, temperature=p["t"], **kw),
            {"t": 0.2},
        ),
        "info_nce_raw": (
            lambda e, lab, k, p, **kw: jaxloss.info_nce(e, k, temperature=p["t"], normalize=False, **kw),
            {"t": 3.0},
        ),
        "clip": (
            lambda e, lab, k, p, **kw: jaxloss.clip_loss(e, k, temperature=p["t"], **kw),
            {"t": 0.1},
        ),
        "sigmoid": (
            lambda e, lab, k, p, **kw: jaxloss.sigmoid_contrastive_loss(
                e, k, logit_scale=p["scale"], logit_bias=p["bias"], **kw
            ),
            {"scale": 10.0, "bias": -10.0},
        ),
        "supcon": (
            lambda e, lab, k, p, **kw: jaxloss.supervised_contrastive_loss(e, lab, temperature=p["t"], **kw),
            {"t": 0.3},
        ),
        "ntxent": (
            lambda e, lab, k, p, **kw: jaxloss.ntxent(e, lab, p["t"], **kw),
            {"t": 0.3},
        ),
    }


# every loss in float64, and the two-sided ones in float32 too
_CONTRASTIVE_CASES = [(name, "float64") for name in _contrastive_losses()] + [
    ("clip", "float32"),
    ("sigmoid", "float32"),
]


def _contrastive_inputs():
    """{dtype: (x, labels, k)} and {case: params} (NumPy)."""
    data = {dtype: _contrastive_data(dtype) for dtype in ("float64", "float32")}
    losses = _contrastive_losses()
    params = {
        f"{name}/{dtype}": {p: np.asarray(v, dtype) for p, v in losses[name][1].items()}
        for name, dtype in _CONTRASTIVE_CASES
    }
    return data, params


def _contrastive_run(mesh, block_size=None):
    """jit of ``{case: value_and_grad(loss) wrt (x, k, params)}`` for every case: with a mesh,
    in ``shard_map`` over the batch with ``axis_name`` (and ``block_size``: the ring); without,
    the dense single-device loss of the whole batch. One compilation for all cases."""

    def run(data, params):
        out = {}
        for name, dtype in _CONTRASTIVE_CASES:
            if block_size is not None and name in _GATHERED_ONLY:
                continue
            loss = _contrastive_losses()[name][0]
            f = loss
            if mesh is not None:
                f = jax.shard_map(
                    functools.partial(loss, axis_name=AXIS, block_size=block_size),
                    mesh=mesh,
                    in_specs=(jax.P(AXIS), jax.P(AXIS), jax.P(AXIS), jax.P()),
                    out_specs=jax.P(),
                )
            x, labels, k = data[dtype]
            key = f"{name}/{dtype}"
            out[key] = jax.value_and_grad(f, argnums=(0, 2, 3))(x, labels, k, params[key])
        return out

    return jax.jit(run)


def _contrastive_worker(block_size):
    mesh, out = _mesh(), {}
    data, params = _contrastive_inputs()
    data = {
        dtype: tuple(_held_by_this_process(a, mesh, jax.P(AXIS))[0] for a in arrays)
        for dtype, arrays in data.items()
    }
    traced = _contrastive_run(mesh, block_size).trace(data, params)
    jaxpr = str(traced.jaxpr)
    out["has_ppermute"], out["has_all_gather"] = "ppermute" in jaxpr, "all_gather" in jaxpr
    for key, (v, (gx, gk, gp)) in traced.lower().compile()(data, params).items():
        out[f"{key}/value"], out[f"{key}/grad_x"], out[f"{key}/grad_k"] = v, gx, gk
        for p, g in gp.items():
            out[f"{key}/grad_{p}"] = g
    return out


@functools.cache
def _contrastive_reference():
    """The dense single-device losses of the whole batch, values and gradients (NumPy)."""
    return jax.tree.map(np.asarray, _contrastive_run(None)(*_contrastive_inputs()))


def _check_contrastive(got, ring=False):
    """Every case equals the dense single-device loss of the whole batch, values and gradients
    with respect to both embeddings and the (replicated, learnable) parameters."""
    failures = []
    for key, (v, (gx, gk, gp)) in _contrastive_reference().items():
        if ring and key.split("/")[0] in _GATHERED_ONLY:
            assert f"{key}/value" not in got, key
            continue
        rtol, atol = (1e-10, 1e-12) if key.endswith("float64") else (5e-5, 1e-6)
        assert got[f"{key}/value"].dtype == v.dtype, key
        _compare(failures, f"{key} value", got[f"{key}/value"], v, rtol=rtol, atol=atol)
        _compare(failures, f"{key} grad x", got[f"{key}/grad_x"], gx, rtol=rtol * 10, atol=atol)
        _compare(failures, f"{key} grad k", got[f"{key}/grad_k"], gk, rtol=rtol * 10, atol=atol)
        assert np.abs(gx).max() > 0, key  # not trivially zero
        for p, g in gp.items():  # a replicated parameter's gradient is summed over devices once
            _compare(failures, f"{key} grad {p}", got[f"{key}/grad_{p}"], g, rtol=rtol * 10, atol=atol)
            assert np.abs(g) > 0, (key, p)
    assert not failures, "\n".join(failures)


def test_all_gather_contrastive_losses_across_processes():
    got = run_multiprocess(_contrastive_worker, block_size=None, timeout=180, x64=True)
    assert bool(got["has_all_gather"]) and not bool(got["has_ppermute"])
    _check_contrastive(got)


def test_ring_contrastive_losses_across_processes():
    got = run_multiprocess(_contrastive_worker, block_size=RING_BLOCK, timeout=180, x64=True)
    assert bool(got["has_ppermute"]) and not bool(got["has_all_gather"])  # a ring: nothing gathered
    _check_contrastive(got, ring=True)


# --------------------------------------------------------------------------- embedding-model losses


def _embedding_data(batch=12, dim=6, guide=5):
    r = np.random.default_rng(3)
    q, k, neg = r.normal(size=(batch, dim)), r.normal(size=(batch, dim)), r.normal(size=(batch, 2, dim))
    ga = r.normal(size=(batch, guide))
    return q, k, neg, ga, ga + 0.6 * r.normal(size=(batch, guide)), r.normal(size=(batch, 2, guide))


def _embedding_losses():
    """name -> loss(q, k, neg, ga, gp, gn, scale, **kw) with a learnable scale."""
    gte = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
    return {
        "mnrl_gte": lambda q, k, n, ga, gp, gn, t, **kw: jaxloss.multiple_negatives_ranking_loss(
            q, k, n, scale=t, directions=gte, hardness_mode="all_negatives", hardness_strength=2.0, **kw
        ),
        "mnrl_matryoshka": lambda q, k, n, ga, gp, gn, t, **kw: jaxloss.multiple_negatives_ranking_loss(
            q, k, n, scale=t, directions=("query_to_doc", "doc_to_query"), matryoshka_dims=(6, 3), **kw
        ),
        "gist": lambda q, k, n, ga, gp, gn, t, **kw: jaxloss.gist_loss(
            q,
            k,
            n,
            guide_anchors=ga,
            guide_positives=gp,
            guide_negatives=gn,
            temperature=1 / t,
            margin=0.05,
            **kw,
        ),
    }


def _embedding_run(mesh, block_size=None):
    """jit of ``{name: value_and_grad(loss) wrt (q, k, neg, scale)}``: sharded over the batch with
    ``axis_name`` on a mesh, or the single-device loss of the whole batch."""

    def run(data, scale):
        out = {}
        for name, loss in _embedding_losses().items():
            f = loss
            if mesh is not None:
                f = jax.shard_map(
                    functools.partial(loss, axis_name=AXIS, block_size=block_size),
                    mesh=mesh,
                    in_specs=(jax.P(AXIS),) * 6 + (jax.P(),),
                    out_specs=jax.P(),
                )
            out[name] = jax.value_and_grad(f, argnums=(0, 1, 2, 6))(*data, scale)
        return out

    return jax.jit(run)


def _embedding_worker():
    """The all-gather (dense) and the ring (tiled) evaluation in one launch."""
    mesh = _mesh()
    data = tuple(_held_by_this_process(a, mesh, jax.P(AXIS))[0] for a in _embedding_data())
    out = {}
    for path, block_size in (("gather", None), ("ring", 2)):
        traced = _embedding_run(mesh, block_size).trace(data, np.float64(9.0))
        jaxpr = str(traced.jaxpr)
        out[f"{path}/ppermute"], out[f"{path}/all_gather"] = "ppermute" in jaxpr, "all_gather" in jaxpr
        for name, (v, grads) in traced.lower().compile()(data, np.float64(9.0)).items():
            out[f"{path}/{name}/value"] = v
            for what, g in zip(("q", "k", "neg", "scale"), grads, strict=True):
                out[f"{path}/{name}/grad_{what}"] = g
    return out


def test_embedding_losses_across_processes():
    """MNRL (GTE with hardness; fused Matryoshka) and GIST on 2 processes x 2 devices, gathered and
    as a ring, equal the single-device loss of the whole batch (values, embedding and scale gradients)."""
    got = run_multiprocess(_embedding_worker, timeout=300, x64=True)
    assert bool(got["gather/all_gather"]) and not bool(got["gather/ppermute"])
    assert bool(got["ring/ppermute"]) and not bool(got["ring/all_gather"])  # a ring: nothing gathered
    failures = []
    reference = jax.tree.map(np.asarray, _embedding_run(None)(_embedding_data(), np.float64(9.0)))
    for path in ("gather", "ring"):
        for name, (v, grads) in reference.items():
            _compare(failures, f"{path} {name} value", got[f"{path}/{name}/value"], v, rtol=1e-12)
            for what, g in zip(("q", "k", "neg", "scale"), grads, strict=True):
                key = f"{path}/{name}/grad_{what}"
                _compare(failures, f"{path} {name} grad {what}", got[key], g, rtol=1e-10, atol=1e-12)
    assert not failures, "\n".join(failures)


# --------------------------------------------------------------------------- the example


def test_distributed_retrieval_example_launches_two_processes():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    out = subprocess.run(
        [sys.executable, "examples/distributed_retrieval.py", "--launch", "2", "--database", "3000"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "process 0 holds database rows [0, 1500)" in text, text
    assert "process 1 holds database rows [1500, 3000)" in text, text
    assert "recall@10 against one process: 1.0000" in text, text
    assert "identical neighbours: True" in text, text
    # the command docs/scaling.md gives, which this test runs with a smaller database
    guide = (ROOT / "docs" / "scaling.md").read_text()
    assert ".venv/bin/python examples/distributed_retrieval.py --launch 2\n```" in guide


# --------------------------------------------------------------------------- vocab-parallel cross-entropy


# name -> (dtype, batch shape, options); every case is differentiated wrt inputs, kernel and bias
_LCE_CASES = {
    "plain_f64": ("float64", (12,), {}),
    "ragged_blocks_f64": ("float64", (12,), {"block_size": 5, "vocab_block_size": 4}),
    "all_options_f64": (
        "float64",
        (12,),
        {
            "label_smoothing": 0.1,
            "z_loss": 1e-3,
            "logit_softcap": 5.0,
            "ignore_index": -100,
            "block_size": 5,
            "vocab_block_size": 3,
        },
    ),
    "batch_dims_f64": ("float64", (3, 4), {"label_smoothing": 0.2, "vocab_block_size": 4}),
    "plain_f32": ("float32", (12,), {"vocab_block_size": 4}),
}
_LCE_WEIGHTED = ("all_options_f64",)  # class weights, split over the vocabulary with the kernel


def _lce_args(name, dim=8, vocab=40):
    """(inputs, kernel, bias, labels, cotangent[, weights]) of a case, NumPy."""
    dtype, shape, options = _LCE_CASES[name]
    r = np.random.default_rng(2)
    x = r.normal(size=(*shape, dim)).astype(dtype)
    kernel = (0.5 * r.normal(size=(dim, vocab))).astype(dtype)
    bias = r.normal(size=vocab).astype(dtype)
    labels = r.integers(0, vocab, size=shape).astype(np.int32)
    if "ignore_index" in options:
        labels.reshape(-1)[[1, 6]] = options["ignore_index"]
    cotangent = r.normal(size=shape).astype(dtype)  # d objective / d per-token losses
    args = (x, kernel, bias, labels, cotangent)
    if name in _LCE_WEIGHTED:
        args += (r.uniform(0.5, 2.0, size=vocab).astype(dtype),)
    return args


def _lce_run(mesh):
    """jit of ``{case: value_and_grad(sum(cotangent * losses)) wrt (inputs, kernel, bias)}``;
    with a mesh, the loss runs in ``shard_map`` with the vocabulary split over the devices."""

    def case(name, args):
        options = _LCE_CASES[name][2]
        axis_name = None if mesh is None else AXIS

        def losses(x, kernel, bias, labels, *weights):
            return jaxloss.linear_softmax_cross_entropy(
                x,
                kernel,
                labels,
                bias=bias,
                weights=weights[0] if weights else None,
                axis_name=axis_name,
                **options,
            )

        if mesh is not None:
            specs = (jax.P(), jax.P(None, AXIS), jax.P(AXIS), jax.P()) + (jax.P(AXIS),) * (len(args) - 5)
            losses = jax.shard_map(losses, mesh=mesh, in_specs=specs, out_specs=jax.P())

        def objective(x, kernel, bias, labels, cotangent, *weights):
            per_token = losses(x, kernel, bias, labels, *weights)
            return jnp.sum(per_token * cotangent), per_token

        return jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True)(*args)

    return jax.jit(lambda all_args: {name: case(name, args) for name, args in all_args.items()})


def _lce_worker():
    mesh = _mesh()
    all_args, out = {}, {}
    for name in _LCE_CASES:
        x, kernel, bias, labels, cotangent, *weights = _lce_args(name)
        kernel, out[f"{name}/held"] = _held_by_this_process(kernel, mesh, jax.P(None, AXIS))
        bias, _ = _held_by_this_process(bias, mesh, jax.P(AXIS))
        weights = [_held_by_this_process(w, mesh, jax.P(AXIS))[0] for w in weights]
        all_args[name] = (x, kernel, bias, labels, cotangent, *weights)
    for name, ((_, per_token), (gx, gk, gb)) in _lce_run(mesh)(all_args).items():
        out[f"{name}/losses"], out[f"{name}/grad_inputs"] = per_token, gx
        out[f"{name}/grad_kernel"], out[f"{name}/grad_bias"] = gk, gb
    return out


def test_vocab_parallel_linear_softmax_cross_entropy_across_processes():
    results = run_multiprocess(_lce_worker, all_processes=True, timeout=150, x64=True)
    _check_processes(results)
    got, failures = results[0], []
    want = _lce_run(None)({name: _lce_args(name) for name in _LCE_CASES})
    for name, ((_, per_token), grads) in want.items():
        f64 = _LCE_CASES[name][0] == "float64"
        rtol, atol = (1e-10, 1e-12) if f64 else (1e-5, 1e-6)
        assert got[f"{name}/losses"].dtype == per_token.dtype, name
        _compare(failures, f"{name} losses", got[f"{name}/losses"], per_token, rtol=rtol, atol=atol)
        for key, g in zip(("inputs", "kernel", "bias"), grads, strict=True):
            _compare(failures, f"{name} grad {key}", got[f"{name}/grad_{key}"], g, rtol=rtol, atol=atol)
            assert np.abs(np.asarray(g)).max() > 0, (name, key)
        vocab = _lce_args(name)[1].shape[1]
        assert [list(r[f"{name}/held"]) for r in results] == [[0, vocab // 2], [vocab // 2, vocab]]
    assert not failures, "\n".join(failures)
    # the single-device reference is the dense cross-entropy of the logits (no fused-only option)
    x, kernel, bias, labels, _ = _lce_args("plain_f64")
    dense = jaxloss.softmax_cross_entropy_with_integer_labels(x @ kernel + bias, labels)
    np.testing.assert_allclose(got["plain_f64/losses"], dense, rtol=1e-10)


# --------------------------------------------------------------------------- fused post-training losses


def _post_args(dim=6, vocab=40):
    """(inputs, kernel, bias, ref_kernel, ref_bias), labels, GRPO's mask, advantages and old log-probs."""
    r = np.random.default_rng(5)
    x = r.normal(size=(4, 5, dim))
    kernel, ref_kernel = 0.5 * r.normal(size=(dim, vocab)), 0.5 * r.normal(size=(dim, vocab))
    bias, ref_bias = r.normal(size=vocab), r.normal(size=vocab)
    labels = r.integers(0, vocab, size=(4, 5))
    labels[:, 0] = -100
    mask = r.uniform(size=(4, 5)) > 0.2
    return (x, kernel, bias, ref_kernel, ref_bias), labels, mask, r.normal(size=4), -r.uniform(0.5, 3, (4, 5))


def _post_run(mesh):
    """jit of value_and_grad wrt (inputs, kernel, bias) of DPO with a reference head and of GRPO with a
    reference head and an old policy; with a mesh, in shard_map with every kernel and bias split over V."""
    _, labels, mask, adv, old = _post_args()
    axis_name = None if mesh is None else AXIS
    tiles = dict(block_size=3, vocab_block_size=4)
    ref_x = 0.9 * _post_args()[0][0]

    def dpo(x, k, b, rk, rb):
        return jaxloss.linear_preference_loss(
            x, k, labels, bias=b, ref_inputs=ref_x, ref_kernel=rk, ref_bias=rb, nll_weight=0.5,
            axis_name=axis_name, **tiles,
        )  # fmt: skip

    def grpo(x, k, b, rk, rb):
        return jaxloss.linear_grpo_loss(
            x, k, labels % 40, mask, adv, bias=b, ref_inputs=ref_x, ref_kernel=rk, ref_bias=rb,
            old_log_probs=old, temperature=0.8, axis_name=axis_name, **tiles,
        )  # fmt: skip

    def run(args):
        out = {}
        for name, f in (("dpo", dpo), ("grpo", grpo)):
            if mesh is not None:
                specs = (jax.P(), jax.P(None, AXIS), jax.P(AXIS), jax.P(None, AXIS), jax.P(AXIS))
                f = jax.shard_map(f, mesh=mesh, in_specs=specs, out_specs=jax.P())
            out[name] = jax.value_and_grad(f, argnums=(0, 1, 2))(*args)
        return out

    return jax.jit(run)


def _post_worker():
    mesh = _mesh()
    x, kernel, bias, ref_kernel, ref_bias = _post_args()[0]
    held = {}
    kernel, held["kernel/held"] = _held_by_this_process(kernel, mesh, jax.P(None, AXIS))
    ref_kernel, _ = _held_by_this_process(ref_kernel, mesh, jax.P(None, AXIS))
    bias, _ = _held_by_this_process(bias, mesh, jax.P(AXIS))
    ref_bias, _ = _held_by_this_process(ref_bias, mesh, jax.P(AXIS))
    out = dict(held)
    for name, (value, grads) in _post_run(mesh)((x, kernel, bias, ref_kernel, ref_bias)).items():
        out[f"{name}/value"] = value
        for key, g in zip(("inputs", "kernel", "bias"), grads, strict=True):
            out[f"{name}/grad_{key}"] = g
    return out


def test_vocab_parallel_preference_and_grpo_losses_across_processes():
    results = run_multiprocess(_post_worker, all_processes=True, timeout=150, x64=True)
    _check_processes(results)
    got, failures = results[0], []
    for name, (value, grads) in _post_run(None)(_post_args()[0]).items():
        assert np.isfinite(float(value)), name
        _compare(failures, f"{name} value", got[f"{name}/value"], value, rtol=1e-12)
        for key, g in zip(("inputs", "kernel", "bias"), grads, strict=True):
            assert np.abs(np.asarray(g)).max() > 0, (name, key)
            _compare(failures, f"{name} grad {key}", got[f"{name}/grad_{key}"], g, rtol=1e-10, atol=1e-12)
    assert [list(r["kernel/held"]) for r in results] == [[0, 20], [20, 40]]
    assert not failures, "\n".join(failures)
