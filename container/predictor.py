"""The WSGI app gunicorn serves (`predictor:app`), kept for users of AWS's classic layout.

The model is loaded here, once, in the gunicorn master before the workers fork.
"""

from byoc.serving.app import create_app

app = create_app()
