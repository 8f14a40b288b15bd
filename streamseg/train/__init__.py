"""Training of streamseg's built-in instance-segmentation network (``streamseg train``).

Modules: :mod:`~streamseg.train.net` (the network), :mod:`~streamseg.train.loss` (TAL
assignment and losses), :mod:`~streamseg.train.sources` (synthetic and COCO samples),
:mod:`~streamseg.train.augment` (letterbox, augmentation, targets),
:mod:`~streamseg.train.data` (the loader), :mod:`~streamseg.train.loop` (the resumable loop),
:mod:`~streamseg.train.evaluate` (held-out sets and predictions), :mod:`~streamseg.train.scoring`
(mask mAP, AP per class and size), :mod:`~streamseg.train.export` (TorchScript / ONNX in the
runtime layout) and :mod:`~streamseg.train.cli` (``train_main``). Importing this package imports
nothing heavy.
"""
