"""A stand-in for a company's own modelling library: a preprocessor and a CV-weighted voting
ensemble, shipped next to train.py and installed by script mode from setup.py."""

from custom_ml_lib.ensemble import CVWeightedVotingClassifier
from custom_ml_lib.preprocessing import TabularPreprocessor

__all__ = ["CVWeightedVotingClassifier", "TabularPreprocessor"]
