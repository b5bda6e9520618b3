"""Search spaces: the interface's contracts on every registered space, NB201's encodings."""

import jax
import numpy as np
import pytest

from amla_jax.errors import UserError
from amla_jax.spaces import SPACES, SpaceError, get_space
from amla_jax.spaces.nb201 import PATH_FEATURES, connected, describe, from_arch_string

KEY = jax.random.key(0)


def test_registry_is_a_plain_dict():
    assert type(SPACES) is dict and "nb201" in SPACES
    with pytest.raises(SpaceError, match="unknown 'nope'"):
        get_space("nope")
    assert issubclass(SpaceError, UserError)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_sample_mutate_neighbours_encode(name):
    space = get_space(name)()
    arch = space.sample(KEY)
    assert arch == space.sample(KEY) and isinstance(hash(arch), int)
    assert all(0 <= a < n for a, n in zip(arch, space.choices, strict=True))
    for i in range(20):
        child = space.mutate(jax.random.fold_in(KEY, i), arch)
        assert sum(a != b for a, b in zip(arch, child, strict=True)) == 1
    neighbours = space.neighbours(arch)
    assert len(neighbours) == sum(n - 1 for n in space.choices) == len(set(neighbours))
    assert all(sum(a != b for a, b in zip(arch, n, strict=True)) == 1 for n in neighbours)
    onehot = space.encode(arch)
    assert onehot.shape == (sum(space.choices),) and onehot.sum() == len(space.choices)
    assert space.encode_path(arch).ndim == 1


@pytest.mark.parametrize("name", sorted(SPACES))
def test_to_spec_and_back(name):
    space = get_space(name)()
    for i in range(5):
        arch = space.sample(jax.random.fold_in(KEY, i))
        assert space.from_spec(space.to_spec(arch, None)) == arch


def test_nb201_arch_string_order_and_paths():
    text = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    arch = from_arch_string(text)
    assert arch == (3, 0, 2, 1, 0, 4) and describe(arch) == text
    assert connected(arch) and not connected((3, 3, 3, 0, 0, 0))
    space = get_space("nb201")()
    assert len(PATH_FEATURES) == 4 + 16 + 16 + 64
    # paths: 0->3 (skip), 0->1->2->3 (conv3, conv1, pool); 0->1->3 and 0->2->3 are cut
    assert space.encode_path(arch).sum() == 2
    assert space.encode_path((0,) * 6).sum() == 0
    np.testing.assert_array_equal(space.encode_path((1,) * 6).sum(), 4)


def test_darts_cells_go_into_a_micro_template():
    from amla_jax.zoo import DARTS_V2_NORMAL, DARTS_V2_REDUCE, darts_v2

    space = get_space("darts")()
    template = darts_v2(channels=8, num_normal=1)
    arch = space.from_spec(template)
    assert space.to_spec(arch, template) == template  # DARTS V2's own genotype
    child = space.mutate(KEY, arch)
    spec = space.to_spec(child, template)
    assert spec.body.network == template.body.network and space.from_spec(spec) == child
    assert len(DARTS_V2_NORMAL) == len(DARTS_V2_REDUCE) == 8
