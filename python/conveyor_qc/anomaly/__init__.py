"""Anomaly models: one interface, ``predict(images) -> [Verdict]``, and its backends.

- :mod:`.model`    the interface, the model folder's format, training, loading, evaluation
- :mod:`.local`    the embedded model (features and classifier, every number in model.json)
- :mod:`.lookout`  Amazon Lookout for Vision through boto3 (discontinued by AWS on 2025-10-31)
"""
