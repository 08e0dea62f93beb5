"""Frechet distance against closed forms and SciPy; the rotation feature network learns its task."""
import numpy as np
import scipy.linalg

from gan import data, quality


def test_frechet_distance_one_dimensional_closed_form():
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 2.0, size=(500, 1)), rng.normal(-0.5, 0.5, size=(400, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert abs(quality.frechet_distance(a, b) - expected) < 1e-9


def test_frechet_distance_matches_scipy_sqrtm_and_is_zero_on_itself():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(200, 6)) @ rng.normal(size=(6, 6)) + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    np.testing.assert_allclose(quality.frechet_distance(a, b), ref, rtol=1e-7)
    assert abs(quality.frechet_distance(a, a)) < 1e-8
    # diagonal covariances: sum of (sqrt(var_a) - sqrt(var_b))^2 plus the mean term
    d1, d2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 4.0, 1.0])
    x = rng.normal(size=(1000, 3))
    white = (x - x.mean(0)) @ np.linalg.cholesky(np.linalg.inv(np.cov(x, rowvar=False)))  # sample cov = I
    x_a, x_b = white @ np.sqrt(d1), white @ np.sqrt(d2) + 1.0
    # mean term 3 * 1^2; covariance term (1 - 2)^2 + (2 - 2)^2 + (3 - 1)^2
    np.testing.assert_allclose(quality.frechet_distance(x_a, x_b), 3 + 1 + 0 + 4, rtol=1e-9)


def test_rotations_and_the_feature_net_learns_upright_sprites():
    x = data.read_image_folder(data.demo_sprites(n=96, size=32, seed=5), 32)
    rotated, labels = quality.rotations(x[:2])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1, 2, 2, 3, 3])
    np.testing.assert_array_equal(rotated[2], np.rot90(x[0]))
    net, accuracy = quality.train_feature_net(x[:80], epochs=4, batch_size=32, seed=0)
    held, held_labels = quality.rotations(x[80:])
    held_accuracy = (net.predict(held, verbose=0).argmax(-1) == held_labels).mean()
    assert held_accuracy > 0.6, held_accuracy  # chance is 0.25
    meter = quality.QualityMeter(quality.feature_model(net), x[:80], x[80:])
    grey = np.zeros_like(x[80:])
    assert meter.floor < 0.2 * meter.score(grey)
