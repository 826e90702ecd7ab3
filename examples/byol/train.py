"""Train the custom ensemble: run by the image in script mode (SKLearn-style estimator or SDK v3
ModelTrainer with SourceCode), with hyperparameters as --key value arguments."""

from __future__ import annotations

import argparse
import glob
import json
import os

import joblib
import pandas as pd
from custom_ml_lib import CVWeightedVotingClassifier, TabularPreprocessor
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline


def flag(text: str) -> bool:
    """The training toolkit passes str() of each value: True/False (SDK v2), true/false (v3)."""
    return str(text).strip().lower() in ("true", "1", "yes")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--use-custom-ensemble", type=flag, default=True)
    parser.add_argument("--ensemble-rf", type=flag, default=True)
    parser.add_argument("--ensemble-gb", type=flag, default=True)
    parser.add_argument("--ensemble-lr", type=flag, default=True)
    parser.add_argument("--cv-folds", type=int, default=3)
    parser.add_argument("--target", default="target")
    parser.add_argument("--model-dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    parser.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", "data"))
    return parser.parse_args()


def members(args: argparse.Namespace) -> list:
    chosen = []
    if args.ensemble_rf:
        chosen.append(("rf", RandomForestClassifier(n_estimators=100, random_state=0)))
    if args.ensemble_gb:
        chosen.append(("gb", GradientBoostingClassifier(random_state=0)))
    if args.ensemble_lr:
        chosen.append(("lr", LogisticRegression(max_iter=1000)))
    if not chosen:
        raise ValueError(
            "every ensemble member is switched off: set ensemble-rf, ensemble-gb or ensemble-lr to true"
        )
    return chosen


def main() -> None:
    args = parse_args()
    files = sorted(glob.glob(os.path.join(args.train, "**", "*.csv"), recursive=True))
    if not files:
        raise FileNotFoundError(f"no CSV files in the train channel {args.train}")
    frame = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    if args.target not in frame.columns:
        raise KeyError(f"target column {args.target!r} not in {list(frame.columns)}")
    X, y = frame.drop(columns=[args.target]), frame[args.target]
    if args.use_custom_ensemble:
        model = CVWeightedVotingClassifier(members(args), cv=args.cv_folds)
    else:
        model = RandomForestClassifier(n_estimators=100, random_state=0)
    pipeline = Pipeline([("preprocess", TabularPreprocessor()), ("model", model)]).fit(X, y)
    if args.use_custom_ensemble:
        for (name, _), weight in zip(model.estimators, model.weights_, strict=True):
            print(f"member {name}: cv_accuracy={model.cv_scores_[name]:.4f} weight={weight:.4f}")
    print(f"train:accuracy={pipeline.score(X, y):.6f}")
    os.makedirs(args.model_dir, exist_ok=True)
    joblib.dump(pipeline, os.path.join(args.model_dir, "model.joblib"))
    with open(os.path.join(args.model_dir, "columns.json"), "w") as fh:
        json.dump(list(X.columns), fh)


if __name__ == "__main__":
    main()
