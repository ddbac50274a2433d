"""The studies, by CLI name, each checked against the protocol in dlstudy.studies.protocol."""
from dlstudy.studies import classify, cluster, derive, generate, trend
from dlstudy.studies.protocol import register

STUDIES = register(cluster, trend, classify, generate, derive)
