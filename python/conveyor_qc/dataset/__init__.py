"""From a labelled run to a dataset: Ground Truth manifests, export, augmentation, S3, labelling.

- :mod:`.manifest`      SageMaker Ground Truth classification manifests, read and written
- :mod:`.export`        ``dataset``: crops of labelled objects, split by object (leak-free)
- :mod:`.augment`       ``augment``: more training images from each crop
- :mod:`.s3`            uploads of datasets to S3
- :mod:`.quality`       ``quality``: crops that would mislead a model (blurred, cut, merged, ...)
- :mod:`.label_server`  ``label``: the local labelling page (``web/``)
- :mod:`.active`        the order the page asks in; ``simulate-labelling`` measures it
- :mod:`.asking`        that order kept current on the server's own thread
"""
