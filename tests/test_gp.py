"""Tests for jaxhpo.gp: linear algebra, kernels, GP posterior and likelihood against NumPy float64."""

import os
import time
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhpo.gp import gp, kernels, linalg

LAYOUT3 = kernels.Layout.from_space_info([False, False, False], [0, 0, 0])


def matern52_np(x1, x2, ls, amp):
    r = np.sqrt(((x1[:, None, :] - x2[None, :, :]) ** 2 / ls**2).sum(-1))
    s = np.sqrt(5.0) * r
    return amp * (1 + s + s * s / 3) * np.exp(-s)


def test_cholesky_and_inverse_match_numpy_and_batch_under_vmap():
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        for n in (3, 32, 70, 130):
            a = rng.normal(size=(n, n))
            a = a @ a.T + n * np.eye(n)
            chol, inv = jax.jit(linalg.cholesky_and_inverse)(jnp.asarray(a))
            np.testing.assert_allclose(chol, np.linalg.cholesky(a), atol=1e-10)
            np.testing.assert_allclose(np.asarray(inv) @ np.asarray(chol), np.eye(n), atol=1e-10)
        batch = jnp.asarray(np.stack([a, 2 * a]))
        chols, _ = jax.jit(jax.vmap(linalg.cholesky_and_inverse))(batch)
        np.testing.assert_allclose(chols[1], np.linalg.cholesky(2 * a), atol=1e-10)
        bad = -jnp.eye(40)
        assert not bool(jnp.all(jnp.isfinite(jax.jit(linalg.cholesky_and_inverse)(bad)[0])))


def test_nll_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.uniform(size=(20, 3)))
        data = gp.GPData(x, jnp.sin(5 * x[:, 0]) + x[:, 1], jnp.arange(20) < 15)
        raw = jnp.asarray(rng.normal(size=5))
        nll = jax.jit(lambda r: gp.neg_log_marginal_likelihood(r, data, LAYOUT3))
        grad = jax.jit(jax.grad(nll))(raw)
        eps = 1e-6
        for i in range(5):
            step = jnp.zeros(5).at[i].set(eps)
            fd = (nll(raw + step) - nll(raw - step)) / (2 * eps)
            assert float(grad[i]) == pytest.approx(float(fd), rel=1e-4, abs=1e-7)


def test_posterior_and_likelihood_match_numpy_reference():
    rng = np.random.default_rng(2)
    n, m = 12, 16  # 12 real rows in a buffer of 16
    x = rng.uniform(size=(m, 3))
    y = np.sin(4 * x[:, 0]) + x[:, 2] ** 2
    mask = np.arange(m) < n
    xq = rng.uniform(size=(5, 3))
    ls, amp, noise = np.array([0.3, 0.5, 0.8]), 1.7, 1e-3
    with jax.enable_x64(True):
        raw = gp.pack(jnp.asarray(ls), jnp.asarray(amp), jnp.asarray(noise))
        data = gp.GPData(jnp.asarray(x), jnp.asarray(y), jnp.asarray(mask))
        post = gp.posterior(raw, data, LAYOUT3)
        mean, var = gp.predict(post, jnp.asarray(xq), LAYOUT3)
        nll = gp.neg_log_marginal_likelihood(raw, data, LAYOUT3)
        h = gp.unpack(raw)
        prior = float(gp.log_prior(h))
    xo, yo = x[:n], y[:n]
    k = matern52_np(xo, xo, ls, amp) + (noise + gp.JITTER * amp) * np.eye(n)
    ks = matern52_np(xq, xo, ls, amp)
    ref_mean = ks @ np.linalg.solve(k, yo)
    ref_var = amp - np.einsum("ij,ji->i", ks, np.linalg.solve(k, ks.T))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(var, ref_var, rtol=1e-6, atol=1e-9)
    sign, logdet = np.linalg.slogdet(k)
    ref_nll = 0.5 * yo @ np.linalg.solve(k, yo) + 0.5 * logdet + 0.5 * n * np.log(2 * np.pi)
    assert float(nll) == pytest.approx((ref_nll - prior) / n, rel=1e-9)


def test_fantasies_equal_a_refit_on_points_observed_at_the_posterior_mean():
    # kriging believer: conditioning on fantasies by the rank-p update must equal the
    # float64 NumPy posterior over observations plus fantasy rows valued at the mean
    rng = np.random.default_rng(5)
    n, m, p = 10, 16, 4  # 10 observations in a buffer of 16; 3 of 4 fantasy slots used
    x = rng.uniform(size=(m, 3))
    y = np.cos(3 * x[:, 1]) + x[:, 0]
    mask = np.arange(m) < n
    xf = rng.uniform(size=(p, 3))
    xf[1] = x[2] + 1e-3  # a fantasy next to an observation
    fmask = np.array([True, True, False, True])
    xq = np.concatenate([rng.uniform(size=(6, 3)), xf[:1]])
    ls, amp, noise = np.array([0.4, 0.3, 0.7]), 1.3, 1e-4

    @jax.jit  # one compilation instead of op-by-op dispatch
    def everything(x, y, mask, xf, fmask, xq):
        raw = gp.pack(jnp.asarray(ls), jnp.asarray(amp), jnp.asarray(noise))
        post = gp.posterior(raw, gp.GPData(x, y, mask), LAYOUT3)
        fant = gp.with_fantasies(post, xf, fmask, LAYOUT3)
        empty = gp.with_fantasies(post, xf, jnp.zeros_like(fmask), LAYOUT3)
        return (*gp.predict(post, xq, LAYOUT3), *gp.predict(fant, xq, LAYOUT3),
                *gp.predict_joint(fant, xq, LAYOUT3), *gp.predict(empty, xq, LAYOUT3))

    with jax.enable_x64(True):
        mean0, var0, mean, var, jmean, jcov, mean_e, var_e = everything(
            *(jnp.asarray(a) for a in (x, y, mask, xf, fmask, xq)))
    xo, yo = x[:n], y[:n]
    k = matern52_np(xo, xo, ls, amp) + (noise + gp.JITTER * amp) * np.eye(n)
    yf = matern52_np(xf[fmask], xo, ls, amp) @ np.linalg.solve(k, yo)  # the posterior mean at the fantasies
    xa, ya = np.concatenate([xo, xf[fmask]]), np.concatenate([yo, yf])
    ka = matern52_np(xa, xa, ls, amp) + (noise + gp.JITTER * amp) * np.eye(len(xa))
    ks = matern52_np(xq, xa, ls, amp)
    ref_mean = ks @ np.linalg.solve(ka, ya)
    ref_var = amp - np.einsum("ij,ji->i", ks, np.linalg.solve(ka, ks.T))
    ref_cov = matern52_np(xq, xq, ls, amp) - ks @ np.linalg.solve(ka, ks.T)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(var, ref_var, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jmean, ref_mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(jcov, ref_cov, rtol=1e-6, atol=1e-9)
    assert float(var[-1]) < 2e-4 * amp < float(var0[-1])  # at a fantasy the variance collapses to about the noise
    np.testing.assert_allclose(mean, mean0, rtol=1e-9, atol=1e-12)  # the believer leaves the mean alone
    np.testing.assert_array_equal(mean_e, mean0)  # no fantasy slot used: nothing changes
    np.testing.assert_array_equal(var_e, var0)


def test_categorical_overlap_kernel():
    layout = kernels.Layout.from_space_info([False, True], [0, 4])
    with jax.enable_x64(True):
        x = jnp.array([[0.2, 0.1], [0.2, 0.2], [0.2, 0.9]])  # categories 0, 0, 3
        f = kernels.features(x, jnp.array([1.0, 0.5]), layout)
        d2 = kernels.sqdist(f, f)
    assert float(d2[0, 1]) == pytest.approx(0.0, abs=1e-12)  # same category: no distance
    assert float(d2[0, 2]) == pytest.approx(1.0 / 0.5**2)  # different: 1 / lengthscale^2
    snapped = kernels.snap(jnp.array([[0.33, 0.6]]), kernels.Layout((False, True), (0, 4), (0, 4)))
    assert float(snapped[0, 1]) == pytest.approx(0.625)


@jax.jit
def _fit_and_predict(x, y, xq):
    yt, mask = gp.standardize_outputs(y, jnp.ones(y.shape[0], bool))
    data = gp.GPData(x, yt, mask)
    raw = gp.fit(gp.initial_raw(jax.random.key(0), x.shape[1], 2), data, LAYOUT3, max_steps=10)
    return yt, raw, *gp.predict(gp.posterior(raw, data, LAYOUT3), xq, LAYOUT3)


@pytest.mark.parametrize("case", ["duplicates", "constant", "huge", "near_duplicates", "all_failed"])
def test_no_nan_on_degenerate_data(case):
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(16, 3))
    y = np.sin(3 * x.sum(1))
    if case == "duplicates":
        x[8:] = x[:8]
        y[8:] = y[:8]
    elif case == "constant":
        y[:] = 3.0
    elif case == "huge":
        y = 1e9 * y + 1e9 * (rng.uniform(size=16) > 0.8)
    elif case == "near_duplicates":
        x[8:] = x[:8] + 1e-12
    elif case == "all_failed":
        y[:] = np.nan
    with jax.enable_x64(True):
        yt, raw, mean, var = _fit_and_predict(jnp.asarray(x), jnp.asarray(y), jnp.asarray(rng.uniform(size=(8, 3))))
    assert bool(jnp.all(jnp.isfinite(yt)))
    assert bool(jnp.all(jnp.isfinite(raw)))
    assert bool(jnp.all(jnp.isfinite(mean))) and bool(jnp.all(jnp.isfinite(var))) and bool(jnp.all(var > 0))


def test_standardize_is_robust_to_outliers():
    y = np.concatenate([np.linspace(0.0, 1.0, 19), [1e9]])
    with jax.enable_x64(True):
        yt, mask = gp.standardize_outputs(jnp.asarray(y), jnp.ones(20, bool))
    yt = np.asarray(yt)
    assert np.all(np.diff(yt) > 0)  # order kept
    assert yt[-1] < 10  # the outlier is compressed, the rest keeps its spread
    assert np.std(yt[:19]) > 0.3


def _openblas_threads() -> list[int]:
    import threadpoolctl

    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i.get("internal_api") == "openblas"]


@pytest.mark.parametrize("backend", ["threadpoolctl", "ctypes"])
def test_limit_blas_threads_limits_openblas_and_restores(backend, monkeypatch):
    pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, the one jaxlib's LAPACK calls use)

    import threadpoolctl

    from jaxhpo.gp import blas

    if not _openblas_threads():
        pytest.skip("no OpenBLAS loaded")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: nothing to limit")
    if backend == "ctypes":
        monkeypatch.setattr(blas, "_threadpoolctl_handles", lambda: None)
        assert blas._openblas_handles()
    with threadpoolctl.threadpool_limits(2, user_api="blas"):  # a known starting point, whatever the environment
        before = _openblas_threads()
        assert set(before) == {2}
        with blas.limit_blas_threads(1):
            assert _openblas_threads() == [1] * len(before)
        assert _openblas_threads() == before
        if backend == "threadpoolctl":  # looked up once, not at every block (0.7 ms each with limit())
            start = time.perf_counter()
            for _ in range(200):
                with blas.limit_blas_threads(1):
                    pass
            assert (time.perf_counter() - start) / 200 < 2e-4


def test_argmax_and_top_indices_match_numpy_inside_a_float32_jit():
    values = np.random.default_rng(0).normal(size=300)
    values[[7, 150]] = values.max() + 1.0  # a tie: the first index wins, as np.argmax

    @jax.jit  # an outer trace without x64, the GP code's local x64 context inside
    def run(v):
        with jax.enable_x64(True):
            v = v.astype(jnp.float64)
            return gp.argmax(v), gp.top_indices(v, 4)

    best, top = run(jnp.asarray(values, jnp.float32))
    assert int(best) == int(np.argmax(values.astype(np.float32))) == 7
    np.testing.assert_array_equal(np.asarray(top), np.argsort(-values.astype(np.float32), kind="stable")[:4])


def test_pessimistic_prior_mean_puts_the_far_field_at_a_bad_quantile():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        y = jnp.asarray(rng.normal(size=30))
        mask = jnp.asarray(np.arange(30) < 25)
        shifted = gp.pessimistic_prior_mean(y, mask, 90.0)
        level = np.percentile(np.asarray(y)[:25], 90.0)
        np.testing.assert_allclose(shifted[:25], np.asarray(y)[:25] - level, rtol=1e-12)
        assert np.all(np.asarray(shifted[25:]) == 0.0)
        # far from the data the posterior mean returns to the prior mean: the 90th
        # percentile of the observed values, not their mean
        layout = kernels.Layout.from_space_info([False, False], [0, 0])
        x = jnp.asarray(rng.uniform(0.0, 0.3, size=(30, 2)))
        data = gp.GPData(x, shifted, mask)
        raw = gp.pack(jnp.full(2, 0.05), jnp.asarray(1.0), jnp.asarray(1e-4))
        mean, _ = gp.predict(gp.posterior(raw, data, layout), jnp.asarray([[0.95, 0.95]]), layout)
        assert abs(float(mean[0])) < 1e-6  # 0 in shifted units: the 90th percentile
        assert float(mean[0]) + level > float(np.mean(np.asarray(y)[:25])) + 0.5


def test_mean_gradient_bound_is_the_largest_gradient_norm_of_the_mean_in_feature_space():
    rng = np.random.default_rng(5)
    layout = kernels.Layout.from_space_info([False, False, True], [0, 0, 3])
    x = rng.uniform(size=(10, 3))
    with jax.enable_x64(True):
        raw = gp.pack(jnp.asarray([0.3, 0.6, 1.0]), jnp.asarray(1.3), jnp.asarray(1e-3))
        post = gp.posterior(raw, gp.GPData(jnp.asarray(x), jnp.sin(5 * jnp.asarray(x[:, 0])), jnp.ones(10, bool)),
                            layout)
        mask = jnp.arange(10) < 7
        bound = float(gp.mean_gradient_bound(post, jnp.asarray(x), mask, layout))
        feats = np.asarray(gp.features_of(post, jnp.asarray(x), layout))
        h = gp._hyper(post)

        def mean_at(f):  # the posterior mean as a function of one point's features
            return float((gp.kernel_matrix(h, jnp.asarray(f)[None], post.features, "matern52") @ post.alpha)[0])

        norms = []
        for i in range(7):  # central finite differences, one feature at a time
            eps = 1e-6
            grad = [(mean_at(feats[i] + eps * e) - mean_at(feats[i] - eps * e)) / (2 * eps)
                    for e in np.eye(feats.shape[1])]
            norms.append(np.linalg.norm(grad))
    assert bound == pytest.approx(max(norms), rel=1e-5)


@pytest.mark.parametrize("seen_rows", [0, 1, 7])
def test_same_points_and_unseen_equal_a_numpy_reference_at_the_tolerance(seen_rows):
    # coordinates exactly at, just inside and just outside the tolerance; masked rows never count
    rng = np.random.default_rng(seen_rows)
    seen = rng.uniform(size=(seen_rows, 3))
    x = np.concatenate([rng.uniform(size=(5, 3)), seen + 5e-7, seen + np.array([0.0, 2e-6, 0.0]), seen[:1]])
    mask = np.arange(seen_rows) % 3 != 2
    same_ref = np.all(np.abs(x[:, None, :] - seen[None, :, :]) <= 1e-6, axis=-1)
    unseen_ref = ~np.any(same_ref & mask[None, :], axis=1)
    same = kernels.same_points(jnp.asarray(x), jnp.asarray(seen))
    assert same.shape == (len(x), seen_rows) and same.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(same), same_ref)
    np.testing.assert_array_equal(np.asarray(kernels.unseen(jnp.asarray(x), jnp.asarray(seen), jnp.asarray(mask))),
                                  unseen_ref)
    if seen_rows:  # the reference itself tells apart the cases it should
        assert unseen_ref[:5].all() and not unseen_ref[5] and unseen_ref[5 + seen_rows]
