"""The inference server: ``serve`` = gunicorn (server.py) + the Flask app (app.py).

One straight request path: ``codecs`` (decoder by Content-Type) -> ``schema`` (checks
against model.json, typed columns) -> ``inference`` (predict) -> ``output`` (Autopilot's
fields) -> ``codecs`` (encoder by Accept).  ``settings`` reads SageMaker's environment once.
"""
