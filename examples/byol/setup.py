from setuptools import find_packages, setup

# Script mode pip-installs this directory before train.py runs (offline: no build isolation).
setup(name="custom_ml_lib", version="1.0.0", packages=find_packages(include=["custom_ml_lib*"]))
