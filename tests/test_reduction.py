import numpy as np
import pytest

from dlstudy.analysis.reduction import OpenTSNE, parse_chain, reduce_chains
from dlstudy.errors import InputError


def blobs(n=300, d=30, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    return rng.normal(size=(n, d)) + 6 * np.eye(d)[y], y


def test_parse_chain():
    assert parse_chain("kpca:200>tsne:2") == [("kpca", 200), ("tsne", 2)]
    assert parse_chain("none") == []
    assert parse_chain("l2>pca:32") == [("l2", 0), ("pca", 32)]
    for bad, words in [
        ("pca", "positive dimension"),
        ("lda:2", "unknown method"),
        ("tsne:10", "1 to 3"),
        ("l2:5", "takes no dimension"),
    ]:
        with pytest.raises(InputError, match=words):
            parse_chain(bad)


def test_chains_shapes_and_shared_prefixes():
    x, _ = blobs()
    out = reduce_chains(x, ["none", "pca:5", "kpca:20", "kpca:20>tsne:2", "pca:500"])
    assert out["none"].shape == (300, 30) and out["pca:5"].shape == (300, 5)
    assert out["kpca:20"].shape == (300, 20) and out["kpca:20>tsne:2"].shape == (300, 2)
    assert out["pca:500"].shape == (300, 30)  # clamped to the input's dimension
    unit = reduce_chains(x, ["l2", "l2>pca:3"])
    assert np.allclose(np.linalg.norm(unit["l2"], axis=1), 1, atol=1e-5) and unit["l2>pca:3"].shape == (300, 3)


def test_tsne_keeps_clusters_apart_and_places_new_points():
    from sklearn.metrics import silhouette_score

    x, y = blobs()
    tsne = OpenTSNE(2, random_state=0)
    emb = tsne.fit_transform(x)
    assert silhouette_score(emb, y) > 0.5
    new = tsne.transform(x[:5] + 0.01)
    assert new.shape == (5, 2) and np.allclose(new, emb[:5], atol=np.ptp(emb) * 0.1)


@pytest.mark.slow
def test_umap_step():  # UMAP compiles with numba on first use (~50 s)
    x, y = blobs()
    from sklearn.metrics import silhouette_score

    emb = reduce_chains(x, ["umap:2"])["umap:2"]
    assert emb.shape == (300, 2) and silhouette_score(emb, y) > 0.5
