"""byoc: scikit-learn behind SageMaker's bring-your-own-container contract."""

__version__ = "0.1.0"
