"""The BM-NAS bilevel search space, DARTS's split by role.

operations (fusion primitives), feature_reshape, model_search (the search-time
network with alpha/beta/gamma), genotypes, derive, model (the fixed network
rebuilt from a genotype), architect (the alternating update), callbacks.
"""

# Names are imported from their modules (or lazily from `ssnas_tf`): eager
# re-exports here would make nas <-> ssl imports circular.
