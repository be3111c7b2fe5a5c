"""A synthetic utility with ground truth: `generate` writes the contract tables plus truth/ (true theft,
latent stress, the per-month event probabilities) and `oracle_probabilities` turns truth into a ceiling.

Modules follow the simulation order: population → economy → usage → service_changes → theft → billing →
collection, orchestrated by generator; faults and truth sit beside them.
"""

from features.synthetic.config import GenerationSummary, GeneratorConfig, GeneratorError
from features.synthetic.faults import FAULT_KINDS
from features.synthetic.generator import generate
from features.synthetic.truth import TRUTH_DIR, oracle_probabilities, read_truth

__all__ = [
    "FAULT_KINDS",
    "TRUTH_DIR",
    "GenerationSummary",
    "GeneratorConfig",
    "GeneratorError",
    "generate",
    "oracle_probabilities",
    "read_truth",
]
