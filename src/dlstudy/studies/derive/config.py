"""The derive study's config: which derivation, and each derivation's numbers (its own Params schema)."""

from __future__ import annotations

from dlstudy.config import Schema, StudyConfig, key, one_of, section
from dlstudy.derivations import batchnorm, conv_shape, lstm, pca, softmax_ce, word2vec
from dlstudy.derivations.batchnorm import Params as BatchNorm
from dlstudy.derivations.conv_shape import Params as ConvShape
from dlstudy.derivations.lstm import Params as LSTM
from dlstudy.derivations.pca import Params as PCA
from dlstudy.derivations.softmax_ce import Params as SoftmaxCE
from dlstudy.derivations.word2vec import Params as Word2Vec

# CLI name -> module: each has Params (its config section) and derive(params, seed)
DERIVATIONS = {
    "lstm": lstm,
    "conv-shape": conv_shape,
    "batchnorm": batchnorm,
    "softmax-ce": softmax_ce,
    "word2vec": word2vec,
    "pca": pca,
}


def config_key(name: str) -> str:
    return name.replace("-", "_")  # config keys: conv_shape, softmax_ce


class Config(StudyConfig):
    """dlstudy derive: the courses' hand derivations, checked against autograd."""

    which: one_of("all", *DERIVATIONS) = key("all", "the derivation to run ('all': every one)")
    as_json: bool = key(False, "set by --json: print machine-readable results instead of the steps")
    lstm: LSTM = section(LSTM)
    conv_shape: ConvShape = section(ConvShape)
    batchnorm: BatchNorm = section(BatchNorm)
    softmax_ce: SoftmaxCE = section(SoftmaxCE)
    word2vec: Word2Vec = section(Word2Vec)
    pca: PCA = section(PCA)

    def params(self, name: str) -> Schema:
        return getattr(self, config_key(name))


QUICK = {"quick": True, "conv_shape": {"random_checks": 50}, "pca": {"random_projections": 50}}
