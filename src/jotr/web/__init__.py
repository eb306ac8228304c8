"""The local web demo, ``jotr serve`` (optional extra ``jotr[web]``, Gradio).

* :mod:`jotr.web.handlers` -- the request handling (upload -> :class:`~jotr.inference.predictor.JOTRPredictor`
  -> overlay, side view, 3D scene, downloads, per-person messages), free of any web framework and unit-tested.
* :mod:`jotr.web.app` -- the Gradio page around it (imports gradio).
* ``examples/`` -- synthetic example images (``jotr synth``) with their detector-like keypoints.
"""
