"""The kernel inception distance, nearest neighbours and latent interpolation against direct computations."""
import numpy as np
import pytest

from gan import quality
from gan.dcgan_model import slerp


def test_polynomial_mmd2_equals_the_pairwise_sums():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(1, 1, size=(4, 3))

    def k(x, y):
        return (x @ y / 3 + 1) ** 3

    within_a = sum(k(a[i], a[j]) for i in range(5) for j in range(5) if i != j) / 20
    within_b = sum(k(b[i], b[j]) for i in range(4) for j in range(4) if i != j) / 12
    across = sum(k(x, y) for x in a for y in b) / 20
    assert quality.polynomial_mmd2(a, b) == pytest.approx(within_a + within_b - 2 * across, rel=1e-12)


def test_kid_is_unbiased_where_the_frechet_distance_is_not():
    rng = np.random.default_rng(1)
    draws = [(rng.normal(size=(100, 16)), rng.normal(size=(100, 16))) for _ in range(20)]
    kid = np.mean([quality.polynomial_mmd2(a, b) for a, b in draws])
    frechet = np.mean([quality.frechet_distance(a, b) for a, b in draws])
    # same distribution: the unbiased MMD averages to ~0 (its sd over 20 draws is ~0.01 here), the
    # Frechet distance of 100 samples in 16-d to ~2.6 (the sample-size bias)
    assert abs(kid) < 0.02 and frechet > 1.0, (kid, frechet)
    shifted = quality.kernel_distance(rng.normal(size=(300, 16)), rng.normal(0.5, 1, size=(300, 16)))
    same = quality.kernel_distance(rng.normal(size=(300, 16)), rng.normal(size=(300, 16)))
    assert shifted[0] > 10 * abs(same[0]) and shifted[1] > 0, (shifted, same)


def test_nearest_neighbours_by_brute_force():
    rng = np.random.default_rng(2)
    q, r = rng.normal(size=(7, 5)), rng.normal(size=(11, 5))
    index, distance = quality.nearest_neighbours(q, r)
    d = np.linalg.norm(q[:, None] - r[None], axis=2)
    np.testing.assert_array_equal(index, d.argmin(1))
    np.testing.assert_allclose(distance, d.min(1), rtol=1e-9)


def test_slerp_keeps_the_end_points_and_the_norm_of_orthogonal_unit_vectors():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    walk = slerp(a, b, np.linspace(0, 1, 5))
    np.testing.assert_allclose(walk[[0, -1]], [a, b], atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(walk, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(walk[2], [np.sqrt(0.5)] * 2, atol=1e-6)
