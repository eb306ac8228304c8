"""Synthetic occluded-people dataset (the embedded default data): ``jotr synth``, docs/synthetic_format.md.

Modules: :mod:`~jotr.synth.poses` (pose archetypes on the Anny rig), :mod:`~jotr.synth.appearance` (body
colours, textured occluders, backgrounds), :mod:`~jotr.synth.scene` (one scene: sampling, rendering, ground
truth), :mod:`~jotr.synth.writer` (a split on disk, multiprocessing), :mod:`~jotr.synth.preview` (example
images). Nothing is imported here: the heavy dependencies (torch, anny, pyrender) load only when a submodule
is used.
"""
