"""Numeric columns: median imputation and scaling; text columns: most-frequent imputation and
one-hot encoding (unknown categories ignored at prediction time)."""

from __future__ import annotations

import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


class TabularPreprocessor(TransformerMixin, BaseEstimator):
    """Chooses each column's treatment from the training frame's dtypes."""

    def fit(self, X: pd.DataFrame, y=None) -> TabularPreprocessor:
        numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
        text = [c for c in X.columns if c not in numeric]
        self.numeric_columns_, self.text_columns_ = numeric, text
        self.transformer_ = ColumnTransformer(
            [
                ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
                (
                    "text",
                    make_pipeline(
                        SimpleImputer(strategy="most_frequent"),
                        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                    ),
                    text,
                ),
            ]
        ).fit(X)
        self.feature_names_in_ = list(X.columns)
        return self

    def transform(self, X: pd.DataFrame):
        return self.transformer_.transform(X[self.feature_names_in_])
