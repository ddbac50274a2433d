import pytest
import torch

from dlstudy.errors import InputError
from dlstudy.models.autoencoder import DenseAutoencoder, PoolAutoencoder, build_autoencoder
from dlstudy.studies.cluster.config import Model

MODEL_CFG = Model(pool={"channels": [8, 16, 32]}, dense={"channels": [8, 16, 32], "latent_dim": 64})


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32), (3, 17, 23)])
def test_shapes_and_output_range(shape):
    x = torch.rand(2, *shape) * 2 - 1
    pool = build_autoencoder("pool", in_shape=shape, model_cfg=MODEL_CFG)
    dense = build_autoencoder("dense:12", in_shape=shape, model_cfg=MODEL_CFG)
    for model in (pool, dense):
        y = model(x)
        assert y.shape == x.shape and y.abs().max() <= 1
    assert dense.encode(x).shape == (2, 12)
    h, w = shape[1] // 8, shape[2] // 8
    assert pool.encode(x).shape == (2, 32 * h * w) == (2, pool.latent_dim)


def test_pool_decoder_uses_the_saved_indices():
    model = PoolAutoencoder(in_shape=(1, 16, 16), channels=(4,)).eval()
    x, other = torch.rand(2, 1, 1, 16, 16)
    z, indices = model._encode(x)
    _, other_indices = model._encode(other)
    assert torch.allclose(model.decode(z, indices), model(x))
    # the same code un-pooled at other places decodes to another image
    assert not torch.allclose(model.decode(z, indices), model.decode(z, other_indices))


def test_bad_specs_and_sizes():
    with pytest.raises(InputError, match="unknown autoencoder"):
        build_autoencoder("vae", in_shape=(1, 28, 28), model_cfg=MODEL_CFG)
    with pytest.raises(InputError, match="positive integer"):
        build_autoencoder("dense:x", in_shape=(1, 28, 28), model_cfg=MODEL_CFG)
    with pytest.raises(InputError, match="too small"):
        DenseAutoencoder(in_shape=(1, 4, 4), channels=(8, 16, 32))


@pytest.mark.parametrize("size, last_map, grid", [(48, 3, 3), (28, 1, 1), (64, 4, 3)])
def test_the_expression_head_never_pools_to_a_grid_larger_than_the_last_map(size, last_map, grid):
    """A 1x1 map copied to 3x3 would feed the first linear layer nine copies of the same numbers (issue 35, 19)."""
    from dlstudy.models.cnn import ExpressionCNN
    from dlstudy.studies.classify.answers import architecture

    model = ExpressionCNN(image_size=size, channels=(4, 8, 16, 32), convs=(1, 1, 1, 1), hidden=(8,))
    assert (model.last_map, model.grid) == (last_map, grid)
    first = next(m for m in model.classifier if isinstance(m, torch.nn.Linear))
    assert first.in_features == 32 * grid * grid
    assert model(torch.zeros(2, 1, size, size)).shape == (2, 7)
    total = sum(p.numel() for p in model.parameters())
    said = architecture(
        parameters=total,
        convs=4,
        size=size,
        channels=1,
        classes=7,
        hidden=[8],
        last_map=last_map,
        grid=grid,
        head=first.weight.numel(),
    )
    assert f"into a {last_map}x{last_map} map" in said
    assert ("keeps it as it is" in said) == (grid == last_map) and f"{first.weight.numel() / total:.0%}" in said
