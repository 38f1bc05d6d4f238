"""A weight-free, JSON-able description of a model's computation graph.

Both the ONNX converter and the torch.fx describer produce the same format
(see :mod:`.module` for its layout); :func:`.module.build_graph_module`
turns it back into a trainable module by instantiating only allow-listed
torch modules and calling only allow-listed functions, so rebuilding a
model from a file never executes code that came with the file.
"""
