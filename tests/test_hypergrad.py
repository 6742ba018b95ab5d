import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxhpo import hypergrad


def problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    w = rng.normal(size=4)
    y = x @ w + 0.5 * rng.normal(size=80)
    xt, yt, xv, yv = x[:48], y[:48], x[48:], y[48:]
    batches = (xt.reshape(6, 8, 4), yt.reshape(6, 8))

    def inner(p, b, h):
        return jnp.mean((b[0] @ p - b[1]) ** 2) + jnp.exp(h["log_wd"]) * jnp.sum(p**2)

    def val(p):
        return jnp.mean((xv @ p - yv) ** 2)

    def opt(h):
        return optax.sgd(jnp.exp(h["log_lr"]), momentum=0.5)

    return batches, inner, val, opt


def test_hypergradient_matches_finite_differences():
    with jax.enable_x64(True):
        batches, inner, val, opt = problem()
        f = lambda h: hypergrad.unrolled_loss(h, init_params=jnp.zeros(4), inner_loss=inner, val_loss=val,  # noqa
                                              optimizer=opt, batches=batches)
        h = {"log_lr": jnp.float64(np.log(0.05)), "log_wd": jnp.float64(np.log(0.1))}
        g = jax.grad(f)(h)
        for name in h:
            eps = 1e-5
            up = dict(h, **{name: h[name] + eps})
            down = dict(h, **{name: h[name] - eps})
            fd = (f(up) - f(down)) / (2 * eps)
            np.testing.assert_allclose(g[name], fd, rtol=1e-5)
        # checkpointing changes memory, not values; truncation differentiates only the tail
        g_nock = jax.grad(lambda h: hypergrad.unrolled_loss(h, init_params=jnp.zeros(4), inner_loss=inner,
                                                            val_loss=val, optimizer=opt, batches=batches,
                                                            checkpoint=False))(h)
        np.testing.assert_allclose(g_nock["log_lr"], g["log_lr"], rtol=1e-10)
        g_tr = jax.grad(lambda h: hypergrad.unrolled_loss(h, init_params=jnp.zeros(4), inner_loss=inner,
                                                          val_loss=val, optimizer=opt, batches=batches,
                                                          truncate=2))(h)
        assert np.isfinite(g_tr["log_lr"]) and not np.isclose(g_tr["log_lr"], g["log_lr"])
        np.testing.assert_allclose(f(h), hypergrad.unrolled_loss(h, init_params=jnp.zeros(4), inner_loss=inner,
                                                                 val_loss=val, optimizer=opt, batches=batches,
                                                                 truncate=2), rtol=1e-12)


def test_search_lowers_the_validation_loss_from_every_start():
    batches, inner, val, opt = problem()
    res = hypergrad.search(
        {"log_lr": jnp.log(jnp.array([1e-3, 3e-3])), "log_wd": jnp.log(jnp.array([1.0, 0.3]))},
        init_params=lambda k: jnp.zeros(4), inner_loss=inner, val_loss=val, optimizer=opt,
        batches=lambda k: batches, outer_steps=30, key=jax.random.key(0), outer_optimizer=optax.adam(0.3),
        bounds={"log_lr": (np.log(1e-4), np.log(0.2)), "log_wd": (np.log(1e-6), np.log(10.0))})
    assert res.val_loss.shape == (30, 2) and res.hparams["log_lr"].shape == (30, 2)
    assert np.all(np.asarray(res.val_loss[-1]) < 0.5 * np.asarray(res.val_loss[0]))
    assert np.all(np.asarray(res.hparams["log_lr"]) <= np.log(0.2) + 1e-6)
    assert float(res.best_val_loss) == pytest.approx(float(np.min(res.val_loss)))


def test_search_bad_arguments():
    batches, inner, val, opt = problem()
    kw = dict(init_params=lambda k: jnp.zeros(4), inner_loss=inner, val_loss=val, optimizer=opt,
              batches=lambda k: batches, key=jax.random.key(0))
    with pytest.raises(ValueError, match="outer_steps"):
        hypergrad.search({"log_lr": jnp.zeros(2)}, outer_steps=0, **kw)
    with pytest.raises(ValueError, match="bounds"):
        hypergrad.search({"log_lr": jnp.zeros(2)}, outer_steps=2, bounds={"momentum": (0, 1)}, **kw)
