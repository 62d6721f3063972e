"""Baseline searches on keras-tuner: RandomNet (randomnet, search) and the
MFAS-style surrogate search over BM-NAS genotypes (surrogate)."""
